// Runtime CPU feature dispatch. The binary is built for baseline x86-64; kernels compiled for
// AVX2 or AVX-512 (files *_avx2.cpp, *_avx512.cpp) are only called after these checks.
//
// The level in effect is the best one the CPU (and OS) supports, lowered by the environment
// variable HWLEDGER_SIMD=avx512|avx2|generic (read once, on first use) or by set_simd_level()
// (tests and comparisons). A level above what the CPU supports is never used.
#pragma once
#include <cstdint>
#include <string_view>

namespace hwledger::cpu {

enum class SimdLevel : uint8_t {
  Generic = 0,  // portable C++, no intrinsics
  AVX2 = 1,     // AVX2 + FMA + F16C
  AVX512 = 2,   // AVX-512 F + BW + VL + DQ (+ the AVX2 set)
};

struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false;
  bool avx512_bf16 = false;  // vdpbf16ps; only the optional bf16-activation kernels need it
};

// What the CPU reports, already masked by what the OS saves on context switches (XCR0).
const CpuFeatures& cpu_features();

// The best level the CPU supports, ignoring HWLEDGER_SIMD and set_simd_level().
SimdLevel detected_simd_level();

// The level the kernels use now. Throws InputError if HWLEDGER_SIMD holds an unknown name.
SimdLevel simd_level();

// Forces the level (for tests and benchmarks); throws Error if the CPU lacks it.
void set_simd_level(SimdLevel level);
// Drops a forced level: back to the detected one, lowered by HWLEDGER_SIMD.
void reset_simd_level();

// "avx512", "avx2" or "generic".
const char* simd_level_name(SimdLevel level);
const char* simd_level_name();  // of simd_level()

// Parses "avx512" | "avx2" | "generic"; throws InputError naming the bad value.
SimdLevel parse_simd_level(std::string_view name);

}  // namespace hwledger::cpu
