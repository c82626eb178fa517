// How much memory the plan is held against: --device-memory SIZE, a GPU's memory (nvidia-smi),
// or by default the local machine's RAM (/proc/meminfo MemTotal).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace hwledger::planner {

struct DeviceMemory {
  uint64_t bytes = 0;
  std::string source;            // for people: where the number came from
  bool explicit_device = false;  // given by the user or read from a GPU, not the host's RAM
};

// MemTotal of a /proc/meminfo text, in bytes. Throws InputError when it is missing or malformed.
uint64_t parse_meminfo_total(std::string_view meminfo);

// "" -> the local RAM; "gpu" or "gpu:N" -> GPU N's total memory from nvidia-smi; otherwise a
// size such as 24G (util/size.h). Throws InputError with the reason when it cannot tell.
DeviceMemory resolve_device_memory(std::string_view spec);

}  // namespace hwledger::planner
