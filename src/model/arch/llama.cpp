// LlamaForCausalLM (Llama 2, 3, 3.1, 3.2): optional attention/MLP biases, Llama 3 rope scaling.
#include "model/arch/arch.h"

namespace hwledger::arch {
namespace {
void apply_llama(const nlohmann::json& j, ModelConfig& c) {
  bool attention_bias = j.value("attention_bias", false);
  c.qkv_bias = attention_bias;
  c.o_bias = attention_bias;
  c.mlp_bias = j.value("mlp_bias", false);
}
}  // namespace
const ArchSpec kLlama{"LlamaForCausalLM", "llama", apply_llama};
}  // namespace hwledger::arch
