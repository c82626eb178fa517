// AVX-512 attention for one query row of one head over a paged KV cache. Keys are stored
// transposed in each block ([hd][bt]), so 16 scores come out of one FMA chain with no
// horizontal sums; values are rows ([bt][hd]), so the weighted sum is hd/16 FMAs per key.
// Quantized keys (q8_0, q4_0) are dotted with q per group of 32 dims and the partial sums
// scaled by the keys' scales; a value row's groups are weighted by p_j * scale[j][g].
#include <algorithm>
#include <cmath>
#include <limits>

#include "ops/cpu/kernels_cpu.h"
#include "ops/cpu/simd_math_avx512.h"

namespace hwledger::cpu {

namespace {

using namespace avx512;

// Lane permutations between (even, odd) halves and natural order.
inline __m512i even_lanes() {
  return _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
}
inline __m512i odd_lanes() {
  return _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
}
inline __m512i interleave_lo() {
  return _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
}
inline __m512i interleave_hi() {
  return _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
}

// Scores (unscaled) of the kStep keys jb.. of one block (jb % kStep == 0) against q[hd], from
// one KV head's K region kh ([hd][bt] values, then [hd/32][bt] scales if quantized), into
// s[kStep / 16]. Two vectors of keys per q broadcast (kStep 32) save load bandwidth.
// qbias[g] = -8 * (sum of q over group g), used by q4_0.
template <DType T, int kStep>
inline void score_keys(const float* q, const float* qbias, const KVLayout& L, const uint8_t* kh,
                       int64_t jb, __m512* s) {
  constexpr int H = kStep / 16;
  const int64_t bt = L.block_tokens, hd = L.head_dim;
  if constexpr (T == DType::Q8_0) {
    // Per group of 32 dims: the dot products with the int8 values, then times the keys' scales.
    const uint8_t* kscale = kh + L.head_value_bytes() + 2 * jb;
    for (int h = 0; h < H; ++h) s[h] = _mm512_setzero_ps();
    for (int64_t d0 = 0; d0 < hd; d0 += kKVQuantGroup) {
      __m512 a[4][H];
      for (int u = 0; u < 4; ++u)
        for (int h = 0; h < H; ++h) a[u][h] = _mm512_setzero_ps();
      for (int64_t d = d0; d < d0 + kKVQuantGroup; d += 4)
        for (int u = 0; u < 4; ++u) {
          const __m512 qd = _mm512_set1_ps(q[d + u]);
          for (int h = 0; h < H; ++h)
            a[u][h] = _mm512_fmadd_ps(qd, int8x16(kh + (d + u) * bt + jb + 16 * h), a[u][h]);
        }
      const uint8_t* sc = kscale + 2 * (d0 / kKVQuantGroup) * bt;
      for (int h = 0; h < H; ++h)
        s[h] = _mm512_fmadd_ps(
            _mm512_add_ps(_mm512_add_ps(a[0][h], a[1][h]), _mm512_add_ps(a[2][h], a[3][h])),
            load16<DType::F16>(sc + 32 * h), s[h]);
    }
  } else if constexpr (T == DType::Q4_0) {
    // 16 bytes of a K row hold 32 keys; their low nibbles are the even keys, the high nibbles
    // the odd ones, so keys are scored in (even, odd) order and interleaved at the end. The
    // nibbles are used unbiased, and sum_d q[d] * 8 is taken off per group (qbias).
    static_assert(kStep == 32);
    const uint8_t* kscale = kh + L.head_value_bytes() + 2 * jb;
    const __m512i nibble = _mm512_set1_epi32(0xf);
    __m512 se = _mm512_setzero_ps(), so = se;
    for (int64_t d0 = 0; d0 < hd; d0 += kKVQuantGroup) {
      __m512 e0 = _mm512_setzero_ps(), e1 = e0, o0 = e0, o1 = e0;
      for (int64_t d = d0; d < d0 + kKVQuantGroup; d += 2) {
        const __m512i x0 = u8x16(kh + (d + 0) * (bt / 2) + jb / 2);
        const __m512i x1 = u8x16(kh + (d + 1) * (bt / 2) + jb / 2);
        const __m512 q0 = _mm512_set1_ps(q[d + 0]), q1 = _mm512_set1_ps(q[d + 1]);
        e0 = _mm512_fmadd_ps(q0, _mm512_cvtepi32_ps(_mm512_and_si512(x0, nibble)), e0);
        o0 = _mm512_fmadd_ps(q0, _mm512_cvtepi32_ps(_mm512_srli_epi32(x0, 4)), o0);
        e1 = _mm512_fmadd_ps(q1, _mm512_cvtepi32_ps(_mm512_and_si512(x1, nibble)), e1);
        o1 = _mm512_fmadd_ps(q1, _mm512_cvtepi32_ps(_mm512_srli_epi32(x1, 4)), o1);
      }
      const __m512 bias = _mm512_set1_ps(qbias[d0 / kKVQuantGroup]);
      const uint8_t* sc = kscale + 2 * (d0 / kKVQuantGroup) * bt;
      const __m512 sc_lo = load16<DType::F16>(sc), sc_hi = load16<DType::F16>(sc + 32);
      se = _mm512_fmadd_ps(_mm512_add_ps(_mm512_add_ps(e0, e1), bias),
                           _mm512_permutex2var_ps(sc_lo, even_lanes(), sc_hi), se);
      so = _mm512_fmadd_ps(_mm512_add_ps(_mm512_add_ps(o0, o1), bias),
                           _mm512_permutex2var_ps(sc_lo, odd_lanes(), sc_hi), so);
    }
    s[0] = _mm512_permutex2var_ps(se, interleave_lo(), so);
    s[1] = _mm512_permutex2var_ps(se, interleave_hi(), so);
  } else {
    const size_t es = dtype_size(T);
    const uint8_t* k = kh + jb * es;
    __m512 a[4][H];
    for (int u = 0; u < 4; ++u)
      for (int h = 0; h < H; ++h) a[u][h] = _mm512_setzero_ps();
    for (int64_t d = 0; d < hd; d += 4)
      for (int u = 0; u < 4; ++u) {
        const __m512 qd = _mm512_set1_ps(q[d + u]);
        for (int h = 0; h < H; ++h)
          a[u][h] = _mm512_fmadd_ps(qd, load16<T>(k + ((d + u) * bt + 16 * h) * es), a[u][h]);
      }
    for (int h = 0; h < H; ++h)
      s[h] = _mm512_add_ps(_mm512_add_ps(a[0][h], a[1][h]), _mm512_add_ps(a[2][h], a[3][h]));
  }
}

// Asks for the cache lines of [p, p + bytes): the next block's head is in another page, where
// the hardware prefetchers do not follow.
inline void prefetch(const uint8_t* p, size_t bytes) {
  for (size_t i = 0; i < bytes; i += 64)
    _mm_prefetch(reinterpret_cast<const char*>(p + i), _MM_HINT_T0);
}

// The weighted sum of value rows: kNV vectors of 16 floats (hd = 16 kNV) per set; a
// compile-time count keeps them in registers (kNV = 0: hd is known only at run time). Up to
// hd 128 two sets take alternate keys, so consecutive FMAs do not wait on each other. For
// q4_0, each group's two vectors hold its even and its odd dims, and wsum[g] sums the group's
// weights (for the bias of 8).
template <int kNV>
struct ValueAcc {
  static constexpr int64_t nv(int64_t) { return kNV; }
  static constexpr bool kTwoSets = kNV <= 8;
  __m512 v[kNV], v2[kNV];
  __m256 wsum, wsum2;
};
template <>
struct ValueAcc<0> {
  static int64_t nv(int64_t hd) { return hd / 16; }
  static constexpr bool kTwoSets = false;
  __m512 v[16], v2[1];  // hd <= 256
  __m256 wsum, wsum2;
};

// acc[nv] += value row `row`, weighted by w: for f32/f16/bf16 w[0] = p_j; for q8_0/q4_0 w[g]
// = p_j * scale[j][g] for each group g.
template <DType T, int kNV>
inline void accumulate_row(__m512* acc, __m256& wsum, const float* w, const uint8_t* row,
                           int64_t hd) {
  const int64_t nv = ValueAcc<kNV>::nv(hd);
  if constexpr (T == DType::Q8_0) {
    for (int64_t g = 0; g < nv / 2; ++g) {
      const __m512 wg = _mm512_set1_ps(w[g]);
      acc[2 * g] = _mm512_fmadd_ps(wg, int8x16(row + 32 * g), acc[2 * g]);
      acc[2 * g + 1] = _mm512_fmadd_ps(wg, int8x16(row + 32 * g + 16), acc[2 * g + 1]);
    }
  } else if constexpr (T == DType::Q4_0) {
    // 16 bytes hold a group's 32 dims: even dims in the low nibbles, odd in the high ones.
    const __m512i nibble = _mm512_set1_epi32(0xf);
    for (int64_t g = 0; g < nv / 2; ++g) {
      const __m512 wg = _mm512_set1_ps(w[g]);
      const __m512i x = u8x16(row + 16 * g);
      acc[2 * g] = _mm512_fmadd_ps(wg, _mm512_cvtepi32_ps(_mm512_and_si512(x, nibble)), acc[2 * g]);
      acc[2 * g + 1] =
          _mm512_fmadd_ps(wg, _mm512_cvtepi32_ps(_mm512_srli_epi32(x, 4)), acc[2 * g + 1]);
    }
    wsum =
        _mm256_add_ps(wsum, _mm256_maskz_loadu_ps(static_cast<__mmask8>((1u << (nv / 2)) - 1), w));
  } else {
    const size_t es = dtype_size(T);
    const __m512 p = _mm512_set1_ps(w[0]);
    for (int64_t i = 0; i < nv; ++i)
      acc[i] = _mm512_fmadd_ps(p, load16<T>(row + i * 16 * es), acc[i]);
  }
}

// out[hd] = (acc.v + acc.v2) * inv, in natural dim order.
template <DType T, int kNV>
inline void store_value(ValueAcc<kNV>& acc, int64_t hd, float inv, float* out) {
  const int64_t nv = ValueAcc<kNV>::nv(hd);
  if constexpr (ValueAcc<kNV>::kTwoSets) {
    for (int64_t i = 0; i < nv; ++i) acc.v[i] = _mm512_add_ps(acc.v[i], acc.v2[i]);
    acc.wsum = _mm256_add_ps(acc.wsum, acc.wsum2);
  }
  const __m512 vinv = _mm512_set1_ps(inv);
  if constexpr (T == DType::Q4_0) {
    alignas(32) float wsum[8];
    _mm256_store_ps(wsum, acc.wsum);
    for (int64_t g = 0; g < nv / 2; ++g) {
      const __m512 bias = _mm512_set1_ps(-8 * wsum[g]);
      const __m512 even = _mm512_add_ps(acc.v[2 * g], bias),
                   odd = _mm512_add_ps(acc.v[2 * g + 1], bias);
      _mm512_storeu_ps(out + 32 * g,
                       _mm512_mul_ps(_mm512_permutex2var_ps(even, interleave_lo(), odd), vinv));
      _mm512_storeu_ps(out + 32 * g + 16,
                       _mm512_mul_ps(_mm512_permutex2var_ps(even, interleave_hi(), odd), vinv));
    }
  } else {
    for (int64_t i = 0; i < nv; ++i) _mm512_storeu_ps(out + i * 16, _mm512_mul_ps(acc.v[i], vinv));
  }
}

template <DType T, int kNV, int kStep>
void attention_task(const float* q, int64_t pos, const PagedKVView& kv, int64_t kv_head,
                    float scale, int64_t window, float* scores, float* out) {
  constexpr bool quantized = is_quantized(T);
  const KVLayout& L = *kv.layout;
  const int64_t bt = L.block_tokens, hd = L.head_dim, groups = hd / kKVQuantGroup;
  const size_t k_head = L.k_offset(kv.layer) + kv_head * L.head_bytes();
  const size_t v_head = L.v_offset(kv.layer) + kv_head * L.head_bytes();
  const int64_t n_keys = pos + 1;
  const int64_t lo = window > 0 && n_keys > window ? n_keys - window : 0;
  const int64_t first = lo & ~int64_t{kStep - 1};  // keys are scored in aligned steps
  const __m512 neg_inf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  const __m512 vscale = _mm512_set1_ps(scale);
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  float qbias[8] = {};  // q4_0: -8 * sum of q over each group of 32 dims (hd <= 256)
  if constexpr (T == DType::Q4_0)
    for (int64_t d = 0; d < hd; ++d) qbias[d / kKVQuantGroup] -= 8 * q[d];

  // Scores for keys [lo, n_keys), block by block, kStep at a time (kStep divides bt).
  __m512 vmax = neg_inf;
  for (int64_t b = first / bt, j0 = first; j0 < n_keys; ++b) {
    const uint8_t* kh = kv.blocks[b] + k_head;
    if ((b + 1) * bt < n_keys) prefetch(kv.blocks[b + 1] + k_head, L.head_bytes());
    for (; j0 < n_keys && j0 < (b + 1) * bt; j0 += kStep) {
      __m512 s[kStep / 16];
      score_keys<T, kStep>(q, qbias, L, kh, j0 - b * bt, s);
      for (int i = 0; i < kStep / 16; ++i) {
        // Keys outside [lo, n_keys) get -inf.
        const __m512i idx =
            _mm512_add_epi32(_mm512_set1_epi32(static_cast<int>(j0 + 16 * i)), lane);
        const __mmask16 valid =
            _mm512_cmpge_epi32_mask(idx, _mm512_set1_epi32(static_cast<int>(lo))) &
            _mm512_cmplt_epi32_mask(idx, _mm512_set1_epi32(static_cast<int>(n_keys)));
        const __m512 si = _mm512_mask_blend_ps(valid, neg_inf, _mm512_mul_ps(s[i], vscale));
        vmax = _mm512_max_ps(vmax, si);
        _mm512_storeu_ps(scores + j0 + 16 * i, si);
      }
    }
  }
  const __m512 mx = _mm512_set1_ps(_mm512_reduce_max_ps(vmax));

  // Softmax numerators and their sum; masked-out keys become exactly 0.
  __m512 vsum = _mm512_setzero_ps();
  for (int64_t j0 = first; j0 < n_keys; j0 += 16) {
    __m512 s = _mm512_loadu_ps(scores + j0);
    __mmask16 valid = _mm512_cmp_ps_mask(s, neg_inf, _CMP_NEQ_OQ);
    __m512 e = _mm512_maskz_mov_ps(valid, exp_ps(_mm512_sub_ps(s, mx)));
    vsum = _mm512_add_ps(vsum, e);
    _mm512_storeu_ps(scores + j0, e);
  }
  const float inv = 1.0f / _mm512_reduce_add_ps(vsum);

  // out = sum_j p_j * V_j, block by block and 16 keys at a time. Quantized rows are weighted
  // per group by p_j * scale[j][g], computed first for the 16 keys at once.
  // Quantized: lane l of weight vector c is key (16c + l) / groups, weight of group (16c + l) %
  // groups.
  alignas(64) int32_t key_of[16 * 8];
  if constexpr (quantized)
    for (int64_t i = 0, key = 0, g = 0; i < 16 * groups; ++i) {
      key_of[i] = static_cast<int32_t>(key);
      if (++g == groups) g = 0, ++key;
    }
  alignas(64) float wq[16 * 8];  // quantized: [16 keys][groups] weights
  ValueAcc<kNV> acc;
  const int64_t nv = ValueAcc<kNV>::nv(hd);
  for (int64_t i = 0; i < nv; ++i) acc.v[i] = _mm512_setzero_ps();
  if constexpr (ValueAcc<kNV>::kTwoSets)
    for (int64_t i = 0; i < nv; ++i) acc.v2[i] = _mm512_setzero_ps();
  acc.wsum = acc.wsum2 = _mm256_setzero_ps();
  const int64_t row_bytes = T == DType::Q8_0 ? hd : T == DType::Q4_0 ? hd / 2 : hd * dtype_size(T);
  for (int64_t b = lo / bt, j = lo; j < n_keys; ++b) {
    const uint8_t* vh = kv.blocks[b] + v_head - b * bt * row_bytes;  // row j at vh + j * row_bytes
    if ((b + 1) * bt < n_keys) prefetch(kv.blocks[b + 1] + v_head, L.head_bytes());
    const int64_t end = std::min(n_keys, (b + 1) * bt);
    while (j < end) {
      const int64_t c0 = j & ~int64_t{15}, c_end = std::min(end, c0 + 16);
      // Row j's weights: w(j) = wbase + j * wstride.
      const float* wbase = scores;
      int64_t wstride = 1;
      if constexpr (quantized) {
        const __m512 p = _mm512_loadu_ps(scores + c0);
        const uint8_t* sc =
            kv.blocks[b] + v_head + L.head_value_bytes() + 2 * (c0 - b * bt) * groups;
        for (int64_t c = 0; c < groups; ++c) {
          const __m512i key = _mm512_load_si512(key_of + 16 * c);
          _mm512_store_ps(wq + 16 * c, _mm512_mul_ps(_mm512_permutexvar_ps(key, p),
                                                     load16<DType::F16>(sc + 32 * c)));
        }
        wbase = wq - c0 * groups;
        wstride = groups;
      }
      if constexpr (ValueAcc<kNV>::kTwoSets)
        for (; j + 1 < c_end; j += 2) {
          accumulate_row<T, kNV>(acc.v, acc.wsum, wbase + j * wstride, vh + j * row_bytes, hd);
          accumulate_row<T, kNV>(acc.v2, acc.wsum2, wbase + (j + 1) * wstride,
                                 vh + (j + 1) * row_bytes, hd);
        }
      for (; j < c_end; ++j)
        accumulate_row<T, kNV>(acc.v, acc.wsum, wbase + j * wstride, vh + j * row_bytes, hd);
    }
  }
  store_value<T, kNV>(acc, hd, inv, out);
}

// The kernel for the KV type, with the accumulator count fixed for the usual head dims and
// keys scored 32 at a time where blocks allow (q8_0 and q4_0 always have bt % 32 == 0).
template <DType T, int kStep>
void attention_task_for_step(const float* q, int64_t pos, const PagedKVView& kv, int64_t kv_head,
                             float scale, int64_t window, float* scores, float* out) {
  switch (kv.layout->head_dim) {
    case 32:
      return attention_task<T, 2, kStep>(q, pos, kv, kv_head, scale, window, scores, out);
    case 64:
      return attention_task<T, 4, kStep>(q, pos, kv, kv_head, scale, window, scores, out);
    case 128:
      return attention_task<T, 8, kStep>(q, pos, kv, kv_head, scale, window, scores, out);
    case 256:
      return attention_task<T, 16, kStep>(q, pos, kv, kv_head, scale, window, scores, out);
    default:
      return attention_task<T, 0, kStep>(q, pos, kv, kv_head, scale, window, scores, out);
  }
}

template <DType T>
void attention_task_for_type(const float* q, int64_t pos, const PagedKVView& kv, int64_t kv_head,
                             float scale, int64_t window, float* scores, float* out) {
  if constexpr (is_quantized(T)) {
    attention_task_for_step<T, 32>(q, pos, kv, kv_head, scale, window, scores, out);
  } else {
    if (kv.layout->block_tokens % 32 == 0)
      attention_task_for_step<T, 32>(q, pos, kv, kv_head, scale, window, scores, out);
    else
      attention_task_for_step<T, 16>(q, pos, kv, kv_head, scale, window, scores, out);
  }
}

}  // namespace

void attention_task_avx512(const float* q, int64_t pos, const PagedKVView& kv, int64_t head,
                           int64_t kv_head, float scale, int64_t window, float* scores,
                           float* out) {
  (void)head;
  using Task =
      void (*)(const float*, int64_t, const PagedKVView&, int64_t, float, int64_t, float*, float*);
  Task task = nullptr;
  switch (kv.layout->dtype) {
    case DType::F32:
      task = attention_task_for_type<DType::F32>;
      break;
    case DType::F16:
      task = attention_task_for_type<DType::F16>;
      break;
    case DType::BF16:
      task = attention_task_for_type<DType::BF16>;
      break;
    case DType::Q8_0:
      task = attention_task_for_type<DType::Q8_0>;
      break;
    case DType::Q4_0:
      task = attention_task_for_type<DType::Q4_0>;
      break;
    default:
      return;
  }
  task(q, pos, kv, kv_head, scale, window, scores, out);
}

void swiglu_avx512(const float* gate, const float* up, float* out, int64_t n) {
  int64_t i = 0;
  const __m512 one = _mm512_set1_ps(1.0f);
  for (; i + 16 <= n; i += 16) {
    __m512 g = _mm512_loadu_ps(gate + i);
    __m512 sig =
        _mm512_div_ps(one, _mm512_add_ps(one, exp_ps(_mm512_sub_ps(_mm512_setzero_ps(), g))));
    _mm512_storeu_ps(out + i, _mm512_mul_ps(_mm512_mul_ps(g, sig), _mm512_loadu_ps(up + i)));
  }
  for (; i < n; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

}  // namespace hwledger::cpu
