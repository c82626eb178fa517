// The supervisor's side of the engine's connection reports (server/conn_watch.h): it holds a copy
// of every HTTP connection the engine serves and knows what state its request is in. When the
// engine dies (crash, kill -9, killed as hung) its copies close with it, but these keep the
// connections open, and settle() answers each unanswered request with an error in its API's
// shape — a 503 before the response started, an SSE error event inside a stream — instead of a
// cut connection. docs/process-model.md, "Requests in flight when the engine dies".
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

namespace hwledger::supervisor {

class ConnectionGuard {
 public:
  // A socket pair: fd() stays here (poll it for POLLIN), child_end() goes to the engine.
  ConnectionGuard();
  ~ConnectionGuard();  // closes every connection still held, answering none
  ConnectionGuard(const ConnectionGuard&) = delete;
  ConnectionGuard& operator=(const ConnectionGuard&) = delete;

  int fd() const { return fd_; }
  int child_end() const { return child_end_; }
  void close_child_end();  // once the engine has its copy

  // Takes every report queued on the socket (also after the engine died: they stay readable).
  void read_reports();
  // The engine is gone: every request it left unanswered gets an error whose message is
  // `message`, every connection is closed. Returns the number of requests answered.
  int settle(const std::string& message);
  size_t connections() const { return conns_.size(); }

  // What settle() writes to a connection (exposed for tests).
  enum class State { Idle, Request, Streaming };
  enum class Api { OpenAI, Anthropic };
  static std::string error_bytes(State state, Api api, const std::string& message);

 private:
  struct Conn {
    int fd = -1;
    State state = State::Idle;
    Api api = Api::OpenAI;
  };
  void on_report(std::string_view text, int passed_fd);

  int fd_ = -1, child_end_ = -1;
  std::map<uint64_t, Conn> conns_;
};

}  // namespace hwledger::supervisor
