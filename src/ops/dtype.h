// Element types of tensors and their scalar conversions.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace hwledger {

// Q8_0, Q4_0 and F8_E4M3 are KV-cache element types only (groups of 32 values sharing an f16
// scale; the layout is in ops/paged_kv.h). The numeric values are stored in SSD cache headers:
// append only.
enum class DType : uint8_t { F32, F16, BF16, I32, Q8_0, Q4_0, F8_E4M3 };

// True for the KV types stored with an f16 scale per group of 32 values (q8_0, q4_0, fp8).
constexpr bool is_quantized(DType t) {
  return t == DType::Q8_0 || t == DType::Q4_0 || t == DType::F8_E4M3;
}

// Bytes per element; 0 for q8_0/q4_0, 1 for fp8's values (KVLayout's sizes add the scales).
constexpr size_t dtype_size(DType t) {
  switch (t) {
    case DType::F32: return 4;
    case DType::F16: return 2;
    case DType::BF16: return 2;
    case DType::I32: return 4;
    case DType::Q8_0: return 0;
    case DType::Q4_0: return 0;
    case DType::F8_E4M3: return 1;
  }
  return 0;
}

constexpr std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "f32";
    case DType::F16: return "f16";
    case DType::BF16: return "bf16";
    case DType::I32: return "i32";
    case DType::Q8_0: return "q8_0";
    case DType::Q4_0: return "q4_0";
    case DType::F8_E4M3: return "fp8";
  }
  return "?";
}

inline float bf16_to_f32(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Round to nearest even, as PyTorch does; NaN stays NaN.
inline uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

inline float f16_to_f32(uint16_t h) {
  uint32_t sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu, u;
  if (exp == 0) {
    if (mant == 0) {
      u = sign;
    } else {  // subnormal: normalise
      exp = 127 - 15 + 1;
      while ((mant & 0x400u) == 0) {
        mant <<= 1;
        --exp;
      }
      u = sign | (exp << 23) | ((mant & 0x3ffu) << 13);
    }
  } else if (exp == 31) {
    u = sign | 0x7f800000u | (mant << 13);
  } else {
    u = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Round to nearest even with overflow to infinity.
inline uint16_t f32_to_f16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  uint32_t sign = (u >> 16) & 0x8000u;
  uint32_t abs = u & 0x7fffffffu;
  if (abs > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);  // NaN
  if (abs >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // overflow -> inf
  if (abs < 0x38800000u) {  // subnormal or zero in f16
    if (abs < 0x33000000u) return static_cast<uint16_t>(sign);
    uint32_t exp = abs >> 23, mant = (abs & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126 - exp;  // value / 2^-24 == mant >> shift
    uint32_t r = mant >> shift;
    uint32_t rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (r & 1u))) ++r;
    return static_cast<uint16_t>(sign | r);
  }
  uint32_t r = abs - 0x38000000u;  // rebias exponent 127 -> 15
  r += 0xfffu + ((r >> 13) & 1u);
  return static_cast<uint16_t>(sign | (r >> 13));
}

// ---- fp8 e4m3 (OCP "e4m3fn": sign, 4 exponent bits of bias 7, 3 mantissa bits; no infinities;
// largest 448, smallest subnormal 2^-9). Integer-only, so the CUDA kernels run the same code
// (nvcc sees this header) and the GPU writes the CPU's bytes exactly.
#ifdef __CUDACC__
#define HWLEDGER_HOST_DEVICE __host__ __device__
#else
#define HWLEDGER_HOST_DEVICE
#endif

inline constexpr float kE4M3Max = 448.0f;

// The e4m3 code of the f32 with bits u: round to nearest even, saturated to +-448 (infinities
// too), NaN to +0; -0 keeps its sign (0x80). Never returns 0x7f/0xff, e4m3fn's NaN codes.
HWLEDGER_HOST_DEVICE constexpr uint8_t e4m3_from_f32_bits(uint32_t u) {
  const uint8_t sign = static_cast<uint8_t>((u >> 24) & 0x80u);
  const uint32_t abs = u & 0x7fffffffu;
  if (abs > 0x7f800000u) return 0;                                   // NaN
  if (abs >= 0x43e00000u) return static_cast<uint8_t>(sign | 0x7e);  // >= 448 (1.75 * 2^8)
  if (abs <= 0x3a800000u) return sign;  // <= 2^-10: half the smallest subnormal, tie to 0
  if (abs < 0x3c800000u) {              // below 2^-6: subnormal, a multiple of 2^-9
    const uint32_t exp = abs >> 23, mant = (abs & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 141 - exp;  // |x| / 2^-9 = mant >> shift, shift in 21..24
    uint32_t r = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (r & 1u))) ++r;  // r = 8 is the smallest normal, 0x08
    return static_cast<uint8_t>(sign | r);
  }
  uint32_t r = abs - (120u << 23);                // rebias the exponent 127 -> 7
  r += 0x7ffffu + ((r >> 20) & 1u);               // round the mantissa to 3 bits, nearest even
  return static_cast<uint8_t>(sign | (r >> 20));  // a carry into the exponent stays <= 0x7e
}

// The exact value of an e4m3 code (0x7f/0xff, never written, read as +-480).
HWLEDGER_HOST_DEVICE constexpr float e4m3_to_f32(uint8_t b) {
  // Subnormal m * 2^-9 = m * 2^-10 * 2, normal (8 + m) * 2^(e - 10): a small integer times a
  // power of two, so the product is exact.
  constexpr float kPow2[16] = {1.0f / 512, 1.0f / 512, 1.0f / 256, 1.0f / 128, 1.0f / 64, 1.0f / 32,
                               1.0f / 16,  1.0f / 8,   1.0f / 4,   1.0f / 2,   1.0f,      2.0f,
                               4.0f,       8.0f,       16.0f,      32.0f};  // 2^(max(e, 1) - 10)
  const int e = (b >> 3) & 0xf, m = b & 7;
  const float v = static_cast<float>(e == 0 ? m : 8 + m) * kPow2[e];
  return (b & 0x80) ? -v : v;
}

// The f16 bits of e4m3 code b times 2^-8, exactly (normals and subnormals alike: the exponent
// and mantissa fields move into f16's, whose bias is 8 more). The SIMD and GPU decoders use it:
// x = half(bits) * (256 * d).
HWLEDGER_HOST_DEVICE constexpr uint16_t e4m3_to_f16_bits_div256(uint8_t b) {
  return static_cast<uint16_t>(((b & 0x80u) << 8) | ((b & 0x7fu) << 7));
}

inline uint8_t f32_to_e4m3(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return e4m3_from_f32_bits(u);
}

// The f16 scale of one fp8 group from its largest magnitude: amax / 448, but at least 2^-14
// (f16's smallest normal; with 2^-14 the values still fall on e4m3 normals down to |x| = 2^-20,
// while a subnormal scale would lose up to all of its bits) and at most 65504 (an infinite
// scale would make 0 * d NaN). Returns the f16 bits.
inline uint16_t fp8_group_scale(float amax) {
  float d = amax / kE4M3Max;
  d = d > 6.103515625e-05f ? d : 6.103515625e-05f;  // also maps a NaN amax to 2^-14
  return f32_to_f16(d < 65504.f ? d : 65504.f);
}

}  // namespace hwledger
