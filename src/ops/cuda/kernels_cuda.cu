// Elementwise and row-wise kernels: RMSNorm, embedding, RoPE, SwiGLU, bias, argmax, conversions.
#include <cfloat>
#include <type_traits>

#include "ops/cuda/common.cuh"

namespace hwledger::cuda {

namespace {

template <int kThreads>
__device__ float block_sum(float v, float* red) {
  v = warp_sum(v);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) red[warp] = v;
  __syncthreads();
  v = warp_sum(lane < kThreads / 32 ? red[lane] : 0.0f);
  __syncthreads();
  return v;
}

template <typename O>
__global__ void rms_norm_kernel(const float* __restrict__ x, const float* __restrict__ w, float eps,
                                O* __restrict__ out, int64_t D, const int32_t* __restrict__ rows) {
  __shared__ float red[32];
  const float* row = x + (rows ? rows[blockIdx.x] : static_cast<int64_t>(blockIdx.x)) * D;
  float ss = 0;
#pragma unroll 8  // loads in flight: a decode step's norm is one row, latency-bound
  for (int64_t i = threadIdx.x; i < D; i += blockDim.x) ss += row[i] * row[i];
  ss = block_sum<256>(ss, red);
  const float r = rsqrtf(ss / static_cast<float>(D) + eps);
  O* o = out + blockIdx.x * D;
#pragma unroll 8
  for (int64_t i = threadIdx.x; i < D; i += blockDim.x) o[i] = from_f32<O>(row[i] * r * w[i]);
}

template <typename Tt>
__global__ void embedding_kernel(const Tt* __restrict__ table, const int32_t* __restrict__ ids,
                                 float* __restrict__ y, int64_t H, int64_t V) {
  const int32_t id = ids[blockIdx.x];
  float* o = y + blockIdx.x * H;
  if (id < 0 || id >= V) {  // validated on the host; NaN marks a bad id that slipped through
    for (int64_t i = threadIdx.x; i < H; i += blockDim.x) o[i] = __int_as_float(0x7fc00000);
    return;
  }
  const Tt* r = table + static_cast<int64_t>(id) * H;
  for (int64_t i = threadIdx.x; i < H; i += blockDim.x) o[i] = to_f32(r[i]);
}

// One block per (token, head): rotate-half over hd/2 pairs.
__global__ void rope_kernel(float* x, int64_t n_heads, int64_t hd, int64_t ldx,
                            const float* __restrict__ cos, const float* __restrict__ sin) {
  const int64_t t = blockIdx.x, h = blockIdx.y, half = hd / 2;
  float* v = x + t * ldx + h * hd;
  for (int64_t i = threadIdx.x; i < half; i += blockDim.x) {
    const float c = cos[t * half + i], s = sin[t * half + i];
    const float a = v[i], b = v[i + half];
    v[i] = a * c - b * s;
    v[i + half] = b * c + a * s;
  }
}

template <typename O>
__global__ void swiglu_kernel(const float* __restrict__ gate, const float* __restrict__ up,
                              int64_t ld_in, O* __restrict__ out, int64_t F) {
  const int64_t t = blockIdx.y;
  const float* g = gate + t * ld_in;
  const float* u = up + t * ld_in;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < F;
       i += int64_t(gridDim.x) * blockDim.x) {
    const float a = g[i];
    out[t * F + i] = from_f32<O>(a / (1.0f + __expf(-a)) * u[i]);
  }
}

// The f16 down-projection input with its overflow guard, in two launches. swiglu_amax_kernel
// (the plain SwiGLU's grid: chunks of a row per block) writes v = silu(gate) * up rounded to O
// and the row's amax (atomicMax on the float's bits: |v| >= 0 orders as an integer; NaN-blind).
// swiglu_fix_kernel then sets scale[t] = s = 2^k, the least k >= 0 with amax / 2^k <= 2^14
// (kSwigluLimit), and only in rows with s > 1 (rare: "massive activations") recomputes v / s
// over the stored f16 (exact but for f16 subnormals: s is a power of two). An infinite amax
// leaves s = 1: non-finite values propagate as they would in f32, never made up.
constexpr float kSwigluLimit = 16384.0f;

__device__ __forceinline__ float pow2_scale_for(float amax) {
  if (!(amax > kSwigluLimit) || isinf(amax)) return 1.0f;
  int e;
  frexpf(amax, &e);             // amax < 2^e
  return ldexpf(1.0f, e - 14);  // amax / s < 2^14
}

