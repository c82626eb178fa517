// Launch flags for other runtimes that match a plan (`hwledger plan --export ...`): only flags
// those programs really accept, and a refusal naming the option when they cannot do what the
// plan assumes (vLLM has no q8_0 KV cache, llama.cpp no fp8 weights, ...).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "planner/memory_plan.h"

namespace hwledger::planner {

enum class ExportTarget { kVllm, kLlamaCpp, kHwledger };

ExportTarget parse_export_target(std::string_view text);  // "vllm", "llama.cpp", "hwledger"
std::string_view to_string(ExportTarget target);

struct ExportContext {
  std::string model_path;     // the model folder as the user named it
  uint64_t device_bytes = 0;  // 0: unknown; vLLM's --gpu-memory-utilization is then left out
};

struct ExportCommand {
  ExportTarget target = ExportTarget::kVllm;
  std::vector<std::string> argv;     // program and its arguments
  std::vector<std::string> notes;    // what the user must do or know besides running it
  std::string command_line() const;  // argv joined, each argument shell-quoted when it needs it
};

ExportCommand export_command(ExportTarget target, const MemoryPlan& plan,
                             const ExportContext& context);

}  // namespace hwledger::planner
