#include "kv/kv_cache.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <list>
#include <thread>
#include <unordered_map>

#include "kv/host_blocks.h"
#include "kv/ssd_tier.h"
#include "ops/cuda/cuda.h"
#include "util/error.h"
#include "util/size.h"

namespace hwledger {

const char* tier_name(Tier t) {
  switch (t) {
    case Tier::Working:
      return "working";
    case Tier::Ram:
      return "ram";
    case Tier::Ssd:
      return "ssd";
  }
  return "?";
}

namespace {
constexpr uint32_t kKeyFormatVersion = 1;

Digest256 from_hex(const std::string& hex) {
  Digest256 d{};
  for (size_t i = 0; i < 32 && 2 * i + 1 < hex.size(); ++i)
    d[i] = static_cast<uint8_t>(std::stoi(hex.substr(2 * i, 2), nullptr, 16));
  return d;
}
}  // namespace

struct KVCacheManager::Impl {
  KVLayout layout;
  Digest256 fingerprint;
  std::string layout_desc;
  KVCacheOptions opts;
  BlockPool& pool;

  mutable std::mutex mu;
  std::condition_variable writes_cv;  // an SSD write released its block

  // Working tier: indexed full blocks (in use or idle) by key; idle ones in LRU order.
  std::unordered_map<Digest256, int32_t, DigestHash> working;
  std::vector<char> indexed;  // per block id
  std::vector<Digest256> block_key, block_parent;
  std::vector<int32_t> block_tokens;  // [n_blocks][block_tokens]
  std::list<int32_t> idle;            // front: least recently used
  std::vector<std::list<int32_t>::iterator> idle_pos;
  std::vector<char> in_idle;
  int64_t pending_writes = 0;

  // RAM tier: copies of blocks evicted from working memory, in host memory from ram_store
  // (page-locked beside a GPU pool).
  struct RamBlock {
    std::shared_ptr<uint8_t> data;
    Digest256 parent;
    std::vector<int32_t> tokens;
    std::list<Digest256>::iterator lru;
  };
  std::unordered_map<Digest256, RamBlock, DigestHash> ram;
  std::list<Digest256> ram_lru;
  uint64_t ram_used = 0;

  std::shared_ptr<HostBlockStore> ram_store;

  std::unique_ptr<SsdTier> ssd;
  TierStats wstats, rstats;

  // Beside a GPU pool, block bytes move by DMA: `copies` for single blocks (evictions,
  // promotions, write-through), and two page-locked staging chunks, each with its own stream,
  // for SSD restores (one chunk is read from disk while the other is copied up).
  std::unique_ptr<cuda::CopyStream> copies;
  struct Staging {
    std::mutex mu;  // one restore at a time uses the chunks
    size_t blocks = 0;
    std::shared_ptr<HostBlockStore> store;  // chunk-sized "blocks"
    std::shared_ptr<uint8_t> chunk[2];
    std::unique_ptr<cuda::CopyStream> stream[2];
  } staging;
  uint64_t pending_write_bytes = 0;         // host copies queued for the SSD writer (GPU pool)
  std::chrono::milliseconds read_delay{0};  // set_read_delay_for_testing

  Impl(const KVLayout& l, const Digest256& fp, const KVCacheOptions& o, BlockPool& p)
      : layout(l), fingerprint(fp), opts(o), pool(p) {
    layout_desc = fmt::format("L{}/H{}/D{}/B{}/{}", l.n_layers, l.n_kv_heads, l.head_dim,
                              l.block_tokens, dtype_name(l.dtype));
    const int64_t n = p.capacity();
    indexed.assign(n, 0);
    in_idle.assign(n, 0);
    idle_pos.resize(n);
    block_key.resize(n);
    block_parent.resize(n);
    block_tokens.assign(static_cast<size_t>(n * l.block_tokens), 0);
    ram_store = HostBlockStore::create(l.block_bytes(), on_device());
    if (on_device()) copies = std::make_unique<cuda::CopyStream>(p.device_index());
  }

  bool on_device() const { return pool.device() == Device::CUDA; }