template <typename O>
__global__ void swiglu_amax_kernel(const float* __restrict__ gate, const float* __restrict__ up,
                                   int64_t ld_in, O* __restrict__ out, unsigned* __restrict__ amax,
                                   int64_t F) {
  __shared__ float red[32];
  const int64_t t = blockIdx.y;
  const float* g = gate + t * ld_in;
  const float* u = up + t * ld_in;
  float m = 0.0f;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < F;
       i += int64_t(gridDim.x) * blockDim.x) {
    const float a = g[i];
    const float v = a / (1.0f + __expf(-a)) * u[i];
    out[t * F + i] = from_f32<O>(v);
    m = fmaxf(m, fabsf(v));
  }
  m = warp_max(m);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) red[warp] = m;
  __syncthreads();
  if (warp == 0) {
    m = warp_max(lane < blockDim.x / 32 ? red[lane] : 0.0f);
    if (lane == 0 && m > kSwigluLimit) atomicMax(amax + t, __float_as_uint(m));
  }
}

// Blocks stride over rows (a grid of one block per row chunk would launch T * F / 256 blocks
// that nearly all exit at once: a third of a millisecond at T = 8192).
template <typename O>
__global__ void swiglu_fix_kernel(const float* __restrict__ gate, const float* __restrict__ up,
                                  int64_t ld_in, O* __restrict__ out,
                                  const unsigned* __restrict__ amax, float* __restrict__ scale,
                                  int64_t T, int64_t F) {
  for (int64_t t = blockIdx.x; t < T; t += gridDim.x) {
    const float s = pow2_scale_for(__uint_as_float(amax[t]));  // block-uniform
    if (threadIdx.x == 0) scale[t] = s;
    if (s == 1.0f) continue;
    const float inv = 1.0f / s;  // exact: a power of two
    const float* g = gate + t * ld_in;
    const float* u = up + t * ld_in;
    for (int64_t i = threadIdx.x; i < F; i += blockDim.x) {
      const float a = g[i];
      out[t * F + i] = from_f32<O>(a / (1.0f + __expf(-a)) * u[i] * inv);
    }
  }
}

// x[m] += s[m] * y[m] (+ bias), written back; then (w given) out[m] = rms_norm(x[m]) · w.
template <typename O>
__global__ void add_scaled_rms_norm_kernel(float* __restrict__ x, const float* __restrict__ y,
                                           const float* __restrict__ s,
                                           const float* __restrict__ bias,
                                           const float* __restrict__ w, float eps,
                                           O* __restrict__ out, int64_t D) {
  __shared__ float red[32];
  float* row = x + blockIdx.x * D;
  const float* yr = y + blockIdx.x * D;
  const float sc = s ? s[blockIdx.x] : 1.0f;
  float ss = 0;
#pragma unroll 8
  for (int64_t i = threadIdx.x; i < D; i += blockDim.x) {
    const float v = row[i] + sc * yr[i] + (bias ? bias[i] : 0.0f);
    row[i] = v;
    ss += v * v;
  }
  if (!w) return;
  ss = block_sum<256>(ss, red);
  const float r = rsqrtf(ss / static_cast<float>(D) + eps);
  O* o = out + blockIdx.x * D;
#pragma unroll 8
  for (int64_t i = threadIdx.x; i < D; i += blockDim.x) o[i] = from_f32<O>(row[i] * r * w[i]);
}

__global__ void add_bias_kernel(float* y, const float* __restrict__ bias, int64_t N, int64_t ldy) {
  float* r = y + blockIdx.y * ldy;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < N;
       i += int64_t(gridDim.x) * blockDim.x)
    r[i] += bias[i];
}

__global__ void argmax_kernel(const float* __restrict__ logits, int64_t V, int32_t* ids) {
  __shared__ float best_v[32];
  __shared__ int32_t best_i[32];
  const float* r = logits + blockIdx.x * V;
  float bv = -FLT_MAX;
  int32_t bi = INT32_MAX;
  for (int64_t i = threadIdx.x; i < V; i += blockDim.x) {
    const float v = r[i];
    if (v > bv) {  // strictly greater: each thread keeps its first maximum
      bv = v;
      bi = static_cast<int32_t>(i);
    }
  }
  warp_argmax(bv, bi);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) {
    best_v[warp] = bv;
    best_i[warp] = bi;
  }
  __syncthreads();
  if (warp == 0) {
    bv = lane < blockDim.x / 32 ? best_v[lane] : -FLT_MAX;
    bi = lane < blockDim.x / 32 ? best_i[lane] : INT32_MAX;
    warp_argmax(bv, bi);
    if (lane == 0) ids[blockIdx.x] = bi == INT32_MAX ? 0 : bi;
  }
}

