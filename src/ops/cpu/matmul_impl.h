// Kernel templates shared by the per-instruction-set files matmul_<isa>.cpp.
//
// Include ONLY from those files, and instantiate only with an `Isa` struct defined in the
// including file's anonymous namespace: every instantiation then has internal linkage, so the
// linker can never fold an AVX-512 copy of a function into code that runs on an older CPU. For the
// same reason nothing here calls a non-template inline function of another header.
//
// An Isa struct provides (V is its vector of kLanes floats):
//   V zero(); V loadu(const float*); V load(const float*) (aligned to the vector size);
//   V load_partial(const float*, int n) (lanes >= n are zero); V broadcast(const float*);
//   V fmadd(V a, V b, V c) (a*b+c); V add(V, V); void storeu(float*, V);
//   void store_partial(float*, V, int n); float reduce(V) (sum of lanes);
//   template <DType T> V load_w(const void* w, size_t i): kLanes weights w[i..] as fp32;
//   template <DType T> V load_w_partial(const void* w, size_t i, int n);
//   template <DType T> float load_w1(const void* w, size_t i);
//   void prefetch(const void*) (a hint: may point past the end of w);
//   template <DType T> void pack_tile(float* dst, size_t dst_stride, const void* src,
//       size_t first, size_t row_stride, int rows): transposes a tile of `rows` (<= kLanes) rows
//       of kLanes values each (row i starts at element first + i * row_stride of src, of type T)
//       into dst[k * dst_stride + i] for k < kLanes, i < rows, writing nothing else;
//   constants: kGemvMaxMB, gemv_rows(mb) (decode); kMR, kNV, kKC, kNC, kMC (prefill blocks).
#pragma once
#include <cstddef>
#include <cstdint>

#include "ops/cpu/matmul_kernels.h"

// The register-blocked loops below must be unrolled completely, or the accumulator arrays
// end up in memory.
#define HW_UNROLL _Pragma("GCC unroll 32")

