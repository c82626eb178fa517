// AVX-512 flash-style attention over a paged KV cache, for decode steps and prefill chunks
// alike. A task takes a tile of up to kAttentionTileRows query rows that share one KV head (the
// heads of a GQA group, for one or several consecutive tokens) and walks the KV blocks once for
// all of them: each block's keys and values are read (and converted to f32) once per tile
// instead of once per query row, and the scores and the weighted sum become small matrix
// products held in registers. The softmax is
// the online one (a running max m and sum l per row, the output rescaled when m grows).
//
// Every row's arithmetic is the same whichever tile, thread count or call it is computed in:
// a block where the row has no key leaves it bit for bit unchanged (alpha = 1, p = 0). So a
// token's attention output is the same bits in a decode step, a prefill chunk or a whole
// prefill. In a decode step the tile is the GQA group's heads for one token: each KV block is
// read once for all of them.
//
// Keys are stored transposed in a block ([hd][bt]), so 16 keys' scores are one FMA chain with
// no horizontal sums; values are rows ([bt][hd]).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "ops/cpu/kernels_cpu.h"
#include "ops/cpu/simd_math_avx512.h"

namespace hwledger::cpu {

namespace {

using namespace avx512;

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

inline float f16_at(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return f16_to_f32(h);
}

inline __m512i interleave_lo() {
  return _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
}
inline __m512i interleave_hi() {
  return _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
}

// Calls f(std::integral_constant<int, n>) for a run-time n in [1, kMax]: the kernels below are
// templates on their row and vector counts, which must be compile-time for the accumulators to
// stay in registers.
template <int kMax, class F>
inline void with_count(int n, F&& f) {
  if constexpr (kMax >= 1) {
    if (n == kMax) return f(std::integral_constant<int, kMax>{});
    with_count<kMax - 1>(n, f);
  }
}

// The cache lines of [p, p + bytes): the next block is in another page, where the hardware
// prefetchers do not follow. The next block's keys are asked for before this block's scores and
// its values before this block's weighted sum: 256 lines at once stall on full miss buffers
// (decode at 16k contexts: 15% slower).
inline void prefetch(const uint8_t* p, size_t bytes) {
  for (size_t i = 0; i < bytes; i += 64)
    _mm_prefetch(reinterpret_cast<const char*>(p + i), _MM_HINT_T0);
}

// 16 fp8 e4m3 codes as f32 times 2^-8, exactly: each code's fields moved into f16 bits
// (e4m3_to_f16_bits_div256), then converted. Times 256 d gives e4m3_to_f32(code) * d to the
// bit: both factors are exact, the product is rounded once.
inline __m512 fp8x16_div256(const uint8_t* p) {
  const __m256i b = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  const __m256i sign = _mm256_slli_epi16(_mm256_and_si256(b, _mm256_set1_epi16(0x80)), 8);
  const __m256i rest = _mm256_slli_epi16(_mm256_and_si256(b, _mm256_set1_epi16(0x7f)), 7);
  return _mm512_cvtph_ps(_mm256_or_si256(sign, rest));
}

// One KV head's quantized K region of a block (kh) as f32 kf[hd][bt], dequantized exactly as
// ggml does: (q - zero) * d, one rounding (fp8: e4m3(q) * d, one rounding).
template <DType T>
void load_keys(const KVLayout& L, const uint8_t* kh, float* kf) {
  static_assert(T == DType::Q8_0 || T == DType::Q4_0 || T == DType::F8_E4M3);
  const int64_t bt = L.block_tokens, hd = L.head_dim;
  if constexpr (T == DType::F8_E4M3) {
    const uint8_t* scales = kh + L.head_value_bytes();  // f16 [hd/32][bt]
    const __m512 k256 = _mm512_set1_ps(256.0f);
    for (int64_t d = 0; d < hd; ++d) {
      const uint8_t* sc = scales + 2 * (d / kKVQuantGroup) * bt;
      for (int64_t j = 0; j < bt; j += 16)
        _mm512_storeu_ps(kf + d * bt + j,
                         _mm512_mul_ps(fp8x16_div256(kh + d * bt + j),
                                       _mm512_mul_ps(load16<DType::F16>(sc + 2 * j), k256)));
    }
  } else if constexpr (T == DType::Q8_0) {
    const uint8_t* scales = kh + L.head_value_bytes();  // f16 [hd/32][bt]
    for (int64_t d = 0; d < hd; ++d) {
      const uint8_t* sc = scales + 2 * (d / kKVQuantGroup) * bt;
      for (int64_t j = 0; j < bt; j += 16)
        _mm512_storeu_ps(kf + d * bt + j,
                         _mm512_mul_ps(int8x16(kh + d * bt + j), load16<DType::F16>(sc + 2 * j)));
    }
  } else if constexpr (T == DType::Q4_0) {
    // 16 bytes of a K row hold 32 keys: the even ones in the low nibbles, the odd ones high.
    const uint8_t* scales = kh + L.head_value_bytes();
    const __m512i nibble = _mm512_set1_epi32(0xf), eight = _mm512_set1_epi32(8);
    for (int64_t d = 0; d < hd; ++d) {
      const uint8_t* sc = scales + 2 * (d / kKVQuantGroup) * bt;
      for (int64_t j = 0; j < bt; j += 32) {
        const __m512i x = u8x16(kh + d * (bt / 2) + j / 2);
        const __m512i even = _mm512_sub_epi32(_mm512_and_si512(x, nibble), eight);
        const __m512i odd = _mm512_sub_epi32(_mm512_srli_epi32(x, 4), eight);
        const __m512 lo = _mm512_cvtepi32_ps(_mm512_permutex2var_epi32(even, interleave_lo(), odd));
        const __m512 hi = _mm512_cvtepi32_ps(_mm512_permutex2var_epi32(even, interleave_hi(), odd));
        _mm512_storeu_ps(kf + d * bt + j, _mm512_mul_ps(lo, load16<DType::F16>(sc + 2 * j)));
        _mm512_storeu_ps(kf + d * bt + j + 16,
                         _mm512_mul_ps(hi, load16<DType::F16>(sc + 2 * (j + 16))));
      }
    }
  }
}

// Value rows 0 .. n-1 of one KV head's quantized V region of a block (vh) as f32 vf[n][hd].
template <DType T>
void load_values(const KVLayout& L, const uint8_t* vh, int64_t n, float* vf) {
  static_assert(T == DType::Q8_0 || T == DType::Q4_0 || T == DType::F8_E4M3);
  const int64_t hd = L.head_dim, groups = hd / kKVQuantGroup;
  if constexpr (T == DType::F8_E4M3) {
    const uint8_t* scales = vh + L.head_value_bytes();  // f16 [bt][hd/32]
    for (int64_t j = 0; j < n; ++j)
      for (int64_t g = 0; g < groups; ++g) {
        const __m512 d = _mm512_set1_ps(f16_at(scales + 2 * (j * groups + g)) * 256.0f);
        const uint8_t* row = vh + j * hd + 32 * g;
        _mm512_storeu_ps(vf + j * hd + 32 * g, _mm512_mul_ps(fp8x16_div256(row), d));
        _mm512_storeu_ps(vf + j * hd + 32 * g + 16, _mm512_mul_ps(fp8x16_div256(row + 16), d));
      }
  } else if constexpr (T == DType::Q8_0) {
    const uint8_t* scales = vh + L.head_value_bytes();  // f16 [bt][hd/32]
    for (int64_t j = 0; j < n; ++j)
      for (int64_t g = 0; g < groups; ++g) {
        const __m512 d = _mm512_set1_ps(f16_at(scales + 2 * (j * groups + g)));
        const uint8_t* row = vh + j * hd + 32 * g;
        _mm512_storeu_ps(vf + j * hd + 32 * g, _mm512_mul_ps(int8x16(row), d));
        _mm512_storeu_ps(vf + j * hd + 32 * g + 16, _mm512_mul_ps(int8x16(row + 16), d));
      }
  } else if constexpr (T == DType::Q4_0) {
    // 16 bytes hold a group's 32 dims: the even ones in the low nibbles, the odd ones high.
    const uint8_t* scales = vh + L.head_value_bytes();
    const __m512i nibble = _mm512_set1_epi32(0xf), eight = _mm512_set1_epi32(8);
    for (int64_t j = 0; j < n; ++j)
      for (int64_t g = 0; g < groups; ++g) {
        const __m512 d = _mm512_set1_ps(f16_at(scales + 2 * (j * groups + g)));
        const __m512i x = u8x16(vh + j * (hd / 2) + 16 * g);
        const __m512i even = _mm512_sub_epi32(_mm512_and_si512(x, nibble), eight);
        const __m512i odd = _mm512_sub_epi32(_mm512_srli_epi32(x, 4), eight);
        _mm512_storeu_ps(
            vf + j * hd + 32 * g,
            _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_permutex2var_epi32(even, interleave_lo(), odd)),
                          d));
        _mm512_storeu_ps(
            vf + j * hd + 32 * g + 16,
            _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_permutex2var_epi32(even, interleave_hi(), odd)),
                          d));
      }
  }
}