  // Block bytes out of working memory into host memory (complete on return).
  void pool_to_host(uint8_t* dst, int32_t id) {
    if (on_device()) {
      copies->d2h(dst, pool.data(id), layout.block_bytes());
      copies->synchronize();
    } else {
      std::memcpy(dst, pool.data(id), layout.block_bytes());
    }
  }
  // Block bytes from host memory into working memory; on a GPU pool the copy is only enqueued
  // (finish_copies waits), so `src` must stay valid until then.
  void host_to_pool(int32_t id, const uint8_t* src) {
    if (on_device())
      copies->h2d(pool.data(id), src, layout.block_bytes());
    else
      std::memcpy(pool.data(id), src, layout.block_bytes());
  }
  void finish_copies() {
    if (copies) copies->synchronize();
  }

  // SSD restore into a GPU pool: blocks are read in chunks into page-locked staging and copied
  // up while the next chunk is read (two chunks, each with its own copy stream). The caller
  // holds staging.mu for the whole restore. dst are device addresses.
  void prepare_staging_locked() {
    const size_t bb = layout.block_bytes();
    if (staging.store) return;
    staging.blocks = std::max<size_t>(1, opts.restore_chunk_bytes / bb);
    staging.store = HostBlockStore::create(staging.blocks * bb, true, staging.blocks * bb);
    for (int b = 0; b < 2; ++b) {
      staging.chunk[b] = staging.store->allocate();
      staging.stream[b] = std::make_unique<cuda::CopyStream>(pool.device_index());
    }
  }
  // One chunk (at most staging.blocks blocks) through staging buffer `b`.
  void read_chunk_to_device(const std::vector<Digest256>& keys,
                            const std::vector<Digest256>& parents, const std::vector<uint8_t*>& dst,
                            std::vector<bool>& ok, int b) {
    const size_t bb = layout.block_bytes();
    staging.stream[b]->synchronize();  // the buffer's previous copies are done
    std::vector<uint8_t*> host(keys.size());
    for (size_t i = 0; i < keys.size(); ++i) host[i] = staging.chunk[b].get() + i * bb;
    ssd->read(keys, parents, host, ok);
    for (size_t i = 0; i < keys.size(); ++i)
      if (ok[i]) staging.stream[b]->h2d(dst[i], host[i], bb);
  }

  std::vector<int32_t> tokens_of(int32_t id) const {
    const int32_t* t = block_tokens.data() + static_cast<size_t>(id) * layout.block_tokens;
    return std::vector<int32_t>(t, t + layout.block_tokens);
  }

  void index_locked(int32_t id, const Digest256& key, const Digest256& parent,
                    const int32_t* tokens) {
    working[key] = id;
    indexed[id] = 1;
    block_key[id] = key;
    block_parent[id] = parent;
    std::memcpy(block_tokens.data() + static_cast<size_t>(id) * layout.block_tokens, tokens,
                sizeof(int32_t) * layout.block_tokens);
  }

  void unindex_locked(int32_t id) {
    if (!indexed[id]) return;
    working.erase(block_key[id]);
    indexed[id] = 0;
  }

  void take_from_idle_locked(int32_t id) {
    if (!in_idle[id]) return;
    idle.erase(idle_pos[id]);
    in_idle[id] = 0;
  }

  // One reference fewer; an unreferenced indexed block becomes idle (still a cache hit).
  void unref_locked(int32_t id) {
    if (pool.unref(id) > 0) return;
    if (indexed[id]) {
      idle.push_back(id);
      idle_pos[id] = std::prev(idle.end());
      in_idle[id] = 1;
    } else {
      pool.free_block(id);
    }
  }

  // Write-through from a GPU pool: the writer cannot read device memory, so blocks are copied
  // into page-locked host memory (write_store) first. The copies of one commit are enqueued
  // together and waited for once, then handed to the writer; at most kMaxPendingWrite bytes
  // of them wait for the disk (back-pressure on prefill when the disk is slower).
  static constexpr uint64_t kMaxPendingWrite = uint64_t{2} << 30;
  struct WriteBatch {
    struct Item {
      Digest256 key, parent;
      std::vector<int32_t> tokens;
      std::shared_ptr<uint8_t> data;
    };
    std::vector<Item> items;
  };
  std::shared_ptr<HostBlockStore> write_store;  // GPU pool with an SSD tier

