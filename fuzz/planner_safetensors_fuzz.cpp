// libFuzzer target: arbitrary bytes as a safetensors header (the planner's header-only reader).
// The first 8 bytes give the data-section size the header is checked against.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "planner/checkpoint.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 8) return 0;
  uint64_t data_bytes = 0;
  std::memcpy(&data_bytes, data, 8);
  const std::string_view header(reinterpret_cast<const char*>(data + 8), size - 8);
  try {
    hwledger::planner::Checkpoint checkpoint;
    checkpoint.tensors = hwledger::planner::parse_safetensors_header(header, data_bytes, "fuzz");
    hwledger::planner::PlanModel model;
    hwledger::planner::apply_checkpoint(model, checkpoint);
  } catch (const hwledger::InputError&) {
  }
  return 0;
}