// s[r][j0 .. j0 + 16 kNK) = qs[r] · k[:, j0 ..] for kRows rows, k [hd][bt] in TK (f32, f16 or
// bf16, converted as loaded). Two accumulator sets take even and odd d, so a decode step's one
// or two rows still keep 4 to 8 FMA chains in flight; every row sums in the same order whatever
// kRows is. qs: [rows][hd], s: [rows][bt].
template <DType TK, int kRows, int kNK>
inline void score_rows(const float* qs, int64_t hd, const uint8_t* k, int64_t bt, int64_t j0,
                       float* s) {
  constexpr size_t es = dtype_size(TK);
  __m512 acc[2][kRows][kNK];
  for (int u = 0; u < 2; ++u)
    for (int r = 0; r < kRows; ++r)
      for (int i = 0; i < kNK; ++i) acc[u][r][i] = _mm512_setzero_ps();
  for (int64_t d = 0; d < hd; d += 2)
    for (int u = 0; u < 2; ++u) {
      __m512 kv[kNK];
      for (int i = 0; i < kNK; ++i) kv[i] = load16<TK>(k + ((d + u) * bt + j0 + 16 * i) * es);
      for (int r = 0; r < kRows; ++r) {
        const __m512 qd = _mm512_set1_ps(qs[r * hd + d + u]);
        for (int i = 0; i < kNK; ++i) acc[u][r][i] = _mm512_fmadd_ps(qd, kv[i], acc[u][r][i]);
      }
    }
  for (int r = 0; r < kRows; ++r)
    for (int i = 0; i < kNK; ++i)
      _mm512_storeu_ps(s + r * bt + j0 + 16 * i, _mm512_add_ps(acc[0][r][i], acc[1][r][i]));
}

