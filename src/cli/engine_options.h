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
  std::string ram_cache;  // RAM tier size, e.g. 8G ("" or 0: no RAM tier; "auto": see below)
  std::string ssd_cache;  // SSD tier size, e.g. 64G ("" or 0: no SSD tier; "auto": see below)
  std::string device = "cpu";  // cpu | cuda | cuda:N

  // `serve` keeps the prefix cache's tiers on unless told otherwise:
  // ram_cache = ssd_cache = "auto", resolved by to_options() to a RAM tier of min(2 GiB, 1/8 of
  // the machine's memory) and an SSD tier of min(16 GiB, 1/4 of the free space) in
  // default_kv_cache_dir(). Call before add_to().
  void default_to_cache_tiers();

  void add_to(CLI::App* cmd, bool model_required);
  EngineOptions to_options() const;
  // Resolves "demo" to the built-in demo model (synthesized on first use) and returns a folder.
  std::string model_dir() const;
  // The flags that were set, as command-line arguments (to start an engine child with them).
  std::vector<std::string> to_args() const;
};

// $XDG_CACHE_HOME/hwledger/kv, else ~/.cache/hwledger/kv: the SSD tier when no --cache-dir.
std::string default_kv_cache_dir();

}  // namespace hwledger::cli
