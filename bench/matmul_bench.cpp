// Micro-benchmarks of the CPU matmul on Qwen3-0.6B shapes (hidden 1024, intermediate 3072,
// 16 q heads / 8 kv heads of 128, vocabulary 151936), bf16 weights, 1 and 2 threads.
//
//   Gemv (M = 1, and small M for batched decode): memory-bound; counter GBps = weight bytes / time,
//     next to ReadBW_GBps, the machine's read bandwidth measured here with the same thread count.
//     Weights are cycled through enough copies to exceed the L3 cache, as in real decode where
//     the whole 1.2 GB model streams from DRAM once per token.
//   Gemm (M = 512, prefill): compute-bound; counter GFLOPs = 2 M N K / time, next to
//     Peak_GFLOPs, the fp32 FMA peak measured here (AVX-512 register-only FMA loop).
//   ReadBandwidth / FmaPeak / Bf16DotPeak: the rooflines themselves.
//
// Rates use wall-clock time; the CPU column is the process's CPU time. On a machine shared with
// other work, rate * real_time / (cpu_time / threads) estimates the rate with the cores to itself.
//
// Run: build-mm/bench/matmul_bench [--benchmark_filter=Gemv] [HWLEDGER_SIMD=avx2 to compare]
#include <benchmark/benchmark.h>
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "ops/cpu/matmul_bf16.h"
#include "ops/cpu/matmul_cpu.h"
#include "ops/cpu/simd.h"
#include "util/thread_pool.h"

