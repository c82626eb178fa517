// Portable matmul kernels: plain C++ on small arrays of 4 floats, which the compiler maps to
// whatever vector unit the baseline target has (SSE2 on x86-64). Used when the CPU has no AVX2,
// or when HWLEDGER_SIMD=generic.
#include "ops/cpu/matmul_impl.h"

namespace hwledger::cpu::detail {
namespace {

struct Generic {
  struct V {
    float v[4];
  };
  static constexpr int kLanes = 4;

  static V zero() { return V{{0.f, 0.f, 0.f, 0.f}}; }
  static V loadu(const float* p) { return V{{p[0], p[1], p[2], p[3]}}; }
  static V load(const float* p) { return loadu(p); }
  static V load_partial(const float* p, int n) {
    V r = zero();
    for (int i = 0; i < n; ++i) r.v[i] = p[i];
    return r;
  }
  static V broadcast(const float* p) { return V{{*p, *p, *p, *p}}; }
  static V fmadd(V a, V b, V c) {
    for (int i = 0; i < 4; ++i) c.v[i] += a.v[i] * b.v[i];
    return c;
  }
  static V add(V a, V b) {
    for (int i = 0; i < 4; ++i) a.v[i] += b.v[i];
    return a;
  }
  static void storeu(float* p, V v) {
    for (int i = 0; i < 4; ++i) p[i] = v.v[i];
  }
  static void store_partial(float* p, V v, int n) {
    for (int i = 0; i < n; ++i) p[i] = v.v[i];
  }
  static float reduce(V v) { return (v.v[0] + v.v[2]) + (v.v[1] + v.v[3]); }
  static void prefetch(const void*) {}

  template <DType T>
  static float load_w1(const void* w, size_t i) {
    if constexpr (T == DType::F32) {
      return static_cast<const float*>(w)[i];
    } else if constexpr (T == DType::F16) {
      return f16_to_f32(static_cast<const uint16_t*>(w)[i]);
    } else {
      return bf16_to_f32(static_cast<const uint16_t*>(w)[i]);
    }
  }
  template <DType T>
  static V load_w(const void* w, size_t i) {
    return V{{load_w1<T>(w, i), load_w1<T>(w, i + 1), load_w1<T>(w, i + 2), load_w1<T>(w, i + 3)}};
  }
  template <DType T>
  static V load_w_partial(const void* w, size_t i, int n) {
    V r = zero();
    for (int j = 0; j < n; ++j) r.v[j] = load_w1<T>(w, i + j);
    return r;
  }

  template <DType T>
  static void pack_tile(float* dst, size_t dst_stride, const void* src, size_t first,
                        size_t row_stride, int rows) {
    for (int i = 0; i < rows; ++i)
      for (int k = 0; k < kLanes; ++k)
        dst[k * dst_stride + i] = load_w1<T>(src, first + i * row_stride + k);
  }

  static constexpr int kGemvMaxMB = 4;
  static constexpr int gemv_rows(int mb) { return mb == 2 ? 2 : 1; }  // mb >= 2
  // Prefill: 4 x 8 tile = 8 accumulators of 4 lanes.
  static constexpr int kMR = 4, kNV = 2, kKC = 256, kNC = 128, kMC = 128 * kMR;
};

}  // namespace

const MatmulKernels kMatmulGeneric = make_kernels<Generic>("generic", 4);

}  // namespace hwledger::cpu::detail
