// `hwledger engine --stdio`: the sidecar process. Reads JSON-RPC lines on stdin, writes replies
// and notifications on stdout (nothing else: the process's fd 1 is pointed at stderr, and the
// protocol keeps a private copy), logs on stderr. Exits 0 after `shutdown`, SIGTERM/SIGINT/SIGHUP,
// end of stdin or the death of its parent, each time after draining the running requests.
#pragma once
#include <optional>
#include <string>

#include "rpc/engine_service.h"
#include "rpc/http_bridge.h"
#include "rpc/line_splitter.h"

namespace hwledger::rpc {

struct StdioEngineOptions {
  EngineServiceOptions service;
  std::optional<std::string> model;  // loaded at start (required with listen_fd)
  int listen_fd = -1;                // an inherited listening socket to serve HTTP on
  HttpBridgeOptions http;
  double drain_timeout_s = 30;  // grace period for running requests at shutdown
  size_t max_line_bytes = kDefaultMaxLineBytes;
  int in_fd = 0, out_fd = 1;
};

// Runs until shutdown; returns the process's exit code (0; 2 when the start model failed to load).
int run_stdio_engine(const StdioEngineOptions& options);

}  // namespace hwledger::rpc
