// The bf16-activation GEMM behind matmul_bf16_activations() (matmul_bf16.h): bf16 weights and
// activations rounded to bf16, multiplied in pairs by vdpbf16ps into fp32 accumulators.
// Compiled with -mavx512bf16; called only when the CPU reports AVX512_BF16.
//
// Layout: one 32-bit lane holds a pair of bf16 values at k = 2p, 2p + 1, so vdpbf16ps adds
// x[m, 2p] w[n, 2p] + x[m, 2p + 1] w[n, 2p + 1] to the fp32 lane of column n. Weights are packed
// per panel as wp[p][NR] pairs (a 16x16 transpose of 32-bit lanes of the rows, no conversion),
// activations as xp[p][MR] pairs. Blocking is that of the fp32 GEMM (matmul_impl.h) in pairs.

// GCC 12's AVX-512 intrinsics trip -Wuninitialized on their own _mm512_undefined_ps()
// (GCC bug 105593, fixed in GCC 13).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include "ops/cpu/matmul_kernels.h"

namespace hwledger::cpu::detail {
namespace {

constexpr int kLanes = 16;
constexpr int kMR = 14, kNR = 32, kNV = 2;
constexpr int64_t kPairsPerBlock = 256;  // 512 values of k
constexpr int64_t kNC = 256, kMC = 42 * kMR;

__mmask16 lanes_mask(int n) {
  return static_cast<__mmask16>((1u << n) - 1u);
}

// Round to nearest even, as vcvtne2ps2bf16 does (inputs here are finite activations).
uint32_t round_bf16(float f) {
  uint32_t u;
  __builtin_memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (u >> 16) | 0x40u;  // NaN stays NaN
  return (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
}

// r[i][j] -> r[j][i] for 16 rows of 16 32-bit lanes (see transpose16 in matmul_avx512.cpp).
void transpose16(__m512 r[16]) {
  __m512 t[16], u[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int g = 0; g < 4; ++g) {
    u[4 * g + 0] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
    u[4 * g + 1] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0xEE);
    u[4 * g + 2] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
    u[4 * g + 3] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xEE);
  }
  for (int c = 0; c < 4; ++c) {
    const __m512 a = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x88);
    const __m512 b = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xDD);
    const __m512 e = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x88);
    const __m512 f = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xDD);
    r[c] = _mm512_shuffle_f32x4(a, e, 0x88);
    r[8 + c] = _mm512_shuffle_f32x4(a, e, 0xDD);
    r[4 + c] = _mm512_shuffle_f32x4(b, f, 0x88);
    r[12 + c] = _mm512_shuffle_f32x4(b, f, 0xDD);
  }
}

// wp[panel][p][NR] = (w[n, k0 + 2p], w[n, k0 + 2p + 1]) for n = n0 + panel * NR + j; pairs past
// K and columns past ncols are zero.
void pack_w(uint32_t* wp, const MatmulProblem& p, int64_t n0, int64_t ncols, int64_t k0,
            int64_t pairs) {
  const uint16_t* w = static_cast<const uint16_t*>(p.w);
  const size_t K = static_cast<size_t>(p.K);
  const int64_t panels = (ncols + kNR - 1) / kNR;
  for (int64_t panel = 0; panel < panels; ++panel) {
    uint32_t* dst = wp + panel * pairs * kNR;
    for (int j0 = 0; j0 < kNR; j0 += kLanes) {
      const int64_t col0 = panel * kNR + j0;
      const int rows =
          static_cast<int>(ncols - col0 >= kLanes ? kLanes : (ncols > col0 ? ncols - col0 : 0));
      int64_t q = 0;
      if (rows == kLanes) {
        // Whole tiles of 16 pairs that stay inside each row.
        for (; k0 + 2 * (q + kLanes) <= p.K; q += kLanes) {
          if (q + kLanes > pairs) break;
          __m512 r[16];
          for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_ps(w + (n0 + col0 + i) * K + k0 + 2 * q);
          transpose16(r);
          for (int i = 0; i < 16; ++i) _mm512_storeu_ps(dst + (q + i) * kNR + j0, r[i]);
        }
      }
      for (; q < pairs; ++q)
        for (int j = 0; j < kLanes; ++j) {
          uint32_t pair = 0;
          if (j < rows) {
            const size_t k = static_cast<size_t>(k0 + 2 * q);
            const uint16_t* row = w + (n0 + col0 + j) * K;
            pair = row[k] | (k + 1 < K ? static_cast<uint32_t>(row[k + 1]) << 16 : 0u);
          }
          dst[q * kNR + j0 + j] = pair;
        }
    }
  }
}

// xp[group][p][mr] = (bf16(x[i, k0 + 2p]), bf16(x[i, k0 + 2p + 1])) for the `rows` rows from m.
void pack_x(uint32_t* xp, const MatmulProblem& p, int64_t m, int64_t rows, int64_t k0,
            int64_t pairs) {
  for (int64_t g = 0; g * kMR < rows; ++g) {
    const int mr = static_cast<int>(rows - g * kMR < kMR ? rows - g * kMR : kMR);
    uint32_t* dst = xp + g * kMR * pairs;
    const float* x = p.x + static_cast<size_t>(m + g * kMR) * p.ldx + k0;
    int64_t q = 0;
    for (; k0 + 2 * (q + kLanes) <= p.K && q + kLanes <= pairs; q += kLanes) {
      __m512 r[16];
      for (int i = 0; i < 16; ++i) {
        if (i < mr) {
          const float* src = x + i * p.ldx + 2 * q;
          r[i] = reinterpret_cast<__m512>(
              _mm512_cvtne2ps_pbh(_mm512_loadu_ps(src + 16), _mm512_loadu_ps(src)));
        } else {
          r[i] = _mm512_setzero_ps();
        }
      }
      transpose16(r);
      for (int i = 0; i < 16; ++i) _mm512_mask_storeu_ps(dst + (q + i) * mr, lanes_mask(mr), r[i]);
    }
    for (; q < pairs; ++q)
      for (int i = 0; i < mr; ++i) {
        const size_t k = static_cast<size_t>(2 * q);
        const float* row = x + i * p.ldx;
        const uint32_t lo = round_bf16(row[k]);
        const uint32_t hi = k0 + static_cast<int64_t>(k) + 1 < p.K ? round_bf16(row[k + 1]) : 0u;
        dst[q * mr + i] = lo | (hi << 16);
      }
  }
}

