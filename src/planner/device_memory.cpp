#include "planner/device_memory.h"

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "util/error.h"
#include "util/size.h"

namespace hwledger::planner {

uint64_t parse_meminfo_total(std::string_view meminfo) {
  std::istringstream lines{std::string(meminfo)};
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind("MemTotal:", 0) != 0) continue;
    std::istringstream fields(line.substr(9));
    uint64_t kib = 0;
    std::string unit;
    if (!(fields >> kib >> unit) || unit != "kB" || kib == 0 || kib > (uint64_t(1) << 50))
      fail_input("/proc/meminfo: cannot read MemTotal from '{}'", line);
    return kib * 1024;
  }
  fail_input("/proc/meminfo has no MemTotal line; pass --device-memory SIZE");
}

namespace {

DeviceMemory local_ram() {
  std::ifstream in("/proc/meminfo");
  if (!in) fail_input("cannot read /proc/meminfo to size the local RAM; pass --device-memory SIZE");
  std::stringstream text;
  text << in.rdbuf();
  return DeviceMemory{parse_meminfo_total(text.str()), "local RAM (/proc/meminfo MemTotal)", false};
}

DeviceMemory gpu_memory(int index) {
  // The command is built from an integer only: nothing the user typed reaches the shell.
  const std::string command =
      "nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits -i " +
      std::to_string(index) + " 2>/dev/null";
  std::FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) fail_input("--device-memory gpu: cannot run nvidia-smi; pass a size such as 24G");
  char buffer[128] = {};
  const bool read = std::fgets(buffer, sizeof buffer, pipe) != nullptr;
  const int status = pclose(pipe);
  unsigned long long mib = 0;
  if (!read || status != 0 || std::sscanf(buffer, "%llu", &mib) != 1 || mib == 0)
    fail_input(
        "--device-memory gpu:{}: nvidia-smi did not report that GPU's memory; pass a size "
        "such as 24G",
        index);
  return DeviceMemory{mib << 20, "GPU " + std::to_string(index) + " (nvidia-smi memory.total)",
                      true};
}

}  // namespace

DeviceMemory resolve_device_memory(std::string_view spec) {
  if (spec.empty()) return local_ram();
  if (spec == "gpu") return gpu_memory(0);
  if (spec.rfind("gpu:", 0) == 0) {
    const std::string index(spec.substr(4));
    if (index.empty() || index.size() > 3 ||
        index.find_first_not_of("0123456789") != std::string::npos)
      fail_input("--device-memory '{}': expected gpu or gpu:N with N a GPU index", spec);
    return gpu_memory(std::stoi(index));
  }
  const uint64_t bytes = parse_size(spec);
  if (bytes == 0) fail_input("--device-memory '{}' is zero bytes", spec);
  return DeviceMemory{bytes, "--device-memory " + std::string(spec), true};
}

}  // namespace hwledger::planner
