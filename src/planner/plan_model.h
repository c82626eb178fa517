// What the planner knows about a model: its layers, each with the tensors it holds and the
// geometry of its cache, derived from a Hugging Face config.json (and, when the weights are
// present, corrected by their safetensors headers). Nothing here depends on the engine: the
// planner also plans architectures the engine cannot run.
#pragma once
#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "planner/formats.h"

namespace hwledger::planner {

// How a layer mixes tokens, which decides what it caches.
enum class LayerKind {
  kAttention,         // full causal attention: K and V for every token
  kSlidingAttention,  // attention over the last `sliding_window` tokens only
  kMla,               // DeepSeek multi-head latent attention: one compressed latent + rope key
  kMamba,             // Mamba-1 selective SSM: fixed conv + SSM state per sequence
  kMamba2,            // Mamba-2 (SSD): fixed conv + SSM state per sequence
};
enum class FfnKind { kDense, kMoe, kNone };

std::string_view to_string(LayerKind kind);
std::string_view to_string(FfnKind kind);

struct PlanTensor {
  std::string name;            // as in the checkpoint; "{e}" stands for an expert index
  std::vector<int64_t> shape;  // as in the checkpoint: [out_features, in_features] for a Linear
  bool quantizable = true;     // projection matrices take the weight format; vectors do not
  int64_t copies = 1;          // identical tensors, e.g. one per expert

  int64_t parameters() const;
  int64_t row_elements() const { return shape.empty() ? 1 : shape.back(); }
  int64_t rows() const;  // product of all but the last dimension, times copies
};

struct PlanLayer {
  int index = 0;
  LayerKind kind = LayerKind::kAttention;
  FfnKind ffn = FfnKind::kDense;

  // Attention geometry (kAttention, kSlidingAttention).
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;        // of queries and keys
  int64_t v_head_dim = 0;      // of values
  int64_t sliding_window = 0;  // tokens a query sees; 0 = unbounded

  // MLA geometry (kMla): the cache holds kv_lora_rank + qk_rope_head_dim values per token.
  int64_t kv_lora_rank = 0;
  int64_t qk_rope_head_dim = 0;

  // Recurrent state (kMamba, kMamba2), per sequence, in values.
  int64_t conv_state_elements = 0;  // (d_conv - 1) x conv channels
  int64_t ssm_state_elements = 0;   // d_inner x d_state

  // Activations of one token inside this layer during prefill, in values (see docs/planner.md).
  int64_t mixer_activations_per_token = 0;
  int64_t ffn_activations_per_token = 0;

  std::vector<PlanTensor> tensors;

  int64_t parameters() const;
};

struct PlanModel {
  std::string architecture;  // "LlamaForCausalLM", ...
  std::string model_type;    // "llama", ...
  int64_t hidden_size = 0;
  int64_t vocab_size = 0;
  int64_t max_position_embeddings = 0;  // 0 when the config does not say
  bool tied_embeddings = false;
  std::optional<WeightFormat> native_format;  // from torch_dtype / quantization_config

  std::vector<PlanLayer> layers;
  std::vector<PlanTensor> embedding;  // token embeddings
  std::vector<PlanTensor> lm_head;    // empty when tied to the embeddings
  std::vector<PlanTensor> other;      // final norm, and checkpoint tensors outside the layers

  std::string parameters_source = "config";  // "safetensors" once a checkpoint header was read
  int64_t unplanned_parameters = 0;          // in the checkpoint but not loaded for inference (MTP)
  std::vector<std::string> notes;            // things a user should know about this plan

  int64_t parameters() const;  // everything planned: layers + embedding + lm_head + other
  int64_t embedding_parameters() const;
  int64_t lm_head_parameters() const;
};

// Builds the plan model from a parsed config.json. Throws InputError naming the field when a
// field the architecture needs is missing, zero, of the wrong type or inconsistent (e.g.
// num_attention_heads not divisible by num_key_value_heads), and for architectures it does not
// know (the message lists those it does).
PlanModel parse_plan_model(const nlohmann::json& config);

}  // namespace hwledger::planner
