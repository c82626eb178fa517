// The persistent SSD tier: one file per KV block in a cache folder, named by the block's key.
// See docs/cache-format.md. Files are written by a background thread (never on the token path)
// to a temporary name and renamed into place; reads validate everything before a block is
// served; the folder is rescanned at start so a restarted engine comes back warm.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "ops/paged_kv.h"
#include "util/sha256.h"

namespace hwledger {

struct DigestHash {
  size_t operator()(const Digest256& d) const {
    size_t h;
    std::memcpy(&h, d.data(), sizeof(h));
    return h;
  }
};

// The fixed-size header in front of each block's payload (4096 bytes on disk).
struct SsdBlockHeader {
  static constexpr char kMagic[8] = {'H', 'W', 'K', 'V', 'B', 'L', 'K', '1'};
  static constexpr uint32_t kFormatVersion = 1;
  static constexpr size_t kBytes = 4096;  // the payload starts here, page-aligned
};

struct SsdStats {
  int64_t blocks = 0;
  uint64_t bytes = 0, capacity = 0;
  int64_t hits = 0, misses = 0, evictions = 0, rejected = 0, write_errors = 0, writes_skipped = 0;
  uint64_t bytes_read = 0, bytes_written = 0;
};

class SsdTier {
 public:
  // Scans `dir`: keeps valid blocks of this model and layout, deletes the rest (other models,
  // other layouts, damaged headers, leftovers of interrupted writes) and trims to `capacity`.
  SsdTier(const std::string& dir, uint64_t capacity, const KVLayout& layout, const Digest256& fingerprint);
  ~SsdTier();

  bool contains(const Digest256& key) const;
  // Queues a block for writing; `data` must stay valid and unchanged until `done` is called
  // (on the writer thread). Returns false (and never calls done) if the block is already
  // on disk or queued.
  bool write_async(const Digest256& key, const Digest256& parent, const std::vector<int32_t>& tokens,
                   const uint8_t* data, std::function<void()> done);
  // Reads blocks into `dst` in parallel; ok[i] says whether block i was valid. A block that
  // fails any check is deleted and counted as rejected, never served.
  void read(const std::vector<Digest256>& keys, const std::vector<Digest256>& parents,
            const std::vector<uint8_t*>& dst, std::vector<bool>& ok);
  void flush();  // waits until every queued write has finished
  int64_t clear();
  SsdStats stats() const;
  void note_miss();

  // Recomputes a block key from its parent and tokens (set by the cache manager).
  std::function<Digest256(const Digest256&, const std::vector<int32_t>&)> key_of;

 private:
  struct Entry {
    uint64_t bytes;
    std::list<Digest256>::iterator lru;
  };
  struct WriteJob {
    Digest256 key, parent;
    std::vector<int32_t> tokens;
    const uint8_t* data;
    std::function<void()> done;
  };
  std::string path_of(const Digest256& key) const;
  void encode_header(uint8_t* h, const Digest256& key, const Digest256& parent,
                     const std::vector<int32_t>& tokens, uint64_t checksum) const;
  // Checks a header against this tier; on success fills key, parent, tokens, checksum.
  bool decode_header(const uint8_t* h, Digest256& key, Digest256& parent, std::vector<int32_t>& tokens,
                     uint64_t& checksum) const;
  void writer_loop();
  bool write_file(const WriteJob& job);
  void insert_locked(const Digest256& key, uint64_t bytes);
  void erase_locked(const Digest256& key, bool count_eviction);
  void trim_locked(uint64_t incoming);

  std::string dir_;
  uint64_t capacity_;
  KVLayout layout_;
  Digest256 fingerprint_;
  uint64_t file_bytes_;

  mutable std::mutex mu_;
  std::unordered_map<Digest256, Entry, DigestHash> index_;
  std::list<Digest256> lru_;  // front: least recently used
  std::unordered_map<Digest256, bool, DigestHash> queued_;
  uint64_t used_ = 0;
  SsdStats stats_;

  std::deque<WriteJob> jobs_;
  std::condition_variable jobs_cv_, idle_cv_;
  bool writing_ = false, stop_ = false;
  std::thread writer_;
};

}  // namespace hwledger