template <DType TK, int kNK>
void score_rows_n(int rows, const float* qs, int64_t hd, const uint8_t* k, int64_t bt, int64_t j0,
                  float* s) {
  for (; rows >= 4; rows -= 4, qs += 4 * hd, s += 4 * bt)
    score_rows<TK, 4, kNK>(qs, hd, k, bt, j0, s);
  with_count<3>(rows, [&](auto r) { score_rows<TK, decltype(r)::value, kNK>(qs, hd, k, bt, j0, s); });
}

// o[r][d0 .. d0 + 16 kNV) = o[r][..] * alpha[r] + sum_{j < n} p[r][j] * v[j][d0 ..] for kRows
// rows, v [bt][hd] in TV (converted as loaded): kRows x kNV accumulators, one FMA chain over j
// each. o: [rows][hd], p: [rows][bt].
template <DType TV, int kRows, int kNV>
inline void accumulate_rows(float* o, int64_t hd, int64_t d0, const float* alpha, const float* p,
                            int64_t bt, const uint8_t* v, int64_t n) {
  constexpr size_t es = dtype_size(TV);
  __m512 acc[kRows][kNV];
  for (int r = 0; r < kRows; ++r)
    for (int i = 0; i < kNV; ++i)
      acc[r][i] =
          _mm512_mul_ps(_mm512_loadu_ps(o + r * hd + d0 + 16 * i), _mm512_set1_ps(alpha[r]));
  for (int64_t j = 0; j < n; ++j) {
    __m512 vj[kNV];
    for (int i = 0; i < kNV; ++i) vj[i] = load16<TV>(v + (j * hd + d0 + 16 * i) * es);
    for (int r = 0; r < kRows; ++r) {
      const __m512 pj = _mm512_set1_ps(p[r * bt + j]);
      for (int i = 0; i < kNV; ++i) acc[r][i] = _mm512_fmadd_ps(pj, vj[i], acc[r][i]);
    }
  }
  for (int r = 0; r < kRows; ++r)
    for (int i = 0; i < kNV; ++i) _mm512_storeu_ps(o + r * hd + d0 + 16 * i, acc[r][i]);
}

