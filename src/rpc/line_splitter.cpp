#include "rpc/line_splitter.h"

#include <utility>

namespace hwledger::rpc {

LineSplitter::LineSplitter(size_t max_line_bytes, Handlers handlers)
    : max_line_bytes_(max_line_bytes), handlers_(std::move(handlers)) {}

void LineSplitter::feed(std::string_view bytes) {
  while (!bytes.empty()) {
    size_t newline = bytes.find('\n');
    std::string_view piece = bytes.substr(0, newline);  // all of it when there is no '\n'
    if (!skipping_) {
      if (buffer_.size() + piece.size() > max_line_bytes_) {
        buffer_.clear();
        buffer_.shrink_to_fit();
        skipping_ = true;
        if (handlers_.on_overflow) handlers_.on_overflow(max_line_bytes_);
      } else if (newline != std::string_view::npos && buffer_.empty()) {
        if (handlers_.on_line) handlers_.on_line(piece);  // the common case: no copy
      } else {
        buffer_.append(piece);
        if (newline != std::string_view::npos) {
          std::string line = std::move(buffer_);
          buffer_.clear();
          if (handlers_.on_line) handlers_.on_line(line);
        }
      }
    }
    if (newline == std::string_view::npos) return;
    skipping_ = false;
    bytes.remove_prefix(newline + 1);
  }
}

void LineSplitter::finish() {
  if (!skipping_ && !buffer_.empty()) {
    std::string line = std::move(buffer_);
    buffer_.clear();
    if (handlers_.on_line) handlers_.on_line(line);
  }
  buffer_.clear();
  skipping_ = false;
}

}  // namespace hwledger::rpc
