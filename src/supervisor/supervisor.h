// `hwledger serve`: the supervisor. It binds the HTTP port, starts the engine as a child
// (`hwledger engine --stdio --listen-fd 3 ...`, the socket as fd 3), checks `health` over the
// engine's JSON-RPC pipes, restarts a dead or hung engine with backoff, forwards its stderr into
// its own log, reaps every child, and on SIGTERM/SIGINT shuts the engine down in order.
// docs/process-model.md describes the policy.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "supervisor/restart_policy.h"

namespace hwledger::supervisor {

struct SupervisorOptions {
  std::string host = "127.0.0.1";
  int port = 8000;  // 0: a free port (logged)
  std::string engine_program = "/proc/self/exe";
  std::vector<std::string> engine_args;  // appended to `hwledger engine --stdio --listen-fd 3 ...`
  std::vector<std::string> engine_env;   // NAME=value for the engine only (the API key)
  double health_interval_s = 1;          // between health checks of a ready engine
  double health_timeout_s = 5;           // no answer within this: hung, killed and replaced
  double start_timeout_s = 600;          // from start to ready (model load included)
  double grace_s = 30;                   // SIGTERM: running requests may finish within this
  RestartPolicyOptions restart;
};

class Supervisor {
 public:
  explicit Supervisor(SupervisorOptions options);
  ~Supervisor();

  // Binds the port (InputError when it cannot), then supervises. Returns the exit code: 0 after
  // an orderly stop on SIGTERM/SIGINT/SIGHUP; 1 on a crash loop, an engine that cannot start, or
  // a stop that had to kill the engine.
  int run();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace hwledger::supervisor
