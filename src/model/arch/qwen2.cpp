// Qwen2ForCausalLM (Qwen2, Qwen2.5): bias on q/k/v (not o), optional sliding window on the
// layers from max_window_layers on.
#include "model/arch/arch.h"

namespace hwledger::arch {

// Shared by Qwen2 and Qwen3: `layer_types` (newer configs) or use_sliding_window with
// max_window_layers (older ones) say which layers use the sliding window.
void apply_qwen_sliding_window(const nlohmann::json& j, ModelConfig& c) {
  int64_t w = j.contains("sliding_window") && j["sliding_window"].is_number_integer()
                  ? j["sliding_window"].get<int64_t>()
                  : 0;
  if (w <= 0) return;
  if (j.contains("layer_types") && j["layer_types"].is_array()) {
    c.layer_window.assign(c.num_layers, 0);
    const auto& types = j["layer_types"];
    for (size_t i = 0; i < types.size() && i < c.layer_window.size(); ++i)
      if (types[i].is_string() && types[i].get<std::string>() == "sliding_attention")
        c.layer_window[i] = w;
    return;
  }
  if (!j.value("use_sliding_window", false)) return;
  int64_t first = j.value("max_window_layers", c.num_layers);
  c.layer_window.assign(c.num_layers, 0);
  for (int64_t i = first; i < c.num_layers; ++i) c.layer_window[i] = w;
}

namespace {
void apply_qwen2(const nlohmann::json& j, ModelConfig& c) {
  c.qkv_bias = true;
  apply_qwen_sliding_window(j, c);
}
}  // namespace
const ArchSpec kQwen2{"Qwen2ForCausalLM", "qwen2", apply_qwen2};
}  // namespace hwledger::arch
