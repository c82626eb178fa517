// Environment variables and the config file for every option of every subcommand.
//
// Each option --some-name also reads HWLEDGER_SOME_NAME, and may be set in a config file
// (`--config FILE` or HWLEDGER_CONFIG): TOML/INI `some-name = value` lines at the top apply to
// every subcommand, lines under `[serve]` (or `[bench.agent-loop]`) only to that subcommand and
// win over the top. Precedence: command line > environment > config file > built-in default.
#pragma once
#include <CLI/CLI.hpp>

namespace hwledger::cli {

// Gives every long option of every subcommand that has none its HWLEDGER_* variable, and adds
// --config to every subcommand. Call after all subcommands are registered.
void add_env_and_config(CLI::App& app);

// Reads the config file named by argv's --config or HWLEDGER_CONFIG (none: nothing to do) and
// sets the HWLEDGER_* variable of each of its options that the environment does not already set,
// so that CLI11's parse sees them with the environment's (lower) precedence. Throws InputError
// for a missing file or an option no subcommand has.
void apply_config_file(CLI::App& app, int argc, const char* const* argv);

}  // namespace hwledger::cli