  void stage_write_locked(int32_t id, WriteBatch& batch, std::unique_lock<std::mutex>& lock) {
    if (ssd->contains(block_key[id])) return;
    const uint64_t bb = layout.block_bytes();
    while (pending_write_bytes + bb > kMaxPendingWrite) {
      if (!batch.items.empty())
        submit_writes_locked(batch);
      else if (pending_writes > 0)
        writes_cv.wait(lock);
      else
        break;
    }
    if (!write_store) write_store = HostBlockStore::create(bb, true);
    std::shared_ptr<uint8_t> buf = write_store->allocate();
    copies->d2h(buf.get(), pool.data(id), bb);
    pending_write_bytes += bb;
    batch.items.push_back({block_key[id], block_parent[id], tokens_of(id), std::move(buf)});
  }

  void submit_writes_locked(WriteBatch& batch) {
    if (batch.items.empty()) return;
    copies->synchronize();
    const uint64_t bb = layout.block_bytes();
    for (auto& it : batch.items) {
      ++pending_writes;
      std::shared_ptr<uint8_t> keep = it.data;
      bool queued = ssd->write_async(it.key, it.parent, it.tokens, keep.get(), [this, keep, bb] {
        std::lock_guard<std::mutex> l(mu);
        --pending_writes;
        pending_write_bytes -= bb;
        writes_cv.notify_all();
      });
      if (!queued) {
        --pending_writes;
        pending_write_bytes -= bb;
      }
    }
    batch.items.clear();
  }

  // Writes a block of a CPU pool to the SSD tier in the background, holding a pool reference
  // until done.
  void write_through_locked(int32_t id) {
    if (!ssd) return;
    pool.retain(id);
    ++pending_writes;
    bool queued =
        ssd->write_async(block_key[id], block_parent[id], tokens_of(id), pool.data(id), [this, id] {
          std::lock_guard<std::mutex> lock(mu);
          --pending_writes;
          unref_locked(id);
          writes_cv.notify_all();
        });
    if (!queued) {
      --pending_writes;
      pool.unref(id);  // never reaches zero here: the sequence holds it
    }
  }

  // A copy of working block `id` enters the RAM tier.
  void ram_insert_locked(const Digest256& key, const Digest256& parent, std::vector<int32_t> tokens,
                         int32_t id) {
    if (opts.ram_bytes < layout.block_bytes() || ram.count(key)) return;
    while (ram_used + layout.block_bytes() > opts.ram_bytes && !ram_lru.empty()) ram_evict_locked();
    std::shared_ptr<uint8_t> buf = ram_store->allocate();
    pool_to_host(buf.get(), id);
    ram_lru.push_back(key);
    ram[key] = RamBlock{buf, parent, std::move(tokens), std::prev(ram_lru.end())};
    ram_used += layout.block_bytes();
    rstats.bytes_written += layout.block_bytes();
  }

  // Drops the RAM tier's least recently used block, sending it to the SSD tier if it is not
  // there yet (with write-through it usually is).
  void ram_evict_locked() {
    Digest256 key = ram_lru.front();
    RamBlock& b = ram[key];
    if (ssd && !ssd->contains(key)) {
      std::shared_ptr<uint8_t> keep = b.data;
      ssd->write_async(key, b.parent, b.tokens, keep.get(), [keep] {});
    }
    ram_lru.pop_front();
    ram.erase(key);
    ram_used -= layout.block_bytes();
    ++rstats.evictions;
  }

  // The least recently used idle working block goes down to the RAM tier (if there is one)
  // and its working block is freed.
  void evict_idle_locked() {
    int32_t victim = idle.front();
    take_from_idle_locked(victim);
    ram_insert_locked(block_key[victim], block_parent[victim], tokens_of(victim), victim);
    unindex_locked(victim);
    pool.free_block(victim);
    ++wstats.evictions;
  }

