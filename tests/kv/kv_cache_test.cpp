// The tiered prefix cache: a restored prefix gives the logits of a recomputed one from every
// tier and across a restart, and damaged or foreign blocks are never served.
#include "kv/kv_cache.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <csignal>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "engine/engine.h"
#include "model/synth.h"
#include "util/sha256.h"

namespace hwledger {
namespace {

namespace fs = std::filesystem;
const std::string kModel = HWLEDGER_SHARED_DIR "/golden/qwen3-tiny";

std::vector<int32_t> tokens(int n, int seed) {
  std::vector<int32_t> t(n);
  uint32_t s = 2166136261u + seed;
  for (auto& x : t) x = static_cast<int32_t>((s = s * 1664525u + 1013904223u) >> 22);  // < 1024
  return t;
}

class KVCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("hwledger-kv-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::permissions(dir_, fs::perms::all, ec);
    fs::remove_all(dir_, ec);
  }
  std::unique_ptr<Engine> engine(uint64_t ram, uint64_t ssd, int64_t working_blocks = 0, bool enabled = true,
                                 const std::string& model = kModel, DType kv = DType::F16,
                                 uint64_t restore_chunk_bytes = 0) {
    EngineOptions o;
    if (restore_chunk_bytes > 0) o.cache.restore_chunk_bytes = restore_chunk_bytes;
    o.threads = 2;
    o.kv_dtype = kv;
    o.max_context = 4096;
    o.load.show_progress = false;
    o.cache.enabled = enabled;
    o.cache.ram_bytes = ram;
    o.cache.ssd_bytes = ssd;
    o.cache.cache_dir = (dir_ / "cache").string();
    auto e = std::make_unique<Engine>(model, o);
    if (working_blocks > 0) {
      // Re-create with a small working pool so eviction happens.
      o.max_kv_bytes = working_blocks * e->pool().layout().block_bytes();
      e = std::make_unique<Engine>(model, o);
    }
    return e;
  }
  static std::vector<float> run(Engine& e, const std::vector<int32_t>& prompt, PrefixHit* hit = nullptr) {
    KVSequence seq;
    auto logits = e.prefill_cached(seq, prompt, hit);
    e.kv_cache().release(seq);
    return logits;
  }
  static double rel(const std::vector<float>& a, const std::vector<float>& b) {
    double md = 0, mr = 0;
    for (size_t i = 0; i < a.size(); ++i) {
      md = std::max(md, std::fabs(double(a[i]) - b[i]));
      mr = std::max(mr, std::fabs(double(b[i])));
    }
    return md / mr;
  }
  fs::path dir_;
};

TEST_F(KVCacheTest, KeysFollowTheChainAndTheSalt) {
  auto e = engine(0, 0);
  auto& kv = e->kv_cache();
  auto t = tokens(32, 1);
  Digest256 a = kv.block_key(kv.root_key(""), t), b = kv.block_key(kv.root_key("user-2"), t);
  EXPECT_NE(a, b);
  EXPECT_EQ(a, kv.block_key(kv.root_key(""), t));
  t[31] ^= 1;
  EXPECT_NE(a, kv.block_key(kv.root_key(""), t));
}

TEST_F(KVCacheTest, WorkingMemoryHitMatchesRecompute) {
  auto cached = engine(0, 0);
  auto off = engine(0, 0, 0, /*enabled=*/false);
  auto prefix = tokens(200, 2);
  run(*cached, prefix);
  auto prompt = prefix;
  for (int t : tokens(37, 3)) prompt.push_back(t);
  PrefixHit hit;
  auto with_cache = run(*cached, prompt, &hit);
  EXPECT_EQ(hit.tokens, 192);  // 6 full blocks of 32
  EXPECT_EQ(hit.blocks_from[0], 6);
  auto recomputed = run(*off, prompt);
  EXPECT_LT(rel(with_cache, recomputed), 1e-5);
  // Bit-identical to computing the same split without the cache.
  KVSequence seq;
  BatchItem a{&seq, std::span<const int32_t>(prompt).first(192), BatchItem::Logits::None};
  off->runner().forward(std::span<BatchItem>(&a, 1));
  BatchItem b{&seq, std::span<const int32_t>(prompt).subspan(192), BatchItem::Logits::Last};
  auto split = off->runner().forward(std::span<BatchItem>(&b, 1));
  off->kv_cache().release(seq);
  EXPECT_EQ(0, std::memcmp(split.data(), with_cache.data(), split.size() * sizeof(float)));
}

TEST_F(KVCacheTest, SaltIsolatesRequests) {
  auto e = engine(0, 0);
  auto p = tokens(100, 4);
  KVSequence s1;
  e->prefill_cached(s1, p, nullptr, "alice");
  e->kv_cache().release(s1);
  PrefixHit hit;
  KVSequence s2;
  e->prefill_cached(s2, p, &hit, "bob");
  e->kv_cache().release(s2);
  EXPECT_EQ(hit.tokens, 0);
}

TEST_F(KVCacheTest, EvictedBlocksComeBackFromRamThenSsd) {
  const uint64_t block = engine(0, 0)->pool().layout().block_bytes();
  // Working memory of 12 blocks, RAM tier of 6 blocks, SSD for everything.
  auto e = engine(6 * block, 1024 * block, 12);
  auto off = engine(0, 0, 0, false);
  auto a = tokens(10 * 32 + 5, 5), b = tokens(10 * 32 + 5, 6);
  run(*e, a);
  run(*e, b);  // pushes a's blocks down: some stay in working, 6 go to RAM, the rest only on SSD
  e->kv_cache().flush();
  auto s = e->kv_cache().stats();
  EXPECT_GT(s[0].evictions, 0);
  EXPECT_EQ(s[1].blocks, 6);
  EXPECT_GE(s[2].blocks, 20);
  PrefixHit hit;
  auto restored = run(*e, a, &hit);
  EXPECT_EQ(hit.tokens, 320);
  EXPECT_GT(hit.blocks_from[1], 0) << "RAM";
  EXPECT_GT(hit.blocks_from[2], 0) << "SSD";
  EXPECT_LT(rel(restored, run(*off, a)), 1e-5);
}

TEST_F(KVCacheTest, RestartRestoresFromSsd) {
  auto p = tokens(300, 7);
  std::vector<float> first;
  {
    auto e = engine(0, 1ull << 30);
    first = run(*e, p);
  }  // flushes and joins the writer
  auto e = engine(0, 1ull << 30);
  EXPECT_EQ(e->kv_cache().stats()[2].blocks, 9);
  PrefixHit hit;
  auto again = run(*e, p, &hit);
  EXPECT_EQ(hit.tokens, 288);
  EXPECT_EQ(hit.blocks_from[2], 9);
  EXPECT_LT(rel(again, first), 1e-5);
}

TEST_F(KVCacheTest, DamagedBlocksAreDroppedAndRecomputed) {
  auto p = tokens(200, 8);
  std::vector<float> clean;
  std::vector<fs::path> chain;  // the 6 block files in chain order
  {
    auto e = engine(0, 1ull << 30);
    clean = run(*e, p);
    auto& kv = e->kv_cache();
    Digest256 parent = kv.root_key("");
    for (int i = 0; i < 6; ++i) {
      parent = kv.block_key(parent, std::span<const int32_t>(p).subspan(i * 32, 32));
      chain.push_back(dir_ / "cache" / (to_hex(parent) + ".kvb"));
    }
  }
  for (const auto& f : chain) ASSERT_TRUE(fs::exists(f)) << f;
  {
    std::fstream f(chain[3], std::ios::in | std::ios::out | std::ios::binary);  // payload bit flip
    f.seekg(5000);
    char c;
    f.get(c);
    f.seekp(5000);
    f.put(static_cast<char>(c ^ 0x20));
  }
  fs::resize_file(chain[4], fs::file_size(chain[4]) - 10);  // truncated
  {
    std::fstream f(chain[5], std::ios::in | std::ios::out | std::ios::binary);  // header bit flip
    f.seekp(70);
    f.put('\x7f');
  }
  std::ofstream(dir_ / "cache" / "junk.kvb.tmp.123") << "half-written";  // killed mid-write
  auto e = engine(0, 1ull << 30);
  EXPECT_EQ(e->kv_cache().stats()[2].rejected, 3);  // truncated, bad header, leftover temp file
  EXPECT_EQ(e->kv_cache().stats()[2].blocks, 4);
  PrefixHit hit;
  auto again = run(*e, p, &hit);
  EXPECT_EQ(hit.tokens, 96);  // blocks 0-2; block 3 fails its checksum and breaks the chain
  EXPECT_EQ(e->kv_cache().stats()[2].rejected, 4);
  EXPECT_LT(rel(again, clean), 1e-5);
  // What was recomputed is written again: after another restart everything is restored.
  e.reset();
  auto e2 = engine(0, 1ull << 30);
  PrefixHit hit2;
  EXPECT_LT(rel(run(*e2, p, &hit2), clean), 1e-5);
  EXPECT_EQ(hit2.tokens, 192);
}

TEST_F(KVCacheTest, AnotherModelsBlocksAreNeverServedAndAreEvicted) {
  auto p = tokens(100, 9);
  {
    auto e = engine(0, 1ull << 30);
    run(*e, p);
  }
  {  // Same folder, KV dtype differs: a different layout.
    auto e = engine(0, 1ull << 30, 0, true, kModel, DType::BF16);
    EXPECT_EQ(e->kv_cache().stats()[2].rejected, 3);
    EXPECT_EQ(e->kv_cache().stats()[2].blocks, 0);
    PrefixHit hit;
    run(*e, p, &hit);
    EXPECT_EQ(hit.tokens, 0);
  }
  // Another model in the same folder.
  auto other = dir_ / "other-model";
  nlohmann::json cfg = nlohmann::json::parse(std::ifstream(kModel + "/config.json"));
  synth_model(cfg, 99, DType::BF16, other.string(), false);
  auto e = engine(0, 1ull << 30, 0, true, other.string(), DType::BF16);
  EXPECT_EQ(e->kv_cache().stats()[2].blocks, 0);
  PrefixHit hit;
  run(*e, p, &hit);
  EXPECT_EQ(hit.tokens, 0);
}

TEST_F(KVCacheTest, DiskCapIsKept) {
  const uint64_t file = engine(0, 0)->pool().layout().block_bytes() + 4096;
  auto e = engine(0, 5 * file);
  run(*e, tokens(400, 10));
  e->kv_cache().flush();
  auto s = e->kv_cache().stats()[2];
  EXPECT_EQ(s.blocks, 5);
  EXPECT_LE(s.bytes, 5 * file);
  EXPECT_GT(s.evictions, 0);
  uint64_t on_disk = 0;
  for (const auto& f : fs::directory_iterator(dir_ / "cache")) on_disk += f.file_size();
  EXPECT_LE(on_disk, 5 * file);
}

TEST_F(KVCacheTest, FullDiskKeepsServing) {
  // A file-size limit makes every block write fail as a full disk would.
  auto e = engine(0, 1ull << 30);
  struct rlimit old {};
  getrlimit(RLIMIT_FSIZE, &old);
  auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  struct rlimit small = {4096, old.rlim_max};
  setrlimit(RLIMIT_FSIZE, &small);
  auto p = tokens(200, 11);
  auto logits = run(*e, p);
  e->kv_cache().flush();
  setrlimit(RLIMIT_FSIZE, &old);
  std::signal(SIGXFSZ, old_handler);
  auto s = e->kv_cache().stats()[2];
  EXPECT_EQ(s.write_errors, 6);
  EXPECT_EQ(s.blocks, 0);
  EXPECT_FALSE(logits.empty());
  for (const auto& f : fs::directory_iterator(dir_ / "cache")) ADD_FAILURE() << "left behind " << f.path();
}

TEST_F(KVCacheTest, UnusableCacheFolderKeepsServing) {
  fs::create_directories(dir_);
  std::ofstream(dir_ / "cache") << "a file where the folder should be";
  auto e = engine(0, 1ull << 30);
  auto logits = run(*e, tokens(100, 12));
  e->kv_cache().flush();
  EXPECT_FALSE(logits.empty());
  EXPECT_EQ(e->kv_cache().stats()[2].write_errors, 3);
}

TEST_F(KVCacheTest, EvictIdleMovesTheCacheToRam) {
  auto e = engine(1ull << 30, 0);
  auto p = tokens(300, 17);
  auto first = run(*e, p);
  EXPECT_EQ(e->kv_cache().evict_idle(), 9);  // 9 full blocks of 32 tokens, all idle now
  auto s = e->kv_cache().stats();
  EXPECT_EQ(s[0].blocks, 0);
  EXPECT_EQ(s[1].blocks, 9);
  PrefixHit hit;
  auto again = run(*e, p, &hit);
  EXPECT_EQ(hit.tokens, 288);
  EXPECT_EQ(hit.blocks_from[1], 9);
  EXPECT_EQ(e->kv_cache().stats()[1].blocks, 0);  // promoted: they left the RAM tier
  EXPECT_LT(rel(again, first), 1e-5);
  // Without a RAM tier the idle blocks are simply dropped.
  auto bare = engine(0, 0);
  run(*bare, p);
  EXPECT_EQ(bare->kv_cache().evict_idle(), 9);
  run(*bare, p, &hit);
  EXPECT_EQ(hit.tokens, 0);
}

TEST_F(KVCacheTest, SlowDiskRestoreComputesTheHeadMeanwhile) {
  auto p = tokens(1000, 21);  // 31 full blocks
  std::vector<float> cold;
  uint64_t block = 0;
  {
    auto e = engine(0, 1ull << 30);
    block = e->pool().layout().block_bytes();
    cold = run(*e, p);
  }
  // A disk of 100 ms per 2-block chunk and a model that computes "instantly": the reader takes
  // the chain from its end while prefill computes it from its start, and they meet.
  auto e = engine(0, 1ull << 30, 0, true, kModel, DType::F16, 2 * block);
  e->kv_cache().set_read_delay_for_testing(std::chrono::milliseconds(100));
  e->set_prefill_tok_s(1e12);
  KVSequence seq;
  PrefixHit hit;
  auto logits = e->prefill_cached(seq, p, &hit, "", 64);
  e->kv_cache().release(seq);
  EXPECT_GT(hit.recomputed_tokens, 0);
  EXPECT_GT(hit.blocks_from[2], 0);
  EXPECT_EQ(hit.tokens + hit.recomputed_tokens, 992);
  EXPECT_LT(rel(logits, cold), 1e-5);
  // The blocks that were computed and those that were read are all cached again.
  PrefixHit again;
  auto warm = run(*e, p, &again);
  EXPECT_EQ(again.tokens, 992);
  EXPECT_EQ(again.blocks_from[0], 31);
  EXPECT_LT(rel(warm, cold), 1e-5);

  // With the prefill rate unknown (0), the whole prefix is read.
  auto e2 = engine(0, 1ull << 30, 0, true, kModel, DType::F16, 2 * block);
  e2->kv_cache().set_read_delay_for_testing(std::chrono::milliseconds(5));
  KVSequence s2;
  PrefixHit h2;
  e2->prefill_cached(s2, p, &h2, "", 64);
  e2->kv_cache().release(s2);
  EXPECT_EQ(h2.recomputed_tokens, 0);
  EXPECT_EQ(h2.tokens, 992);
}

TEST_F(KVCacheTest, ClearEmptiesTiers) {
  auto e = engine(1ull << 30, 1ull << 30);
  run(*e, tokens(100, 13));
  e->kv_cache().flush();
  EXPECT_GT(e->kv_cache().clear(), 0);
  PrefixHit hit;
  run(*e, tokens(100, 13), &hit);
  EXPECT_EQ(hit.tokens, 0);
}

}  // namespace
}  // namespace hwledger
