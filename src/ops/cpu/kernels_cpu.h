// CPU implementations behind ops/ops.h (the matmul kernels are in matmul_cpu.h). Plain
// pointers and sizes: the entry points in ops.cpp have already validated the shapes.
#pragma once
#include <cstdint>

#include "ops/dtype.h"
#include "ops/paged_kv.h"
#include "util/thread_pool.h"

namespace hwledger::cpu {

// x, y: [M, D]; w: [D]
void rms_norm(const float* x, const float* w, float eps, float* y, int64_t M, int64_t D,
              ThreadPool& pool);
// table: [V, H] in dtype; y: [T, H]
void embedding(const void* table, DType dtype, int64_t H, const int32_t* ids, int64_t T, float* y);
// x: [T, n_heads, hd]; cos, sin: [T, hd/2]
void rope(float* x, int64_t T, int64_t n_heads, int64_t hd, const float* cos, const float* sin);
// out[i] = silu(gate[i]) * up[i], i < n
void swiglu(const float* gate, const float* up, float* out, int64_t n, ThreadPool& pool);
// k, v: [T, nkv*hd] for positions pos0 .. pos0+T-1, converted to the layout's dtype (q8_0,
// q4_0 and fp8 quantize each token's head vectors; the block layout is in ops/paged_kv.h)
void kv_store(const float* k, const float* v, int64_t T, int64_t pos0, const PagedKVView& kv);
// The largest of v[0 .. n), n > 0 (v[0] if it is NaN and nothing compares greater).
float max_value(const float* v, int64_t n);
// The first index of the largest of v[0 .. n), n > 0.
int32_t argmax(const float* v, int64_t n);
// q: [T, nh, hd]; out: [T, nh*hd]. Causal, over the last `window` keys if window > 0.
void attention(const float* q, int64_t T, int64_t nh, int64_t pos0, const PagedKVView& kv,
               float scale, int64_t window, float* out, ThreadPool& pool);

// Instruction-set specific versions (ops/cpu/*_avx512.cpp); callers check has_avx512() first
// (the level in effect per ops/cpu/simd.h, so HWLEDGER_SIMD and tests can lower it).
bool has_avx512();
void swiglu_avx512(const float* gate, const float* up, float* out, int64_t n);

// One query row of a flash-style attention tile: q[hd] (unscaled) attends over keys [lo, hi)
// and writes out[hd].
struct AttentionRow {
  const float* q;
  float* out;
  int64_t lo, hi;
};
// The most rows of one tile: the heads of a GQA group for several tokens. Each KV block is
// read from memory once per tile, so more rows means less traffic; 64 rows of queries and
// outputs (2 x 32 KB at head_dim 128) stay in L2 (bench/attention_bench: 1.5x over 16 rows).
inline constexpr int kAttentionTileRows = 64;
// Attention of n_rows <= kAttentionTileRows rows that all read KV head kv_head.
void attention_tile_avx512(const AttentionRow* rows, int n_rows, const PagedKVView& kv,
                           int64_t kv_head, float scale);

}  // namespace hwledger::cpu
