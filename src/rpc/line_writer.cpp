#include "rpc/line_writer.h"

#include <unistd.h>

#include <cerrno>
#include <string>

namespace hwledger::rpc {

bool LineWriter::write(const json& message) {
  std::string line = to_line(message);
  line.push_back('\n');
  bool failed = false;
  {
    std::lock_guard lock(mutex_);
    if (broken_) return false;
    const char* data = line.data();
    size_t left = line.size();
    while (left > 0) {
      ssize_t n = ::write(fd_, data, left);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        failed = true;
        broken_ = true;
        break;
      }
      data += n;
      left -= static_cast<size_t>(n);
    }
  }
  if (failed && on_broken_) on_broken_();
  return !failed;
}

}  // namespace hwledger::rpc
