// Optional prefill matmul that rounds the activations to bf16 and multiplies with vdpbf16ps
// (AVX512_BF16): about 1.8x the fp32 FMA rate on CPUs that have it, but each product then
// carries bf16 precision on x (relative error up to 2^-9), so results drift from PyTorch's fp32
// math by ~1e-3 relative. NOT used by default: matmul() keeps fp32 activations, which the parity
// tests require. Call this only where that precision loss is acceptable and measured.
#pragma once
#include <cstddef>
#include <cstdint>

#include "ops/dtype.h"
#include "util/thread_pool.h"

namespace hwledger::cpu {

// True when matmul_bf16_activations() has a fast path here: the level in effect is AVX512 and the
// CPU has AVX512_BF16.
bool matmul_bf16_activations_available();

// Same contract as matmul() (matmul_cpu.h) except that x is rounded to bf16 (nearest even)
// before the products, which are accumulated in fp32. Falls back to matmul() -- exact fp32 --
// when the fast path is not available, for weights other than BF16, and for decode-sized M
// (up to 8 rows), which is memory-bound and gains nothing.
void matmul_bf16_activations(const float* x, size_t ldx, const void* w, DType wtype,
                             const float* bias, float* y, size_t ldy, int64_t M, int64_t N,
                             int64_t K, bool accumulate, ThreadPool& pool);

}  // namespace hwledger::cpu