namespace hwledger {
namespace {

using cpu::SimdLevel;

struct Shape {
  const char* name;
  int64_t N, K;
};
// Qwen3-0.6B: q 2048x1024, k/v 1024x1024, gate/up 3072x1024, o 1024x2048, down 1024x3072,
// lm_head 151936x1024.
constexpr Shape kShapes[] = {{"q_proj", 2048, 1024},    {"kv_proj", 1024, 1024},
                             {"gate_up", 3072, 1024},   {"o_proj", 1024, 2048},
                             {"down_proj", 1024, 3072}, {"lm_head", 151936, 1024}};

struct AlignedFree {
  void operator()(void* p) const { std::free(p); }
};
template <typename T>
using AlignedArray = std::unique_ptr<T[], AlignedFree>;

template <typename T>
AlignedArray<T> aligned_array(size_t n) {
  const size_t bytes = (n * sizeof(T) + 4095) / 4096 * 4096;
  return AlignedArray<T>(static_cast<T*>(std::aligned_alloc(4096, bytes)));
}

// Random bf16 weights [copies][N][K]; with `cold`, enough copies to exceed 256 MiB so that
// cycling through them reads from DRAM.
struct WeightSet {
  int64_t N = 0, K = 0;
  bool cold = false;
  AlignedArray<uint16_t> data;
  size_t matrix_elems = 0;
  int copies = 1;
  const uint16_t* copy(int i) const { return data.get() + (i % copies) * matrix_elems; }
};

// The weights of the last shape asked for, kept so that repetitions do not regenerate them.
const WeightSet& weights(int64_t N, int64_t K, bool cold) {
  static WeightSet w;
  if (w.data && w.N == N && w.K == K && w.cold == cold) return w;
  w = WeightSet{N, K, cold, nullptr, static_cast<size_t>(N * K), 1};
  const size_t bytes = w.matrix_elems * 2;
  w.copies = cold ? static_cast<int>(std::max<size_t>(1, (size_t{256} << 20) / bytes + 1)) : 1;
  w.data = aligned_array<uint16_t>(w.matrix_elems * w.copies);
  uint16_t* p = w.data.get();
  // Uniform in about [-0.06, 0.06] from a xorshift generator (std::normal_distribution is slow
  // for 150 M values); one matrix, replicated.
  uint64_t state = 0x9e3779b97f4a7c15ull;
  for (size_t i = 0; i < w.matrix_elems; ++i) {
    state ^= state << 13, state ^= state >> 7, state ^= state << 17;
    p[i] = f32_to_bf16((static_cast<int64_t>(state >> 40) - (1 << 23)) * (0.06f / (1 << 23)));
  }
  for (int c = 1; c < w.copies; ++c) std::memcpy(p + c * w.matrix_elems, p, bytes);
  return w;
}

std::vector<float> random_floats(size_t n) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  std::vector<float> v(n);
  for (float& f : v) f = dist(rng);
  return v;
}

// --- Rooflines -------------------------------------------------------------------------------

__attribute__((target("avx512f"))) float sum_avx512(const float* p, size_t n) {
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  for (size_t i = 0; i + 64 <= n; i += 64) {
    // The same 8 KiB-ahead prefetch into L2 as the decode kernel, so that the roofline is the
    // best this access pattern reaches rather than what the hardware prefetcher alone does.
    for (int line = 0; line < 4; ++line)
      _mm_prefetch(reinterpret_cast<const char*>(p + i + 2048 + 16 * line), _MM_HINT_T1);
    a0 = _mm512_add_ps(a0, _mm512_load_ps(p + i));
    a1 = _mm512_add_ps(a1, _mm512_load_ps(p + i + 16));
    a2 = _mm512_add_ps(a2, _mm512_load_ps(p + i + 32));
    a3 = _mm512_add_ps(a3, _mm512_load_ps(p + i + 48));
  }
  float out[16];
  _mm512_storeu_ps(out, _mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
  return out[0] + out[5] + out[10] + out[15];  // enough to keep the loads alive
}

__attribute__((target("avx2"))) float sum_avx2(const float* p, size_t n) {
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  for (size_t i = 0; i + 32 <= n; i += 32) {
    a0 = _mm256_add_ps(a0, _mm256_load_ps(p + i));
    a1 = _mm256_add_ps(a1, _mm256_load_ps(p + i + 8));
    a2 = _mm256_add_ps(a2, _mm256_load_ps(p + i + 16));
    a3 = _mm256_add_ps(a3, _mm256_load_ps(p + i + 24));
  }
  float out[8];
  _mm256_storeu_ps(out, _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
  float s = 0;
  for (float f : out) s += f;
  return s;
}

// Reads `n` floats split between the pool's threads; returns seconds.
double read_pass(const float* data, size_t n, ThreadPool& pool) {
  std::atomic<float> sink{0.f};
  const bool avx512 = cpu::detected_simd_level() == SimdLevel::AVX512;
  auto t0 = std::chrono::steady_clock::now();
  pool.parallel_for(n, 4096, [&](size_t b, size_t e) {
    float s = avx512 ? sum_avx512(data + b, e - b) : sum_avx2(data + b, e - b);
    sink.store(s, std::memory_order_relaxed);
  });
  auto t1 = std::chrono::steady_clock::now();
  benchmark::DoNotOptimize(sink.load());
  return std::chrono::duration<double>(t1 - t0).count();
}

constexpr size_t kBandwidthFloats = size_t{128} << 20;  // 512 MiB: far beyond every cache

// The best of a few passes over 512 MiB, in GB/s; measured once per thread count.
double read_bandwidth_gbps(int threads) {
  static std::map<int, double> cache;
  if (auto it = cache.find(threads); it != cache.end()) return it->second;
  auto data = aligned_array<float>(kBandwidthFloats);
  std::memset(data.get(), 0, kBandwidthFloats * sizeof(float));
  ThreadPool pool(threads);
  double best = 1e30;
  for (int pass = 0; pass < 6; ++pass)
    best = std::min(best, read_pass(data.get(), kBandwidthFloats, pool));
  return cache[threads] = kBandwidthFloats * sizeof(float) / best / 1e9;
}

// Runs loop() on each of `threads` threads, three times, and returns the best total rate in
// GFLOP/s given flops_per_loop. Each thread times itself on its own CPU clock, so the peak holds
// even when other processes share the cores.
template <typename Loop>
double peak_gflops(int threads, double flops_per_loop, Loop loop) {
  ThreadPool pool(threads);
  double best = 0;
  for (int pass = 0; pass < 3; ++pass) {
    std::vector<double> seconds(threads);
    std::atomic<float> sink{0.f};
    pool.run([&](int t) {
      timespec t0, t1;
      clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
      sink.store(loop(), std::memory_order_relaxed);
      clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
      seconds[t] = (t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec);
    });
    double total = 0;
    for (double sec : seconds) total += flops_per_loop / sec / 1e9;
    best = std::max(best, total);
  }
  return best;
}

__attribute__((target("avx512f,fma"))) float fma_loop_avx512(long iterations) {
  // 16 independent chains: enough to cover 4-cycle latency on 2 FMA pipes.
  __m512 acc[16];
  for (int i = 0; i < 16; ++i) acc[i] = _mm512_set1_ps(static_cast<float>(i));
  const __m512 a = _mm512_set1_ps(0.999f), b = _mm512_set1_ps(0.001f);
  for (long it = 0; it < iterations; ++it) {
#pragma GCC unroll 16
    for (int i = 0; i < 16; ++i) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
  }
  __m512 s = acc[0];
  for (int i = 1; i < 16; ++i) s = _mm512_add_ps(s, acc[i]);
  float out[16];
  _mm512_storeu_ps(out, s);
  return out[0] + out[15];
}

__attribute__((target("avx512f,avx512bf16"))) float dpbf16_loop_avx512(long iterations) {
  __m512 acc[16];
  for (int i = 0; i < 16; ++i) acc[i] = _mm512_set1_ps(static_cast<float>(i));
  const __m512bh a = reinterpret_cast<__m512bh>(_mm512_set1_epi32(0x3f803f80));  // (1, 1)
  const __m512bh b = reinterpret_cast<__m512bh>(_mm512_set1_epi32(0x3a833a83));  // (1e-3, 1e-3)
  for (long it = 0; it < iterations; ++it) {
#pragma GCC unroll 16
    for (int i = 0; i < 16; ++i) acc[i] = _mm512_dpbf16_ps(acc[i], a, b);
  }
  __m512 s = acc[0];
  for (int i = 1; i < 16; ++i) s = _mm512_add_ps(s, acc[i]);
  float out[16];
  _mm512_storeu_ps(out, s);
  return out[0] + out[15];
}

// vdpbf16ps peak (2 multiply-adds per fp32 lane) in GFLOP/s; 0 without AVX512_BF16.
double dpbf16_peak_gflops(int threads) {
  static std::map<int, double> cache;
  if (auto it = cache.find(threads); it != cache.end()) return it->second;
  if (!cpu::cpu_features().avx512_bf16) return cache[threads] = 0;
  const long iterations = 20'000'000;
  return cache[threads] = peak_gflops(threads, 4.0 * 16 * 16 * iterations,
                                      [&] { return dpbf16_loop_avx512(iterations); });
}

// fp32 FMA peak of `threads` cores in GFLOP/s (AVX-512 machines only; 0 otherwise).
double fma_peak_gflops(int threads) {
  static std::map<int, double> cache;
  if (auto it = cache.find(threads); it != cache.end()) return it->second;
  if (cpu::detected_simd_level() != SimdLevel::AVX512) return cache[threads] = 0;
  const long iterations = 20'000'000;
  return cache[threads] = peak_gflops(threads, 2.0 * 16 * 16 * iterations,
                                      [&] { return fma_loop_avx512(iterations); });
}

void BM_ReadBandwidth(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  auto data = aligned_array<float>(kBandwidthFloats);
  std::memset(data.get(), 0, kBandwidthFloats * sizeof(float));
  ThreadPool pool(threads);
  for (auto _ : state) read_pass(data.get(), kBandwidthFloats, pool);
  state.SetBytesProcessed(state.iterations() * kBandwidthFloats * sizeof(float));
}
BENCHMARK(BM_ReadBandwidth)
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(2)
    ->Unit(benchmark::kMillisecond)
    ->MeasureProcessCPUTime()
    ->UseRealTime();

void BM_FmaPeak(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  double gflops = 0;
  for (auto _ : state) gflops = fma_peak_gflops(threads);
  state.counters["GFLOPs"] = gflops;
}
BENCHMARK(BM_FmaPeak)
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(2)
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);

void BM_Bf16DotPeak(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  double gflops = 0;
  for (auto _ : state) gflops = dpbf16_peak_gflops(threads);
  state.counters["GFLOPs"] = gflops;
}
BENCHMARK(BM_Bf16DotPeak)
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(2)
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);

// --- Matmul ----------------------------------------------------------------------------------

// Args: shape index, M, threads. SIMD level: the one in effect (HWLEDGER_SIMD lowers it).
void BM_Gemv(benchmark::State& state) {
  const Shape& s = kShapes[state.range(0)];
  const int64_t M = state.range(1);
  const int threads = static_cast<int>(state.range(2));
  const WeightSet& w = weights(s.N, s.K, /*cold=*/true);
  std::vector<float> x = random_floats(M * s.K), y(M * s.N);
  ThreadPool pool(threads);
  int i = 0;
  for (auto _ : state) {
    cpu::matmul(x.data(), s.K, w.copy(i++), DType::BF16, nullptr, y.data(), s.N, M, s.N, s.K, false,
                pool);
    benchmark::ClobberMemory();
  }
  const double bytes = static_cast<double>(w.matrix_elems) * 2;
  const double peak = read_bandwidth_gbps(threads);
  state.SetLabel(std::string(s.name) + " simd=" + cpu::simd_level_name());
  state.counters["GBps"] =
      benchmark::Counter(bytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["ReadBW_GBps"] = peak;
  state.counters["GFLOPs"] =
      benchmark::Counter(2.0 * M * s.N * s.K * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

void BM_Gemm(benchmark::State& state) {
  const Shape& s = kShapes[state.range(0)];
  const int64_t M = state.range(1);
  const int threads = static_cast<int>(state.range(2));
  const WeightSet& w = weights(s.N, s.K, /*cold=*/false);
  std::vector<float> x = random_floats(M * s.K), y(M * s.N);
  ThreadPool pool(threads);
  for (auto _ : state) {
    cpu::matmul(x.data(), s.K, w.copy(0), DType::BF16, nullptr, y.data(), s.N, M, s.N, s.K, false,
                pool);
    benchmark::ClobberMemory();
  }
  state.SetLabel(std::string(s.name) + " simd=" + cpu::simd_level_name());
  state.counters["GFLOPs"] =
      benchmark::Counter(2.0 * M * s.N * s.K * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["Peak_GFLOPs"] = fma_peak_gflops(threads);
}

// The optional bf16-activation GEMM (matmul_bf16.h), against the vdpbf16ps peak.
void BM_GemmBf16Activations(benchmark::State& state) {
  const Shape& s = kShapes[state.range(0)];
  const int64_t M = state.range(1);
  const int threads = static_cast<int>(state.range(2));
  if (!cpu::matmul_bf16_activations_available()) {
    state.SkipWithError("no avx512_bf16 fast path on this CPU / SIMD level");
    return;
  }
  const WeightSet& w = weights(s.N, s.K, /*cold=*/false);
  std::vector<float> x = random_floats(M * s.K), y(M * s.N);
  ThreadPool pool(threads);
  for (auto _ : state) {
    cpu::matmul_bf16_activations(x.data(), s.K, w.copy(0), DType::BF16, nullptr, y.data(), s.N, M,
                                 s.N, s.K, false, pool);
    benchmark::ClobberMemory();
  }
  state.SetLabel(std::string(s.name) + " bf16-activations");
  state.counters["GFLOPs"] =
      benchmark::Counter(2.0 * M * s.N * s.K * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["Peak_GFLOPs"] = dpbf16_peak_gflops(threads);
}

void gemv_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"shape", "M", "threads"});
  for (int threads : {1, 2})
    for (int shape = 0; shape < 6; ++shape) b->Args({shape, 1, threads});
  for (int threads : {1, 2})
    for (int M : {2, 4, 8, 16, 24, 32, 48})
      for (int shape : {0, 4}) b->Args({shape, M, threads});
}
BENCHMARK(BM_Gemv)
    ->Apply(gemv_args)
    ->Unit(benchmark::kMicrosecond)
    ->MeasureProcessCPUTime()
    ->UseRealTime();

void gemm_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"shape", "M", "threads"});
  for (int threads : {1, 2})
    for (int shape = 0; shape < 6; ++shape) b->Args({shape, 512, threads});
  for (int threads : {1, 2})
    for (int M : {16, 32, 64}) b->Args({2, M, threads});
}
BENCHMARK(BM_Gemm)
    ->Apply(gemm_args)
    ->Unit(benchmark::kMillisecond)
    ->MeasureProcessCPUTime()
    ->UseRealTime();

void gemm_bf16_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"shape", "M", "threads"});
  for (int threads : {1, 2})
    for (int shape = 0; shape < 5; ++shape) b->Args({shape, 512, threads});
}
BENCHMARK(BM_GemmBf16Activations)
    ->Apply(gemm_bf16_args)
    ->Unit(benchmark::kMillisecond)
    ->MeasureProcessCPUTime()
    ->UseRealTime();

}  // namespace
}  // namespace hwledger

BENCHMARK_MAIN();
