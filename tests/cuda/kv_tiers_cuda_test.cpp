// The KV tiers below a GPU pool: blocks evicted from device memory to page-locked RAM, written
// through to the SSD tier from host copies, and restored by DMA, give the same logits as the
// run that computed them (same chunking, so the same kernels compute the remaining tokens).
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "kv/host_blocks.h"
#include "ops/cuda/cuda.h"

namespace hwledger {
namespace {

namespace fs = std::filesystem;

std::string model_dir() {
  const char* env = std::getenv("HWLEDGER_GOLDEN_DIR");
  return (env ? std::string(env) : std::string(HWLEDGER_SHARED_DIR) + "/golden") + "/qwen3-tiny";
}

std::vector<int32_t> tokens(int n, int seed) {
  std::vector<int32_t> t(n);
  uint32_t s = 2166136261u + seed;
  for (auto& x : t) x = static_cast<int32_t>((s = s * 1664525u + 1013904223u) >> 22);  // < 1024
  return t;
}

double max_rel(const std::vector<float>& a, const std::vector<float>& b) {
  double md = 0, mr = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    md = std::max(md, std::fabs(double(a[i]) - b[i]));
    mr = std::max(mr, std::fabs(double(b[i])));
  }
  return md / std::max(mr, 1e-30);
}

class CudaKVTiers : public ::testing::Test {
 protected:
  void SetUp() override {
    if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA device";
    if (!fs::exists(model_dir() + "/model.safetensors"))
      GTEST_SKIP() << "no golden model (set HWLEDGER_GOLDEN_DIR)";
    dir_ = fs::temp_directory_path() /
           ("hwledger-cuda-kv-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::unique_ptr<Engine> engine(uint64_t ram, uint64_t ssd, int64_t working_blocks = 0,
                                 uint64_t restore_chunk = 0) {
    EngineOptions o;
    o.threads = 2;
    o.device = Device::CUDA;
    o.kv_dtype = DType::BF16;
    o.max_context = 4096;
    o.load.show_progress = false;
    o.cache.ram_bytes = ram;
    o.cache.ssd_bytes = ssd;
    o.cache.cache_dir = (dir_ / "cache").string();
    if (restore_chunk > 0) o.cache.restore_chunk_bytes = restore_chunk;
    if (working_blocks > 0) {
      const ModelConfig c = ModelConfig::from_file(model_dir() + "/config.json");
      o.max_kv_bytes = working_blocks * c.kv_layout(o.block_tokens, o.kv_dtype).block_bytes();
    }
    return std::make_unique<Engine>(model_dir(), o);
  }
  // The prompt's last logits, computing what the cache lacks in chunks of `chunk` tokens, so a
  // cold run and a restored one compute the last tokens in the same forward shape.
  static std::vector<float> run(Engine& e, const std::vector<int32_t>& prompt,
                                PrefixHit* hit = nullptr, int64_t chunk = 288) {
    KVSequence seq;
    auto logits = e.prefill_cached(seq, prompt, hit, "", chunk);
    e.kv_cache().release(seq);
    return logits;
  }
  fs::path dir_;
};

TEST_F(CudaKVTiers, EvictedToPinnedRamAndBack) {
  auto e = engine(1ull << 30, 0);
  auto p = tokens(300, 1);
  auto first = run(*e, p);
  ASSERT_EQ(e->kv_cache().evict_idle(), 9);
  EXPECT_EQ(e->kv_cache().stats()[1].blocks, 9);
  PrefixHit hit;
  auto again = run(*e, p, &hit);
  EXPECT_EQ(hit.tokens, 288);
  EXPECT_EQ(hit.blocks_from[1], 9);
  EXPECT_LT(max_rel(again, first), 1e-6);
}

TEST_F(CudaKVTiers, PressureSpillsToRamAndSsdAndRestores) {
  // Working memory of 12 blocks, a RAM tier of 4, SSD for everything: b's prompt pushes a's
  // blocks down through both tiers.
  const ModelConfig c = ModelConfig::from_file(model_dir() + "/config.json");
  const uint64_t block = c.kv_layout(32, DType::BF16).block_bytes();
  auto e = engine(4 * block, 1024 * block, 12);
  auto a = tokens(300, 2), b = tokens(300, 3);
  auto first = run(*e, a);
  run(*e, b);
  e->kv_cache().flush();
  auto s = e->kv_cache().stats();
  EXPECT_GT(s[0].evictions, 0);
  EXPECT_EQ(s[1].blocks, 4);
  EXPECT_GE(s[2].blocks, 18);  // written through from host copies
  PrefixHit hit;
  auto again = run(*e, a, &hit);
  EXPECT_EQ(hit.tokens, 288);
  EXPECT_GT(hit.blocks_from[1], 0) << "RAM";
  EXPECT_GT(hit.blocks_from[2], 0) << "SSD";
  EXPECT_LT(max_rel(again, first), 1e-6);
}

TEST_F(CudaKVTiers, RestartRestoresFromSsd) {
  // 31 blocks restored through staging chunks of 4 blocks: both chunks alternate, each read
  // from disk while the other's copies run.
  const ModelConfig c = ModelConfig::from_file(model_dir() + "/config.json");
  const uint64_t block = c.kv_layout(32, DType::BF16).block_bytes();
  auto p = tokens(1000, 4);
  std::vector<float> first;
  {
    auto e = engine(0, 1ull << 30, 0, 4 * block);
    first = run(*e, p, nullptr, 992);  // 992 tokens, then the last 8
  }
  auto e = engine(0, 1ull << 30, 0, 4 * block);
  e->set_prefill_tok_s(0);  // all from disk, however fast the GPU (no split: see below)
  EXPECT_EQ(e->kv_cache().stats()[2].blocks, 31);
  PrefixHit hit;
  auto again = run(*e, p, &hit, 992);
  EXPECT_EQ(hit.tokens, 992);
  EXPECT_EQ(hit.blocks_from[2], 31);
  EXPECT_LT(max_rel(again, first), 1e-6);
}

TEST_F(CudaKVTiers, SlowDiskRestoreComputesTheHeadMeanwhile) {
  // The disk takes 100 ms per 4-block chunk, the GPU's measured prefill rate is far higher: the
  // head of the chain is computed while the reader brings its tail into device memory.
  const ModelConfig c = ModelConfig::from_file(model_dir() + "/config.json");
  const uint64_t block = c.kv_layout(32, DType::BF16).block_bytes();
  auto p = tokens(1000, 5);
  std::vector<float> first;
  {
    auto e = engine(0, 1ull << 30, 0, 4 * block);
    first = run(*e, p, nullptr, 64);
  }
  auto e = engine(0, 1ull << 30, 0, 4 * block);
  ASSERT_GT(e->prefill_tok_s(), 0) << "measured by the warm-up at load";
  e->kv_cache().set_read_delay_for_testing(std::chrono::milliseconds(100));
  PrefixHit hit;
  auto again = run(*e, p, &hit, 64);
  EXPECT_GT(hit.recomputed_tokens, 0);
  EXPECT_GT(hit.blocks_from[2], 0);
  EXPECT_EQ(hit.tokens + hit.recomputed_tokens, 992);
  // Both runs computed the head in 64-token chunks and read or computed the same bytes for the
  // rest: equal up to the last 8 tokens' different forward shape.
  EXPECT_LT(max_rel(again, first), 2e-2);
}

TEST(CudaHostBlocks, PinnedSlotsAreReusedAndOutliveTheStore) {
  if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA device";
  auto store = HostBlockStore::create(1 << 20, true, 4 << 20);
  auto a = store->allocate();
  auto b = store->allocate();
  EXPECT_NE(a.get(), b.get());
  EXPECT_EQ(store->reserved_bytes(), 4u << 20);
  uint8_t* was = a.get();
  a.reset();
  auto c = store->allocate();
  EXPECT_EQ(c.get(), was);
  store.reset();  // the blocks keep the slab alive
  c.get()[0] = 1;
  b.get()[(1 << 20) - 1] = 2;
}

}  // namespace
}  // namespace hwledger
