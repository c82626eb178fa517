// AVX2 + FMA + F16C matmul kernels: 8 fp32 lanes, 16 vector registers.
// Compiled with -mavx2 -mfma -mf16c; called only when simd_level() is AVX2 or better.
#include <immintrin.h>

#include "ops/cpu/matmul_impl.h"

namespace hwledger::cpu::detail {
namespace {

struct Avx2 {
  using V = __m256;
  static constexpr int kLanes = 8;

  static V zero() { return _mm256_setzero_ps(); }
  static V loadu(const float* p) { return _mm256_loadu_ps(p); }
  static V load(const float* p) { return _mm256_load_ps(p); }
  static __m256i lanes_mask(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static V load_partial(const float* p, int n) { return _mm256_maskload_ps(p, lanes_mask(n)); }
  static V broadcast(const float* p) { return _mm256_broadcast_ss(p); }
  static V fmadd(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static V add(V a, V b) { return _mm256_add_ps(a, b); }
  static void storeu(float* p, V v) { _mm256_storeu_ps(p, v); }
  static void store_partial(float* p, V v, int n) { _mm256_maskstore_ps(p, lanes_mask(n), v); }
  static float reduce(V v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  static void prefetch(const void* p) { _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T1); }

  // bf16 -> fp32 is a 16-bit shift into the high half; f16 -> fp32 is vcvtph2ps.
  static V widen(__m128i h, DType t) {
    if (t == DType::BF16)
      return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    return _mm256_cvtph_ps(h);
  }
  template <DType T>
  static V load_w(const void* w, size_t i) {
    if constexpr (T == DType::F32) {
      return _mm256_loadu_ps(static_cast<const float*>(w) + i);
    } else {
      const uint16_t* p = static_cast<const uint16_t*>(w) + i;
      return widen(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)), T);
    }
  }
  template <DType T>
  static V load_w_partial(const void* w, size_t i, int n) {
    if constexpr (T == DType::F32) {
      return _mm256_maskload_ps(static_cast<const float*>(w) + i, lanes_mask(n));
    } else {
      // No 16-bit masked load in AVX2: copy the tail.
      alignas(16) uint16_t tail[8] = {};
      const uint16_t* p = static_cast<const uint16_t*>(w) + i;
      for (int j = 0; j < n; ++j) tail[j] = p[j];
      return widen(_mm_load_si128(reinterpret_cast<const __m128i*>(tail)), T);
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

  // Transposes 8 rows of 8 in registers and stores columns 0..rows-1 of each result.
  template <DType T>
  static void pack_tile(float* dst, size_t dst_stride, const void* src, size_t first,
                        size_t row_stride, int rows) {
    V r[8], t[8], u[8];
    for (int i = 0; i < 8; ++i) r[i] = i < rows ? load_w<T>(src, first + i * row_stride) : zero();
    for (int i = 0; i < 4; ++i) {
      t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
      t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    // u[4g + c], lane l: column 4l + c of rows 4g .. 4g + 3.
    for (int g = 0; g < 2; ++g) {
      u[4 * g + 0] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
      u[4 * g + 1] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0xEE);
      u[4 * g + 2] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
      u[4 * g + 3] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xEE);
    }
    for (int c = 0; c < 4; ++c) {
      r[c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x20);
      r[4 + c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x31);
    }
    if (rows == 8) {
      for (int k = 0; k < 8; ++k) _mm256_storeu_ps(dst + k * dst_stride, r[k]);
    } else {
      const __m256i mask = lanes_mask(rows);
      for (int k = 0; k < 8; ++k) _mm256_maskstore_ps(dst + k * dst_stride, mask, r[k]);
    }
  }

  // Batched decode: groups of up to 4 activation rows; R * MB accumulators within ~8 of the 16
  // registers. (M = 1 reads one row at a time: gemv_row.)
  static constexpr int kGemvMaxMB = 4;
  static constexpr int gemv_rows(int mb) { return mb == 2 ? 4 : mb == 3 ? 3 : 2; }  // mb >= 2
  // Prefill: 6 x 16 tile = 12 accumulators + 2 weight vectors + 1 broadcast.
  static constexpr int kMR = 6, kNV = 2, kKC = 256, kNC = 256, kMC = 96 * kMR;
};

}  // namespace

const MatmulKernels kMatmulAvx2 = make_kernels<Avx2>("avx2", 8);

}  // namespace hwledger::cpu::detail
