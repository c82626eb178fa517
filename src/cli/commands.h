// Each subcommand registers itself on the CLI11 app from its own cmd_<name>.cpp.
#pragma once
#include <CLI/CLI.hpp>

namespace hwledger::cli {

// Set by a subcommand's callback; main() returns it.
int& exit_code();

void add_run_command(CLI::App& app);        // cmd_run.cpp
void add_verify_command(CLI::App& app);     // cmd_verify.cpp
void add_model_command(CLI::App& app);      // cmd_model.cpp   (model synth)
void add_bench_command(CLI::App& app);      // cmd_bench.cpp
void add_bench_http_command(CLI::App& bench);  // cmd_bench_http.cpp (bench http)
void add_tokenizer_commands(CLI::App& app); // cmd_tokenizer.cpp (tokenize, detokenize, verify-tokenizer)
void add_plan_command(CLI::App& app);       // cmd_plan.cpp
void add_engine_command(CLI::App& app);     // cmd_engine.cpp  (engine --stdio: JSON-RPC sidecar)
void add_serve_command(CLI::App& app);      // cmd_serve.cpp   (serve: supervisor + engine)

}  // namespace hwledger::cli