template <DType TV>
void accumulate_rows_n(int rows, float* o, int64_t hd, const float* alpha, const float* p,
                       int64_t bt, const uint8_t* v, int64_t n) {
  // Rows six at a time and 64 dims at a time: 24 accumulators and 4 value vectors.
  for (int r0 = 0; r0 < rows; r0 += 6)
    for (int64_t d0 = 0; d0 < hd; d0 += 64)
      with_count<6>(std::min(6, rows - r0), [&](auto nr) {
        with_count<4>(static_cast<int>(std::min<int64_t>(4, (hd - d0) / 16)), [&](auto nv) {
          accumulate_rows<TV, decltype(nr)::value, decltype(nv)::value>(
              o + r0 * hd, hd, d0, alpha + r0, p + r0 * bt, bt, v, n);
        });
      });
}

// Per-thread buffers of the tile kernel, grown to the largest shape seen.
struct TileScratch {
  std::vector<float> qs, o;  // [rows][hd]: the scaled queries, the unnormalised outputs
  std::vector<float> kf;     // [hd][bt]: a block's keys in f32
  std::vector<float> vf;     // [bt][hd]: a block's values in f32
  std::vector<float> s;      // [rows][bt]: scores, then softmax numerators
  float m[kAttentionTileRows], l[kAttentionTileRows], alpha[kAttentionTileRows];

  void reserve(int64_t hd, int64_t bt) {
    auto grow = [](std::vector<float>& v, int64_t n) {
      if (v.size() < static_cast<size_t>(n)) v.resize(static_cast<size_t>(n));
    };
    grow(qs, kAttentionTileRows * hd);
    grow(o, kAttentionTileRows * hd);
    grow(kf, hd * bt);
    grow(vf, bt * hd);
    grow(s, kAttentionTileRows * bt);
  }
};

