#include "cli/engine_options.h"

#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>

#include "util/size.h"

namespace hwledger::cli {

std::string demo_model_dir();  // cmd_model.cpp

namespace {

constexpr uint64_t kGiB = uint64_t{1} << 30;

// "auto": min(2 GiB, 1/8 of physical memory).
uint64_t auto_ram_tier() {
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGE_SIZE);
  const uint64_t memory = pages > 0 && page > 0 ? uint64_t(pages) * uint64_t(page) : 0;
  return std::min<uint64_t>(2 * kGiB, memory / 8);
}

// "auto": min(16 GiB, 1/4 of the free space of the folder's file system); 0 if the folder
// cannot be made (the engine then runs without an SSD tier rather than failing to start).
uint64_t auto_ssd_tier(const std::string& dir) {
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  struct statvfs fs {};
  if (error || ::statvfs(dir.c_str(), &fs) != 0) return 0;
  return std::min<uint64_t>(16 * kGiB, uint64_t(fs.f_bavail) * fs.f_frsize / 4);
}

}  // namespace

std::string default_kv_cache_dir() {
  const char* xdg = std::getenv("XDG_CACHE_HOME");
  const char* home = std::getenv("HOME");
  const std::filesystem::path base =
      xdg && *xdg ? std::filesystem::path(xdg)
                  : std::filesystem::path(home && *home ? home : "/tmp") / ".cache";
  return (base / "hwledger" / "kv").string();
}

void EngineFlags::default_to_cache_tiers() {
  ram_cache = "auto";
  ssd_cache = "auto";
}

void EngineFlags::add_to(CLI::App* cmd, bool model_required) {
  auto* m = cmd->add_option("--model", model, "model folder (Hugging Face layout), or 'demo'")
                ->envname("HWLEDGER_MODEL");
  if (model_required) m->required();
  cmd->add_option("--threads", threads, "compute threads (default: one per core)")
      ->envname("HWLEDGER_THREADS");
  cmd->add_option("--kv-dtype", kv_dtype,
                  "KV cache element type: f16 (default), bf16, f32, q8_0, q4_0, fp8 (e4m3)")
      ->envname("HWLEDGER_KV_DTYPE");
  cmd->add_option("--max-kv-size", max_kv_size, "working-memory KV budget, e.g. 2G")
      ->envname("HWLEDGER_MAX_KV_SIZE");
  cmd->add_option("--max-context", max_context, "longest sequence in tokens")
      ->envname("HWLEDGER_MAX_CONTEXT");
  const bool tiers = ram_cache == "auto";  // the serving commands' default
  cmd->add_option("--cache-dir", cache_dir,
                  tiers ? "folder of the persistent SSD tier of the KV cache (default: "
                          "~/.cache/hwledger/kv)"
                        : "folder of the persistent SSD tier of the KV cache")
      ->envname("HWLEDGER_CACHE_DIR");
  cmd->add_option("--ram-cache", ram_cache,
                  tiers
                      ? "RAM tier of the KV cache, e.g. 8G; 0: none (default: auto, min(2G, RAM/8))"
                      : "RAM tier of the KV cache, e.g. 8G")
      ->envname("HWLEDGER_RAM_CACHE");
  cmd->add_option("--ssd-cache", ssd_cache,
                  tiers ? "SSD tier of the KV cache, e.g. 64G; 0: none (default: auto, min(16G, a "
                          "quarter of the free disk))"
                        : "SSD tier of the KV cache, e.g. 64G")
      ->envname("HWLEDGER_SSD_CACHE");
  cmd->add_option("--device", device, "where the model runs: cpu (default), cuda or cuda:N")
      ->envname("HWLEDGER_DEVICE");
}

EngineOptions EngineFlags::to_options() const {
  EngineOptions o;
  o.threads = threads;
  o.kv_dtype = parse_kv_dtype(kv_dtype);
  if (!max_kv_size.empty()) o.max_kv_bytes = parse_size(max_kv_size);
  o.max_context = max_context;
  o.cache.cache_dir = cache_dir;
  if (o.cache.cache_dir.empty() && !ssd_cache.empty()) o.cache.cache_dir = default_kv_cache_dir();
  if (ram_cache == "auto")
    o.cache.ram_bytes = auto_ram_tier();
  else if (!ram_cache.empty())
    o.cache.ram_bytes = parse_size(ram_cache);
  if (ssd_cache == "auto")
    o.cache.ssd_bytes = auto_ssd_tier(o.cache.cache_dir);
  else if (!ssd_cache.empty())
    o.cache.ssd_bytes = parse_size(ssd_cache);
  parse_device(device, o.device, o.device_index);
  return o;
}

std::string EngineFlags::model_dir() const {
  return model == "demo" ? demo_model_dir() : model;
}

std::vector<std::string> EngineFlags::to_args() const {
  std::vector<std::string> args = {"--model", model, "--kv-dtype", kv_dtype};
  auto add = [&](const char* flag, const std::string& value) {
    if (!value.empty()) args.insert(args.end(), {flag, value});
  };
  if (threads > 0) add("--threads", std::to_string(threads));
  if (max_context > 0) add("--max-context", std::to_string(max_context));
  add("--max-kv-size", max_kv_size);
  add("--cache-dir", cache_dir);
  add("--ram-cache", ram_cache);
  add("--ssd-cache", ssd_cache);
  if (device != "cpu") add("--device", device);
  return args;
}

}  // namespace hwledger::cli