template <typename S, typename D>
__global__ void convert_kernel(const S* __restrict__ src, D* __restrict__ dst, int64_t n,
                               unsigned* overflow) {
  bool over = false;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const float v = to_f32(src[i]);
    const D d = from_f32<D>(v);
    dst[i] = d;
    over |= isfinite(v) && !isfinite(to_f32(d));
  }
  if (overflow && over) atomicOr(overflow, 1u);
}

template <typename T>
__global__ void split_hi_lo_kernel(const float* __restrict__ x, T* __restrict__ hi,
                                   T* __restrict__ lo, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const float v = x[i];
    const T h = from_f32<T>(v);
    hi[i] = h;
    lo[i] = from_f32<T>(v - to_f32(h));
  }
}

__global__ void sum_pair_kernel(const float* __restrict__ a, const float* __restrict__ b,
                                int64_t N, float* y, int64_t ldy, bool accumulate) {
  const int64_t m = blockIdx.y;
  float* r = y + m * ldy;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < N;
       i += int64_t(gridDim.x) * blockDim.x) {
    const float v = a[m * N + i] + b[m * N + i];
    r[i] = accumulate ? r[i] + v : v;
  }
}

int grid_1d(int64_t n, int threads) {
  return static_cast<int>(std::min<int64_t>((n + threads - 1) / threads, 65535));
}

}  // namespace

void rms_norm(const float* x, const float* w, float eps, void* out, DType ot, int64_t M, int64_t D,
              Context& ctx, const int32_t* rows) {
  if (M == 0) return;
  dispatch_float(ot, "rms_norm", [&]<typename O>() {
    rms_norm_kernel<O><<<static_cast<unsigned>(M), 256, 0, stream_of(ctx)>>>(
        x, w, eps, static_cast<O*>(out), D, rows);
  });
  CUDA_LAUNCH_CHECK();
}

void embedding(const void* table, DType tt, const int32_t* ids, float* y, int64_t T, int64_t H,
               int64_t V, Context& ctx) {
  if (T == 0) return;
  dispatch_float(tt, "embedding", [&]<typename Tt>() {
    embedding_kernel<Tt><<<static_cast<unsigned>(T), 256, 0, stream_of(ctx)>>>(
        static_cast<const Tt*>(table), ids, y, H, V);
  });
  CUDA_LAUNCH_CHECK();
}

void rope(float* x, int64_t T, int64_t n_heads, int64_t hd, int64_t ldx, const float* cos,
          const float* sin, Context& ctx) {
  if (T == 0) return;
  rope_kernel<<<dim3(static_cast<unsigned>(T), static_cast<unsigned>(n_heads)), 64, 0,
                stream_of(ctx)>>>(x, n_heads, hd, ldx, cos, sin);
  CUDA_LAUNCH_CHECK();
}

void swiglu(const float* gate, const float* up, int64_t ld_in, void* out, DType ot, int64_t T,
            int64_t F, Context& ctx) {
  if (T == 0) return;
  dispatch_float(ot, "swiglu", [&]<typename O>() {
    swiglu_kernel<O><<<dim3(grid_1d(F, 256), static_cast<unsigned>(T)), 256, 0, stream_of(ctx)>>>(
        gate, up, ld_in, static_cast<O*>(out), F);
  });
  CUDA_LAUNCH_CHECK();
}

void swiglu_scaled(const float* gate, const float* up, int64_t ld_in, void* out, DType ot,
                   float* scale, int64_t T, int64_t F, Context& ctx) {
  if (T == 0) return;
  // The row amaxes (float bits) in scale[T, 2T), the fix-up's input.
  auto* amax = reinterpret_cast<unsigned*>(scale + T);
  CUDA_CHECK(cudaMemsetAsync(amax, 0, static_cast<size_t>(T) * 4, stream_of(ctx)));
  dispatch_float(ot, "swiglu_scaled", [&]<typename O>() {
    O* o = static_cast<O*>(out);
    const dim3 grid(grid_1d(F, 256), static_cast<unsigned>(T));
    swiglu_amax_kernel<O><<<grid, 256, 0, stream_of(ctx)>>>(gate, up, ld_in, o, amax, F);
    CUDA_LAUNCH_CHECK();
    swiglu_fix_kernel<O><<<static_cast<unsigned>(std::min<int64_t>(T, 264)), 256, 0,
                           stream_of(ctx)>>>(gate, up, ld_in, o, amax, scale, T, F);
  });
  CUDA_LAUNCH_CHECK();
}

