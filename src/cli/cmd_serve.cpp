// hwledger serve: the supervisor (src/supervisor) that runs `hwledger engine` as its child.
#include <memory>

#include "cli/commands.h"
#include "cli/engine_options.h"
#include "supervisor/supervisor.h"

namespace hwledger::cli {

void add_serve_command(CLI::App& app) {
  auto* cmd =
      app.add_subcommand("serve", "HTTP API (OpenAI/Anthropic) with a supervised engine process");
  auto flags = std::make_shared<EngineFlags>();
  auto opts = std::make_shared<supervisor::SupervisorOptions>();
  auto api_key = std::make_shared<std::string>();
  flags->default_to_cache_tiers();  // serving keeps the prefix cache on across restarts
  flags->add_to(cmd, false);
  cmd->add_option("--host", opts->host,
                  "address to listen on (default 127.0.0.1: this machine only)")
      ->envname("HWLEDGER_HOST");
  cmd->add_option("--port", opts->port, "TCP port (default 8000; 0: any free port)")
      ->envname("HWLEDGER_PORT")
      ->check(CLI::Range(0, 65535));
  cmd->add_option("--api-key", *api_key, "require this key on every route but /health")
      ->envname("HWLEDGER_API_KEY");
  cmd->add_option("--grace", opts->grace_s,
                  "seconds running requests get to finish on SIGTERM (default 30)")
      ->envname("HWLEDGER_GRACE")
      ->check(CLI::Range(0.0, 3600.0));
  cmd->add_option("--health-interval", opts->health_interval_s,
                  "seconds between engine health checks (default 1)")
      ->check(CLI::Range(0.01, 3600.0));
  cmd->add_option("--health-timeout", opts->health_timeout_s,
                  "an engine that does not answer health within this is replaced (default 5)")
      ->check(CLI::Range(0.01, 3600.0));
  cmd->add_option("--start-timeout", opts->start_timeout_s,
                  "seconds an engine may take to load (default 600)")
      ->check(CLI::Range(0.1, 86400.0));
  cmd->add_option("--max-restarts", opts->restart.max_failures,
                  "engine failures within --restart-window that stop the service (default 5)")
      ->check(CLI::Range(1, 1000));
  cmd->add_option("--restart-window", opts->restart.failure_window_s, "seconds (default 60)")
      ->check(CLI::Range(1.0, 86400.0));
  cmd->callback([flags, opts, api_key] {
    (void)flags->to_options();  // bad sizes or dtype: exit 2 here, not in a crash loop
    supervisor::SupervisorOptions o = *opts;
    o.engine_args = flags->to_args();
    // The key goes by environment, not argv: /proc/<pid>/cmdline is readable by everyone.
    if (!api_key->empty()) o.engine_env.push_back("HWLEDGER_API_KEY=" + *api_key);
    exit_code() = supervisor::Supervisor(o).run();
  });
}

}  // namespace hwledger::cli
