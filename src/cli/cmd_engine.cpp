// hwledger engine --stdio: the JSON-RPC sidecar (src/rpc; protocol in docs/process-model.md).
#include <memory>

#include "cli/commands.h"
#include "cli/engine_options.h"
#include "rpc/stdio_engine.h"
#include "util/error.h"

namespace hwledger::cli {

std::string demo_model_dir();  // cmd_model.cpp

void add_engine_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("engine",
                                 "the inference engine as a sidecar: JSON-RPC 2.0 on stdin/stdout");
  auto flags = std::make_shared<EngineFlags>();
  auto opts = std::make_shared<rpc::StdioEngineOptions>();
  // The only transport so far; required so that `hwledger engine` alone explains itself. (The
  // callback keeps `stdio` alive: CLI11 writes the flag's value during parsing.)
  auto stdio = std::make_shared<bool>(false);
  cmd->add_flag("--stdio", *stdio,
                "speak JSON-RPC on stdin/stdout (one object per line); logs go to stderr")
      ->required();
  flags->add_to(cmd, false);
  cmd->add_option("--listen-fd", opts->listen_fd,
                  "also serve HTTP on this inherited listening socket (set by `hwledger serve`)");
  cmd->add_option("--conn-watch-fd", opts->http.watch_fd,
                  "HTTP: report connections on this inherited socket, so that the supervisor can "
                  "answer them if the engine dies (set by `hwledger serve`)");
  cmd->add_option("--api-key", opts->http.api_key, "HTTP: require this key (Bearer or x-api-key)")
      ->envname("HWLEDGER_API_KEY");
  cmd->add_option("--host", opts->http.host, "HTTP: the address the socket is bound to (for logs)");
  cmd->add_option("--port", opts->http.port, "HTTP: the port the socket is bound to (for logs)");
  cmd->add_option("--drain-timeout", opts->drain_timeout_s,
                  "seconds running requests get to finish at shutdown (default 30)")
      ->check(CLI::Range(0.0, 3600.0));
  cmd->add_option("--max-line-bytes", opts->max_line_bytes,
                  "longest request line accepted (default 16 MiB)")
      ->check(CLI::Range(size_t{1024}, size_t{1} << 30));
  cmd->callback([cmd, flags, opts, stdio] {
    rpc::StdioEngineOptions o = *opts;
    o.service.engine = flags->to_options();  // checks sizes and dtype now: InputError -> exit 2
    o.service.resolve_model = [](const std::string& model) {
      return model == "demo" ? demo_model_dir() : model;
    };
    // A model is loaded at start when one was named (flag or HWLEDGER_MODEL) or HTTP is served.
    if (cmd->get_option("--model")->count() > 0 || o.listen_fd >= 0) o.model = flags->model;
    exit_code() = rpc::run_stdio_engine(o);
  });
}

}  // namespace hwledger::cli
