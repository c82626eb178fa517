// The engine options every model-running subcommand shares (flags and HWLEDGER_* variables).
#pragma once
#include <CLI/CLI.hpp>

#include <string>

#include "engine/engine.h"

namespace hwledger::cli {

struct EngineFlags {
  std::string model = "demo";
  int threads = 0;
  std::string kv_dtype = "f16";
  std::string max_kv_size;
  int64_t max_context = 0;

  void add_to(CLI::App* cmd, bool model_required);
  EngineOptions to_options() const;
  // Resolves "demo" to the built-in demo model (synthesized on first use) and returns a folder.
  std::string model_dir() const;
};

}  // namespace hwledger::cli
