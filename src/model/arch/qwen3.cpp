// Qwen3ForCausalLM: per-head RMSNorm on q and k before RoPE; head_dim set independently of
// hidden_size; optional attention_bias on q/k/v/o.
#include "model/arch/arch.h"

namespace hwledger::arch {
void apply_qwen_sliding_window(const nlohmann::json& j, ModelConfig& c);  // qwen2.cpp

namespace {
void apply_qwen3(const nlohmann::json& j, ModelConfig& c) {
  c.qk_norm = true;
  bool attention_bias = j.value("attention_bias", false);
  c.qkv_bias = attention_bias;
  c.o_bias = attention_bias;
  apply_qwen_sliding_window(j, c);
}
}  // namespace
const ArchSpec kQwen3{"Qwen3ForCausalLM", "qwen3", apply_qwen3};
}  // namespace hwledger::arch
