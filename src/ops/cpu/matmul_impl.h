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
//   void prefetch(const void*);
//   constants: kGemvMaxMB, gemv_rows(mb), kPrefetchBytes, kMR, kNV, kKC, kNC.
#pragma once
#include <cstddef>
#include <cstdint>

#include "ops/cpu/matmul_kernels.h"

namespace hwledger::cpu::detail {

template <DType T>
constexpr int weight_bytes() {
  return T == DType::F32 ? 4 : 2;
}

// ---------------------------------------------------------------------------------------------
// Decode: GEMV (and small-M GEMM) streaming w once.

// Rows [n, n + R) of w against rows [m0, m0 + MB) of x: R * MB accumulators, each a vector of
// partial sums along k, reduced at the end. The weights of each row are converted once and used
// for all MB activation rows.
template <class I, DType T, int R, int MB>
void gemv_block(const MatmulProblem& p, int64_t n, int64_t m0) {
  using V = typename I::V;
  constexpr int L = I::kLanes;
  // Unroll k so that each step reads one 64-byte line of every weight row (prefetched once).
  constexpr int kUnroll = 64 / (L * weight_bytes<T>()) > 0 ? 64 / (L * weight_bytes<T>()) : 1;
  constexpr int64_t kPrefetchElems = I::kPrefetchBytes / weight_bytes<T>();
  const int64_t K = p.K;
  const char* wbytes = static_cast<const char*>(p.w);
  const size_t row0 = static_cast<size_t>(n) * static_cast<size_t>(K);

  const float* xrow[MB];
  for (int m = 0; m < MB; ++m) xrow[m] = p.x + static_cast<size_t>(m0 + m) * p.ldx;
  V acc[R][MB];
  for (int r = 0; r < R; ++r)
    for (int m = 0; m < MB; ++m) acc[r][m] = I::zero();

  int64_t k = 0;
  for (; k + kUnroll * L <= K; k += kUnroll * L) {
    if constexpr (I::kPrefetchBytes > 0) {
      for (int r = 0; r < R; ++r)
        I::prefetch(wbytes + (row0 + r * K + k + kPrefetchElems) * weight_bytes<T>());
    }
    for (int u = 0; u < kUnroll; ++u) {
      V xv[MB];
      for (int m = 0; m < MB; ++m) xv[m] = I::loadu(xrow[m] + k + u * L);
      for (int r = 0; r < R; ++r) {
        V wv = I::template load_w<T>(p.w, row0 + r * K + k + u * L);
        for (int m = 0; m < MB; ++m) acc[r][m] = I::fmadd(wv, xv[m], acc[r][m]);
      }
    }
  }
  for (; k + L <= K; k += L) {
    for (int r = 0; r < R; ++r) {
      V wv = I::template load_w<T>(p.w, row0 + r * K + k);
      for (int m = 0; m < MB; ++m) acc[r][m] = I::fmadd(wv, I::loadu(xrow[m] + k), acc[r][m]);
    }
  }
  if (k < K) {
    const int rest = static_cast<int>(K - k);
    for (int r = 0; r < R; ++r) {
      V wv = I::template load_w_partial<T>(p.w, row0 + r * K + k, rest);
      for (int m = 0; m < MB; ++m)
        acc[r][m] = I::fmadd(wv, I::load_partial(xrow[m] + k, rest), acc[r][m]);
    }
  }

  for (int m = 0; m < MB; ++m) {
    float* out = p.y + static_cast<size_t>(m0 + m) * p.ldy + n;
    for (int r = 0; r < R; ++r) {
      float sum = I::reduce(acc[r][m]);
      if (p.bias) sum += p.bias[n + r];
      out[r] = p.accumulate ? out[r] + sum : sum;
    }
  }
}

template <class I, DType T, int MB>
void gemv_rows(const MatmulProblem& p, int64_t n0, int64_t n1, int64_t m0) {
  constexpr int R = I::gemv_rows(MB);
  int64_t n = n0;
  for (; n + R <= n1; n += R) gemv_block<I, T, R, MB>(p, n, m0);
  for (; n < n1; ++n) gemv_block<I, T, 1, MB>(p, n, m0);
}

// Calls gemv_rows<MB = mb> for a run-time mb in [1, MB].
template <class I, DType T, int MB>
void gemv_rows_dispatch(int mb, const MatmulProblem& p, int64_t n0, int64_t n1, int64_t m0) {
  if constexpr (MB >= 1) {
    if (mb == MB) return gemv_rows<I, T, MB>(p, n0, n1, m0);
    return gemv_rows_dispatch<I, T, MB - 1>(mb, p, n0, n1, m0);
  }
}

template <class I, DType T>
void gemv_typed(const MatmulProblem& p, int64_t n0, int64_t n1) {
  for (int64_t m0 = 0; m0 < p.M; m0 += I::kGemvMaxMB) {
    const int mb = static_cast<int>(p.M - m0 < I::kGemvMaxMB ? p.M - m0 : I::kGemvMaxMB);
    gemv_rows_dispatch<I, T, I::kGemvMaxMB>(mb, p, n0, n1, m0);
  }
}

template <class I>
void gemv(const MatmulProblem& p, int64_t n0, int64_t n1) {
  switch (p.wtype) {
    case DType::F32: return gemv_typed<I, DType::F32>(p, n0, n1);
    case DType::F16: return gemv_typed<I, DType::F16>(p, n0, n1);
    case DType::BF16: return gemv_typed<I, DType::BF16>(p, n0, n1);
    default: return;  // rejected by the driver
  }
}

// ---------------------------------------------------------------------------------------------
// Prefill: blocked GEMM on packed fp32 panels.
//
// Per thread: for each block of kNC columns and kKC values of k, the weights are converted and
// packed into panels wp[panel][k][NR] (stays in L2); for each group of kMR rows the activations
// are packed into xp[k][MR] (stays in L1) and the micro-kernel computes an MR x NR tile of y from
// one x panel and one w panel: NR/kLanes vector loads and MR broadcasts per k.

template <class I>
constexpr int panel_width() {
  return I::kNV * I::kLanes;
}

template <class I>
constexpr size_t gemm_scratch_floats() {
  return static_cast<size_t>(I::kNC) * I::kKC + static_cast<size_t>(I::kKC) * I::kMR + I::kNC;
}

// wp[panel][k][NR] = w[n0 + panel * NR + j, k0 + k] as fp32; columns past ncols are zero.
template <class I, DType T>
void pack_w(float* wp, const MatmulProblem& p, int64_t n0, int64_t ncols, int64_t k0, int64_t kc) {
  constexpr int NR = panel_width<I>();
  const int64_t panels = (ncols + NR - 1) / NR;
  for (int64_t panel = 0; panel < panels; ++panel) {
    float* dst = wp + panel * kc * NR;
    for (int j = 0; j < NR; ++j) {
      const int64_t col = panel * NR + j;
      if (col < ncols) {
        const size_t src = static_cast<size_t>(n0 + col) * p.K + k0;
        for (int64_t k = 0; k < kc; ++k) dst[k * NR + j] = I::template load_w1<T>(p.w, src + k);
      } else {
        for (int64_t k = 0; k < kc; ++k) dst[k * NR + j] = 0.f;
      }
    }
  }
}

// xp[k][MR] = x[i, k] for the MR rows starting at x (row stride ldx).
template <class I, int MR>
void pack_x(float* xp, const float* x, size_t ldx, int64_t kc) {
  for (int i = 0; i < MR; ++i) {
    const float* row = x + i * ldx;
    for (int64_t k = 0; k < kc; ++k) xp[k * MR + i] = row[k];
  }
}

// y[0:MR, 0:n_valid] (+)= xp[kc][MR]^T * wp[kc][NR] (+ bias).
template <class I, int MR>
void micro_kernel(int64_t kc, const float* xp, const float* wp, float* y, size_t ldy, int n_valid,
                  bool load_c, const float* bias) {
  using V = typename I::V;
  constexpr int L = I::kLanes, NV = I::kNV, NR = NV * L;
  V acc[MR][NV];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NV; ++j) acc[i][j] = I::zero();
  for (int64_t k = 0; k < kc; ++k) {
    V b[NV];
    for (int j = 0; j < NV; ++j) b[j] = I::load(wp + k * NR + j * L);
    for (int i = 0; i < MR; ++i) {
      V a = I::broadcast(xp + k * MR + i);
      for (int j = 0; j < NV; ++j) acc[i][j] = I::fmadd(a, b[j], acc[i][j]);
    }
  }
  if (bias) {
    for (int j = 0; j < NV; ++j) {
      V bv = I::loadu(bias + j * L);
      for (int i = 0; i < MR; ++i) acc[i][j] = I::add(acc[i][j], bv);
    }
  }
  if (n_valid == NR) {
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NV; ++j) {
        float* out = y + i * ldy + j * L;
        I::storeu(out, load_c ? I::add(acc[i][j], I::loadu(out)) : acc[i][j]);
      }
  } else {
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NV; ++j) {
        const int lanes = n_valid - j * L;
        if (lanes <= 0) break;
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

// One group of MR rows of x against all panels of the packed w block.
template <class I, int MR>
void row_group(const MatmulProblem& p, int64_t m, int64_t k0, int64_t kc, const float* wp,
               int64_t n0, int64_t ncols, float* xp, bool load_c, const float* bias) {
  constexpr int NR = panel_width<I>();
  pack_x<I, MR>(xp, p.x + static_cast<size_t>(m) * p.ldx + k0, p.ldx, kc);
  float* y = p.y + static_cast<size_t>(m) * p.ldy + n0;
  for (int64_t col = 0; col < ncols; col += NR) {
    const int n_valid = static_cast<int>(ncols - col < NR ? ncols - col : NR);
    micro_kernel<I, MR>(kc, xp, wp + col * kc, y + col, p.ldy, n_valid, load_c,
                        bias ? bias + col : nullptr);
  }
}

// Calls row_group<MR = mr> for a run-time mr in [1, MR].
template <class I, int MR>
void row_group_dispatch(int mr, const MatmulProblem& p, int64_t m, int64_t k0, int64_t kc,
                        const float* wp, int64_t n0, int64_t ncols, float* xp, bool load_c,
                        const float* bias) {
  if constexpr (MR >= 1) {
    if (mr == MR) return row_group<I, MR>(p, m, k0, kc, wp, n0, ncols, xp, load_c, bias);
    return row_group_dispatch<I, MR - 1>(mr, p, m, k0, kc, wp, n0, ncols, xp, load_c, bias);
  }
}

template <class I, DType T>
void gemm_typed(const MatmulProblem& p, int64_t m0, int64_t m1, int64_t n0, int64_t n1,
                float* scratch) {
  constexpr int NR = panel_width<I>();
  float* wp = scratch;                                         // [kNC / NR][kKC][NR]
  float* xp = wp + static_cast<size_t>(I::kNC) * I::kKC;       // [kKC][kMR]
  float* bias_block = xp + static_cast<size_t>(I::kKC) * I::kMR;  // [kNC]
  // Equal k blocks of at most kKC.
  const int64_t k_blocks = (p.K + I::kKC - 1) / I::kKC;
  const int64_t kc_step = (p.K + k_blocks - 1) / k_blocks;

  for (int64_t nc0 = n0; nc0 < n1; nc0 += I::kNC) {
    const int64_t ncols = n1 - nc0 < I::kNC ? n1 - nc0 : I::kNC;
    const int64_t padded = (ncols + NR - 1) / NR * NR;
    if (p.bias) {
      for (int64_t j = 0; j < padded; ++j) bias_block[j] = j < ncols ? p.bias[nc0 + j] : 0.f;
    }
    for (int64_t k0 = 0; k0 < p.K; k0 += kc_step) {
      const int64_t kc = p.K - k0 < kc_step ? p.K - k0 : kc_step;
      pack_w<I, T>(wp, p, nc0, ncols, k0, kc);
      // The first k block adds the bias and, for accumulate, the old y; later ones add into y.
      const bool first = k0 == 0;
      const bool load_c = !first || p.accumulate;
      const float* bias = first && p.bias ? bias_block : nullptr;
      for (int64_t m = m0; m < m1; m += I::kMR) {
        const int mr = static_cast<int>(m1 - m < I::kMR ? m1 - m : I::kMR);
        row_group_dispatch<I, I::kMR>(mr, p, m, k0, kc, wp, nc0, ncols, xp, load_c, bias);
      }
    }
  }
}

template <class I>
void gemm(const MatmulProblem& p, int64_t m0, int64_t m1, int64_t n0, int64_t n1,
          float* scratch) {
  switch (p.wtype) {
    case DType::F32: return gemm_typed<I, DType::F32>(p, m0, m1, n0, n1, scratch);
    case DType::F16: return gemm_typed<I, DType::F16>(p, m0, m1, n0, n1, scratch);
    case DType::BF16: return gemm_typed<I, DType::BF16>(p, m0, m1, n0, n1, scratch);
    default: return;  // rejected by the driver
  }
}

template <class I>
constexpr MatmulKernels make_kernels(const char* name, int64_t gemv_max_m) {
  return MatmulKernels{name,          gemv_max_m, &gemv<I>, panel_width<I>(),
                       I::kMR,        gemm_scratch_floats<I>(), &gemm<I>};
}

}  // namespace hwledger::cpu::detail
