// AVX-512 attention for one query row of one head over a paged KV cache. Keys are stored
// transposed in each block ([hd][bt]), so 16 scores come out of one FMA chain with no
// horizontal sums; values are rows ([bt][hd]), so the weighted sum is hd/16 FMAs per key.
#include <cmath>
#include <limits>

#include "ops/cpu/kernels_cpu.h"
#include "ops/cpu/simd_math_avx512.h"

namespace hwledger::cpu {

namespace {

using namespace avx512;

template <DType T>
void attention_task(const float* q, int64_t pos, const PagedKVView& kv, int64_t kv_head, float scale,
                    int64_t window, float* scores, float* out) {
  const KVLayout& L = *kv.layout;
  const int64_t bt = L.block_tokens, hd = L.head_dim;
  const size_t es = dtype_size(T);
  const int64_t n_keys = pos + 1;
  const int64_t lo = window > 0 && n_keys > window ? n_keys - window : 0;
  const __m512 neg_inf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  const __m512 vscale = _mm512_set1_ps(scale);

  // Scores for keys [lo, n_keys), computed 16 at a time from 16-aligned groups.
  __m512 vmax = neg_inf;
  for (int64_t j0 = lo & ~int64_t{15}; j0 < n_keys; j0 += 16) {
    const uint8_t* kh = kv.blocks[j0 / bt] + L.k_offset(kv.layer) + kv_head * L.head_bytes() +
                        (j0 % bt) * es;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t d = 0; d < hd; d += 4) {
      a0 = _mm512_fmadd_ps(_mm512_set1_ps(q[d + 0]), load16<T>(kh + (d + 0) * bt * es), a0);
      a1 = _mm512_fmadd_ps(_mm512_set1_ps(q[d + 1]), load16<T>(kh + (d + 1) * bt * es), a1);
      a2 = _mm512_fmadd_ps(_mm512_set1_ps(q[d + 2]), load16<T>(kh + (d + 2) * bt * es), a2);
      a3 = _mm512_fmadd_ps(_mm512_set1_ps(q[d + 3]), load16<T>(kh + (d + 3) * bt * es), a3);
    }
    __m512 s = _mm512_mul_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)), vscale);
    // Keys outside [lo, n_keys) get -inf.
    __m512i idx = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int>(j0)),
                                   _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
    __mmask16 valid = _mm512_cmpge_epi32_mask(idx, _mm512_set1_epi32(static_cast<int>(lo))) &
                      _mm512_cmplt_epi32_mask(idx, _mm512_set1_epi32(static_cast<int>(n_keys)));
    s = _mm512_mask_blend_ps(valid, neg_inf, s);
    vmax = _mm512_max_ps(vmax, s);
    _mm512_storeu_ps(scores + j0, s);
  }
  const __m512 mx = _mm512_set1_ps(_mm512_reduce_max_ps(vmax));

  // Softmax numerators and their sum; masked-out keys become exactly 0.
  __m512 vsum = _mm512_setzero_ps();
  for (int64_t j0 = lo & ~int64_t{15}; j0 < n_keys; j0 += 16) {
    __m512 s = _mm512_loadu_ps(scores + j0);
    __mmask16 valid = _mm512_cmp_ps_mask(s, neg_inf, _CMP_NEQ_OQ);
    __m512 e = _mm512_maskz_mov_ps(valid, exp_ps(_mm512_sub_ps(s, mx)));
    vsum = _mm512_add_ps(vsum, e);
    _mm512_storeu_ps(scores + j0, e);
  }
  const float inv = 1.0f / _mm512_reduce_add_ps(vsum);

  // out = sum_j p_j * V_j, hd/16 accumulators (hd <= 256).
  __m512 acc[16];
  const int64_t nv = hd / 16;
  for (int64_t i = 0; i < nv; ++i) acc[i] = _mm512_setzero_ps();
  for (int64_t j = lo; j < n_keys; ++j) {
    const uint8_t* vr = kv.blocks[j / bt] + L.v_offset(kv.layer) + kv_head * L.head_bytes() +
                        (j % bt) * hd * es;
    const __m512 p = _mm512_set1_ps(scores[j]);
    for (int64_t i = 0; i < nv; ++i) acc[i] = _mm512_fmadd_ps(p, load16<T>(vr + i * 16 * es), acc[i]);
  }
  const __m512 vinv = _mm512_set1_ps(inv);
  for (int64_t i = 0; i < nv; ++i) _mm512_storeu_ps(out + i * 16, _mm512_mul_ps(acc[i], vinv));
}

}  // namespace

void attention_task_avx512(const float* q, int64_t pos, const PagedKVView& kv, int64_t head,
                           int64_t kv_head, float scale, int64_t window, float* scores, float* out) {
  (void)head;
  switch (kv.layout->dtype) {
    case DType::F32: attention_task<DType::F32>(q, pos, kv, kv_head, scale, window, scores, out); break;
    case DType::F16: attention_task<DType::F16>(q, pos, kv, kv_head, scale, window, scores, out); break;
    case DType::BF16: attention_task<DType::BF16>(q, pos, kv, kv_head, scale, window, scores, out); break;
    default: break;
  }
}

void swiglu_avx512(const float* gate, const float* up, float* out, int64_t n) {
  int64_t i = 0;
  const __m512 one = _mm512_set1_ps(1.0f);
  for (; i + 16 <= n; i += 16) {
    __m512 g = _mm512_loadu_ps(gate + i);
    __m512 sig = _mm512_div_ps(one, _mm512_add_ps(one, exp_ps(_mm512_sub_ps(_mm512_setzero_ps(), g))));
    _mm512_storeu_ps(out + i, _mm512_mul_ps(_mm512_mul_ps(g, sig), _mm512_loadu_ps(up + i)));
  }
  for (; i < n; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

}  // namespace hwledger::cpu
