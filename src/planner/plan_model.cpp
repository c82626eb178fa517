#include "planner/plan_model.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <set>

#include "util/error.h"

namespace hwledger::planner {

using nlohmann::json;

namespace {

// Any integer read from a config stays below kMaxDimension; sizes (hidden, heads, vocab, ranks,
// experts, windows) below kMaxSize, so that sums of products of two stay far from int64
// overflow. Products of three (experts x rows x columns) are checked where they are formed.
constexpr int64_t kMaxDimension = int64_t{1} << 31;
constexpr int64_t kMaxSize = int64_t{1} << 24;
constexpr int64_t kMaxLayers = 16384;

int64_t checked_mul(std::initializer_list<int64_t> factors) {
  int64_t out = 1;
  for (int64_t f : factors)
    if (__builtin_mul_overflow(out, f, &out)) fail_input("config.json: tensor sizes overflow");
  return out;
}

int64_t checked_add(int64_t a, int64_t b) {
  int64_t out = 0;
  if (__builtin_add_overflow(a, b, &out)) fail_input("config.json: parameter count overflows");
  return out;
}

int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

// Reads fields of one config object; every error names the field as the user wrote it.
class ConfigReader {
 public:
  ConfigReader(const json& object, std::string prefix, std::string model_type)
      : object_(object), prefix_(std::move(prefix)), model_type_(std::move(model_type)) {}

  const json& raw() const { return object_; }
  std::string field(std::string_view key) const { return prefix_ + std::string(key); }

  bool has(std::string_view key) const {
    auto it = object_.find(key);
    return it != object_.end() && !it->is_null();
  }

  int64_t positive(std::string_view key) const {
    if (!has(key))
      fail_input("config.json: missing required field \"{}\" (model_type \"{}\")", field(key),
                 model_type_);
    return check_positive(key, integer(key));
  }

  // A layer count: real models have a few hundred at most; the cap keeps a hostile config from
  // making the planner enumerate billions of layers.
  int64_t layer_count(std::string_view key) const {
    const int64_t layers = positive(key);
    if (layers > kMaxLayers)
      fail_input("config.json: \"{}\" is {}; the planner plans at most {} layers", field(key),
                 layers, kMaxLayers);
    return layers;
  }

  int64_t positive_or(std::string_view key, int64_t fallback) const {
    return has(key) ? check_positive(key, integer(key)) : fallback;
  }

  int64_t non_negative_or(std::string_view key, int64_t fallback) const {
    if (!has(key)) return fallback;
    int64_t value = integer(key);
    if (value < 0)
      fail_input("config.json: \"{}\" is {}; it must not be negative", field(key), value);
    return value;
  }

  bool flag(std::string_view key, bool fallback) const {
    if (!has(key)) return fallback;
    const json& value = object_.at(std::string(key));
    if (value.is_boolean()) return value.get<bool>();
    if (value.is_string() && (value == "true" || value == "false")) return value == "true";
    fail_input("config.json: \"{}\" must be true or false, got {}", field(key), value.dump());
  }

  std::string text(std::string_view key, std::string fallback) const {
    if (!has(key)) return fallback;
    const json& value = object_.at(std::string(key));
    if (!value.is_string())
      fail_input("config.json: \"{}\" must be a string, got {}", field(key), value.dump());
    return value.get<std::string>();
  }

  // "auto" (Mamba's dt_rank) or a positive integer.
  int64_t positive_or_auto(std::string_view key, int64_t automatic) const {
    if (!has(key)) return automatic;
    const json& value = object_.at(std::string(key));
    if (value.is_string() && value == "auto") return automatic;
    return check_positive(key, integer(key));
  }

  std::vector<int64_t> integer_list(std::string_view key) const {
    std::vector<int64_t> out;
    if (!has(key)) return out;
    const json& value = object_.at(std::string(key));
    if (!value.is_array())
      fail_input("config.json: \"{}\" must be a list of integers, got {}", field(key),
                 value.dump());
    for (const json& item : value) {
      if (!item.is_number_integer() || item.get<int64_t>() < 0)
        fail_input("config.json: \"{}\" must be a list of non-negative integers, got {}",
                   field(key), item.dump());
      out.push_back(item.get<int64_t>());
    }
    return out;
  }

  std::vector<std::string> string_list(std::string_view key) const {
    std::vector<std::string> out;
    if (!has(key)) return out;
    const json& value = object_.at(std::string(key));
    if (!value.is_array())
      fail_input("config.json: \"{}\" must be a list of strings, got {}", field(key), value.dump());
    for (const json& item : value) {
      if (!item.is_string())
        fail_input("config.json: \"{}\" must be a list of strings, got {}", field(key),
                   item.dump());
      out.push_back(item.get<std::string>());
    }
    return out;
  }

  const json* object(std::string_view key) const {
    if (!has(key)) return nullptr;
    const json& value = object_.at(std::string(key));
    if (!value.is_object())
      fail_input("config.json: \"{}\" must be an object, got {}", field(key), value.dump());
    return &value;
  }

 private:
  int64_t integer(std::string_view key) const {
    const json& value = object_.at(std::string(key));
    int64_t out = 0;
    if (value.is_number_integer()) {
      if (value.is_number_unsigned() && value.get<uint64_t>() > uint64_t(kMaxDimension))
        fail_input("config.json: \"{}\" is {}, which is implausibly large", field(key),
                   value.dump());
      out = value.get<int64_t>();
    } else if (value.is_number_float() && std::abs(value.get<double>()) < double(kMaxDimension) &&
               value.get<double>() == std::floor(value.get<double>())) {
      out = static_cast<int64_t>(value.get<double>());  // 4096.0 written by some exporters
    } else {
      fail_input("config.json: \"{}\" must be an integer, got {}", field(key), value.dump());
    }
    if (out > kMaxDimension)
      fail_input("config.json: \"{}\" is {}, which is implausibly large", field(key), out);
    return out;
  }

  int64_t check_positive(std::string_view key, int64_t value) const {
    if (value <= 0)
      fail_input("config.json: \"{}\" is {}; it must be a positive integer", field(key), value);
    if (value > kMaxSize)
      fail_input("config.json: \"{}\" is {}, which is implausibly large", field(key), value);
    return value;
  }