  // A free working block, evicting the least recently used idle cached block (down to the RAM
  // tier) when none is free. Waits for in-flight SSD writes only if they hold every block.
  int32_t allocate_locked(std::unique_lock<std::mutex>& lock) {
    for (int attempt = 0;; ++attempt) {
      int32_t id = pool.allocate();
      if (id >= 0) return id;
      if (!idle.empty()) {
        evict_idle_locked();
        continue;
      }
      if (pending_writes > 0 && attempt < 100) {
        writes_cv.wait_for(lock, std::chrono::milliseconds(100));
        continue;
      }
      return -1;
    }
  }
};

KVCacheManager::KVCacheManager(const KVLayout& layout, const std::string& model_fingerprint,
                               const KVCacheOptions& opts)
    : pool_(std::make_unique<BlockPool>(layout, std::max<int64_t>(1, opts.working_blocks),
                                        opts.device, opts.device_index)),
      impl_(std::make_unique<Impl>(layout, from_hex(model_fingerprint), opts, *pool_)) {
  if (opts.enabled && opts.ssd_bytes > 0 && !opts.cache_dir.empty()) {
    impl_->ssd =
        std::make_unique<SsdTier>(opts.cache_dir, opts.ssd_bytes, layout, impl_->fingerprint);
    impl_->ssd->key_of = [this](const Digest256& parent, const std::vector<int32_t>& tokens) {
      return block_key(parent, tokens);
    };
  }
}

KVCacheManager::~KVCacheManager() {
  if (impl_->ssd) impl_->ssd->flush();
  impl_->ssd.reset();  // joins the writer before the pool goes away
}

Digest256 KVCacheManager::root_key(const std::string& salt) const {
  Sha256 h;
  h.update("hwledger-kv-root");
  h.update(&kKeyFormatVersion, sizeof(kKeyFormatVersion));
  h.update(impl_->fingerprint.data(), 32);
  h.update(impl_->layout_desc);
  uint64_t n = salt.size();
  h.update(&n, sizeof(n));
  h.update(salt);
  return h.finish();
}

Digest256 KVCacheManager::block_key(const Digest256& parent,
                                    std::span<const int32_t> tokens) const {
  Sha256 h;
  h.update(&kKeyFormatVersion, sizeof(kKeyFormatVersion));
  h.update(impl_->fingerprint.data(), 32);
  h.update(impl_->layout_desc);
  h.update(parent.data(), 32);
  for (int32_t t : tokens) {  // little-endian uint32, as SPEC says
    uint8_t b[4] = {static_cast<uint8_t>(t), static_cast<uint8_t>(t >> 8),
                    static_cast<uint8_t>(t >> 16),
                    static_cast<uint8_t>(static_cast<uint32_t>(t) >> 24)};
    h.update(b, 4);
  }
  return h.finish();
}

// ---- prefix restore --------------------------------------------------------------------------

struct PrefixRestore::State {
  KVCacheManager::Impl* I = nullptr;
  KVSequence* seq = nullptr;
  int64_t bt = 0;
  std::chrono::steady_clock::time_point t0;
  double attach_seconds = 0;  // the synchronous part (lookups, RAM promotions)
  std::vector<Digest256> keys, parents;
  std::vector<int32_t> tokens;  // the chain's tokens (h * bt)
  std::vector<int32_t> ids;     // working block per chain position
  std::vector<Tier> from;       // where each came from
  std::vector<char> ok;         // SSD positions: read and valid
  int64_t f = 0;                // first SSD position (== h when none)
  int64_t e = 0;                // end of the run of SSD positions from f: compute may claim [f, e)
  int64_t h = 0;                // chain length

  std::mutex mu;  // guards the fields below, shared by the reader and the caller
  std::condition_variable cv;
  int64_t low = 0;       // the reader has taken positions [low, h)
  int64_t boundary = 0;  // the caller has claimed positions [f, boundary) to compute
  bool reader_done = true;
  uint64_t bytes = 0;         // read by the reader so far
  double reader_seconds = 0;  // its time so far
  std::thread reader;
  bool finished = false;
  PrefixHit hit;

