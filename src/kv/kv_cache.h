// The KV cache across tiers: working memory (the BlockPool the kernels read), a RAM tier and a
// persistent SSD tier. Full blocks are identified by a chained SHA-256 key (SPEC: the KV cache
// key) so that any later prompt with the same prefix - in this process or after a restart -
// restores those blocks instead of recomputing them.
#pragma once
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kv/block_pool.h"
#include "util/sha256.h"

namespace hwledger {

struct KVCacheOptions {
  int64_t working_blocks = 0;   // blocks in working memory (the pool)
  uint64_t ram_bytes = 0;       // RAM tier capacity; 0: no RAM tier
  uint64_t ssd_bytes = 0;       // SSD tier capacity; 0: no SSD tier
  std::string cache_dir;        // SSD tier folder (created if missing)
  bool enabled = true;          // false: no prefix reuse at all (cache off)
  Device device = Device::CPU;  // where the working-memory blocks live (BlockPool)
  int device_index = 0;
  // SSD restores read this much at a time (on a GPU pool: each page-locked staging buffer).
  uint64_t restore_chunk_bytes = uint64_t{64} << 20;
};

enum class Tier { Working = 0, Ram = 1, Ssd = 2 };
const char* tier_name(Tier t);  // "working", "ram", "ssd"

struct TierStats {
  int64_t blocks = 0;
  uint64_t bytes = 0, capacity_bytes = 0;
  int64_t hits = 0, misses = 0, evictions = 0, rejected = 0;
  uint64_t bytes_read = 0, bytes_written = 0;
  int64_t write_errors = 0;
};

// How a new sequence's prompt was served from the cache.
struct PrefixHit {
  int64_t tokens = 0;                  // prompt tokens restored (a multiple of block_tokens)
  int64_t blocks_from[3] = {0, 0, 0};  // restored blocks per Tier
  uint64_t bytes_read = 0;             // bytes copied in from RAM / read from SSD
  double seconds = 0;                  // time spent restoring
  int64_t recomputed_tokens = 0;       // cached on SSD but computed while the rest was read
};

class KVCacheManager;

// A prefix restore under way (KVCacheManager::attach_prefix_async). Blocks found in working
// memory or the RAM tier are in place at once; blocks on the SSD tier are read by a background
// thread, the chain's last position first. Meanwhile the caller may compute the cached prefix
// from its first SSD block on (claim): reading and recomputing meet in the middle, so a disk
// slower than the model's prefill still shortens the time to the first token, and a scheduler
// can serve other requests while the disk works. The manager must outlive it.
class PrefixRestore {
 public:
  ~PrefixRestore();  // finish()es if the caller did not
  PrefixRestore(const PrefixRestore&) = delete;
  PrefixRestore& operator=(const PrefixRestore&) = delete;

  // Tokens the caller may compute now from seq.n_tokens on (a multiple of the block size, at
  // most `want`), granted only while reading what would remain takes longer than computing
  // them at `compute_tok_s` (0: unknown, nothing granted). The caller must compute exactly the
  // granted tokens before the next claim. 0: compute nothing more of the prefix; call finish().
  // The reader's rate is known once its first chunk is in: until then the claim waits for it, or
  // with wait_for_rate false grants nothing.
  int64_t claim(int64_t want, double compute_tok_s, bool wait_for_rate = true);
  bool reading() const;  // the reader still works: finish() would wait
  bool finished() const;
  // Waits for the reader, enters the restored blocks in the sequence (seq.n_tokens moves past
  // them; a damaged block ends the chain there) and says how the prefix was served.
  PrefixHit finish();

 private:
  friend class KVCacheManager;
  PrefixRestore();
  struct State;
  std::unique_ptr<State> s_;
};

class KVCacheManager {
 public:
  // `model_fingerprint` and the layout go into every key: blocks of another model, layout or
  // KV dtype are never served.
  KVCacheManager(const KVLayout& layout, const std::string& model_fingerprint,
                 const KVCacheOptions& opts);
  ~KVCacheManager();

  BlockPool& pool() { return *pool_; }
  const KVLayout& layout() const { return pool_->layout(); }

  // Gives an empty `seq` the longest cached prefix of `prompt` (full blocks only, always
  // leaving at least one prompt token to compute). Sets seq.n_tokens to the tokens restored.
  PrefixHit attach_prefix(KVSequence& seq, std::span<const int32_t> prompt,
                          const std::string& salt = "");
  // The same in two steps (see PrefixRestore): returns at once with seq.n_tokens at the first
  // block to be read from SSD; finish() completes it.
  std::unique_ptr<PrefixRestore> attach_prefix_async(KVSequence& seq,
                                                     std::span<const int32_t> prompt,
                                                     const std::string& salt = "");
  // Call after tokens were appended to `seq` (tokens = all of the sequence's tokens so far):
  // newly completed blocks are entered in the index (and written to the SSD tier).
  void commit(KVSequence& seq, std::span<const int32_t> tokens, const std::string& salt = "");
  // Frees the sequence's blocks; indexed ones stay cached until evicted.
  void release(KVSequence& seq);
  // Makes room and grows `seq` to n_tokens, evicting idle cached blocks down the tiers.
  void reserve(KVSequence& seq, int64_t n_tokens);

  std::vector<TierStats> stats() const;  // indexed by Tier
  nlohmann::json stats_json() const;
  // Drops cached blocks of one tier (or all when tier is null); returns how many.
  int64_t clear(const Tier* tier = nullptr);
  // Moves every idle cached block out of working memory to the RAM tier (dropped from working
  // memory only, if there is no RAM tier), as memory pressure would; returns how many.
  int64_t evict_idle();
  // Tests: the SSD restore reader sleeps this long before each chunk (a slow disk).
  void set_read_delay_for_testing(std::chrono::milliseconds per_chunk);
  // Waits until queued SSD writes are on disk (tests, shutdown).
  void flush();

  // The key of a block: SHA-256(format version, fingerprint, layout, parent key, token ids as
  // little-endian uint32). The first block's parent is root_key(salt).
  Digest256 root_key(const std::string& salt) const;
  Digest256 block_key(const Digest256& parent, std::span<const int32_t> tokens) const;

 private:
  friend class PrefixRestore;
  struct Impl;
  std::unique_ptr<BlockPool> pool_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace hwledger