template <DType T>
void attention_tile(const AttentionRow* rows, int n_rows, const PagedKVView& kv, int64_t kv_head,
                    float scale) {
  const KVLayout& L = *kv.layout;
  const int64_t bt = L.block_tokens, hd = L.head_dim;
  const size_t k_head = L.k_offset(kv.layer) + kv_head * L.head_bytes();
  const size_t v_head = L.v_offset(kv.layer) + kv_head * L.head_bytes();
  thread_local TileScratch sc;
  sc.reserve(hd, bt);
  float* qs = sc.qs.data();
  float* o = sc.o.data();
  float* s = sc.s.data();

  int64_t lo = std::numeric_limits<int64_t>::max(), hi = 0;  // keys any row needs
  const __m512 vscale = _mm512_set1_ps(scale);
  for (int r = 0; r < n_rows; ++r) {
    lo = std::min(lo, rows[r].lo);
    hi = std::max(hi, rows[r].hi);
    for (int64_t d = 0; d < hd; d += 16) {
      _mm512_storeu_ps(qs + r * hd + d, _mm512_mul_ps(_mm512_loadu_ps(rows[r].q + d), vscale));
      _mm512_storeu_ps(o + r * hd + d, _mm512_setzero_ps());
    }
    sc.m[r] = kNegInf;
    sc.l[r] = 0;
  }

  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512 neg_inf = _mm512_set1_ps(kNegInf);
  for (int64_t b = lo / bt; b * bt < hi; ++b) {
    const int64_t base = b * bt;
    const int64_t n = std::min(bt, hi - base);  // keys of this block that any row needs
    const uint8_t* block = kv.blocks[b];
    const bool more = (b + 1) * bt < hi;
    if (more) prefetch(kv.blocks[b + 1] + k_head, L.head_bytes());
    // f32/f16/bf16 keys and values are read in place (converted as loaded, which keeps the
    // tile's working set in L1); quantized ones are dequantized into f32 first. Keys past n are
    // scored but masked; values past n are never read (they may be unwritten memory).
    constexpr DType TE = is_quantized(T) ? DType::F32 : T;
    const uint8_t* kf = block + k_head;
    const uint8_t* vf = block + v_head;
    if constexpr (is_quantized(T)) {
      load_keys<T>(L, block + k_head, sc.kf.data());
      load_values<T>(L, block + v_head, n, sc.vf.data());
      kf = reinterpret_cast<const uint8_t*>(sc.kf.data());
      vf = reinterpret_cast<const uint8_t*>(sc.vf.data());
    }

    // Scores s[r][j] for j < n rounded up to 16.
    int64_t j0 = 0;
    for (; j0 + 32 <= n; j0 += 32) score_rows_n<TE, 2>(n_rows, qs, hd, kf, bt, j0, s);
    for (; j0 < n; j0 += 16) score_rows_n<TE, 1>(n_rows, qs, hd, kf, bt, j0, s);

    // Online softmax per row over its keys [lo_r, hi_r) within the block.
    for (int r = 0; r < n_rows; ++r) {
      const int64_t a = std::max<int64_t>(rows[r].lo - base, 0);
      const int64_t e = std::min<int64_t>(rows[r].hi - base, n);
      float* sr = s + r * bt;
      auto valid = [&](int64_t c) {
        const __m512i idx = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int>(c)), lane);
        return static_cast<__mmask16>(
            _mm512_cmpge_epi32_mask(idx, _mm512_set1_epi32(static_cast<int>(a))) &
            _mm512_cmplt_epi32_mask(idx, _mm512_set1_epi32(static_cast<int>(e))));
      };
      if (a >= e) {  // no key of this row here: leave it exactly as it is
        sc.alpha[r] = 1.0f;
        for (int64_t c = 0; c < n; c += 16) _mm512_storeu_ps(sr + c, _mm512_setzero_ps());
        continue;
      }
      __m512 vmax = neg_inf;
      for (int64_t c = 0; c < n; c += 16)
        vmax =
            _mm512_max_ps(vmax, _mm512_mask_blend_ps(valid(c), neg_inf, _mm512_loadu_ps(sr + c)));
      const float m_new = std::max(sc.m[r], _mm512_reduce_max_ps(vmax));
      const __m512 vm = _mm512_set1_ps(m_new);
      __m512 vsum = _mm512_setzero_ps();
      for (int64_t c = 0; c < n; c += 16) {
        const __m512 p =
            _mm512_maskz_mov_ps(valid(c), exp_ps(_mm512_sub_ps(_mm512_loadu_ps(sr + c), vm)));
        vsum = _mm512_add_ps(vsum, p);
        _mm512_storeu_ps(sr + c, p);
      }
      sc.alpha[r] = sc.m[r] == kNegInf ? 0.0f : std::exp(sc.m[r] - m_new);
      sc.l[r] = sc.l[r] * sc.alpha[r] + _mm512_reduce_add_ps(vsum);
      sc.m[r] = m_new;
    }
    if (more) prefetch(kv.blocks[b + 1] + v_head, L.head_bytes());
    accumulate_rows_n<TE>(n_rows, o, hd, sc.alpha, s, bt, vf, n);
  }

  for (int r = 0; r < n_rows; ++r) {
    const __m512 inv = _mm512_set1_ps(1.0f / sc.l[r]);
    for (int64_t d = 0; d < hd; d += 16)
      _mm512_storeu_ps(rows[r].out + d, _mm512_mul_ps(_mm512_loadu_ps(o + r * hd + d), inv));
  }
}

}  // namespace

void attention_tile_avx512(const AttentionRow* rows, int n_rows, const PagedKVView& kv,
                           int64_t kv_head, float scale) {
  switch (kv.layout->dtype) {
    case DType::F32:
      return attention_tile<DType::F32>(rows, n_rows, kv, kv_head, scale);
    case DType::F16:
      return attention_tile<DType::F16>(rows, n_rows, kv, kv_head, scale);
    case DType::BF16:
      return attention_tile<DType::BF16>(rows, n_rows, kv, kv_head, scale);
    case DType::Q8_0:
      return attention_tile<DType::Q8_0>(rows, n_rows, kv, kv_head, scale);
    case DType::Q4_0:
      return attention_tile<DType::Q4_0>(rows, n_rows, kv, kv_head, scale);
    case DType::F8_E4M3:
      return attention_tile<DType::F8_E4M3>(rows, n_rows, kv, kv_head, scale);
    default:
      return;
  }
}

}  // namespace hwledger::cpu
