// A model described as data: one ModelConfig covers every supported decoder architecture.
// What differs between architectures (biases, q/k norm, rope flavours) is a field here,
// filled from config.json by the architecture's own file in model/arch/.
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "ops/dtype.h"
#include "ops/paged_kv.h"

namespace hwledger {

enum class RopeType { Default, Linear, Llama3 };

struct RopeConfig {
  RopeType type = RopeType::Default;
  double theta = 10000.0;
  double factor = 1.0;               // linear and llama3
  double low_freq_factor = 1.0;      // llama3
  double high_freq_factor = 4.0;     // llama3
  int64_t original_max_position = 8192;  // llama3
};

struct ModelConfig {
  std::string architecture;  // as in config.json, e.g. "Qwen3ForCausalLM"
  std::string model_type;    // "llama", "mistral", "qwen2", "qwen3"

  int64_t vocab_size = 0;
  int64_t hidden_size = 0;        // H
  int64_t intermediate_size = 0;  // F (the MLP's inner width)
  int64_t num_layers = 0;         // L
  int64_t num_heads = 0;          // nh (query heads)
  int64_t num_kv_heads = 0;       // nkv (key/value heads; nh % nkv == 0)
  int64_t head_dim = 0;           // hd (may differ from H / nh, as in Qwen3)
  int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  RopeConfig rope;

  bool tie_word_embeddings = false;
  bool qkv_bias = false;     // bias on q/k/v projections (Qwen2; Llama's attention_bias)
  bool o_bias = false;       // bias on the output projection (Llama's attention_bias)
  bool mlp_bias = false;     // bias on gate/up/down (Llama's mlp_bias)
  bool qk_norm = false;      // per-head RMSNorm on q and k before RoPE (Qwen3)
  // Sliding-window attention: a layer with window w > 0 lets position p see keys in
  // (p - w, p]. Empty or all zeros means full causal attention.
  std::vector<int64_t> layer_window;

  std::vector<int32_t> eos_token_ids;
  int32_t bos_token_id = -1;

  int64_t q_dim() const { return num_heads * head_dim; }
  int64_t kv_dim() const { return num_kv_heads * head_dim; }
  // The paged KV cache's layout for this model (ops/paged_kv.h).
  KVLayout kv_layout(int64_t block_tokens, DType dtype) const {
    return KVLayout{num_layers, num_kv_heads, head_dim, block_tokens, dtype};
  }
  int64_t window(int64_t layer) const {
    return layer < static_cast<int64_t>(layer_window.size()) ? layer_window[layer] : 0;
  }

  // Parses and validates a Hugging Face config.json. Throws InputError naming the field.
  static ModelConfig from_json(const nlohmann::json& j);
  static ModelConfig from_file(const std::string& path);
  // The config in a canonical JSON form (for the model fingerprint and reports).
  nlohmann::json to_json() const;
};

// Architectures the engine runs, one file each under model/arch/.
struct ArchSpec {
  const char* architecture;  // config.json "architectures"[0]
  const char* model_type;
  void (*apply)(const nlohmann::json& j, ModelConfig& c);  // architecture-specific fields
};
const std::vector<ArchSpec>& supported_architectures();

}  // namespace hwledger
