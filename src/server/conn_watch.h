// The engine's reports to its supervisor about the HTTP connections it serves, so that the
// supervisor can answer for them if the engine dies (docs/process-model.md, "Requests in flight
// when the engine dies"). One SOCK_SEQPACKET socket, one short ASCII message per datagram:
//
//   open <id>       + a copy of the connection's fd (SCM_RIGHTS), at its first request
//   request <id> openai|anthropic   a request was read; no byte of its response is out yet
//   stream <id>     the response is an SSE stream whose headers are out: errors must be events
//   idle <id>       the response is complete
//   close <id>      the engine closed the connection
//
// Ids are per engine process and never reused. Without a socket (fd < 0) nothing is reported.
#pragma once
#include <atomic>
#include <cstdint>
#include <string>

#include "server/api_error.h"

namespace hwledger::server {

class ConnectionWatch {
 public:
  explicit ConnectionWatch(int fd);  // takes ownership of fd; -1: reports nothing
  ~ConnectionWatch();
  ConnectionWatch(const ConnectionWatch&) = delete;
  ConnectionWatch& operator=(const ConnectionWatch&) = delete;

  bool enabled() const { return fd_ >= 0 && !broken_; }
  // Reports a connection and hands the supervisor a copy of `conn_fd`; returns its id (0 when
  // nothing is reported).
  uint64_t opened(int conn_fd);
  void request(uint64_t id, ApiFlavor flavor);
  void streaming(uint64_t id);
  void idle(uint64_t id);
  void closed(uint64_t id);

 private:
  void send(const std::string& message, int pass_fd = -1);

  int fd_;
  std::atomic<bool> broken_{false};
  std::atomic<uint64_t> next_id_{0};
};

}  // namespace hwledger::server
