#include "kv/kv_cache.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <list>
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
  uint64_t pending_write_bytes = 0;  // host copies queued for the SSD writer (GPU pool)

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

  // SSD restore into a GPU pool: blocks are read in chunks into page-locked staging and
  // copied up while the next chunk is read. dst are device addresses.
  void read_ssd_to_device(const std::vector<Digest256>& keys, const std::vector<Digest256>& parents,
                          const std::vector<uint8_t*>& dst, std::vector<bool>& ok) {
    std::lock_guard<std::mutex> guard(staging.mu);
    const size_t bb = layout.block_bytes();
    if (!staging.store) {
      staging.blocks = std::max<size_t>(1, opts.restore_chunk_bytes / bb);
      staging.store = HostBlockStore::create(staging.blocks * bb, true, staging.blocks * bb);
      for (int b = 0; b < 2; ++b) {
        staging.chunk[b] = staging.store->allocate();
        staging.stream[b] = std::make_unique<cuda::CopyStream>(pool.device_index());
      }
    }
    ok.assign(keys.size(), false);
    for (size_t at = 0, c = 0; at < keys.size(); at += staging.blocks, ++c) {
      const size_t n = std::min(staging.blocks, keys.size() - at);
      const int b = static_cast<int>(c % 2);
      staging.stream[b]->synchronize();  // the chunk's previous copies are done
      std::vector<Digest256> k(keys.begin() + at, keys.begin() + at + n),
          p(parents.begin() + at, parents.begin() + at + n);
      std::vector<uint8_t*> host(n);
      for (size_t i = 0; i < n; ++i) host[i] = staging.chunk[b].get() + i * bb;
      std::vector<bool> good;
      ssd->read(k, p, host, good);
      for (size_t i = 0; i < n; ++i) {
        ok[at + i] = good[i];
        if (good[i]) staging.stream[b]->h2d(dst[at + i], host[i], bb);
      }
    }
    staging.stream[0]->synchronize();
    staging.stream[1]->synchronize();
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

PrefixHit KVCacheManager::attach_prefix(KVSequence& seq, std::span<const int32_t> prompt,
                                        const std::string& salt) {
  auto t0 = std::chrono::steady_clock::now();
  PrefixHit hit;
  HW_CHECK(seq.blocks.empty(), "attach_prefix needs an empty sequence");
  Impl& I = *impl_;
  if (!I.opts.enabled || prompt.size() < 2) return hit;
  const int64_t bt = I.layout.block_tokens;
  const int64_t max_blocks =
      (static_cast<int64_t>(prompt.size()) - 1) / bt;  // keep one token to compute
  std::vector<Digest256> keys, parents;
  Digest256 parent = root_key(salt);
  for (int64_t i = 0; i < max_blocks; ++i) {
    Digest256 k = block_key(parent, prompt.subspan(i * bt, bt));
    parents.push_back(parent);
    keys.push_back(k);
    parent = k;
  }

  std::unique_lock<std::mutex> lock(I.mu);
  // First pass: where each block of the chain is, up to the first miss. Working-memory hits
  // are pinned now and RAM hits are taken out of the RAM tier, so that making room for the
  // restored blocks below cannot evict the very blocks this prompt needs.
  std::vector<int32_t> ids;  // working block per chain position (-1: to allocate)
  std::vector<Tier> from;    // where each of `ids` came from
  std::vector<std::shared_ptr<uint8_t>> ram_data;
  for (int64_t i = 0; i < max_blocks; ++i) {
    const Digest256& k = keys[i];
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
  // Second pass: working blocks for what comes from RAM (copied now) or SSD (read below).
  std::vector<size_t> ssd_idx;  // positions in `ids` still to be read from SSD
  for (size_t j = 0; j < ids.size(); ++j) {
    if (from[j] == Tier::Working) continue;
    int32_t id = I.allocate_locked(lock);
    if (id < 0) {  // no room to restore into: compute the rest instead
      for (size_t r = j; r < ids.size(); ++r)
        if (from[r] == Tier::Working) I.unref_locked(ids[r]);
      ids.resize(j);
      from.resize(j);
      break;
    }
    ids[j] = id;
    if (from[j] == Tier::Ram) {
      // Promotion: the block moves up to working memory and leaves the RAM tier.
      I.host_to_pool(id, ram_data[j].get());
      I.index_locked(id, keys[j], parents[j], prompt.data() + j * bt);
    } else {
      ssd_idx.push_back(j);
    }
  }

  // RAM promotions were enqueued above; they complete before anyone can compute on the blocks
  // (ram_data holds their sources until here).
  I.finish_copies();

  if (!ssd_idx.empty()) {
    // All SSD reads of this prompt are issued together and overlap; the lock is released while
    // they run (the blocks are ours: nothing else can see them yet).
    std::vector<Digest256> rk, rp;
    std::vector<uint8_t*> dst;
    for (size_t j : ssd_idx) {
      rk.push_back(keys[j]);
      rp.push_back(parents[j]);
      dst.push_back(I.pool.data(ids[j]));
    }
    std::vector<bool> ok;
    lock.unlock();
    if (I.on_device())
      I.read_ssd_to_device(rk, rp, dst, ok);
    else
      I.ssd->read(rk, rp, dst, ok);
    lock.lock();
    size_t first_bad = ids.size();
    for (size_t n = 0; n < ssd_idx.size(); ++n)
      if (!ok[n]) first_bad = std::min(first_bad, ssd_idx[n]);
    for (size_t n = 0; n < ssd_idx.size(); ++n)
      if (ssd_idx[n] < first_bad) {
        size_t j = ssd_idx[n];
        I.index_locked(ids[j], keys[j], parents[j], prompt.data() + j * bt);
      }
    // A damaged block breaks the chain: everything from it on is recomputed. Blocks after it
    // that were hits stay cached (idle); the unread or damaged ones are freed.
    for (size_t j = first_bad; j < ids.size(); ++j) I.unref_locked(ids[j]);
    ids.resize(first_bad);
    from.resize(first_bad);
  }
  for (Tier t : from) {
    ++hit.blocks_from[static_cast<int>(t)];
    if (t == Tier::Ram) hit.bytes_read += I.layout.block_bytes();
    if (t == Tier::Ssd) hit.bytes_read += SsdBlockHeader::kBytes + I.layout.block_bytes();
  }
  for (int32_t id : ids) {
    seq.blocks.push_back(id);
    seq.block_ptrs.push_back(I.pool.data(id));
  }
  seq.keys.assign(keys.begin(), keys.begin() + static_cast<long>(ids.size()));
  seq.n_tokens = static_cast<int64_t>(ids.size()) * bt;
  hit.tokens = seq.n_tokens;
  hit.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return hit;
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

void KVCacheManager::flush() {
  if (impl_->ssd) impl_->ssd->flush();
}

}  // namespace hwledger
