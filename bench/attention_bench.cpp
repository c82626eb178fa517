// Micro-benchmarks of the CPU paged attention (ops/cpu: the flash-style tile kernel on
// AVX-512) on Qwen3-0.6B's shape: 16 query heads sharing 8 KV heads of dim 128, f16 KV in
// 32-token blocks, one layer.
//
//   Prefill: T queries at positions pos0 .. pos0+T-1 over the cached keys (causal). Compute-
//     bound: counter GFLOPs = 4 hd (QK and PV, multiply-add) x sum over query rows of the keys
//     each sees / time, to set against the fp32 FMA peak (matmul_bench's FmaPeak).
//   Decode: one token over pos0 + 1 keys. Memory-bound at long contexts: counter GBps = the KV
//     bytes of the layer read / time, to set against matmul_bench's ReadBandwidth.
//
// Run: build/bench/attention_bench [--benchmark_filter=Prefill] [HWLEDGER_SIMD=generic]
#include <benchmark/benchmark.h>

#include <cmath>
#include <map>
#include <memory>
#include <random>
#include <vector>

#include "ops/cpu/kernels_cpu.h"
#include "ops/paged_kv.h"
#include "util/thread_pool.h"

namespace hwledger {
namespace {

constexpr int64_t kKVHeads = 8, kGroup = 2, kHeadDim = 128, kBlock = 32;

// One layer's paged cache holding n_tokens random keys and values, blocks in reverse storage
// order (as the engine's pool hands them out).
struct Cache {
  KVLayout layout{1, kKVHeads, kHeadDim, kBlock, DType::F16};
  std::vector<uint8_t> storage;
  std::vector<uint8_t*> blocks;
  explicit Cache(int64_t n_tokens) {
    const int64_t n = (n_tokens + kBlock - 1) / kBlock;
    storage.resize(static_cast<size_t>(n) * layout.block_bytes());
    for (int64_t b = n - 1; b >= 0; --b)
      blocks.push_back(storage.data() + b * layout.block_bytes());
    std::mt19937 rng(1);
    std::normal_distribution<float> dist(0.f, 1.f);
    std::vector<float> k(static_cast<size_t>(n_tokens * kKVHeads * kHeadDim)), v(k.size());
    for (auto& x : k) x = dist(rng);
    for (auto& x : v) x = dist(rng);
    cpu::kv_store(k.data(), v.data(), n_tokens, 0, view());
  }
  PagedKVView view() const {
    return PagedKVView{&layout, blocks.data(), static_cast<int64_t>(blocks.size()), 0};
  }
};

void run(benchmark::State& state, int64_t pos0, int64_t T, bool decode) {
  const int threads = static_cast<int>(state.range(0));
  ThreadPool pool(threads);
  static std::map<int64_t, std::unique_ptr<Cache>> caches;  // built once per length
  auto& cache = caches[pos0 + T];
  if (!cache) cache = std::make_unique<Cache>(pos0 + T);
  const int64_t nh = kKVHeads * kGroup;
  std::vector<float> q(static_cast<size_t>(T * nh * kHeadDim)), out(q.size());
  std::mt19937 rng(2);
  std::normal_distribution<float> dist(0.f, 1.f);
  for (auto& x : q) x = dist(rng);
  const float scale = 1.0f / std::sqrt(static_cast<float>(kHeadDim));
  for (auto _ : state) {
    cpu::attention(q.data(), T, nh, pos0, cache->view(), scale, 0, out.data(), pool);
    benchmark::DoNotOptimize(out.data());
  }
  double keys = 0;  // sum over query tokens of the keys each attends to
  for (int64_t t = 0; t < T; ++t) keys += static_cast<double>(pos0 + t + 1);
  const double flops = 4.0 * kHeadDim * nh * keys;
  state.counters["GFLOPs"] =
      benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  if (decode) {
    const double bytes = static_cast<double>(pos0 + T) * cache->layout.bytes_per_token();
    state.counters["GBps"] =
        benchmark::Counter(bytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  }
}

// The agent loop's turn after a restore: 112 new tokens over 4096 cached ones.
void BM_Prefill_112_after_4096(benchmark::State& s) {
  run(s, 4096, 112, false);
}
// A cold prompt's 512-token chunks: the first and the eighth.
void BM_Prefill_512_at_0(benchmark::State& s) {
  run(s, 0, 512, false);
}
void BM_Prefill_512_at_3584(benchmark::State& s) {
  run(s, 3584, 512, false);
}
// The 16k agent-loop turn after a restore: 256 new tokens over 16640 cached (KV beyond L3).
void BM_Prefill_256_after_16640(benchmark::State& s) { run(s, 16640, 256, false); }
// Short calls: a tile of few rows.
void BM_Prefill_2_after_4096(benchmark::State& s) {
  run(s, 4096, 2, false);
}
void BM_Prefill_8_after_4096(benchmark::State& s) {
  run(s, 4096, 8, false);
}
void BM_Decode_at_4096(benchmark::State& s) {
  run(s, 4096, 1, true);
}
void BM_Decode_at_16384(benchmark::State& s) {
  run(s, 16384, 1, true);
}

BENCHMARK(BM_Prefill_112_after_4096)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Prefill_512_at_0)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Prefill_512_at_3584)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Prefill_256_after_16640)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Prefill_2_after_4096)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Prefill_8_after_4096)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Decode_at_4096)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Decode_at_16384)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace hwledger

BENCHMARK_MAIN();
