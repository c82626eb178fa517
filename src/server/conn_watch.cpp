#include "server/conn_watch.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace hwledger::server {

ConnectionWatch::ConnectionWatch(int fd) : fd_(fd) {
  if (fd_ < 0) return;
  ::fcntl(fd_, F_SETFD, FD_CLOEXEC);  // a program the engine runs must not hold it
  // A supervisor that stops reading must not freeze the connection threads for long.
  timeval tv{1, 0};
  ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

ConnectionWatch::~ConnectionWatch() {
  if (fd_ >= 0) ::close(fd_);
}

uint64_t ConnectionWatch::opened(int conn_fd) {
  if (!enabled() || conn_fd < 0) return 0;
  const uint64_t id = ++next_id_;
  send("open " + std::to_string(id), conn_fd);
  return id;
}

void ConnectionWatch::request(uint64_t id, ApiFlavor flavor) {
  if (id != 0)
    send("request " + std::to_string(id) +
         (flavor == ApiFlavor::Anthropic ? " anthropic" : " openai"));
}

void ConnectionWatch::streaming(uint64_t id) {
  if (id != 0) send("stream " + std::to_string(id));
}

void ConnectionWatch::idle(uint64_t id) {
  if (id != 0) send("idle " + std::to_string(id));
}

void ConnectionWatch::closed(uint64_t id) {
  if (id != 0) send("close " + std::to_string(id));
}

void ConnectionWatch::send(const std::string& message, int pass_fd) {
  if (!enabled()) return;
  iovec iov{const_cast<char*>(message.data()), message.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  if (pass_fd >= 0) {
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
  }
  ssize_t n;
  do {
    n = ::sendmsg(fd_, &msg, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n < 0 && !broken_.exchange(true))  // the supervisor is gone or stuck: serve on, unwatched
    spdlog::warn("connection reports to the supervisor stopped: {}", std::strerror(errno));
}

}  // namespace hwledger::server
