#include "supervisor/conn_guard.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "util/error.h"

namespace hwledger::supervisor {

namespace {

// Closes a connection so that what was written before still reaches the client: FIN after the
// data, and the client's unread bytes drained, since close() with unread data sends a reset
// that can destroy the answer in flight.
void close_gently(int fd) {
  ::shutdown(fd, SHUT_WR);
  char sink[4096];
  for (int i = 0; i < 64 && ::recv(fd, sink, sizeof sink, MSG_DONTWAIT) > 0; ++i) {
  }
  ::close(fd);
}

}  // namespace

ConnectionGuard::ConnectionGuard() {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) != 0)
    fail("supervisor: socketpair: {}", std::strerror(errno));
  fd_ = fds[0];
  child_end_ = fds[1];
  ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) | O_NONBLOCK);
  // Room for many reports while the supervisor's loop is busy elsewhere.
  int size = 1 << 20;
  ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
}

ConnectionGuard::~ConnectionGuard() {
  for (auto& [id, conn] : conns_) ::close(conn.fd);
  close_child_end();
  if (fd_ >= 0) ::close(fd_);
}

void ConnectionGuard::close_child_end() {
  if (child_end_ >= 0) ::close(child_end_);
  child_end_ = -1;
}

void ConnectionGuard::read_reports() {
  for (;;) {
    char text[128];
    iovec iov{text, sizeof text};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 4)];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    // Close-on-exec: the next engine must not inherit (and so keep open) these connections.
    ssize_t n = ::recvmsg(fd_, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // EAGAIN, or the engine's end is closed and everything was read
    int passed = -1;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < count; ++i) {
        int fd;
        std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
        if (passed < 0)
          passed = fd;
        else
          ::close(fd);  // never more than one: do not leak extras
      }
    }
    on_report(std::string_view(text, static_cast<size_t>(n)), passed);
  }
}

void ConnectionGuard::on_report(std::string_view text, int passed_fd) {
  const size_t space = text.find(' ');
  const std::string_view verb = text.substr(0, space);
  std::string_view rest = space == std::string_view::npos ? "" : text.substr(space + 1);
  const std::string_view id_text = rest.substr(0, rest.find(' '));
  uint64_t id = 0;
  auto [end, ec] = std::from_chars(id_text.data(), id_text.data() + id_text.size(), id);
  if (ec != std::errc() || id == 0) {
    if (passed_fd >= 0) ::close(passed_fd);
    spdlog::warn("engine: bad connection report '{}'", text.substr(0, 100));
    return;
  }
  if (verb == "open") {
    if (passed_fd < 0) return spdlog::warn("engine: connection report '{}' without an fd", text);
    auto [it, fresh] = conns_.try_emplace(id, Conn{passed_fd});
    if (!fresh) ::close(passed_fd);
    return;
  }
  if (passed_fd >= 0) ::close(passed_fd);
  auto it = conns_.find(id);
  if (it == conns_.end()) return;  // a connection the engine never reported open
  Conn& conn = it->second;
  if (verb == "request") {
    conn.state = State::Request;
    conn.api = rest.substr(id_text.size()) == " anthropic" ? Api::Anthropic : Api::OpenAI;
  } else if (verb == "stream") {
    conn.state = State::Streaming;
  } else if (verb == "idle") {
    conn.state = State::Idle;
  } else if (verb == "close") {
    ::close(conn.fd);  // the engine shut it down already; this is our copy
    conns_.erase(it);
  }
}

std::string ConnectionGuard::error_bytes(State state, Api api, const std::string& message) {
  nlohmann::ordered_json body;
  if (api == Api::Anthropic) {
    body["type"] = "error";
    body["error"] = {{"type", "api_error"}, {"message", message}};
  } else {
    body["error"] = {{"message", message},
                     {"type", "server_error"},
                     {"param", nullptr},
                     {"code", "engine_unavailable"}};
  }
  const std::string json = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (state == State::Request) {
    // Retry-After: the SDKs retry a 503 by themselves, and the next engine is starting.
    return fmt::format(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        "Content-Length: {}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n{}",
        json.size(), json);
  }
  // The same events the engine sends for an error after a stream started (http-api.md), as one
  // chunk, then the chunked body's end.
  const std::string event = api == Api::Anthropic ? "event: error\ndata: " + json + "\n\n"
                                                  : "data: " + json + "\n\ndata: [DONE]\n\n";
  return fmt::format("{:x}\r\n{}\r\n0\r\n\r\n", event.size(), event);
}

int ConnectionGuard::settle(const std::string& message) {
  read_reports();
  int answered = 0;
  for (auto& [id, conn] : conns_) {
    if (conn.state == State::Idle) {
      // A request the engine never read (the next one on a keep-alive connection) is answered
      // too; the path tells its API.
      char head[64];
      const ssize_t n = ::recv(conn.fd, head, sizeof head, MSG_PEEK | MSG_DONTWAIT);
      if (n > 0) {
        const std::string_view line(head, static_cast<size_t>(n));
        conn.state = State::Request;
        conn.api =
            line.find(" /v1/messages") != std::string_view::npos ? Api::Anthropic : Api::OpenAI;
      }
    }
    if (conn.state != State::Idle) {
      const std::string bytes = error_bytes(conn.state, conn.api, message);
      // Small, into an idle socket's send buffer: one non-blocking send; a client that stopped
      // reading loses it and still sees the connection close.
      if (::send(conn.fd, bytes.data(), bytes.size(), MSG_DONTWAIT | MSG_NOSIGNAL) > 0) ++answered;
    }
    close_gently(conn.fd);
  }
  conns_.clear();
  return answered;
}

}  // namespace hwledger::supervisor