void add_scaled_rms_norm(float* x, const float* y, const float* scale, const float* bias,
                         const float* w, float eps, void* out, DType ot, int64_t M, int64_t D,
                         Context& ctx) {
  if (M == 0) return;
  dispatch_float(ot, "add_scaled_rms_norm", [&]<typename O>() {
    add_scaled_rms_norm_kernel<O><<<static_cast<unsigned>(M), 256, 0, stream_of(ctx)>>>(
        x, y, scale, bias, w, eps, static_cast<O*>(out), D);
  });
  CUDA_LAUNCH_CHECK();
}

void add_bias(float* y, const float* bias, int64_t M, int64_t N, int64_t ldy, Context& ctx) {
  if (M == 0) return;
  add_bias_kernel<<<dim3(grid_1d(N, 256), static_cast<unsigned>(M)), 256, 0, stream_of(ctx)>>>(
      y, bias, N, ldy);
  CUDA_LAUNCH_CHECK();
}

void argmax_rows(const float* logits, int64_t rows, int64_t V, int32_t* ids, Context& ctx) {
  if (rows == 0) return;
  argmax_kernel<<<static_cast<unsigned>(rows), 1024, 0, stream_of(ctx)>>>(logits, V, ids);
  CUDA_LAUNCH_CHECK();
}

void split_hi_lo(const float* x, void* hi, void* lo, DType t, int64_t n, Context& ctx) {
  if (n == 0) return;
  if (t != DType::BF16 && t != DType::F16)
    raise_error("split_hi_lo: dtype " + std::string(dtype_name(t)) + " (bf16 or f16 only)");
  dispatch_float(t, "split_hi_lo", [&]<typename T>() {
    if constexpr (!std::is_same_v<T, float>)
      split_hi_lo_kernel<T><<<grid_1d(n, 256), 256, 0, stream_of(ctx)>>>(x, static_cast<T*>(hi),
                                                                          static_cast<T*>(lo), n);
  });
  CUDA_LAUNCH_CHECK();
}

void sum_pair(const float* a, const float* b, int64_t M, int64_t N, float* y, int64_t ldy,
              bool accumulate, Context& ctx) {
  if (M == 0) return;
  sum_pair_kernel<<<dim3(grid_1d(N, 256), static_cast<unsigned>(M)), 256, 0, stream_of(ctx)>>>(
      a, b, N, y, ldy, accumulate);
  CUDA_LAUNCH_CHECK();
}

namespace {
void convert_impl(const void* src, DType st, void* dst, DType dt, int64_t n, unsigned* overflow,
                  Context& ctx) {
  dispatch_float(st, "convert", [&]<typename S>() {
    dispatch_float(dt, "convert", [&]<typename D>() {
      convert_kernel<S, D><<<grid_1d(n, 256), 256, 0, stream_of(ctx)>>>(
          static_cast<const S*>(src), static_cast<D*>(dst), n, overflow);
    });
  });
  CUDA_LAUNCH_CHECK();
}
}  // namespace

void convert(const void* src, DType st, void* dst, DType dt, int64_t n, Context& ctx) {
  if (n == 0) return;
  convert_impl(src, st, dst, dt, n, nullptr, ctx);
}

bool convert_fits(const void* src, DType st, void* dst, DType dt, int64_t n, Context& ctx) {
  if (n == 0) return true;
  auto* flag = static_cast<unsigned*>(ctx.scratch(sizeof(unsigned)));
  CUDA_CHECK(cudaMemsetAsync(flag, 0, sizeof(unsigned), stream_of(ctx)));
  convert_impl(src, st, dst, dt, n, flag, ctx);
  unsigned h = 0;
  CUDA_CHECK(cudaMemcpyAsync(&h, flag, sizeof(unsigned), cudaMemcpyDeviceToHost, stream_of(ctx)));
  CUDA_CHECK(cudaStreamSynchronize(stream_of(ctx)));
  return h == 0;
}

}  // namespace hwledger::cuda