// y[0:MR, 0:n_valid] (+)= sum over pairs of xp[p][MR] . wp[p][NR] (+ bias).
template <int MR>
void micro_kernel(int64_t pairs, const uint32_t* xp, const uint32_t* wp, float* y, size_t ldy,
                  int n_valid, bool load_c, const float* bias) {
  __m512 acc[MR][kNV];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < kNV; ++j) acc[i][j] = _mm512_setzero_ps();
  for (int64_t q = 0; q < pairs; ++q) {
    __m512bh b[kNV];
    for (int j = 0; j < kNV; ++j)
      b[j] = reinterpret_cast<__m512bh>(_mm512_load_si512(wp + q * kNR + j * kLanes));
    for (int i = 0; i < MR; ++i) {
      const __m512bh a =
          reinterpret_cast<__m512bh>(_mm512_set1_epi32(static_cast<int>(xp[q * MR + i])));
      for (int j = 0; j < kNV; ++j) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], a, b[j]);
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < kNV; ++j) {
      const int lanes = n_valid - j * kLanes;
      if (lanes <= 0) break;
      const __mmask16 mask = lanes_mask(lanes >= kLanes ? kLanes : lanes);
      __m512 v = acc[i][j];
      if (bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, bias + j * kLanes));
      float* out = y + i * ldy + j * kLanes;
      if (load_c) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, out));
      _mm512_mask_storeu_ps(out, mask, v);
    }
}

template <int MR>
void row_group(int64_t pairs, const uint32_t* xp, const uint32_t* wp, int64_t ncols, float* y,
               size_t ldy, bool load_c, const float* bias) {
  for (int64_t col = 0; col < ncols; col += kNR) {
    const int n_valid = static_cast<int>(ncols - col < kNR ? ncols - col : kNR);
    micro_kernel<MR>(pairs, xp, wp + col * pairs, y + col, ldy, n_valid, load_c,
                     bias ? bias + col : nullptr);
  }
}

template <int MR>
void row_group_dispatch(int mr, int64_t pairs, const uint32_t* xp, const uint32_t* wp,
                        int64_t ncols, float* y, size_t ldy, bool load_c, const float* bias) {
  if constexpr (MR >= 1) {
    if (mr == MR) return row_group<MR>(pairs, xp, wp, ncols, y, ldy, load_c, bias);
    return row_group_dispatch<MR - 1>(mr, pairs, xp, wp, ncols, y, ldy, load_c, bias);
  }
}

void gemm_bf16(const MatmulProblem& p, int64_t m0, int64_t m1, int64_t n0, int64_t n1,
               float* scratch) {
  uint32_t* wp = reinterpret_cast<uint32_t*>(scratch);  // [kNC / NR][kPairsPerBlock][NR]
  uint32_t* xp = wp + kNC * kPairsPerBlock;             // [kMC / kMR][kPairsPerBlock][kMR]
  float* bias_block = reinterpret_cast<float*>(xp + kMC * kPairsPerBlock);  // [kNC]
  const int64_t total_pairs = (p.K + 1) / 2;
  const int64_t blocks = (total_pairs + kPairsPerBlock - 1) / kPairsPerBlock;
  const int64_t pairs_step = (total_pairs + blocks - 1) / blocks;

  for (int64_t mc0 = m0; mc0 < m1; mc0 += kMC) {
    const int64_t rows = m1 - mc0 < kMC ? m1 - mc0 : kMC;
    for (int64_t q0 = 0; q0 < total_pairs; q0 += pairs_step) {
      const int64_t pairs = total_pairs - q0 < pairs_step ? total_pairs - q0 : pairs_step;
      pack_x(xp, p, mc0, rows, 2 * q0, pairs);
      const bool first = q0 == 0;
      const bool load_c = !first || p.accumulate;
      const bool add_bias = first && p.bias != nullptr;
      for (int64_t nc0 = n0; nc0 < n1; nc0 += kNC) {
        const int64_t ncols = n1 - nc0 < kNC ? n1 - nc0 : kNC;
        if (add_bias)
          for (int64_t j = 0; j < ncols; ++j) bias_block[j] = p.bias[nc0 + j];
        pack_w(wp, p, nc0, ncols, 2 * q0, pairs);
        for (int64_t g = 0; g * kMR < rows; ++g) {
          const int64_t m = mc0 + g * kMR;
          const int mr = static_cast<int>(rows - g * kMR < kMR ? rows - g * kMR : kMR);
          row_group_dispatch<kMR>(mr, pairs, xp + g * kMR * pairs, wp, ncols,
                                  p.y + static_cast<size_t>(m) * p.ldy + nc0, p.ldy, load_c,
                                  add_bias ? bias_block : nullptr);
        }
      }
    }
  }
}

}  // namespace

// Only the GEMM path: matmul_bf16_activations() sends decode-sized M to matmul().
const MatmulKernels kMatmulBf16Avx512 = {
    "avx512-bf16", 0, nullptr, kNR, kMR, static_cast<size_t>((kNC + kMC) * kPairsPerBlock + kNC),
    &gemm_bf16};

}  // namespace hwledger::cpu::detail
