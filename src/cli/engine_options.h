// The engine options every model-running subcommand shares (flags and HWLEDGER_* variables).
#pragma once
#include <CLI/CLI.hpp>

#include <string>
#include <vector>

#include "engine/engine.h"

namespace hwledger::cli {

struct EngineFlags {
  std::string model = "demo";
  int threads = 0;
  std::string kv_dtype = "f16";
  std::string max_kv_size;
  int64_t max_context = 0;
  std::string cache_dir;  // SSD tier folder (KVCacheOptions::cache_dir)
  std::string ram_cache;  // RAM tier size, e.g. 8G ("" or 0: no RAM tier)
  std::string ssd_cache;  // SSD tier size, e.g. 64G ("" or 0: no SSD tier)
  std::string device = "cpu";  // cpu | cuda | cuda:N

  void add_to(CLI::App* cmd, bool model_required);
  EngineOptions to_options() const;
  // Resolves "demo" to the built-in demo model (synthesized on first use) and returns a folder.
  std::string model_dir() const;
  // The flags that were set, as command-line arguments (to start an engine child with them).
  std::vector<std::string> to_args() const;
};

}  // namespace hwledger::cli
