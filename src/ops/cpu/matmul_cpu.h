// Matrix multiplication on the CPU: the kernel that decides prefill and decode speed.
//
//   y[m, n] (+)= sum_k x[m, k] * w[n, k] + bias[n]      for m < M, n < N
//
// x    fp32 [M, K], row stride ldx (elements)
// w    [N, K] row-major, row stride K, in F32, F16 or BF16 (a Hugging Face Linear weight)
// bias fp32 [N] or nullptr
// y    fp32 [M, N], row stride ldy; with accumulate=true the product is added to y
//      (the residual connection), otherwise y is overwritten.
// Accumulation is in fp32 whatever the weight type. M == 1 (decode) is memory-bound and
// streams w once; M > 1 (prefill) is compute-bound and blocks for cache reuse.
#pragma once
#include <cstddef>
#include <cstdint>

#include "ops/dtype.h"
#include "util/thread_pool.h"

namespace hwledger::cpu {

void matmul(const float* x, size_t ldx, const void* w, DType wtype, const float* bias, float* y,
            size_t ldy, int64_t M, int64_t N, int64_t K, bool accumulate, ThreadPool& pool);

// The plain scalar loop: the reference that the fast paths are tested against.
void matmul_reference(const float* x, size_t ldx, const void* w, DType wtype, const float* bias,
                      float* y, size_t ldy, int64_t M, int64_t N, int64_t K, bool accumulate);

}  // namespace hwledger::cpu
