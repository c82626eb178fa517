// Internal interface between the matmul driver (matmul_cpu.cpp: checks, threading, scratch
// memory) and the per-instruction-set kernels (matmul_generic.cpp, matmul_avx2.cpp,
// matmul_avx512.cpp). Each kernel file fills one MatmulKernels table; the driver picks the table
// for simd_level() and calls it from each thread on a disjoint block of the output.
#pragma once
#include <cstddef>
#include <cstdint>

#include "ops/dtype.h"

namespace hwledger::cpu::detail {

// y[m, n] (+)= sum_k x[m, k] * w[n, k] + bias[n]; see matmul_cpu.h.
struct MatmulProblem {
  const float* x;  // [M, K], row stride ldx
  size_t ldx;
  const void* w;  // [N, K], row stride K, of type wtype
  DType wtype;
  const float* bias;  // [N] or nullptr
  float* y;           // [M, N], row stride ldy
  size_t ldy;
  int64_t M, N, K;  // K >= 1
  bool accumulate;
};

struct MatmulKernels {
  const char* name;
  // Decode path, for M <= gemv_max_m: streams w once, converting on the fly.
  // Computes columns [n0, n1) of all M rows.
  int64_t gemv_max_m;
  void (*gemv)(const MatmulProblem& p, int64_t n0, int64_t n1);
  // Prefill path: packs blocks of w into fp32 panels of panel_n columns and runs a
  // register-blocked micro-kernel over them. Computes rows [m0, m1) x columns [n0, n1);
  // n0 must be a multiple of panel_n. `scratch` holds gemm_scratch_floats floats, 64-byte aligned,
  // private to the calling thread.
  int64_t panel_n;
  int64_t tile_m;  // rows per micro-kernel call, to split M evenly between threads
  size_t gemm_scratch_floats;
  void (*gemm)(const MatmulProblem& p, int64_t m0, int64_t m1, int64_t n0, int64_t n1,
               float* scratch);
};

extern const MatmulKernels kMatmulGeneric;
extern const MatmulKernels kMatmulAvx2;    // call only if simd_level() >= AVX2
extern const MatmulKernels kMatmulAvx512;  // call only if simd_level() >= AVX512
// bf16 activations (matmul_bf16.h); gemm only; call only with BF16 weights, simd_level() ==
// AVX512 and cpu_features().avx512_bf16.
extern const MatmulKernels kMatmulBf16Avx512;

}  // namespace hwledger::cpu::detail
