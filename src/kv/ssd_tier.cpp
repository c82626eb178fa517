#include "kv/ssd_tier.h"

#include <dirent.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "util/error.h"

namespace hwledger {

namespace fs = std::filesystem;

namespace {

constexpr size_t kTokensOffset = 152;
constexpr size_t kHeaderChecksumOffset = SsdBlockHeader::kBytes - 8;

void put32(uint8_t* p, uint32_t v) { std::memcpy(p, &v, 4); }
void put64(uint8_t* p, uint64_t v) { std::memcpy(p, &v, 8); }
uint32_t get32(const uint8_t* p) { uint32_t v; std::memcpy(&v, p, 4); return v; }
uint64_t get64(const uint8_t* p) { uint64_t v; std::memcpy(&v, p, 8); return v; }

bool parse_hex_key(const std::string& name, Digest256& key) {
  if (name.size() != 64 + 4 || name.substr(64) != ".kvb") return false;
  for (size_t i = 0; i < 32; ++i) {
    auto nib = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      return -1;
    };
    int hi = nib(name[2 * i]), lo = nib(name[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    key[i] = static_cast<uint8_t>(hi * 16 + lo);
  }
  return true;
}

// Reads exactly len bytes at offset (pread may return short counts).
bool pread_all(int fd, uint8_t* dst, size_t len, off_t offset) {
  while (len > 0) {
    ssize_t n = ::pread(fd, dst, len, offset);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    dst += n;
    len -= static_cast<size_t>(n);
    offset += n;
  }
  return true;
}

bool write_all(int fd, const uint8_t* src, size_t len) {
  while (len > 0) {
    ssize_t n = ::write(fd, src, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    src += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

SsdTier::SsdTier(const std::string& dir, uint64_t capacity, const KVLayout& layout, const Digest256& fingerprint)
    : dir_(dir), capacity_(capacity), layout_(layout), fingerprint_(fingerprint),
      file_bytes_(SsdBlockHeader::kBytes + layout.block_bytes()) {
  HW_CHECK(kTokensOffset + 4 * layout.block_tokens <= kHeaderChecksumOffset,
           "block of {} tokens does not fit the SSD block header", layout.block_tokens);
  stats_.capacity = capacity_;
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec) spdlog::warn("SSD cache: cannot create '{}': {}; the tier will stay empty", dir_, ec.message());
  // Rebuild the index from what is on disk, oldest first, so the LRU order survives restarts.
  std::vector<std::pair<fs::file_time_type, Digest256>> found;
  for (const auto& e : fs::directory_iterator(dir_, ec)) {
    const std::string name = e.path().filename().string();
    Digest256 key;
    bool keep = false;
    if (e.is_regular_file() && parse_hex_key(name, key) && e.file_size() == file_bytes_) {
      int fd = ::open(e.path().c_str(), O_RDONLY | O_CLOEXEC);
      std::vector<uint8_t> h(SsdBlockHeader::kBytes);
      Digest256 k2, parent;
      std::vector<int32_t> tokens;
      uint64_t checksum;
      keep = fd >= 0 && pread_all(fd, h.data(), h.size(), 0) && decode_header(h.data(), k2, parent, tokens, checksum) &&
             k2 == key;
      if (fd >= 0) ::close(fd);
    }
    if (keep) {
      found.emplace_back(e.last_write_time(), key);
    } else if (e.is_regular_file()) {
      // Another model or layout, a damaged header, or a write interrupted before its rename.
      fs::remove(e.path(), ec);
      ++stats_.rejected;
    }
  }
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [t, key] : found) insert_locked(key, file_bytes_);
  trim_locked(0);
  writer_ = std::thread([this] { writer_loop(); });
}

SsdTier::~SsdTier() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  jobs_cv_.notify_all();
  writer_.join();
}

std::string SsdTier::path_of(const Digest256& key) const { return dir_ + "/" + to_hex(key) + ".kvb"; }

void SsdTier::encode_header(uint8_t* h, const Digest256& key, const Digest256& parent,
                            const std::vector<int32_t>& tokens, uint64_t checksum) const {
  std::memset(h, 0, SsdBlockHeader::kBytes);
  std::memcpy(h, SsdBlockHeader::kMagic, 8);
  put32(h + 8, SsdBlockHeader::kFormatVersion);
  put32(h + 12, SsdBlockHeader::kBytes);
  std::memcpy(h + 16, fingerprint_.data(), 32);
  put32(h + 48, static_cast<uint32_t>(layout_.n_layers));
  put32(h + 52, static_cast<uint32_t>(layout_.n_kv_heads));
  put32(h + 56, static_cast<uint32_t>(layout_.head_dim));
  put32(h + 60, static_cast<uint32_t>(layout_.block_tokens));
  put32(h + 64, static_cast<uint32_t>(layout_.dtype));
  put32(h + 68, static_cast<uint32_t>(tokens.size()));
  std::memcpy(h + 72, key.data(), 32);
  std::memcpy(h + 104, parent.data(), 32);
  put64(h + 136, layout_.block_bytes());
  put64(h + 144, checksum);
  for (size_t i = 0; i < tokens.size(); ++i) put32(h + kTokensOffset + 4 * i, static_cast<uint32_t>(tokens[i]));
  put64(h + kHeaderChecksumOffset, XXH3_64bits(h, kHeaderChecksumOffset));
}

bool SsdTier::decode_header(const uint8_t* h, Digest256& key, Digest256& parent, std::vector<int32_t>& tokens,
                            uint64_t& checksum) const {
  if (std::memcmp(h, SsdBlockHeader::kMagic, 8) != 0) return false;
  if (get32(h + 8) != SsdBlockHeader::kFormatVersion || get32(h + 12) != SsdBlockHeader::kBytes) return false;
  if (get64(h + kHeaderChecksumOffset) != XXH3_64bits(h, kHeaderChecksumOffset)) return false;
  if (std::memcmp(h + 16, fingerprint_.data(), 32) != 0) return false;  // another model
  if (get32(h + 48) != layout_.n_layers || get32(h + 52) != layout_.n_kv_heads || get32(h + 56) != layout_.head_dim ||
      get32(h + 60) != layout_.block_tokens || get32(h + 64) != static_cast<uint32_t>(layout_.dtype) ||
      get32(h + 68) != layout_.block_tokens || get64(h + 136) != layout_.block_bytes())
    return false;  // another KV layout or dtype
  std::memcpy(key.data(), h + 72, 32);
  std::memcpy(parent.data(), h + 104, 32);
  checksum = get64(h + 144);
  tokens.resize(layout_.block_tokens);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int32_t>(get32(h + kTokensOffset + 4 * i));
  return true;
}

bool SsdTier::contains(const Digest256& key) const {
  std::lock_guard<std::mutex> lock(mu_);
  return index_.count(key) != 0;
}

void SsdTier::note_miss() {
  std::lock_guard<std::mutex> lock(mu_);
  ++stats_.misses;
}

bool SsdTier::write_async(const Digest256& key, const Digest256& parent, const std::vector<int32_t>& tokens,
                          const uint8_t* data, std::function<void()> done) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (capacity_ < file_bytes_ || index_.count(key) || queued_.count(key)) return false;
    queued_[key] = true;
    jobs_.push_back(WriteJob{key, parent, tokens, data, std::move(done)});
  }
  jobs_cv_.notify_one();
  return true;
}

void SsdTier::writer_loop() {
  for (;;) {
    WriteJob job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      jobs_cv_.wait(lock, [&] { return stop_ || !jobs_.empty(); });
      if (jobs_.empty()) return;  // stop_ and nothing left
      job = std::move(jobs_.front());
      jobs_.pop_front();
      writing_ = true;
    }
    bool ok = write_file(job);
    job.done();  // the caller may reuse the block's memory now
    {
      std::lock_guard<std::mutex> lock(mu_);
      queued_.erase(job.key);
      writing_ = false;
      if (ok) {
        trim_locked(file_bytes_);
        insert_locked(job.key, file_bytes_);
        stats_.bytes_written += file_bytes_;
      } else {
        ++stats_.write_errors;
      }
    }
    idle_cv_.notify_all();
  }
}

