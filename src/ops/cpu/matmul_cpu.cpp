#include "ops/cpu/matmul_cpu.h"

#include <vector>

namespace hwledger::cpu {

namespace {
inline float load_weight(const void* w, DType t, size_t i) {
  switch (t) {
    case DType::F32: return static_cast<const float*>(w)[i];
    case DType::F16: return f16_to_f32(static_cast<const uint16_t*>(w)[i]);
    case DType::BF16: return bf16_to_f32(static_cast<const uint16_t*>(w)[i]);
    default: return 0.f;
  }
}
}  // namespace

void matmul_reference(const float* x, size_t ldx, const void* w, DType wtype, const float* bias,
                      float* y, size_t ldy, int64_t M, int64_t N, int64_t K, bool accumulate) {
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      float acc = 0.f;
      for (int64_t k = 0; k < K; ++k) acc += x[m * ldx + k] * load_weight(w, wtype, n * K + k);
      if (bias) acc += bias[n];
      y[m * ldy + n] = accumulate ? y[m * ldy + n] + acc : acc;
    }
}

// Placeholder until the SIMD kernels land: row-parallel reference.
void matmul(const float* x, size_t ldx, const void* w, DType wtype, const float* bias, float* y,
            size_t ldy, int64_t M, int64_t N, int64_t K, bool accumulate, ThreadPool& pool) {
  pool.parallel_for(static_cast<size_t>(N), 16, [&](size_t n0, size_t n1) {
    const size_t wsz = dtype_size(wtype);
    const uint8_t* wb = static_cast<const uint8_t*>(w) + n0 * K * wsz;
    for (int64_t m = 0; m < M; ++m)
      matmul_reference(x + m * ldx, ldx, wb, wtype, bias ? bias + n0 : nullptr, y + m * ldy + n0,
                       ldy, 1, static_cast<int64_t>(n1 - n0), K, accumulate);
  });
}

}  // namespace hwledger::cpu