  int64_t ssd_between(int64_t a, int64_t b) const {
    int64_t n = 0;
    for (int64_t j = a; j < b; ++j) n += from[j] == Tier::Ssd;
    return n;
  }
  void read_loop();
};

// The reader: SSD positions from the back of the chain in chunks, down to the caller's claim.
void PrefixRestore::State::read_loop() {
  KVCacheManager::Impl& K = *I;
  const size_t bb = K.layout.block_bytes();
  std::unique_lock<std::mutex> staging_lock;
  size_t chunk = std::max<size_t>(1, K.opts.restore_chunk_bytes / bb);
  if (K.on_device()) {
    staging_lock = std::unique_lock<std::mutex>(K.staging.mu);
    K.prepare_staging_locked();
    chunk = K.staging.blocks;
  }
  const auto start = std::chrono::steady_clock::now();
  for (int c = 0;; ++c) {
    int64_t lo, hi;
    {
      std::lock_guard<std::mutex> lock(mu);
      hi = low;
      lo = hi;
      size_t n = 0;
      while (lo > boundary && n < chunk) n += from[--lo] == Tier::Ssd;
      low = lo;
      if (n == 0) break;
    }
    std::vector<Digest256> k, p;
    std::vector<uint8_t*> dst;
    std::vector<int64_t> pos;
    for (int64_t j = lo; j < hi; ++j)
      if (from[j] == Tier::Ssd) {
        k.push_back(keys[j]);
        p.push_back(parents[j]);
        dst.push_back(K.pool.data(ids[j]));
        pos.push_back(j);
      }
    std::vector<bool> good;
    if (K.read_delay.count() > 0) std::this_thread::sleep_for(K.read_delay);  // tests: a slow disk
    if (K.on_device())
      K.read_chunk_to_device(k, p, dst, good, c % 2);
    else
      K.ssd->read(k, p, dst, good);
    std::lock_guard<std::mutex> lock(mu);
    for (size_t i = 0; i < pos.size(); ++i) ok[pos[i]] = good[i];
    bytes += pos.size() * (SsdBlockHeader::kBytes + bb);
    reader_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    cv.notify_all();
  }
  if (K.on_device()) {
    K.staging.stream[0]->synchronize();
    K.staging.stream[1]->synchronize();
  }
  std::lock_guard<std::mutex> lock(mu);
  reader_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  reader_done = true;
  cv.notify_all();
}

PrefixRestore::PrefixRestore() : s_(std::make_unique<State>()) {}

PrefixRestore::~PrefixRestore() {
  if (s_ && !s_->finished) {
    try {
      finish();
    } catch (...) {
    }
  }
}

bool PrefixRestore::reading() const {
  std::lock_guard<std::mutex> lock(s_->mu);
  return !s_->reader_done;
}

bool PrefixRestore::finished() const {
  return s_->finished;
}

int64_t PrefixRestore::claim(int64_t want, double compute_tok_s, bool wait_for_rate) {
  State& S = *s_;
  if (S.finished || compute_tok_s <= 0 || S.e <= S.f) return 0;
  const int64_t g_max = want / S.bt;
  std::unique_lock<std::mutex> lock(S.mu);
  if (S.seq->n_tokens != S.boundary * S.bt || g_max <= 0) return 0;
  // The reader's rate is known once its first chunk is in.
  if (wait_for_rate)
    S.cv.wait(lock, [&] { return S.reader_done || S.bytes > 0; });
  else if (S.bytes == 0)
    return 0;
  if (S.reader_done) return 0;
  // The reader has `rem` SSD blocks left down to our boundary. Computing g of them (from the
  // boundary up) while it reads the rest ends when the slower of the two does; the split that
  // ends both together is rem * c / (c + r), in blocks per second each.
  const int64_t rem = S.ssd_between(S.boundary, S.low);
  const int64_t avail = std::min(S.low, S.e) - S.boundary;  // claimable: SSD blocks not yet taken
  if (rem <= 0 || avail <= 0) return 0;
  const double file_bytes = static_cast<double>(SsdBlockHeader::kBytes + S.I->layout.block_bytes());
  const double read_bps =
      static_cast<double>(S.bytes) / file_bytes / std::max(S.reader_seconds, 1e-6);
  const double compute_bps = compute_tok_s / static_cast<double>(S.bt);
  const double balance = static_cast<double>(rem) * compute_bps / (compute_bps + read_bps);
  const int64_t g = std::min({g_max, avail, std::max<int64_t>(1, static_cast<int64_t>(balance))});
  if (static_cast<double>(g) / compute_bps >= static_cast<double>(rem) / read_bps)
    return 0;  // the disk is done first: wait for it instead
  S.boundary += g;
  return g * S.bt;
}

PrefixHit PrefixRestore::finish() {
  State& S = *s_;
  if (S.finished) return S.hit;
  if (S.reader.joinable()) S.reader.join();
  S.finished = true;
  KVCacheManager::Impl& I = *S.I;
  KVSequence& seq = *S.seq;
  const int64_t c = S.boundary;  // positions [f, c) were computed by the caller
  HW_CHECK(seq.n_tokens >= c * S.bt && static_cast<int64_t>(seq.blocks.size()) == S.h,
           "prefix restore: the sequence holds {} tokens in {} blocks, expected {} computed of {}",
           seq.n_tokens, seq.blocks.size(), c * S.bt, S.h);
  std::lock_guard<std::mutex> lock(I.mu);
  // A damaged block breaks the chain: everything from it on is recomputed. Blocks after it
  // that were hits stay cached (idle); the unread or damaged ones are freed.
  int64_t valid = S.h;
  for (int64_t j = c; j < S.h; ++j)
    if (S.from[j] == Tier::Ssd && !S.ok[j]) {
      valid = j;
      break;
    }
  for (int64_t j = c; j < valid; ++j)
    if (S.from[j] == Tier::Ssd)
      I.index_locked(S.ids[j], S.keys[j], S.parents[j], S.tokens.data() + j * S.bt);
  for (int64_t j = valid; j < S.h; ++j) I.unref_locked(S.ids[j]);
  seq.blocks.resize(valid);
  seq.block_ptrs.resize(valid);
  seq.keys.assign(S.keys.begin(), S.keys.begin() + valid);
  seq.n_tokens = std::max(seq.n_tokens, valid * S.bt);
  PrefixHit& hit = S.hit;
  for (int64_t j = 0; j < valid; ++j) {
    if (j >= S.f && j < c) continue;  // computed, not restored
    ++hit.blocks_from[static_cast<int>(S.from[j])];
    if (S.from[j] == Tier::Ram) hit.bytes_read += I.layout.block_bytes();
    if (S.from[j] == Tier::Ssd) hit.bytes_read += SsdBlockHeader::kBytes + I.layout.block_bytes();
  }
  hit.recomputed_tokens = (c - S.f) * S.bt;
  hit.tokens = valid * S.bt - hit.recomputed_tokens;
  // Restore time: the synchronous part plus the reader's (which overlapped any computing).
  hit.seconds = S.attach_seconds + S.reader_seconds;
  return hit;
}

PrefixHit KVCacheManager::attach_prefix(KVSequence& seq, std::span<const int32_t> prompt,
                                        const std::string& salt) {
  return attach_prefix_async(seq, prompt, salt)->finish();
}

std::unique_ptr<PrefixRestore> KVCacheManager::attach_prefix_async(KVSequence& seq,
                                                                   std::span<const int32_t> prompt,
                                                                   const std::string& salt) {
  std::unique_ptr<PrefixRestore> r(new PrefixRestore());
  PrefixRestore::State& S = *r->s_;
  S.t0 = std::chrono::steady_clock::now();
  S.I = impl_.get();
  S.seq = &seq;
  HW_CHECK(seq.blocks.empty(), "attach_prefix needs an empty sequence");
  Impl& I = *impl_;
  const int64_t bt = S.bt = I.layout.block_tokens;
  if (!I.opts.enabled || prompt.size() < 2) {
    S.finished = true;
    return r;
  }
  const int64_t max_blocks =
      (static_cast<int64_t>(prompt.size()) - 1) / bt;  // keep one token to compute
  Digest256 parent = root_key(salt);
  for (int64_t i = 0; i < max_blocks; ++i) {
    Digest256 k = block_key(parent, prompt.subspan(i * bt, bt));
    S.parents.push_back(parent);
    S.keys.push_back(k);
    parent = k;
  }

  std::unique_lock<std::mutex> lock(I.mu);
  // First pass: where each block of the chain is, up to the first miss. Working-memory hits
  // are pinned now and RAM hits are taken out of the RAM tier, so that making room for the
  // restored blocks below cannot evict the very blocks this prompt needs.
  std::vector<int32_t>& ids = S.ids;
  std::vector<Tier>& from = S.from;
  std::vector<std::shared_ptr<uint8_t>> ram_data;
  for (int64_t i = 0; i < max_blocks; ++i) {
    const Digest256& k = S.keys[i];
    if (auto it = I.working.find(k); it != I.working.end()) {
      I.take_from_idle_locked(it->second);
      I.pool.retain(it->second);
      ids.push_back(it->second);
      from.push_back(Tier::Working);
      ram_data.emplace_back();
      ++I.wstats.hits;
      continue;
    }
    ++I.wstats.misses;
    if (auto it = I.ram.find(k); it != I.ram.end()) {
      ram_data.push_back(it->second.data);
      I.ram_lru.erase(it->second.lru);
      I.ram.erase(it);
      I.ram_used -= I.layout.block_bytes();
      ++I.rstats.hits;
      I.rstats.bytes_read += I.layout.block_bytes();
      ids.push_back(-1);
      from.push_back(Tier::Ram);
      continue;
    }
    ++I.rstats.misses;
    if (I.ssd && I.ssd->contains(k)) {
      ids.push_back(-1);
      from.push_back(Tier::Ssd);
      ram_data.emplace_back();
      continue;
    }
    if (I.ssd) I.ssd->note_miss();
    break;
  }
  // Second pass: working blocks for what comes from RAM (copied now) or SSD (read by the reader).
  for (size_t j = 0; j < ids.size(); ++j) {
    if (from[j] == Tier::Working) continue;
    int32_t id = I.allocate_locked(lock);
    if (id < 0) {  // no room to restore into: compute the rest instead
      for (size_t q = j; q < ids.size(); ++q)
        if (from[q] == Tier::Working) I.unref_locked(ids[q]);
      ids.resize(j);
      from.resize(j);
      break;
    }
    ids[j] = id;
    if (from[j] == Tier::Ram) {
      // Promotion: the block moves up to working memory and leaves the RAM tier.
      I.host_to_pool(id, ram_data[j].get());
      I.index_locked(id, S.keys[j], S.parents[j], prompt.data() + j * bt);
    }
  }
  // RAM promotions were enqueued above; they complete before anyone can compute on the blocks
  // (ram_data holds their sources until here).
  I.finish_copies();

  S.h = static_cast<int64_t>(ids.size());
  S.tokens.assign(prompt.begin(), prompt.begin() + S.h * bt);
  S.ok.assign(S.h, 0);
  S.f = S.h;
  for (int64_t j = 0; j < S.h; ++j)
    if (from[j] == Tier::Ssd) {
      S.f = j;
      break;
    }
  S.e = S.f;
  while (S.e < S.h && from[S.e] == Tier::Ssd) ++S.e;
  S.low = S.h;
  S.boundary = S.f;
  for (int32_t id : ids) {
    seq.blocks.push_back(id);
    seq.block_ptrs.push_back(I.pool.data(id));
  }
  // Until finish(), the sequence holds what is in place: the chain up to its first SSD block.
  seq.keys.assign(S.keys.begin(), S.keys.begin() + S.f);
  seq.n_tokens = S.f * bt;
  S.attach_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - S.t0).count();
  if (S.f < S.h) {
    // The reader runs without the cache's lock: its blocks are ours, nothing else sees them yet.
    S.reader_done = false;
    S.reader = std::thread([&S] { S.read_loop(); });
  }
  return r;
}

