// A read-only memory-mapped file. Model weights are used in place from the page cache:
// loading a model costs no copy, and several engines on one machine share the pages.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace hwledger {

class MappedFile {
 public:
  MappedFile() = default;
  explicit MappedFile(const std::string& path);  // throws InputError naming the path
  ~MappedFile();
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

  // Faults the range [offset, offset+len) into memory (sequential read-ahead), so the first
  // tokens do not pay for page faults. `on_progress(bytes_done)` is called now and then.
  template <typename F>
  void prefault(size_t offset, size_t len, F&& on_progress) const;
  void advise_willneed(size_t offset, size_t len) const;

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

template <typename F>
void MappedFile::prefault(size_t offset, size_t len, F&& on_progress) const {
  if (offset >= size_) return;
  if (offset + len > size_) len = size_ - offset;
  constexpr size_t kChunk = 16u << 20;
  volatile uint8_t sink = 0;
  for (size_t done = 0; done < len; done += kChunk) {
    size_t n = len - done < kChunk ? len - done : kChunk;
    advise_willneed(offset + done, n);
    for (size_t i = 0; i < n; i += 4096) sink = sink + data_[offset + done + i];
    on_progress(done + n);
  }
  (void)sink;
}

}  // namespace hwledger