  const json& object_;
  std::string prefix_;
  std::string model_type_;
};

PlanTensor matrix(std::string name, int64_t out_features, int64_t in_features, int64_t copies = 1) {
  return PlanTensor{std::move(name), {out_features, in_features}, true, copies};
}

PlanTensor vector(std::string name, int64_t size, int64_t copies = 1) {
  return PlanTensor{std::move(name), {size}, false, copies};
}

// A router or gate: 2-D, but kept unquantized by both llama.cpp and vLLM.
PlanTensor router(std::string name, int64_t out_features, int64_t in_features) {
  return PlanTensor{std::move(name), {out_features, in_features}, false, 1};
}

std::string layer_prefix(int index) {
  return fmt::format("model.layers.{}.", index);
}

// --- attention --------------------------------------------------------------------------------

struct AttentionSpec {
  int64_t heads = 0;
  int64_t kv_heads = 0;
  int64_t head_dim = 0;
  bool qkv_bias = false;
  bool o_bias = false;
  bool qk_norm = false;    // per-head RMSNorm of q and k (Qwen3, Gemma 3)
  bool fused_qkv = false;  // one qkv_proj (Phi-3)
};

AttentionSpec read_attention(const ConfigReader& cfg, int64_t hidden,
                             std::optional<int64_t> default_head_dim) {
  AttentionSpec spec;
  spec.heads = cfg.positive("num_attention_heads");
  spec.kv_heads = cfg.positive_or("num_key_value_heads", spec.heads);
  if (spec.heads % spec.kv_heads != 0)
    fail_input("config.json: \"{}\" {} is not divisible by \"{}\" {}",
               cfg.field("num_attention_heads"), spec.heads, cfg.field("num_key_value_heads"),
               spec.kv_heads);
  if (cfg.has("head_dim")) {
    spec.head_dim = cfg.positive("head_dim");
  } else if (default_head_dim) {
    spec.head_dim = *default_head_dim;
  } else {
    if (hidden % spec.heads != 0)
      fail_input(
          "config.json: \"{}\" {} is not divisible by \"{}\" {} (and there is no \"head_dim\")",
          cfg.field("hidden_size"), hidden, cfg.field("num_attention_heads"), spec.heads);
    spec.head_dim = hidden / spec.heads;
  }
  return spec;
}

void add_attention(PlanLayer& layer, const std::string& prefix, const AttentionSpec& spec,
                   int64_t hidden) {
  const int64_t q_out = checked_mul({spec.heads, spec.head_dim});
  const int64_t kv_out = checked_mul({spec.kv_heads, spec.head_dim});
  const std::string attn = prefix + "self_attn.";
  if (spec.fused_qkv) {
    layer.tensors.push_back(matrix(attn + "qkv_proj.weight", q_out + 2 * kv_out, hidden));
    if (spec.qkv_bias) layer.tensors.push_back(vector(attn + "qkv_proj.bias", q_out + 2 * kv_out));
  } else {
    layer.tensors.push_back(matrix(attn + "q_proj.weight", q_out, hidden));
    layer.tensors.push_back(matrix(attn + "k_proj.weight", kv_out, hidden));
    layer.tensors.push_back(matrix(attn + "v_proj.weight", kv_out, hidden));
    if (spec.qkv_bias) {
      layer.tensors.push_back(vector(attn + "q_proj.bias", q_out));
      layer.tensors.push_back(vector(attn + "k_proj.bias", kv_out));
      layer.tensors.push_back(vector(attn + "v_proj.bias", kv_out));
    }
  }
  layer.tensors.push_back(matrix(attn + "o_proj.weight", hidden, q_out));
  if (spec.o_bias) layer.tensors.push_back(vector(attn + "o_proj.bias", hidden));
  if (spec.qk_norm) {
    layer.tensors.push_back(vector(attn + "q_norm.weight", spec.head_dim));
    layer.tensors.push_back(vector(attn + "k_norm.weight", spec.head_dim));
  }
  layer.num_heads = spec.heads;
  layer.num_kv_heads = spec.kv_heads;
  layer.head_dim = spec.head_dim;
  layer.v_head_dim = spec.head_dim;
  // q, k, v and the attention output of one token.
  layer.mixer_activations_per_token = q_out + 2 * kv_out + q_out;
}

// --- feed-forward -----------------------------------------------------------------------------

struct MlpNames {
  std::string gate = "gate_proj", up = "up_proj", down = "down_proj";
};

// A gated MLP (SwiGLU / GeGLU): gate and up [I, H], down [H, I], `copies` times (experts).
void add_gated_mlp(PlanLayer& layer, const std::string& prefix, int64_t hidden,
                   int64_t intermediate, int64_t copies = 1, bool bias = false,
                   const MlpNames& names = {}) {
  layer.tensors.push_back(matrix(prefix + names.gate + ".weight", intermediate, hidden, copies));
  layer.tensors.push_back(matrix(prefix + names.up + ".weight", intermediate, hidden, copies));
  layer.tensors.push_back(matrix(prefix + names.down + ".weight", hidden, intermediate, copies));
  if (bias) {
    layer.tensors.push_back(vector(prefix + names.gate + ".bias", intermediate, copies));
    layer.tensors.push_back(vector(prefix + names.up + ".bias", intermediate, copies));
    layer.tensors.push_back(vector(prefix + names.down + ".bias", hidden, copies));
  }
}

void add_dense_ffn(PlanLayer& layer, const std::string& prefix, int64_t hidden,
                   int64_t intermediate, bool bias = false) {
  add_gated_mlp(layer, prefix, hidden, intermediate, 1, bias);
  layer.ffn = FfnKind::kDense;
  layer.ffn_activations_per_token = 2 * intermediate;  // gate and up outputs
}

struct MoeSpec {
  int64_t experts = 0;
  int64_t experts_per_token = 0;
  int64_t expert_intermediate = 0;
  int64_t shared_intermediate = 0;  // 0: no shared expert
};

int64_t moe_activations_per_token(const MoeSpec& spec) {
  // Router logits, then gate and up outputs of each chosen expert and of the shared expert.
  return spec.experts + 2 * spec.experts_per_token * spec.expert_intermediate +
         2 * spec.shared_intermediate;
}

void check_moe(const ConfigReader& cfg, const MoeSpec& spec, std::string_view experts_field) {
  if (spec.experts_per_token > spec.experts)
    fail_input("config.json: \"{}\" {} is larger than \"{}\" {}", cfg.field("num_experts_per_tok"),
               spec.experts_per_token, cfg.field(experts_field), spec.experts);
}

// --- layer patterns ---------------------------------------------------------------------------

// Newer transformers write "layer_types"; it overrides any pattern derived from other fields.
std::optional<std::vector<LayerKind>> read_layer_types(const ConfigReader& cfg, int64_t layers) {
  if (!cfg.has("layer_types")) return std::nullopt;
  std::vector<std::string> names = cfg.string_list("layer_types");
  if (int64_t(names.size()) != layers)
    fail_input("config.json: \"{}\" has {} entries but \"{}\" is {}", cfg.field("layer_types"),
               names.size(), cfg.field("num_hidden_layers"), layers);
  std::vector<LayerKind> kinds;
  for (const std::string& name : names) {
    if (name == "full_attention")
      kinds.push_back(LayerKind::kAttention);
    else if (name == "sliding_attention")
      kinds.push_back(LayerKind::kSlidingAttention);
    else
      fail_input(
          "config.json: \"{}\" holds \"{}\"; the planner knows full_attention and "
          "sliding_attention",
          cfg.field("layer_types"), name);
  }
  return kinds;
}

// --- dense and MoE transformers ---------------------------------------------------------------

struct TransformerFamily {
  std::optional<int64_t> default_head_dim;
  bool default_tied = false;
  bool qkv_bias = false;             // always (Qwen2)
  bool attention_bias_field = true;  // "attention_bias" switches q, k, v, o biases
  bool qk_norm = false;
  bool fused = false;       // Phi-3: qkv_proj and gate_up_proj
  int norms_per_layer = 2;  // Gemma 2/3 add pre/post feed-forward norms
};

void add_norms(PlanLayer& layer, const std::string& prefix, int64_t hidden, int count) {
  layer.tensors.push_back(vector(prefix + "input_layernorm.weight", hidden));
  layer.tensors.push_back(vector(prefix + "post_attention_layernorm.weight", hidden));
  if (count == 4) {
    layer.tensors.push_back(vector(prefix + "pre_feedforward_layernorm.weight", hidden));
    layer.tensors.push_back(vector(prefix + "post_feedforward_layernorm.weight", hidden));
  }
}

void add_embeddings(PlanModel& model, const ConfigReader& cfg, bool default_tied,
                    const std::string& embed_name = "model.embed_tokens.weight",
                    const std::string& tie_field = "tie_word_embeddings") {
  model.tied_embeddings = cfg.flag(tie_field, default_tied);
  model.embedding.push_back(matrix(embed_name, model.vocab_size, model.hidden_size));
  if (!model.tied_embeddings)
    model.lm_head.push_back(matrix("lm_head.weight", model.vocab_size, model.hidden_size));
}

// Which layers are windowed, for the families that have one sliding_window field.
std::vector<LayerKind> attention_pattern(const ConfigReader& cfg, const std::string& type,
                                         int64_t layers, int64_t& window, PlanModel& model) {
  std::vector<LayerKind> kinds(size_t(layers), LayerKind::kAttention);
  window = 0;
  if (type == "gemma2" || type == "gemma3_text") {
    window = cfg.positive_or("sliding_window", 4096);
    if (auto explicit_kinds = read_layer_types(cfg, layers)) return *explicit_kinds;
    if (type == "gemma2") {
      // Gemma 2 alternates: even layers slide, odd layers are global.
      for (int64_t i = 0; i < layers; ++i)
        kinds[i] = i % 2 == 0 ? LayerKind::kSlidingAttention : LayerKind::kAttention;
    } else {
      // Gemma 3: every sliding_window_pattern-th layer is global, the others slide.
      int64_t pattern =
          cfg.positive_or("sliding_window_pattern", cfg.positive_or("_sliding_window_pattern", 6));
      for (int64_t i = 0; i < layers; ++i)
        kinds[i] = (i + 1) % pattern == 0 ? LayerKind::kAttention : LayerKind::kSlidingAttention;
    }
    return kinds;
  }
  if (type == "qwen2" || type == "qwen3" || type == "qwen2_moe" || type == "qwen3_moe") {
    // Qwen declares a window but only uses it when use_sliding_window is true, and then only
    // from layer max_window_layers on.
    if (!cfg.flag("use_sliding_window", false)) return kinds;
    window = cfg.positive("sliding_window");
    if (auto explicit_kinds = read_layer_types(cfg, layers)) return *explicit_kinds;
    int64_t first = cfg.non_negative_or("max_window_layers", layers);
    for (int64_t i = first; i < layers; ++i) kinds[i] = LayerKind::kSlidingAttention;
    return kinds;
  }
  // Mistral, Mixtral, Phi-3: one window for every layer when sliding_window is set.
  if (auto explicit_kinds = read_layer_types(cfg, layers)) {
    if (std::count(explicit_kinds->begin(), explicit_kinds->end(), LayerKind::kSlidingAttention))
      window = cfg.positive("sliding_window");
    return *explicit_kinds;
  }
  if (cfg.has("sliding_window") && (type == "mistral" || type == "mixtral" || type == "phi3")) {
    window = cfg.positive("sliding_window");
    std::fill(kinds.begin(), kinds.end(), LayerKind::kSlidingAttention);
    if (type == "phi3")
      model.notes.push_back(fmt::format(
          "Phi-3 declares sliding_window {} for every layer; the KV cache is capped there. "
          "Runtimes that ignore the window keep the whole context.",
          window));
  }
  return kinds;
}

PlanModel parse_transformer(const ConfigReader& cfg, const std::string& type, PlanModel model) {
  // What each family adds to the Llama layout (transformers' modeling code for each).
  TransformerFamily family;
  const bool qwen2 = type == "qwen2" || type == "qwen2_moe";
  const bool qwen3 = type == "qwen3" || type == "qwen3_moe";
  const bool gemma = type == "gemma" || type == "gemma2" || type == "gemma3_text";
  if (qwen2) {
    family.qkv_bias = true;
    family.attention_bias_field = false;
  }
  if (qwen3) {
    family.qk_norm = true;
    family.default_head_dim = 128;
  }
  if (gemma) {
    family.default_head_dim = 256;
    family.default_tied = true;
  }
  if (type == "gemma2" || type == "gemma3_text") family.norms_per_layer = 4;
  if (type == "gemma3_text") family.qk_norm = true;
  if (type == "phi3") family.fused = true;

  const int64_t hidden = model.hidden_size = cfg.positive("hidden_size");
  const int64_t layers = cfg.layer_count("num_hidden_layers");
  model.vocab_size = cfg.positive("vocab_size");
  AttentionSpec attention = read_attention(cfg, hidden, family.default_head_dim);
  const bool attention_bias = family.attention_bias_field && cfg.flag("attention_bias", false);
  attention.qkv_bias = family.qkv_bias || attention_bias;
  attention.o_bias = attention_bias;
  attention.qk_norm = family.qk_norm;
  attention.fused_qkv = family.fused;
  const bool mlp_bias = cfg.flag("mlp_bias", false);

  // Mixture of experts: which layers route, and their experts.
  MoeSpec moe;
  std::vector<bool> is_moe(size_t(layers), false);
  int64_t dense_intermediate = 0;
  if (type == "mixtral") {
    moe.experts = cfg.positive("num_local_experts");
    moe.experts_per_token = cfg.positive("num_experts_per_tok");
    moe.expert_intermediate = cfg.positive("intermediate_size");
    check_moe(cfg, moe, "num_local_experts");
    std::fill(is_moe.begin(), is_moe.end(), true);
  } else if (type == "qwen2_moe" || type == "qwen3_moe") {
    moe.experts = cfg.positive("num_experts");
    moe.experts_per_token = cfg.positive("num_experts_per_tok");
    moe.expert_intermediate = cfg.positive("moe_intermediate_size");
    if (type == "qwen2_moe")
      moe.shared_intermediate = cfg.non_negative_or("shared_expert_intermediate_size", 0);
    check_moe(cfg, moe, "num_experts");
    const int64_t step = cfg.positive_or("decoder_sparse_step", 1);
    std::vector<int64_t> mlp_only = cfg.integer_list("mlp_only_layers");
    std::set<int64_t> dense_layers(mlp_only.begin(), mlp_only.end());
    for (int64_t i = 0; i < layers; ++i) is_moe[i] = !dense_layers.count(i) && (i + 1) % step == 0;
    if (std::count(is_moe.begin(), is_moe.end(), false))
      dense_intermediate = cfg.positive("intermediate_size");
  } else {
    dense_intermediate = cfg.positive("intermediate_size");
  }

  int64_t window = 0;
  std::vector<LayerKind> kinds = attention_pattern(cfg, type, layers, window, model);

  for (int64_t i = 0; i < layers; ++i) {
    PlanLayer layer;
    layer.index = int(i);
    layer.kind = kinds[i];
    if (layer.kind == LayerKind::kSlidingAttention) layer.sliding_window = window;
    const std::string prefix = layer_prefix(layer.index);
    add_attention(layer, prefix, attention, hidden);
    if (!is_moe[i]) {
      if (family.fused) {
        layer.tensors.push_back(
            matrix(prefix + "mlp.gate_up_proj.weight", 2 * dense_intermediate, hidden));
        layer.tensors.push_back(
            matrix(prefix + "mlp.down_proj.weight", hidden, dense_intermediate));
        layer.ffn = FfnKind::kDense;
        layer.ffn_activations_per_token = 2 * dense_intermediate;
      } else {
        add_dense_ffn(layer, prefix + "mlp.", hidden, dense_intermediate, mlp_bias);
      }
    } else if (type == "mixtral") {
      layer.tensors.push_back(router(prefix + "block_sparse_moe.gate.weight", moe.experts, hidden));
      add_gated_mlp(layer, prefix + "block_sparse_moe.experts.{e}.", hidden,
                    moe.expert_intermediate, moe.experts, false, MlpNames{"w1", "w3", "w2"});
    } else {
      layer.tensors.push_back(router(prefix + "mlp.gate.weight", moe.experts, hidden));
      add_gated_mlp(layer, prefix + "mlp.experts.{e}.", hidden, moe.expert_intermediate,
                    moe.experts);
      if (moe.shared_intermediate > 0) {
        add_gated_mlp(layer, prefix + "mlp.shared_expert.", hidden, moe.shared_intermediate);
        layer.tensors.push_back(router(prefix + "mlp.shared_expert_gate.weight", 1, hidden));
      }
    }
    if (is_moe[i]) {
      layer.ffn = FfnKind::kMoe;
      layer.ffn_activations_per_token = moe_activations_per_token(moe);
    }
    add_norms(layer, prefix, hidden, family.norms_per_layer);
    model.layers.push_back(std::move(layer));
  }
  add_embeddings(model, cfg, family.default_tied);
  model.other.push_back(vector("model.norm.weight", hidden));
  return model;
}

// --- DeepSeek-V2/V3: multi-head latent attention ------------------------------------------------

PlanModel parse_deepseek(const ConfigReader& cfg, PlanModel model) {
  const int64_t hidden = model.hidden_size = cfg.positive("hidden_size");
  const int64_t layers = cfg.layer_count("num_hidden_layers");
  model.vocab_size = cfg.positive("vocab_size");
  const int64_t heads = cfg.positive("num_attention_heads");
  const int64_t q_lora_rank = cfg.has("q_lora_rank") ? cfg.positive("q_lora_rank") : 0;
  const int64_t kv_lora_rank = cfg.positive("kv_lora_rank");
  const int64_t nope_dim = cfg.positive("qk_nope_head_dim");
  const int64_t rope_dim = cfg.positive("qk_rope_head_dim");
  const int64_t v_dim = cfg.positive("v_head_dim");
  const int64_t intermediate = cfg.positive("intermediate_size");
  const bool bias = cfg.flag("attention_bias", false);

  MoeSpec moe;
  int64_t first_dense = 0, frequency = 1;
  if (cfg.has("n_routed_experts")) {
    moe.experts = cfg.positive("n_routed_experts");
    moe.experts_per_token = cfg.positive("num_experts_per_tok");
    moe.expert_intermediate = cfg.positive("moe_intermediate_size");
    moe.shared_intermediate =
        checked_mul({cfg.non_negative_or("n_shared_experts", 0), moe.expert_intermediate});
    check_moe(cfg, moe, "n_routed_experts");
    first_dense = cfg.non_negative_or("first_k_dense_replace", 0);
    frequency = cfg.positive_or("moe_layer_freq", 1);
  }
  // DeepSeek-V3's aux-loss-free routing adds a per-expert bias to the router.
  const bool router_bias = cfg.text("topk_method", "") == "noaux_tc";

  const int64_t qk_dim = nope_dim + rope_dim;
  for (int64_t i = 0; i < layers; ++i) {
    PlanLayer layer;
    layer.index = int(i);
    layer.kind = LayerKind::kMla;
    const std::string prefix = layer_prefix(layer.index);
    const std::string attn = prefix + "self_attn.";
    if (q_lora_rank > 0) {
      layer.tensors.push_back(matrix(attn + "q_a_proj.weight", q_lora_rank, hidden));
      if (bias) layer.tensors.push_back(vector(attn + "q_a_proj.bias", q_lora_rank));
      layer.tensors.push_back(vector(attn + "q_a_layernorm.weight", q_lora_rank));
      layer.tensors.push_back(
          matrix(attn + "q_b_proj.weight", checked_mul({heads, qk_dim}), q_lora_rank));
    } else {
      layer.tensors.push_back(matrix(attn + "q_proj.weight", checked_mul({heads, qk_dim}), hidden));
    }
    layer.tensors.push_back(
        matrix(attn + "kv_a_proj_with_mqa.weight", kv_lora_rank + rope_dim, hidden));
    if (bias)
      layer.tensors.push_back(vector(attn + "kv_a_proj_with_mqa.bias", kv_lora_rank + rope_dim));
    layer.tensors.push_back(vector(attn + "kv_a_layernorm.weight", kv_lora_rank));
    layer.tensors.push_back(
        matrix(attn + "kv_b_proj.weight", checked_mul({heads, nope_dim + v_dim}), kv_lora_rank));
    layer.tensors.push_back(matrix(attn + "o_proj.weight", hidden, checked_mul({heads, v_dim})));
    if (bias) layer.tensors.push_back(vector(attn + "o_proj.bias", hidden));
    layer.num_heads = heads;
    layer.num_kv_heads = heads;
    layer.head_dim = qk_dim;
    layer.v_head_dim = v_dim;
    layer.kv_lora_rank = kv_lora_rank;
    layer.qk_rope_head_dim = rope_dim;
    // q (and its low-rank code), the compressed kv, the per-head keys and values it expands to
    // during prefill, and the attention output.
    layer.mixer_activations_per_token =
        q_lora_rank + checked_mul({heads, qk_dim}) + (kv_lora_rank + rope_dim) +
        checked_mul({heads, qk_dim + v_dim}) + checked_mul({heads, v_dim});

    const bool routed = moe.experts > 0 && i >= first_dense && i % frequency == 0;
    if (routed) {
      layer.tensors.push_back(router(prefix + "mlp.gate.weight", moe.experts, hidden));
      if (router_bias)
        layer.tensors.push_back(vector(prefix + "mlp.gate.e_score_correction_bias", moe.experts));
      add_gated_mlp(layer, prefix + "mlp.experts.{e}.", hidden, moe.expert_intermediate,
                    moe.experts);
      if (moe.shared_intermediate > 0)
        add_gated_mlp(layer, prefix + "mlp.shared_experts.", hidden, moe.shared_intermediate);
      layer.ffn = FfnKind::kMoe;
      layer.ffn_activations_per_token = moe_activations_per_token(moe);
    } else {
      add_dense_ffn(layer, prefix + "mlp.", hidden, intermediate);
    }
    add_norms(layer, prefix, hidden, 2);
    model.layers.push_back(std::move(layer));
  }
  add_embeddings(model, cfg, false);
  model.other.push_back(vector("model.norm.weight", hidden));
  if (int64_t mtp = cfg.non_negative_or("num_nextn_predict_layers", 0); mtp > 0)
    model.notes.push_back(fmt::format(
        "num_nextn_predict_layers {}: the multi-token-prediction module is only loaded for "
        "speculative decoding and is not in this plan (DeepSeek-V3's 671B excludes it; its HF "
        "checkpoint's 685B includes it)",
        mtp));
  return model;
}

// --- Mamba ------------------------------------------------------------------------------------

struct MambaSpec {
  int version = 1;
  int64_t d_inner = 0;
  int64_t d_state = 0;
  int64_t d_conv = 0;
  int64_t dt_rank = 0;       // Mamba-1
  int64_t heads = 0;         // Mamba-2
  int64_t groups = 1;        // Mamba-2
  int64_t chunk_size = 256;  // Mamba-2 scan chunk
  bool proj_bias = false;
  bool conv_bias = true;
  bool inner_layernorms = false;  // Jamba: RMSNorm on dt, B and C
};

void add_mamba(PlanLayer& layer, const std::string& mixer, const MambaSpec& spec, int64_t hidden) {
  const int64_t di = spec.d_inner, ds = spec.d_state;
  int64_t conv_channels = di;
  if (spec.version == 1) {
    layer.kind = LayerKind::kMamba;
    layer.tensors.push_back(matrix(mixer + "in_proj.weight", 2 * di, hidden));
    if (spec.proj_bias) layer.tensors.push_back(vector(mixer + "in_proj.bias", 2 * di));
    layer.tensors.push_back(PlanTensor{mixer + "conv1d.weight", {di, 1, spec.d_conv}, false, 1});
    if (spec.conv_bias) layer.tensors.push_back(vector(mixer + "conv1d.bias", di));
    layer.tensors.push_back(matrix(mixer + "x_proj.weight", spec.dt_rank + 2 * ds, di));
    layer.tensors.push_back(matrix(mixer + "dt_proj.weight", di, spec.dt_rank));
    layer.tensors.push_back(vector(mixer + "dt_proj.bias", di));
    layer.tensors.push_back(PlanTensor{mixer + "A_log", {di, ds}, false, 1});
    layer.tensors.push_back(vector(mixer + "D", di));
    layer.tensors.push_back(matrix(mixer + "out_proj.weight", hidden, di));
    if (spec.proj_bias) layer.tensors.push_back(vector(mixer + "out_proj.bias", hidden));
    if (spec.inner_layernorms) {
      layer.tensors.push_back(vector(mixer + "dt_layernorm.weight", spec.dt_rank));
      layer.tensors.push_back(vector(mixer + "b_layernorm.weight", ds));
      layer.tensors.push_back(vector(mixer + "c_layernorm.weight", ds));
    }
    // in_proj output (x and z), conv output, x_proj output (dt, B, C), dt, y.
    layer.mixer_activations_per_token = 2 * di + di + (spec.dt_rank + 2 * ds) + di + di;
  } else {
    layer.kind = LayerKind::kMamba2;
    const int64_t bc = 2 * spec.groups * ds;
    conv_channels = di + bc;
    const int64_t in_proj_out = 2 * di + bc + spec.heads;  // z, x, B, C, dt
    layer.tensors.push_back(matrix(mixer + "in_proj.weight", in_proj_out, hidden));
    if (spec.proj_bias) layer.tensors.push_back(vector(mixer + "in_proj.bias", in_proj_out));
    layer.tensors.push_back(
        PlanTensor{mixer + "conv1d.weight", {conv_channels, 1, spec.d_conv}, false, 1});
    if (spec.conv_bias) layer.tensors.push_back(vector(mixer + "conv1d.bias", conv_channels));
    layer.tensors.push_back(vector(mixer + "dt_bias", spec.heads));
    layer.tensors.push_back(vector(mixer + "A_log", spec.heads));
    layer.tensors.push_back(vector(mixer + "D", spec.heads));
    layer.tensors.push_back(vector(mixer + "norm.weight", di));
    layer.tensors.push_back(matrix(mixer + "out_proj.weight", hidden, di));
    if (spec.proj_bias) layer.tensors.push_back(vector(mixer + "out_proj.bias", hidden));
    // in_proj output, conv output, y, and the SSD scan's state per chunk of chunk_size tokens.
    layer.mixer_activations_per_token =
        in_proj_out + conv_channels + di + ceil_div(checked_mul({di, ds}), spec.chunk_size);
  }
  layer.conv_state_elements = checked_mul({spec.d_conv - 1, conv_channels});
  layer.ssm_state_elements = checked_mul({di, ds});
}

// Hugging Face MambaForCausalLM / Mamba2ForCausalLM.
PlanModel parse_hf_mamba(const ConfigReader& cfg, const std::string& type, PlanModel model) {
  const int64_t hidden = model.hidden_size = cfg.positive("hidden_size");
  const int64_t layers = cfg.layer_count("num_hidden_layers");
  model.vocab_size = cfg.positive("vocab_size");
  MambaSpec spec;
  spec.version = type == "mamba2" ? 2 : 1;
  const int64_t expand = cfg.positive_or("expand", 2);
  spec.d_conv = cfg.positive_or("conv_kernel", 4);
  spec.proj_bias = cfg.flag("use_bias", false);
  spec.conv_bias = cfg.flag("use_conv_bias", true);
  if (spec.version == 1) {
    spec.d_state = cfg.positive_or("state_size", 16);
    spec.d_inner = cfg.positive_or("intermediate_size", checked_mul({expand, hidden}));
    spec.dt_rank = cfg.positive_or_auto("time_step_rank", ceil_div(hidden, 16));
  } else {
    spec.d_state = cfg.positive("state_size");
    spec.heads = cfg.positive("num_heads");
    const int64_t head_dim = cfg.positive("head_dim");
    spec.groups = cfg.positive("n_groups");
    spec.chunk_size = cfg.positive_or("chunk_size", 256);
    spec.d_inner = checked_mul({expand, hidden});
    if (checked_mul({spec.heads, head_dim}) != spec.d_inner)
      fail_input(
          "config.json: \"num_heads\" {} x \"head_dim\" {} must equal \"expand\" {} x "
          "\"hidden_size\" {}",
          spec.heads, head_dim, expand, hidden);
    if (spec.heads % spec.groups != 0)
      fail_input("config.json: \"num_heads\" {} is not divisible by \"n_groups\" {}", spec.heads,
                 spec.groups);
  }
  for (int64_t i = 0; i < layers; ++i) {
    PlanLayer layer;
    layer.index = int(i);
    layer.ffn = FfnKind::kNone;
    const std::string prefix = fmt::format("backbone.layers.{}.", i);
    add_mamba(layer, prefix + "mixer.", spec, hidden);
    layer.tensors.push_back(vector(prefix + "norm.weight", hidden));
    model.layers.push_back(std::move(layer));
  }
  add_embeddings(model, cfg, spec.version == 1, "backbone.embeddings.weight");
  model.other.push_back(vector("backbone.norm_f.weight", hidden));
  return model;
}

// The state-spaces/mamba (mamba_ssm) config format: d_model, n_layer, ssm_cfg.
PlanModel parse_mamba_ssm(const ConfigReader& cfg, PlanModel model) {
  const int64_t hidden = model.hidden_size = cfg.positive("d_model");
  const int64_t layers = cfg.layer_count("n_layer");
  // mamba_ssm pads the vocabulary to a multiple of pad_vocab_size_multiple.
  const int64_t vocab = cfg.positive("vocab_size");
  const int64_t pad = cfg.positive_or("pad_vocab_size_multiple", 8);
  model.vocab_size = ceil_div(vocab, pad) * pad;
  if (!cfg.integer_list("attn_layer_idx").empty())
    fail_input(
        "config.json: \"attn_layer_idx\" is not empty: mamba_ssm hybrids with attention "
        "layers are not planned yet (Jamba is)");
  const json* ssm_object = cfg.object("ssm_cfg");
  const json empty = json::object();
  ConfigReader ssm(ssm_object ? *ssm_object : empty, "ssm_cfg.", "mamba_ssm");
  MambaSpec spec;
  const std::string layer_name = ssm.text("layer", "Mamba1");
  if (layer_name != "Mamba1" && layer_name != "Mamba2")
    fail_input("config.json: \"ssm_cfg.layer\" is \"{}\"; the planner knows Mamba1 and Mamba2",
               layer_name);
  spec.version = layer_name == "Mamba2" ? 2 : 1;
  spec.d_state = ssm.positive_or("d_state", spec.version == 2 ? 128 : 16);
  spec.d_conv = ssm.positive_or("d_conv", 4);
  spec.d_inner = checked_mul({ssm.positive_or("expand", 2), hidden});
  spec.conv_bias = ssm.flag("conv_bias", true);
  spec.proj_bias = ssm.flag("bias", false);
  if (spec.version == 1) {
    spec.dt_rank = ssm.positive_or_auto("dt_rank", ceil_div(hidden, 16));
  } else {
    const int64_t head_dim = ssm.positive_or("headdim", 64);
    spec.groups = ssm.positive_or("ngroups", 1);
    spec.chunk_size = ssm.positive_or("chunk_size", 256);
    if (spec.d_inner % head_dim != 0)
      fail_input("config.json: expand x d_model = {} is not divisible by \"ssm_cfg.headdim\" {}",
                 spec.d_inner, head_dim);
    spec.heads = spec.d_inner / head_dim;
    if (spec.heads % spec.groups != 0)
      fail_input("config.json: {} heads are not divisible by \"ssm_cfg.ngroups\" {}", spec.heads,
                 spec.groups);
  }
  const bool rms_norm = cfg.flag("rms_norm", true);
  const int64_t mlp_intermediate = cfg.non_negative_or("d_intermediate", 0);
  for (int64_t i = 0; i < layers; ++i) {
    PlanLayer layer;
    layer.index = int(i);
    layer.ffn = FfnKind::kNone;
    const std::string prefix = fmt::format("backbone.layers.{}.", i);
    add_mamba(layer, prefix + "mixer.", spec, hidden);
    layer.tensors.push_back(vector(prefix + "norm.weight", hidden));
    if (!rms_norm) layer.tensors.push_back(vector(prefix + "norm.bias", hidden));
    if (mlp_intermediate > 0) {  // mamba_ssm's GatedMLP: fc1 [2I, H], fc2 [H, I]
      layer.tensors.push_back(matrix(prefix + "mlp.fc1.weight", 2 * mlp_intermediate, hidden));
      layer.tensors.push_back(matrix(prefix + "mlp.fc2.weight", hidden, mlp_intermediate));
      layer.tensors.push_back(vector(prefix + "norm2.weight", hidden));
      if (!rms_norm) layer.tensors.push_back(vector(prefix + "norm2.bias", hidden));
      layer.ffn = FfnKind::kDense;
      layer.ffn_activations_per_token = 2 * mlp_intermediate;
    }
    model.layers.push_back(std::move(layer));
  }
  add_embeddings(model, cfg, true, "backbone.embedding.weight", "tie_embeddings");
  model.other.push_back(vector("backbone.norm_f.weight", hidden));
  if (!rms_norm) model.other.push_back(vector("backbone.norm_f.bias", hidden));
  return model;
}

// --- Jamba: Mamba-1 layers with attention every attn_layer_period, MoE every expert period ------

PlanModel parse_jamba(const ConfigReader& cfg, PlanModel model) {
  const int64_t hidden = model.hidden_size = cfg.positive("hidden_size");
  const int64_t layers = cfg.layer_count("num_hidden_layers");
  model.vocab_size = cfg.positive("vocab_size");
  AttentionSpec attention = read_attention(cfg, hidden, std::nullopt);
  const int64_t intermediate = cfg.positive("intermediate_size");
  MoeSpec moe;
  moe.experts = cfg.positive_or("num_experts", 16);
  moe.experts_per_token = cfg.positive_or("num_experts_per_tok", 2);
  moe.expert_intermediate = intermediate;
  check_moe(cfg, moe, "num_experts");
  const int64_t attn_period = cfg.positive_or("attn_layer_period", 8);
  const int64_t attn_offset = cfg.non_negative_or("attn_layer_offset", 4);
  const int64_t expert_period = cfg.positive_or("expert_layer_period", 2);
  const int64_t expert_offset = cfg.non_negative_or("expert_layer_offset", 1);
  MambaSpec spec;
  spec.version = 1;
  spec.d_state = cfg.positive_or("mamba_d_state", 16);
  spec.d_conv = cfg.positive_or("mamba_d_conv", 4);
  spec.d_inner = checked_mul({cfg.positive_or("mamba_expand", 2), hidden});
  spec.dt_rank = cfg.positive_or_auto("mamba_dt_rank", ceil_div(hidden, 16));
  spec.conv_bias = cfg.flag("mamba_conv_bias", true);
  spec.proj_bias = cfg.flag("mamba_proj_bias", false);
  spec.inner_layernorms = true;
  for (int64_t i = 0; i < layers; ++i) {
    PlanLayer layer;
    layer.index = int(i);
    const std::string prefix = layer_prefix(layer.index);
    if (i % attn_period == attn_offset) {
      add_attention(layer, prefix, attention, hidden);
    } else {
      add_mamba(layer, prefix + "mamba.", spec, hidden);
    }
    if (moe.experts > 1 && i % expert_period == expert_offset) {
      layer.tensors.push_back(router(prefix + "feed_forward.router.weight", moe.experts, hidden));
      add_gated_mlp(layer, prefix + "feed_forward.experts.{e}.", hidden, intermediate, moe.experts);
      layer.ffn = FfnKind::kMoe;
      layer.ffn_activations_per_token = moe_activations_per_token(moe);
    } else {
      add_dense_ffn(layer, prefix + "feed_forward.", hidden, intermediate);
    }
    layer.tensors.push_back(vector(prefix + "input_layernorm.weight", hidden));
    layer.tensors.push_back(vector(prefix + "pre_ff_layernorm.weight", hidden));
    model.layers.push_back(std::move(layer));
  }
  add_embeddings(model, cfg, false);
  model.other.push_back(vector("model.final_layernorm.weight", hidden));
  return model;
}

// --- dispatch ---------------------------------------------------------------------------------

const std::vector<std::pair<std::string, std::string>>& known_architectures() {
  static const std::vector<std::pair<std::string, std::string>> table = {
      {"LlamaForCausalLM", "llama"},
      {"MistralForCausalLM", "mistral"},
      {"MixtralForCausalLM", "mixtral"},
      {"Qwen2ForCausalLM", "qwen2"},
      {"Qwen2MoeForCausalLM", "qwen2_moe"},
      {"Qwen3ForCausalLM", "qwen3"},
      {"Qwen3MoeForCausalLM", "qwen3_moe"},
      {"GemmaForCausalLM", "gemma"},
      {"Gemma2ForCausalLM", "gemma2"},
      {"Gemma3ForCausalLM", "gemma3_text"},
      {"Phi3ForCausalLM", "phi3"},
      {"DeepseekV2ForCausalLM", "deepseek_v2"},
      {"DeepseekV3ForCausalLM", "deepseek_v3"},
      {"MambaForCausalLM", "mamba"},
      {"Mamba2ForCausalLM", "mamba2"},
      {"JambaForCausalLM", "jamba"},
  };
  return table;
}

std::string supported_list() {
  return "llama, mistral, mixtral, qwen2, qwen2_moe, qwen3, qwen3_moe, gemma, gemma2, gemma3, "
         "phi3, deepseek_v2, deepseek_v3, mamba, mamba2 (also the mamba_ssm format), jamba";
}

std::optional<WeightFormat> native_format(const json& config) {
  if (auto it = config.find("quantization_config"); it != config.end() && it->is_object()) {
    auto method = it->find("quant_method");
    if (method != it->end() && *method == "fp8") return WeightFormat::kFp8;
  }
  for (const char* key : {"torch_dtype", "dtype"}) {
    auto it = config.find(key);
    if (it == config.end() || !it->is_string()) continue;
    const std::string name = it->get<std::string>();
    if (name == "bfloat16") return WeightFormat::kBF16;
    if (name == "float16") return WeightFormat::kF16;
    if (name == "float32") return WeightFormat::kF32;
  }
  return std::nullopt;
}

}  // namespace

std::string_view to_string(LayerKind kind) {
  switch (kind) {
    case LayerKind::kAttention:
      return "attention";
    case LayerKind::kSlidingAttention:
      return "sliding";
    case LayerKind::kMla:
      return "mla";
    case LayerKind::kMamba:
      return "mamba";
    case LayerKind::kMamba2:
      return "mamba2";
  }
  return "?";
}

std::string_view to_string(FfnKind kind) {
  switch (kind) {
    case FfnKind::kDense:
      return "dense";
    case FfnKind::kMoe:
      return "moe";
    case FfnKind::kNone:
      return "none";
  }
  return "?";
}

int64_t PlanTensor::parameters() const {
  int64_t out = copies;
  for (int64_t d : shape)
    if (d < 0 || __builtin_mul_overflow(out, d, &out))
      fail_input("tensor {} has an invalid or overflowing shape", name);
  return out;
}

int64_t PlanTensor::rows() const {
  int64_t out = copies;
  for (size_t i = 0; i + 1 < shape.size(); ++i)
    if (__builtin_mul_overflow(out, shape[i], &out))
      fail_input("tensor {} has an overflowing shape", name);
  return out;
}

int64_t PlanLayer::parameters() const {
  int64_t total = 0;
  for (const PlanTensor& t : tensors) total = checked_add(total, t.parameters());
  return total;
}

static int64_t sum_parameters(const std::vector<PlanTensor>& tensors) {
  int64_t total = 0;
  for (const PlanTensor& t : tensors) total = checked_add(total, t.parameters());
  return total;
}

int64_t PlanModel::embedding_parameters() const {
  return sum_parameters(embedding);
}
int64_t PlanModel::lm_head_parameters() const {
  return sum_parameters(lm_head);
}

int64_t PlanModel::parameters() const {
  int64_t total = checked_add(sum_parameters(embedding), sum_parameters(lm_head));
  total = checked_add(total, sum_parameters(other));
  for (const PlanLayer& layer : layers) total = checked_add(total, layer.parameters());
  return total;
}

PlanModel parse_plan_model(const json& config) {
  if (!config.is_object())
    fail_input("config.json: expected a JSON object, got {}", config.type_name());
  PlanModel model;
  ConfigReader top(config, "", "?");
  std::vector<std::string> architectures = top.string_list("architectures");
  if (!architectures.empty()) model.architecture = architectures.front();
  std::string type = top.text("model_type", "");
  model.native_format = native_format(config);

  // The mamba_ssm format has neither model_type nor architectures.
  if (type.empty() && architectures.empty() && top.has("d_model") && top.has("n_layer")) {
    model.model_type = "mamba_ssm";
    model.architecture = "MambaLMHeadModel";
    return parse_mamba_ssm(ConfigReader(config, "", "mamba_ssm"), std::move(model));
  }
  if (type.empty()) {
    for (const auto& [architecture, known_type] : known_architectures())
      if (architecture == model.architecture) type = known_type;
    if (type.empty()) {
      if (architectures.empty())
        fail_input(
            "config.json: missing field \"model_type\" (and no \"architectures\" to tell "
            "the model apart)");
      fail_input(
          "config.json: unknown architecture \"{}\" and no \"model_type\"; the planner "
          "knows {}",
          model.architecture, supported_list());
    }
  }

  // Multimodal wrappers keep the language model in text_config.
  const json* text = &config;
  std::string prefix;
  if (const json* nested = top.object("text_config"); nested && !top.has("num_hidden_layers")) {
    text = nested;
    prefix = "text_config.";
    ConfigReader nested_reader(*nested, prefix, type);
    std::string text_type = nested_reader.text("model_type", "");
    if (type == "gemma3") text_type = "gemma3_text";
    if (!text_type.empty()) type = text_type;
    if (!model.native_format) model.native_format = native_format(*nested);
  }
  if (type == "gemma3") type = "gemma3_text";
  model.model_type = type;
  for (const char* tower : {"vision_config", "audio_config"})
    if (top.has(tower))
      model.notes.push_back(fmt::format(
          "{} present: only the language model is planned from the config; with a checkpoint "
          "the tower's weights are counted under 'other'",
          tower));

  static const std::set<std::string> transformers = {
      "llama",     "mistral", "mixtral", "qwen2",       "qwen2_moe", "qwen3",
      "qwen3_moe", "gemma",   "gemma2",  "gemma3_text", "phi3"};
  if (transformers.count(type)) {
    json filled;
    const json* source = text;
    if (type == "gemma3_text") {
      // Gemma 3 configs state only what differs from Gemma3TextConfig's defaults.
      filled = *text;
      const std::pair<const char*, int64_t> defaults[] = {{"vocab_size", 262208},
                                                          {"num_attention_heads", 8},
                                                          {"num_key_value_heads", 4},
                                                          {"head_dim", 256}};
      for (const auto& [key, value] : defaults)
        if (!filled.contains(key) || filled[key].is_null()) {
          filled[key] = value;
          model.notes.push_back(fmt::format(
              "{}{} not in config.json: using Gemma3TextConfig's default {}", prefix, key, value));
        }
      source = &filled;
    }
    model = parse_transformer(ConfigReader(*source, prefix, type), type, std::move(model));
  } else if (type == "deepseek_v2" || type == "deepseek_v3") {
    model = parse_deepseek(ConfigReader(*text, prefix, type), std::move(model));
  } else if (type == "mamba" || type == "mamba2") {
    model = parse_hf_mamba(ConfigReader(*text, prefix, type), type, std::move(model));
  } else if (type == "jamba") {
    model = parse_jamba(ConfigReader(*text, prefix, type), std::move(model));
  } else {
    fail_input("config.json: model_type \"{}\" is not one the planner knows; it knows {}", type,
               supported_list());
  }
  ConfigReader reader(*text, prefix, type);
  model.max_position_embeddings = reader.non_negative_or("max_position_embeddings", 0);
  if (model.architecture.empty()) model.architecture = type;
  return model;
}

}  // namespace hwledger::planner
