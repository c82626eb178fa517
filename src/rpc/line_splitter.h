// Splits a byte stream into '\n'-terminated lines with a bounded buffer: a line longer than the
// limit is reported once and then skipped up to its newline, so a 100 MB line costs the reader
// no more than `max_line_bytes` of memory and the stream stays in step.
#pragma once
#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

namespace hwledger::rpc {

inline constexpr size_t kDefaultMaxLineBytes = size_t{16} << 20;  // 16 MiB

class LineSplitter {
 public:
  struct Handlers {
    std::function<void(std::string_view line)> on_line;  // without the '\n'
    // A line passed `max_line_bytes` (called once per such line, when the limit is crossed).
    std::function<void(size_t limit)> on_overflow;
  };

  LineSplitter(size_t max_line_bytes, Handlers handlers);

  void feed(std::string_view bytes);
  // End of stream: a last line without '\n' is delivered as a line (if not being skipped).
  void finish();

  size_t buffered_bytes() const { return buffer_.size(); }
  bool skipping() const { return skipping_; }

 private:
  size_t max_line_bytes_;
  Handlers handlers_;
  std::string buffer_;     // the current, unfinished line
  bool skipping_ = false;  // inside an over-long line: drop bytes up to the next '\n'
};

}  // namespace hwledger::rpc
