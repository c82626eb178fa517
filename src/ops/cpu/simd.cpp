#include "ops/cpu/simd.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "util/error.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define HW_X86 1
#endif

namespace hwledger::cpu {

namespace {

#ifdef HW_X86
uint64_t read_xcr0() {
  uint32_t lo = 0, hi = 0;
  // xgetbv is only valid when the OS set CR4.OSXSAVE (checked by the caller).
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<uint64_t>(hi) << 32) | lo;
}
#endif

CpuFeatures detect_features() {
  CpuFeatures f;
#ifdef HW_X86
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = c & (1u << 27), avx = c & (1u << 28);
  const bool fma = c & (1u << 12), f16c = c & (1u << 29);
  if (!osxsave || !avx) return f;
  const uint64_t xcr0 = read_xcr0();
  const bool os_ymm = (xcr0 & 0x6) == 0x6;    // SSE and AVX state
  const bool os_zmm = (xcr0 & 0xe6) == 0xe6;  // plus opmask, ZMM0-15 high halves, ZMM16-31
  if (!os_ymm) return f;
  unsigned max_leaf = __get_cpuid_max(0, nullptr);
  if (max_leaf < 7) return f;
  __cpuid_count(7, 0, a, b, c, d);
  f.fma = fma;
  f.f16c = f16c;
  f.avx2 = b & (1u << 5);
  if (os_zmm) {
    f.avx512f = b & (1u << 16);
    f.avx512dq = b & (1u << 17);
    f.avx512bw = b & (1u << 30);
    f.avx512vl = b & (1u << 31);
    unsigned a1 = 0, b1 = 0, c1 = 0, d1 = 0;
    __cpuid_count(7, 1, a1, b1, c1, d1);
    f.avx512_bf16 = f.avx512f && (a1 & (1u << 5));
  }
#endif
  return f;
}

SimdLevel level_from_features(const CpuFeatures& f) {
  const bool avx2 = f.avx2 && f.fma && f.f16c;
  if (avx2 && f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq) return SimdLevel::AVX512;
  if (avx2) return SimdLevel::AVX2;
  return SimdLevel::Generic;
}

// The level after HWLEDGER_SIMD, computed once. A failed parse throws and is retried next call.
SimdLevel env_level() {
  static const SimdLevel level = [] {
    SimdLevel best = detected_simd_level();
    const char* env = std::getenv("HWLEDGER_SIMD");
    if (env == nullptr || *env == '\0') return best;
    SimdLevel wanted = parse_simd_level(env);
    if (wanted > best) {
      std::fprintf(stderr, "hwledger: warning: HWLEDGER_SIMD=%s but this CPU supports only %s\n",
                   env, simd_level_name(best));
      return best;
    }
    return wanted;
  }();
  return level;
}

constexpr int kNotForced = -1;
std::atomic<int> forced_level{kNotForced};

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = detect_features();
  return features;
}

SimdLevel detected_simd_level() {
  return level_from_features(cpu_features());
}

SimdLevel simd_level() {
  int forced = forced_level.load(std::memory_order_relaxed);
  if (forced != kNotForced) return static_cast<SimdLevel>(forced);
  return env_level();
}

void set_simd_level(SimdLevel level) {
  if (level > detected_simd_level())
    fail("SIMD level {} is not supported by this CPU (best: {})", simd_level_name(level),
         simd_level_name(detected_simd_level()));
  forced_level.store(static_cast<int>(level), std::memory_order_relaxed);
}

void reset_simd_level() {
  forced_level.store(kNotForced, std::memory_order_relaxed);
}

const char* simd_level_name(SimdLevel level) {
  switch (level) {
    case SimdLevel::Generic:
      return "generic";
    case SimdLevel::AVX2:
      return "avx2";
    case SimdLevel::AVX512:
      return "avx512";
  }
  return "?";
}

const char* simd_level_name() {
  return simd_level_name(simd_level());
}

SimdLevel parse_simd_level(std::string_view name) {
  if (name == "avx512") return SimdLevel::AVX512;
  if (name == "avx2") return SimdLevel::AVX2;
  if (name == "generic") return SimdLevel::Generic;
  fail_input("unknown SIMD level '{}' (HWLEDGER_SIMD accepts avx512, avx2 or generic)",
             std::string(name));
}

}  // namespace hwledger::cpu
