// MistralForCausalLM: Llama's layout with sliding-window attention on every layer.
#include "model/arch/arch.h"

namespace hwledger::arch {
namespace {
void apply_mistral(const nlohmann::json& j, ModelConfig& c) {
  if (j.contains("sliding_window") && j["sliding_window"].is_number_integer()) {
    int64_t w = j["sliding_window"].get<int64_t>();
    if (w > 0) c.layer_window.assign(c.num_layers, w);
  }
}
}  // namespace
const ArchSpec kMistral{"MistralForCausalLM", "mistral", apply_mistral};
}  // namespace hwledger::arch
