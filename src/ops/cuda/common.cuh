// Shared by the CUDA sources: error checks and element conversions.
#pragma once
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <string>

#include "ops/cuda/cuda.h"

#define CUDA_CHECK(expr)                                                           \
  do {                                                                             \
    cudaError_t err_ = (expr);                                                     \
    if (err_ != cudaSuccess)                                                       \
      ::hwledger::cuda::raise_error(std::string("CUDA: " #expr " failed: ") +      \
                                    cudaGetErrorString(err_) + " (" __FILE__ ":" + \
                                    std::to_string(__LINE__) + ")");               \
  } while (0)

#define CUBLAS_CHECK(expr)                                                                      \
  do {                                                                                          \
    cublasStatus_t st_ = (expr);                                                                \
    if (st_ != CUBLAS_STATUS_SUCCESS)                                                           \
      ::hwledger::cuda::raise_error(std::string("cuBLAS: " #expr " failed: status ") +          \
                                    std::to_string(static_cast<int>(st_)) + " (" __FILE__ ":" + \
                                    std::to_string(__LINE__) + ")");                            \
  } while (0)

// After each launch: a bad configuration shows here, not at the next synchronisation.
#define CUDA_LAUNCH_CHECK() CUDA_CHECK(cudaGetLastError())

namespace hwledger::cuda {

inline cudaStream_t stream_of(Context& ctx) {
  return static_cast<cudaStream_t>(ctx.stream());
}

__device__ __forceinline__ float to_f32(float x) {
  return x;
}
__device__ __forceinline__ float to_f32(__half x) {
  return __half2float(x);
}
__device__ __forceinline__ float to_f32(__nv_bfloat16 x) {
  return __bfloat162float(x);
}

template <typename T>
__device__ __forceinline__ T from_f32(float x);
template <>
__device__ __forceinline__ float from_f32<float>(float x) {
  return x;
}
template <>
__device__ __forceinline__ __half from_f32<__half>(float x) {
  return __float2half_rn(x);
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float x) {
  return __float2bfloat16_rn(x);
}

// Calls f.template operator()<T>() with T the C++ type of dtype t (f32, f16, bf16).
template <typename F>
void dispatch_float(DType t, const char* what, F&& f) {
  switch (t) {
    case DType::F32:
      f.template operator()<float>();
      return;
    case DType::F16:
      f.template operator()<__half>();
      return;
    case DType::BF16:
      f.template operator()<__nv_bfloat16>();
      return;
    default:
      raise_error(std::string(what) + ": dtype " + std::string(dtype_name(t)) +
                  " is not supported on CUDA");
  }
}

// Warp-wide reductions (all 32 lanes take part; every lane gets the result).
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
// The largest v over the warp and its index i; ties go to the smaller index.
__device__ __forceinline__ void warp_argmax(float& v, int32_t& i) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, v, o);
    const int32_t oi = __shfl_xor_sync(0xffffffffu, i, o);
    if (ov > v || (ov == v && oi < i)) {
      v = ov;
      i = oi;
    }
  }
}

inline int blocks_for(int64_t n, int threads) {
  return static_cast<int>((n + threads - 1) / threads);
}

}  // namespace hwledger::cuda