void KVCacheManager::commit(KVSequence& seq, std::span<const int32_t> tokens,
                            const std::string& salt) {
  Impl& I = *impl_;
  if (!I.opts.enabled) return;
  const int64_t bt = I.layout.block_tokens;
  const int64_t full = std::min<int64_t>(static_cast<int64_t>(tokens.size()), seq.n_tokens) / bt;
  if (static_cast<int64_t>(seq.keys.size()) >= full) return;
  std::vector<Digest256> new_keys, parents;
  Digest256 parent = seq.keys.empty() ? root_key(salt) : seq.keys.back();
  for (int64_t i = static_cast<int64_t>(seq.keys.size()); i < full; ++i) {
    Digest256 k = block_key(parent, tokens.subspan(i * bt, bt));
    parents.push_back(parent);
    new_keys.push_back(k);
    parent = k;
  }
  Impl::WriteBatch writes;  // GPU pool: host copies for the SSD writer, handed over together
  std::unique_lock<std::mutex> lock(I.mu);
  for (size_t n = 0; n < new_keys.size(); ++n) {
    const int64_t i = static_cast<int64_t>(seq.keys.size());
    const int32_t id = seq.blocks[i];
    // A block another sequence already indexed under this key stays the cached copy; ours
    // remains private to this sequence and is freed with it.
    if (!I.working.count(new_keys[n]) && !I.indexed[id]) {
      I.index_locked(id, new_keys[n], parents[n], tokens.data() + i * bt);
      // Write-through on first sight: the SSD tier gets every new full block in the
      // background, so a restart finds the whole prefix (docs/cache-format.md).
      if (I.ssd && I.on_device())
        I.stage_write_locked(id, writes, lock);
      else
        I.write_through_locked(id);
    }
    seq.keys.push_back(new_keys[n]);
  }
  I.submit_writes_locked(writes);
}

