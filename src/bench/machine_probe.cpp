#include "bench/machine_probe.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <vector>

#include "ops/cpu/simd.h"
#include "ops/tensor.h"

namespace hwledger {

double fma_loop_generic(long iterations) {
  float acc[8] = {0, 1, 2, 3, 4, 5, 6, 7};
  for (long n = 0; n < iterations; ++n)
    for (float& a : acc) a = a * 0.99999f + 1e-6f;
  volatile float sink = acc[0] + acc[7];
  (void)sink;
  return iterations * 8.0 * 2.0;
}

MachinePeaks measure_machine(ThreadPool& pool) {
  using clock = std::chrono::steady_clock;
  MachinePeaks p;
  p.simd = cpu::simd_level_name();
  // Read bandwidth: each thread sums its share of a 1 GiB buffer (far beyond the caches).
  const size_t bytes = size_t{1} << 30;
  Buffer buf(bytes);
  std::memset(buf.data(), 1, bytes);
  const uint64_t* data = static_cast<const uint64_t*>(buf.data());
  const size_t words = bytes / 8;
  std::atomic<uint64_t> sink{0};
  for (int rep = 0; rep < 3; ++rep) {
    auto t0 = clock::now();
    pool.parallel_for(words, 4096, [&](size_t b, size_t e) {
      uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      for (size_t i = b; i + 4 <= e; i += 4) {
        s0 += data[i];
        s1 += data[i + 1];
        s2 += data[i + 2];
        s3 += data[i + 3];
      }
      sink += s0 + s1 + s2 + s3;
    });
    double secs = std::chrono::duration<double>(clock::now() - t0).count();
    p.read_gbps = std::max(p.read_gbps, bytes / secs / 1e9);
  }
  // FMA peak over all threads.
  const bool avx512 = cpu::simd_level() == cpu::SimdLevel::AVX512;
  const long iters = avx512 ? 20'000'000 : 5'000'000;
  for (int rep = 0; rep < 2; ++rep) {
    std::atomic<double> flops{0};
    auto t0 = clock::now();
    pool.run([&](int) {
      double f = avx512 ? fma_loop_avx512(iters) : fma_loop_generic(iters);
      double cur = flops.load();
      while (!flops.compare_exchange_weak(cur, cur + f)) {
      }
    });
    double secs = std::chrono::duration<double>(clock::now() - t0).count();
    p.fp32_gflops = std::max(p.fp32_gflops, flops.load() / secs / 1e9);
  }
  return p;
}

}  // namespace hwledger
