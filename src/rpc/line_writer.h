// The protocol's output: one JSON message per line, written whole by any thread.
#pragma once
#include <atomic>
#include <functional>
#include <mutex>

#include "rpc/jsonrpc.h"

namespace hwledger::rpc {

class LineWriter {
 public:
  explicit LineWriter(int fd) : fd_(fd) {}

  // Writes `message` and '\n' under a lock, so lines of different threads never interleave.
  // Blocks while the reader is slow (backpressure). Returns false once the reader has gone
  // (EPIPE or another write error); later messages are dropped.
  bool write(const json& message);
  bool broken() const { return broken_.load(); }
  // Called once, on the thread whose write failed first.
  void set_on_broken(std::function<void()> callback) { on_broken_ = std::move(callback); }

 private:
  int fd_;
  std::mutex mutex_;
  std::atomic<bool> broken_{false};
  std::function<void()> on_broken_;
};

}  // namespace hwledger::rpc