void KVCacheManager::release(KVSequence& seq) {
  Impl& I = *impl_;
  std::lock_guard<std::mutex> lock(I.mu);
  for (int32_t id : seq.blocks) I.unref_locked(id);
  seq.blocks.clear();
  seq.block_ptrs.clear();
  seq.keys.clear();
  seq.n_tokens = 0;
}

void KVCacheManager::reserve(KVSequence& seq, int64_t n_tokens) {
  Impl& I = *impl_;
  const int64_t bt = I.layout.block_tokens;
  const int64_t need = (n_tokens + bt - 1) / bt;
  std::unique_lock<std::mutex> lock(I.mu);
  while (static_cast<int64_t>(seq.blocks.size()) < need) {
    int32_t id = I.allocate_locked(lock);
    if (id < 0)
      fail(
          "KV cache is full: {} tokens need {} blocks of {} tokens; working memory holds {} ({}) "
          "and all are in use",
          n_tokens, need, bt, I.pool.capacity(), format_bytes(I.pool.bytes()));
    seq.blocks.push_back(id);
    seq.block_ptrs.push_back(I.pool.data(id));
  }
}

std::vector<TierStats> KVCacheManager::stats() const {
  Impl& I = *impl_;
  std::lock_guard<std::mutex> lock(I.mu);
  std::vector<TierStats> s(3);
  s[0] = I.wstats;
  s[0].blocks = I.pool.capacity() - I.pool.free_blocks();
  s[0].bytes = static_cast<uint64_t>(s[0].blocks) * I.layout.block_bytes();
  s[0].capacity_bytes = I.pool.bytes();
  s[1] = I.rstats;
  s[1].blocks = static_cast<int64_t>(I.ram.size());
  s[1].bytes = I.ram_used;
  s[1].capacity_bytes = I.opts.ram_bytes;
  if (I.ssd) {
    SsdStats d = I.ssd->stats();
    s[2].blocks = d.blocks;
    s[2].bytes = d.bytes;
    s[2].capacity_bytes = d.capacity;
    s[2].hits = d.hits;
    s[2].misses = d.misses;
    s[2].evictions = d.evictions;
    s[2].rejected = d.rejected;
    s[2].bytes_read = d.bytes_read;
    s[2].bytes_written = d.bytes_written;
    s[2].write_errors = d.write_errors;
  }
  return s;
}