namespace hwledger::cpu::detail {

template <DType T>
inline constexpr int kWeightBytes = T == DType::F32 ? 4 : 2;

// ---------------------------------------------------------------------------------------------
// Decode: GEMV (and small-M GEMM) streaming w once.

// Batched decode (M = 2..8): rows [n, n + R) of w against rows [m0, m0 + MB) of x: R * MB
// accumulators, each a vector of partial sums along k, reduced at the end. The weights of each row
// are converted once and used for all MB activation rows, and each activation load serves R rows.
//
// Rows of w are short (2 KiB for K = 1024 in bf16), too short for the hardware prefetcher to
// ramp up on each, so every step also prefetches the same line of the next block of rows:
// `prefetch_ahead` bytes further on, since rows are contiguous in memory.
template <class I, DType T, int R, int MB>
void gemv_block(const MatmulProblem& p, int64_t n, int64_t m0, size_t prefetch_ahead) {
  using V = typename I::V;
  constexpr int L = I::kLanes;
  constexpr int kBytes = kWeightBytes<T>;
  // Unroll k so that each step reads one 64-byte line of every weight row.
  constexpr int kUnroll = 64 / (L * kBytes) > 0 ? 64 / (L * kBytes) : 1;
  const int64_t K = p.K;
  const char* wbytes = static_cast<const char*>(p.w);
  const size_t row0 = static_cast<size_t>(n) * static_cast<size_t>(K);

  const float* xrow[MB];
  HW_UNROLL
  for (int m = 0; m < MB; ++m) xrow[m] = p.x + static_cast<size_t>(m0 + m) * p.ldx;
  V acc[R][MB];
  HW_UNROLL
  for (int r = 0; r < R; ++r) {
    HW_UNROLL
    for (int m = 0; m < MB; ++m) acc[r][m] = I::zero();
  }

  int64_t k = 0;
  for (; k + kUnroll * L <= K; k += kUnroll * L) {
    HW_UNROLL
    for (int r = 0; r < R; ++r) I::prefetch(wbytes + (row0 + r * K + k) * kBytes + prefetch_ahead);
    HW_UNROLL
    for (int u = 0; u < kUnroll; ++u) {
      V xv[MB];
      HW_UNROLL
      for (int m = 0; m < MB; ++m) xv[m] = I::loadu(xrow[m] + k + u * L);
      HW_UNROLL
      for (int r = 0; r < R; ++r) {
        V wv = I::template load_w<T>(p.w, row0 + r * K + k + u * L);
        HW_UNROLL
        for (int m = 0; m < MB; ++m) acc[r][m] = I::fmadd(wv, xv[m], acc[r][m]);
      }
    }
  }
  for (; k + L <= K; k += L) {
    HW_UNROLL
    for (int r = 0; r < R; ++r) {
      V wv = I::template load_w<T>(p.w, row0 + r * K + k);
      HW_UNROLL
      for (int m = 0; m < MB; ++m) acc[r][m] = I::fmadd(wv, I::loadu(xrow[m] + k), acc[r][m]);
    }
  }
  if (k < K) {
    const int rest = static_cast<int>(K - k);
    HW_UNROLL
    for (int r = 0; r < R; ++r) {
      V wv = I::template load_w_partial<T>(p.w, row0 + r * K + k, rest);
      HW_UNROLL
      for (int m = 0; m < MB; ++m)
        acc[r][m] = I::fmadd(wv, I::load_partial(xrow[m] + k, rest), acc[r][m]);
    }
  }

  HW_UNROLL
  for (int m = 0; m < MB; ++m) {
    float* out = p.y + static_cast<size_t>(m0 + m) * p.ldy + n;
    HW_UNROLL
    for (int r = 0; r < R; ++r) {
      float sum = I::reduce(acc[r][m]);
      if (p.bias) sum += p.bias[n + r];
      out[r] = p.accumulate ? out[r] + sum : sum;
    }
  }
}

// Decode proper (M = 1): one row of w at a time, so that the weights are read as a single
// sequential stream, which the hardware prefetcher follows across rows (on Zen 5 ~25% faster
// than interleaving 8 rows). A software prefetch 8 KiB ahead, into L2, costs nothing there and
// recovers what Intel's prefetchers leave (measured on Sapphire Rapids: 9 -> 15 GB/s per core).
// Four accumulator chains hide the FMA latency.
constexpr size_t kGemvPrefetchAhead = 8192;

template <class I, DType T>
void gemv_row(const MatmulProblem& p, int64_t n, int64_t m) {
  using V = typename I::V;
  constexpr int L = I::kLanes, kChains = 4;
  const int64_t K = p.K;
  const size_t row0 = static_cast<size_t>(n) * static_cast<size_t>(K);
  const float* x = p.x + static_cast<size_t>(m) * p.ldx;
  V acc[kChains];
  HW_UNROLL
  for (int c = 0; c < kChains; ++c) acc[c] = I::zero();
  int64_t k = 0;
  const char* wbytes = static_cast<const char*>(p.w);
  for (; k + kChains * L <= K; k += kChains * L) {
    constexpr int kStepBytes = kChains * L * kWeightBytes<T>;
    HW_UNROLL
    for (int b = 0; b < kStepBytes; b += 64)
      I::prefetch(wbytes + (row0 + k) * kWeightBytes<T> + kGemvPrefetchAhead + b);
    HW_UNROLL
    for (int c = 0; c < kChains; ++c)
      acc[c] =
          I::fmadd(I::template load_w<T>(p.w, row0 + k + c * L), I::loadu(x + k + c * L), acc[c]);
  }
  for (; k + L <= K; k += L)
    acc[0] = I::fmadd(I::template load_w<T>(p.w, row0 + k), I::loadu(x + k), acc[0]);
  if (k < K) {
    const int rest = static_cast<int>(K - k);
    acc[1] = I::fmadd(I::template load_w_partial<T>(p.w, row0 + k, rest),
                      I::load_partial(x + k, rest), acc[1]);
  }
  float sum = I::reduce(I::add(I::add(acc[0], acc[1]), I::add(acc[2], acc[3])));
  if (p.bias) sum += p.bias[n];
  float* out = p.y + static_cast<size_t>(m) * p.ldy + n;
  *out = p.accumulate ? *out + sum : sum;
}

template <class I, DType T, int MB>
void gemv_rows(const MatmulProblem& p, int64_t n0, int64_t n1, int64_t m0) {
  if constexpr (MB == 1) {
    for (int64_t n = n0; n < n1; ++n) gemv_row<I, T>(p, n, m0);
  } else {
    constexpr int R = I::gemv_rows(MB);
    const size_t row_bytes = static_cast<size_t>(p.K) * kWeightBytes<T>;
    int64_t n = n0;
    for (; n + R <= n1; n += R) gemv_block<I, T, R, MB>(p, n, m0, R * row_bytes);
    for (; n < n1; ++n) gemv_block<I, T, 1, MB>(p, n, m0, row_bytes);
  }
}

// Calls gemv_rows<MB = mb> for a run-time mb in [1, MB].
template <class I, DType T, int MB>
void gemv_rows_dispatch(int mb, const MatmulProblem& p, int64_t n0, int64_t n1, int64_t m0) {
  if constexpr (MB >= 1) {
    if (mb == MB) return gemv_rows<I, T, MB>(p, n0, n1, m0);
    return gemv_rows_dispatch<I, T, MB - 1>(mb, p, n0, n1, m0);
  }
}

// Calls gemv_block<R, MB = mb> for a run-time mb in [1, MB].
template <class I, DType T, int R, int MB>
void gemv_block_dispatch(int mb, const MatmulProblem& p, int64_t n, int64_t m0, size_t ahead) {
  if constexpr (MB >= 1) {
    if (mb == MB) return gemv_block<I, T, R, MB>(p, n, m0, ahead);
    return gemv_block_dispatch<I, T, R, MB - 1>(mb, p, n, m0, ahead);
  }
}

template <class I, DType T>
void gemv_typed(const MatmulProblem& p, int64_t n0, int64_t n1) {
  constexpr int kMaxMB = I::kGemvMaxMB;
  if (p.M <= kMaxMB) return gemv_rows_dispatch<I, T, kMaxMB>(static_cast<int>(p.M), p, n0, n1, 0);
  // More activation rows than one block holds: every group of kMaxMB rows goes over a block of R
  // rows of w while that block is still in L1/L2, so w is read from memory once. (Going over
  // all of w per group instead doubles the traffic; one group of 8 spills the registers. Both
  // measured ~1.2x and ~2x slower at M = 8.)
  constexpr int R = I::gemv_rows(kMaxMB);
  const size_t row_bytes = static_cast<size_t>(p.K) * kWeightBytes<T>;
  int64_t n = n0;
  for (; n + R <= n1; n += R)
    for (int64_t m0 = 0; m0 < p.M; m0 += kMaxMB) {
      const int mb = static_cast<int>(p.M - m0 < kMaxMB ? p.M - m0 : kMaxMB);
      gemv_block_dispatch<I, T, R, kMaxMB>(mb, p, n, m0, R * row_bytes);
    }
  for (; n < n1; ++n)
    for (int64_t m0 = 0; m0 < p.M; m0 += kMaxMB) {
      const int mb = static_cast<int>(p.M - m0 < kMaxMB ? p.M - m0 : kMaxMB);
      gemv_block_dispatch<I, T, 1, kMaxMB>(mb, p, n, m0, row_bytes);
    }
}

template <class I>
void gemv(const MatmulProblem& p, int64_t n0, int64_t n1) {
  switch (p.wtype) {
    case DType::F32:
      return gemv_typed<I, DType::F32>(p, n0, n1);
    case DType::F16:
      return gemv_typed<I, DType::F16>(p, n0, n1);
    case DType::BF16:
      return gemv_typed<I, DType::BF16>(p, n0, n1);
    default:
      return;  // rejected by the driver
  }
}

// ---------------------------------------------------------------------------------------------
// Prefill: blocked GEMM on packed fp32 panels.
//
// Per thread, for each block of kMC rows of x and kKC values of k, the activations are packed
// into groups xp[group][k][MR]; then for each block of kNC columns the weights are converted and
// packed into panels wp[panel][k][NR] (stays in L2), and the micro-kernel computes each MR x NR
// tile of y from one x group (stays in L1 while it sweeps the panels) and one w panel: NR/kLanes
// vector loads and MR broadcasts per k. Each weight is converted once per kMC rows of x.

template <class I>
constexpr int panel_width() {
  return I::kNV * I::kLanes;
}

template <class I>
constexpr size_t gemm_scratch_floats() {
  return (static_cast<size_t>(I::kNC) + I::kMC) * I::kKC + I::kNC;
}

// wp[panel][k][NR] = w[n0 + panel * NR + j, k0 + k] as fp32; columns past ncols are zero.
// Whole kLanes x kLanes tiles go through the Isa's in-register transpose.
template <class I, DType T>
void pack_w(float* wp, const MatmulProblem& p, int64_t n0, int64_t ncols, int64_t k0, int64_t kc) {
  constexpr int L = I::kLanes, NR = panel_width<I>();
  const int64_t panels = (ncols + NR - 1) / NR;
  const size_t K = static_cast<size_t>(p.K);
  for (int64_t panel = 0; panel < panels; ++panel) {
    float* dst = wp + panel * kc * NR;
    for (int j0 = 0; j0 < NR; j0 += L) {
      const int64_t col0 = panel * NR + j0;
      const int rows = static_cast<int>(ncols - col0 >= L ? L : (ncols > col0 ? ncols - col0 : 0));
      int64_t k = 0;
      if (rows == L) {
        for (; k + L <= kc; k += L)
          I::template pack_tile<T>(dst + k * NR + j0, NR, p.w, (n0 + col0) * K + k0 + k, K, L);
      }
      for (; k < kc; ++k)
        for (int j = 0; j < L; ++j)
          dst[k * NR + j0 + j] =
              j < rows ? I::template load_w1<T>(p.w, (n0 + col0 + j) * K + k0 + k) : 0.f;
    }
  }
}

// xp[group][k][mr] = x[m + group * MR + i, k0 + k] for the `rows` rows from m; each group holds
// MR rows but the last, which holds the remainder (mr = rows - group * MR).
template <class I>
void pack_x(float* xp, const MatmulProblem& p, int64_t m, int64_t rows, int64_t k0, int64_t kc) {
  constexpr int L = I::kLanes;
  for (int64_t g = 0; g * I::kMR < rows; ++g) {
    const int mr = static_cast<int>(rows - g * I::kMR < I::kMR ? rows - g * I::kMR : I::kMR);
    float* dst = xp + g * I::kMR * kc;
    const size_t first = static_cast<size_t>(m + g * I::kMR) * p.ldx + k0;
    int64_t k = 0;
    for (; k + L <= kc; k += L)
      I::template pack_tile<DType::F32>(dst + k * mr, mr, p.x, first + k, p.ldx, mr);
    for (; k < kc; ++k)
      for (int i = 0; i < mr; ++i) dst[k * mr + i] = p.x[first + i * p.ldx + k];
  }
}

// y[0:MR, 0:n_valid] (+)= xp[kc][MR]^T * wp[kc][NR] (+ bias).
template <class I, int MR>
void micro_kernel(int64_t kc, const float* xp, const float* wp, float* y, size_t ldy, int n_valid,
                  bool load_c, const float* bias) {
  using V = typename I::V;
  constexpr int L = I::kLanes, NV = I::kNV, NR = NV * L;
  V acc[MR][NV];
  HW_UNROLL
  for (int i = 0; i < MR; ++i) {
    HW_UNROLL
    for (int j = 0; j < NV; ++j) acc[i][j] = I::zero();
  }
  for (int64_t k = 0; k < kc; ++k) {
    V b[NV];
    HW_UNROLL
    for (int j = 0; j < NV; ++j) b[j] = I::load(wp + k * NR + j * L);
    HW_UNROLL
    for (int i = 0; i < MR; ++i) {
      V a = I::broadcast(xp + k * MR + i);
      HW_UNROLL
      for (int j = 0; j < NV; ++j) acc[i][j] = I::fmadd(a, b[j], acc[i][j]);
    }
  }
  if (bias) {
    HW_UNROLL
    for (int j = 0; j < NV; ++j) {
      V bv = I::loadu(bias + j * L);
      HW_UNROLL
      for (int i = 0; i < MR; ++i) acc[i][j] = I::add(acc[i][j], bv);
    }
  }
  if (n_valid == NR) {
    HW_UNROLL
    for (int i = 0; i < MR; ++i) {
      HW_UNROLL
      for (int j = 0; j < NV; ++j) {
        float* out = y + i * ldy + j * L;
        I::storeu(out, load_c ? I::add(acc[i][j], I::loadu(out)) : acc[i][j]);
      }
    }
  } else {
    HW_UNROLL
    for (int i = 0; i < MR; ++i) {
      HW_UNROLL
      for (int j = 0; j < NV; ++j) {
        const int lanes = n_valid - j * L;
        if (lanes <= 0) continue;
        float* out = y + i * ldy + j * L;
        if (lanes >= L) {
          I::storeu(out, load_c ? I::add(acc[i][j], I::loadu(out)) : acc[i][j]);
        } else {
          V v = load_c ? I::add(acc[i][j], I::load_partial(out, lanes)) : acc[i][j];
          I::store_partial(out, v, lanes);
        }
      }
    }
  }
}

// One packed group of MR rows of x against all panels of the packed w block; y points at the
// tile's top-left element.
template <class I, int MR>
void row_group(int64_t kc, const float* xp, const float* wp, int64_t ncols, float* y, size_t ldy,
               bool load_c, const float* bias) {
  constexpr int NR = panel_width<I>();
  for (int64_t col = 0; col < ncols; col += NR) {
    const int n_valid = static_cast<int>(ncols - col < NR ? ncols - col : NR);
    micro_kernel<I, MR>(kc, xp, wp + col * kc, y + col, ldy, n_valid, load_c,
                        bias ? bias + col : nullptr);
  }
}

// Calls row_group<MR = mr> for a run-time mr in [1, MR].
template <class I, int MR>
void row_group_dispatch(int mr, int64_t kc, const float* xp, const float* wp, int64_t ncols,
                        float* y, size_t ldy, bool load_c, const float* bias) {
  if constexpr (MR >= 1) {
    if (mr == MR) return row_group<I, MR>(kc, xp, wp, ncols, y, ldy, load_c, bias);
    return row_group_dispatch<I, MR - 1>(mr, kc, xp, wp, ncols, y, ldy, load_c, bias);
  }
}

template <class I, DType T>
void gemm_typed(const MatmulProblem& p, int64_t m0, int64_t m1, int64_t n0, int64_t n1,
                float* scratch) {
  float* wp = scratch;                                            // [kNC / NR][kKC][NR]
  float* xp = wp + static_cast<size_t>(I::kNC) * I::kKC;          // [kMC / kMR][kKC][kMR]
  float* bias_block = xp + static_cast<size_t>(I::kMC) * I::kKC;  // [kNC]
  // Equal k blocks of at most kKC.
  const int64_t k_blocks = (p.K + I::kKC - 1) / I::kKC;
  const int64_t kc_step = (p.K + k_blocks - 1) / k_blocks;

  for (int64_t mc0 = m0; mc0 < m1; mc0 += I::kMC) {
    const int64_t rows = m1 - mc0 < I::kMC ? m1 - mc0 : I::kMC;
    for (int64_t k0 = 0; k0 < p.K; k0 += kc_step) {
      const int64_t kc = p.K - k0 < kc_step ? p.K - k0 : kc_step;
      pack_x<I>(xp, p, mc0, rows, k0, kc);
      // The first k block adds the bias and, for accumulate, the old y; later ones add into y.
      const bool first = k0 == 0;
      const bool load_c = !first || p.accumulate;
      const bool add_bias = first && p.bias != nullptr;
      for (int64_t nc0 = n0; nc0 < n1; nc0 += I::kNC) {
        const int64_t ncols = n1 - nc0 < I::kNC ? n1 - nc0 : I::kNC;
        if (add_bias) {
          const int64_t padded =
              (ncols + panel_width<I>() - 1) / panel_width<I>() * panel_width<I>();
          for (int64_t j = 0; j < padded; ++j) bias_block[j] = j < ncols ? p.bias[nc0 + j] : 0.f;
        }
        pack_w<I, T>(wp, p, nc0, ncols, k0, kc);
        for (int64_t g = 0; g * I::kMR < rows; ++g) {
          const int64_t m = mc0 + g * I::kMR;
          const int mr = static_cast<int>(rows - g * I::kMR < I::kMR ? rows - g * I::kMR : I::kMR);
          row_group_dispatch<I, I::kMR>(mr, kc, xp + g * I::kMR * kc, wp, ncols,
                                        p.y + static_cast<size_t>(m) * p.ldy + nc0, p.ldy, load_c,
                                        add_bias ? bias_block : nullptr);
        }
      }
    }
  }
}

template <class I>
void gemm(const MatmulProblem& p, int64_t m0, int64_t m1, int64_t n0, int64_t n1, float* scratch) {
  switch (p.wtype) {
    case DType::F32:
      return gemm_typed<I, DType::F32>(p, m0, m1, n0, n1, scratch);
    case DType::F16:
      return gemm_typed<I, DType::F16>(p, m0, m1, n0, n1, scratch);
    case DType::BF16:
      return gemm_typed<I, DType::BF16>(p, m0, m1, n0, n1, scratch);
    default:
      return;  // rejected by the driver
  }
}

template <class I>
constexpr MatmulKernels make_kernels(const char* name, int64_t gemv_max_m) {
  return MatmulKernels{
      name, gemv_max_m, &gemv<I>, panel_width<I>(), I::kMR, gemm_scratch_floats<I>(), &gemm<I>};
}

}  // namespace hwledger::cpu::detail

#undef HW_UNROLL
