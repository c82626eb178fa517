// hwledger: local LLM inference runtime. See ../../README.md and docs/architecture.md.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <exception>

#include "cli/commands.h"
#include "cli/config.h"
#include "util/error.h"

namespace hwledger::cli {
int& exit_code() {
  static int code = 0;
  return code;
}
}  // namespace hwledger::cli

int main(int argc, char** argv) {
  using namespace hwledger;
  // Logs go to stderr: stdout belongs to the program's output (and to JSON-RPC in engine mode).
  auto logger = spdlog::stderr_color_mt("hwledger");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("[%H:%M:%S.%e] [%^%l%$] %v");

  CLI::App app{"hwledger: local LLM inference runtime with a tiered KV cache and a memory ledger"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "hwledger 0.1.0");
  cli::add_run_command(app);
  cli::add_verify_command(app);
  cli::add_model_command(app);
  cli::add_bench_command(app);
  cli::add_bench_http_command(*app.get_subcommand("bench"));
  cli::add_tokenizer_commands(app);
  cli::add_plan_command(app);
  cli::add_engine_command(app);
  cli::add_serve_command(app);
  cli::add_env_and_config(app);
  try {
    cli::apply_config_file(app, argc, argv);
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const InputError& e) {
    std::fprintf(stderr, "hwledger: error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "hwledger: error: %s\n", e.what());
    return 1;
  }
  return cli::exit_code();
}