nlohmann::json KVCacheManager::stats_json() const {
  nlohmann::json j;
  auto s = stats();
  for (int t = 0; t < 3; ++t)
    j[tier_name(static_cast<Tier>(t))] = {{"blocks", s[t].blocks},
                                          {"bytes", s[t].bytes},
                                          {"capacity", s[t].capacity_bytes},
                                          {"hits", s[t].hits},
                                          {"misses", s[t].misses},
                                          {"evictions", s[t].evictions},
                                          {"rejected", s[t].rejected},
                                          {"bytes_read", s[t].bytes_read},
                                          {"bytes_written", s[t].bytes_written},
                                          {"write_errors", s[t].write_errors}};
  j["block_tokens"] = impl_->layout.block_tokens;
  j["block_bytes"] = impl_->layout.block_bytes();
  return j;
}

int64_t KVCacheManager::clear(const Tier* tier) {
  Impl& I = *impl_;
  int64_t n = 0;
  std::unique_lock<std::mutex> lock(I.mu);
  if (!tier || *tier == Tier::Working) {
    while (!I.idle.empty()) {
      int32_t id = I.idle.front();
      I.take_from_idle_locked(id);
      I.unindex_locked(id);
      I.pool.free_block(id);
      ++n;
    }
  }
  if (!tier || *tier == Tier::Ram) {
    n += static_cast<int64_t>(I.ram.size());
    I.ram.clear();
    I.ram_lru.clear();
    I.ram_used = 0;
  }
  if ((!tier || *tier == Tier::Ssd) && I.ssd) {
    lock.unlock();
    n += I.ssd->clear();
  }
  return n;
}

int64_t KVCacheManager::evict_idle() {
  Impl& I = *impl_;
  std::lock_guard<std::mutex> lock(I.mu);
  int64_t n = 0;
  for (; !I.idle.empty(); ++n) I.evict_idle_locked();
  return n;
}

void KVCacheManager::set_read_delay_for_testing(std::chrono::milliseconds per_chunk) {
  impl_->read_delay = per_chunk;
}

void KVCacheManager::flush() {
  if (impl_->ssd) impl_->ssd->flush();
}

}  // namespace hwledger
