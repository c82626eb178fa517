// hwledger's HTTP front end: OpenAI- (/v1/models, /v1/completions, /v1/chat/completions) and
// Anthropic-compatible (/v1/messages, /v1/messages/count_tokens) APIs, /health and /metrics,
// over cpp-httplib. docs/http-api.md lists the routes, fields, errors and streaming events.
//
// The engine process serves on a listening socket that the supervisor (`hwledger serve`) bound
// and handed down (serve_fd); tests and tools can let the server bind one itself (serve).
#pragma once
#include <cstddef>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

namespace hwledger {
class ModelContext;
}

namespace hwledger::server {

class ServingBackend;

struct ServerOptions {
  std::string api_key;               // "": no authentication
  size_t max_body_bytes = 8u << 20;  // larger request bodies get 413
  int max_connections = 64;          // connections beyond this get 503 and are closed
  double request_timeout_s = 600;    // a generation running longer is cancelled
  double idle_timeout_s = 60;        // an idle keep-alive connection is closed after this
  std::string host = "127.0.0.1";
  int port = 8000;               // serve(): 0 picks a free port (see bound_port())
  double ping_interval_s = 1.0;  // keep-alive comment / Anthropic ping after this silence
  // A socket to the supervisor that receives reports of the connections (conn_watch.h), so
  // that it can answer for them if this process dies; owned by the server. -1: none.
  int watch_fd = -1;
};

class HttpServer {
 public:
  HttpServer(ModelContext& model, const ServerOptions& options);
  // Serves any backend (tests use a scripted one); `backend` must outlive the server.
  HttpServer(ServingBackend& backend, const ServerOptions& options);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Serves on an already bound and listening socket until stop(); takes ownership of the fd.
  void serve_fd(int listen_fd);
  // Binds options.host:options.port itself and serves until stop(). Throws InputError when the
  // address cannot be bound.
  void serve();
  // Binds now (so that bound_port() is known before serving); serve() then uses this socket.
  int bind();
  int bound_port() const;  // -1 before binding
  // True once serve()/serve_fd() accept connections.
  bool is_running() const;
  // Stops taking new requests (they get 503), lets running generations finish for up to
  // `drain_timeout_s` (then cancels them, so that every stream still ends with its final
  // events), closes idle connections and makes serve*() return. Safe from any thread, also
  // from a signal-handling thread; idempotent.
  void stop(double drain_timeout_s = 30);

  nlohmann::json health() const;
  std::string metrics_text() const;

 private:
  struct Impl;
  std::unique_ptr<ServingBackend> owned_backend_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace hwledger::server
