#include "rpc/http_bridge.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <utility>

// HWLEDGER_HAVE_HTTP_SERVER is defined by CMake when the hw_server component exists.
#if defined(HWLEDGER_HAVE_HTTP_SERVER) && __has_include("server/http_server.h")
#include "server/http_server.h"
#define HWLEDGER_HTTP 1
#else
#define HWLEDGER_HTTP 0
namespace hwledger::server {
class HttpServer {};  // stands in until src/server is built (see available())
}  // namespace hwledger::server
#endif

#include "sched/model_context.h"

namespace hwledger::rpc {

bool HttpBridge::available() {
  return HWLEDGER_HTTP;
}

HttpBridge::HttpBridge(ModelContext& context, int listen_fd, const HttpBridgeOptions& options)
    : listen_fd_(listen_fd) {
#if HWLEDGER_HTTP
  server::ServerOptions server_options;
  server_options.api_key = options.api_key;
  server_options.host = options.host;
  server_options.port = options.port;
  server_options.watch_fd = options.watch_fd;
  server_ = std::make_unique<server::HttpServer>(context, server_options);
  int fd = std::exchange(listen_fd_, -1);  // serve_fd owns it
  thread_ = std::thread([this, fd] {
    try {
      server_->serve_fd(fd);
    } catch (const std::exception& e) {
      spdlog::error("HTTP server stopped: {}", e.what());
    }
  });
  spdlog::info("serving HTTP for '{}' on {}:{} (inherited socket fd {})", context.name(),
               options.host, options.port, fd);
#else
  // TODO(serving issue): remove once src/server (HttpServer::serve_fd) is in the build.
  spdlog::warn(
      "this build has no HTTP server (src/server): holding {}:{} without serving it; "
      "use the JSON-RPC interface",
      options.host, options.port);
#endif
}

void HttpBridge::stop(double drain_timeout_s) {
#if HWLEDGER_HTTP
  if (server_) server_->stop(drain_timeout_s);
#endif
}

HttpBridge::~HttpBridge() {
  stop(0);
  if (thread_.joinable()) thread_.join();
  server_.reset();
  if (listen_fd_ >= 0) ::close(listen_fd_);
}

}  // namespace hwledger::rpc
