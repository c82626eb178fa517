// AVX-512 (F, BW, VL, DQ) matmul kernels: 16 fp32 lanes, 32 vector registers.
// Compiled with -mavx512*; called only when simd_level() is AVX512.
// GCC 12's AVX-512 intrinsics trip -Wuninitialized on their own _mm512_undefined_ps()
// (GCC bug 105593, fixed in GCC 13).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include "ops/cpu/matmul_impl.h"

namespace hwledger::cpu::detail {
namespace {

struct Avx512 {
  using V = __m512;
  static constexpr int kLanes = 16;

  static V zero() { return _mm512_setzero_ps(); }
  static V loadu(const float* p) { return _mm512_loadu_ps(p); }
  static V load(const float* p) { return _mm512_load_ps(p); }
  static __mmask16 lanes_mask(int n) { return static_cast<__mmask16>((1u << n) - 1u); }
  static V load_partial(const float* p, int n) { return _mm512_maskz_loadu_ps(lanes_mask(n), p); }
  static V broadcast(const float* p) { return _mm512_set1_ps(*p); }
  static V fmadd(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static V add(V a, V b) { return _mm512_add_ps(a, b); }
  static void storeu(float* p, V v) { _mm512_storeu_ps(p, v); }
  static void store_partial(float* p, V v, int n) { _mm512_mask_storeu_ps(p, lanes_mask(n), v); }
  static float reduce(V v) {
    // Fold 512 -> 128 bits with in-register shuffles (GCC 12's _mm512_reduce_add_ps warns).
    v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(1, 0, 3, 2)));
    v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(2, 3, 0, 1)));
    __m128 s = _mm512_castps512_ps128(v);
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  // Into L2: the next block of rows can be further ahead than L1 holds (48 KiB for K = 3072).
  static void prefetch(const void* p) { _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T1); }

  // bf16 -> fp32 is a 16-bit shift into the high half; f16 -> fp32 is vcvtph2ps.
  static V widen(__m256i h, DType t) {
    if (t == DType::BF16)
      return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    return _mm512_cvtph_ps(h);
  }
  template <DType T>
  static V load_w(const void* w, size_t i) {
    if constexpr (T == DType::F32) {
      return _mm512_loadu_ps(static_cast<const float*>(w) + i);
    } else {
      const uint16_t* p = static_cast<const uint16_t*>(w) + i;
      return widen(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)), T);
    }
  }
  template <DType T>
  static V load_w_partial(const void* w, size_t i, int n) {
    if constexpr (T == DType::F32) {
      return _mm512_maskz_loadu_ps(lanes_mask(n), static_cast<const float*>(w) + i);
    } else {
      const uint16_t* p = static_cast<const uint16_t*>(w) + i;
      return widen(_mm256_maskz_loadu_epi16(lanes_mask(n), p), T);
    }
  }
  template <DType T>
  static float load_w1(const void* w, size_t i) {
    if constexpr (T == DType::F32) {
      return static_cast<const float*>(w)[i];
    } else if constexpr (T == DType::F16) {
      return _cvtsh_ss(static_cast<const uint16_t*>(w)[i]);
    } else {
      uint32_t bits = static_cast<uint32_t>(static_cast<const uint16_t*>(w)[i]) << 16;
      float f;
      __builtin_memcpy(&f, &bits, 4);
      return f;
    }
  }

  // In-register transpose of 16 rows of 16: r[i][j] -> r[j][i].
  static void transpose16(V r[16]) {
    V t[16], u[16];
    for (int i = 0; i < 8; ++i) {
      t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
      t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    // u[4g + c], lane l: column 4l + c of rows 4g .. 4g + 3.
    for (int g = 0; g < 4; ++g) {
      u[4 * g + 0] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
      u[4 * g + 1] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0xEE);
      u[4 * g + 2] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
      u[4 * g + 3] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xEE);
    }
    for (int c = 0; c < 4; ++c) {
      const V a = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x88);       // columns c, 8 + c; rows 0-7
      const V b = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xDD);       // columns 4 + c, 12 + c
      const V e = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x88);  // rows 8-15
      const V f = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xDD);
      r[c] = _mm512_shuffle_f32x4(a, e, 0x88);
      r[8 + c] = _mm512_shuffle_f32x4(a, e, 0xDD);
      r[4 + c] = _mm512_shuffle_f32x4(b, f, 0x88);
      r[12 + c] = _mm512_shuffle_f32x4(b, f, 0xDD);
    }
  }
  template <DType T>
  static void pack_tile(float* dst, size_t dst_stride, const void* src, size_t first,
                        size_t row_stride, int rows) {
    V r[16];
    for (int i = 0; i < 16; ++i) r[i] = i < rows ? load_w<T>(src, first + i * row_stride) : zero();
    transpose16(r);
    const __mmask16 mask = lanes_mask(rows);
    for (int k = 0; k < 16; ++k) _mm512_mask_storeu_ps(dst + k * dst_stride, mask, r[k]);
  }

  // Batched decode: up to 4 activation rows per block of w (more go in groups of 4 over the same
  // block), and as many rows of w per block as keeps the R * MB accumulators within ~24 of the 32
  // registers (activations come from L1 as memory operands). More rows per block means fewer
  // activation loads per weight. (M = 1 reads one row at a time: gemv_row.)
  static constexpr int kGemvMaxMB = 4;
  static constexpr int gemv_rows(int mb) { return mb <= 3 ? 8 : 6; }  // mb >= 2
  // Prefill: 14 x 32 tile = 28 accumulators + 2 weight vectors (+ broadcasts from memory).
  static constexpr int kMR = 14, kNV = 2, kKC = 256, kNC = 256, kMC = 42 * kMR;
};

}  // namespace

// The batched-decode path beats the packed GEMM up to M = 48 on weights that come from DRAM, as
// in decode (bench/matmul_bench BM_Gemv, Zen 5, 2 threads: q_proj at M = 24 / 32 / 48 549 / 686
// / 1042 us against 833 / 948 / 1275 us; down_proj 1.1-1.2x): the GEMM packs all of w before it
// multiplies, the decode path converts each block while it streams. AVX2 (matmul_avx2.cpp)
// switches at 8.
const MatmulKernels kMatmulAvx512 = make_kernels<Avx512>("avx512", 48);

}  // namespace hwledger::cpu::detail
