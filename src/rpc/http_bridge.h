// The engine's HTTP side in `serve` mode: the supervisor passes its listening socket (fd 3) and
// the engine serves the OpenAI/Anthropic API on it (src/server) on a thread of its own, so the
// port stays open across engine restarts.
#pragma once
#include <memory>
#include <string>
#include <thread>

namespace hwledger {
class ModelContext;
namespace server {
class HttpServer;
}
}  // namespace hwledger

namespace hwledger::rpc {

struct HttpBridgeOptions {
  std::string api_key;  // empty: no authentication
  std::string host;     // for logs: what the supervisor bound
  int port = 0;
  int watch_fd = -1;  // connection reports to the supervisor (server/conn_watch.h); -1: none
};

class HttpBridge {
 public:
  // Starts serving `listen_fd` (a bound, listening socket; the bridge owns it from now on).
  // Throws when the server cannot start.
  HttpBridge(ModelContext& context, int listen_fd, const HttpBridgeOptions& options);
  ~HttpBridge();  // stop() and join
  HttpBridge(const HttpBridge&) = delete;
  HttpBridge& operator=(const HttpBridge&) = delete;

  // Stops taking new requests (503), lets running generations finish for up to
  // `drain_timeout_s`, then ends the server's loop. Blocks; idempotent.
  void stop(double drain_timeout_s);
  // False when this build has no HTTP server (src/server missing): the socket is only held.
  static bool available();

 private:
  int listen_fd_;
  std::unique_ptr<server::HttpServer> server_;
  std::thread thread_;
};

}  // namespace hwledger::rpc