bool SsdTier::write_file(const WriteJob& job) {
  const uint64_t payload = layout_.block_bytes();
  std::vector<uint8_t> header(SsdBlockHeader::kBytes);
  encode_header(header.data(), job.key, job.parent, job.tokens, XXH3_64bits(job.data, payload));
  const std::string final_path = path_of(job.key);
  const std::string tmp = final_path + ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  bool ok = write_all(fd, header.data(), header.size()) && write_all(fd, job.data, payload);
  ok = (::close(fd) == 0) && ok;
  // The rename is the commit point: a reader sees either no file or a complete one.
  if (!ok || ::rename(tmp.c_str(), final_path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    return false;
  }
  return true;
}

void SsdTier::read(const std::vector<Digest256>& keys, const std::vector<Digest256>& parents,
                   const std::vector<uint8_t*>& dst, std::vector<bool>& ok) {
  const size_t n = keys.size();
  ok.assign(n, false);
  if (n == 0) return;
  const uint64_t payload = layout_.block_bytes();
  std::atomic<size_t> next{0};
  std::atomic<uint64_t> bytes{0};
  std::vector<char> good(n, 0);
  auto worker = [&] {
    std::vector<uint8_t> h(SsdBlockHeader::kBytes);
    for (size_t i; (i = next.fetch_add(1)) < n;) {
      int fd = ::open(path_of(keys[i]).c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) continue;
      struct stat st {};
      bool valid = ::fstat(fd, &st) == 0 && static_cast<uint64_t>(st.st_size) == file_bytes_;
      if (valid) {
        ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
        struct iovec iov[2] = {{h.data(), h.size()}, {dst[i], payload}};
        ssize_t got = ::preadv(fd, iov, 2, 0);
        if (got >= 0 && static_cast<uint64_t>(got) < file_bytes_)  // short read: finish it
          valid = static_cast<uint64_t>(got) >= h.size() &&
                  pread_all(fd, dst[i] + (got - h.size()), file_bytes_ - got, got);
        else
          valid = got >= 0;
      }
      ::close(fd);
      if (!valid) continue;
      bytes += file_bytes_;
      Digest256 key, parent;
      std::vector<int32_t> tokens;
      uint64_t checksum;
      good[i] = decode_header(h.data(), key, parent, tokens, checksum) && key == keys[i] && parent == parents[i] &&
                (!key_of || key_of(parent, tokens) == key) && XXH3_64bits(dst[i], payload) == checksum;
    }
  };
  const size_t n_threads = std::min<size_t>(n, 8);
  std::vector<std::thread> threads;
  for (size_t t = 1; t < n_threads; ++t) threads.emplace_back(worker);
  worker();
  for (auto& t : threads) t.join();

  std::lock_guard<std::mutex> lock(mu_);
  stats_.bytes_read += bytes.load();
  for (size_t i = 0; i < n; ++i) {
    ok[i] = good[i] != 0;
    auto it = index_.find(keys[i]);
    if (ok[i]) {
      ++stats_.hits;
      if (it != index_.end()) lru_.splice(lru_.end(), lru_, it->second.lru);
    } else {
      // Damaged, truncated, or replaced behind our back: never served, dropped, counted.
      ++stats_.rejected;
      if (it != index_.end()) erase_locked(keys[i], false);
      std::error_code ec;
      fs::remove(path_of(keys[i]), ec);
    }
  }
}

void SsdTier::insert_locked(const Digest256& key, uint64_t bytes) {
  if (index_.count(key)) return;
  lru_.push_back(key);
  index_[key] = Entry{bytes, std::prev(lru_.end())};
  used_ += bytes;
  stats_.blocks = static_cast<int64_t>(index_.size());
  stats_.bytes = used_;
}

void SsdTier::erase_locked(const Digest256& key, bool count_eviction) {
  auto it = index_.find(key);
  if (it == index_.end()) return;
  used_ -= it->second.bytes;
  lru_.erase(it->second.lru);
  index_.erase(it);
  if (count_eviction) ++stats_.evictions;
  stats_.blocks = static_cast<int64_t>(index_.size());
  stats_.bytes = used_;
}

void SsdTier::trim_locked(uint64_t incoming) {
  while (!lru_.empty() && used_ + incoming > capacity_) {
    Digest256 victim = lru_.front();
    erase_locked(victim, true);
    std::error_code ec;
    fs::remove(path_of(victim), ec);
  }
}

void SsdTier::flush() {
  std::unique_lock<std::mutex> lock(mu_);
  idle_cv_.wait(lock, [&] { return jobs_.empty() && !writing_; });
}

int64_t SsdTier::clear() {
  flush();
  std::lock_guard<std::mutex> lock(mu_);
  int64_t n = static_cast<int64_t>(index_.size());
  for (const auto& key : lru_) {
    std::error_code ec;
    fs::remove(path_of(key), ec);
  }
  index_.clear();
  lru_.clear();
  used_ = 0;
  stats_.blocks = 0;
  stats_.bytes = 0;
  return n;
}

SsdStats SsdTier::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

}  // namespace hwledger
