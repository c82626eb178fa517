#include "model/config.h"

#include <fstream>
#include <sstream>

#include "model/arch/arch.h"
#include "util/error.h"

namespace hwledger {

const std::vector<ArchSpec>& supported_architectures() {
  static const std::vector<ArchSpec> specs = {arch::kLlama, arch::kMistral, arch::kQwen2,
                                              arch::kQwen3};
  return specs;
}

namespace {

int64_t get_int(const nlohmann::json& j, const char* key) {
  if (!j.contains(key) || j[key].is_null()) fail_input("config.json: missing field '{}'", key);
  const auto& v = j[key];
  if (!v.is_number_integer() && !(v.is_number_float() && v.get<double>() == int64_t(v.get<double>())))
    fail_input("config.json: field '{}' must be an integer, got {}", key, v.dump());
  return v.get<int64_t>();
}

int64_t get_int_or(const nlohmann::json& j, const char* key, int64_t fallback) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  return get_int(j, key);
}

double get_double_or(const nlohmann::json& j, const char* key, double fallback) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  if (!j[key].is_number()) fail_input("config.json: field '{}' must be a number, got {}", key, j[key].dump());
  return j[key].get<double>();
}

void require_positive(int64_t v, const char* key) {
  if (v <= 0) fail_input("config.json: field '{}' must be positive, got {}", key, v);
}

// Rope settings come as `rope_scaling` (older configs) or `rope_parameters` (transformers 5),
// the latter also carrying rope_theta.
void parse_rope(const nlohmann::json& j, ModelConfig& c) {
  c.rope.theta = get_double_or(j, "rope_theta", 10000.0);
  const nlohmann::json* params = nullptr;
  const char* field = "rope_scaling";
  if (j.contains("rope_parameters") && j["rope_parameters"].is_object()) {
    params = &j["rope_parameters"];
    field = "rope_parameters";
  } else if (j.contains("rope_scaling") && j["rope_scaling"].is_object()) {
    params = &j["rope_scaling"];
  }
  if (!params) return;
  const auto& p = *params;
  c.rope.theta = get_double_or(p, "rope_theta", c.rope.theta);
  std::string type = p.value("rope_type", p.value("type", std::string("default")));
  if (type == "default") {
    c.rope.type = RopeType::Default;
  } else if (type == "linear") {
    c.rope.type = RopeType::Linear;
    c.rope.factor = get_double_or(p, "factor", 1.0);
  } else if (type == "llama3") {
    c.rope.type = RopeType::Llama3;
    c.rope.factor = get_double_or(p, "factor", 8.0);
    c.rope.low_freq_factor = get_double_or(p, "low_freq_factor", 1.0);
    c.rope.high_freq_factor = get_double_or(p, "high_freq_factor", 4.0);
    c.rope.original_max_position = get_int_or(p, "original_max_position_embeddings", 8192);
    if (c.rope.high_freq_factor <= c.rope.low_freq_factor)
      fail_input("config.json: {}.high_freq_factor ({}) must exceed low_freq_factor ({})", field,
                 c.rope.high_freq_factor, c.rope.low_freq_factor);
  } else {
    fail_input("config.json: unsupported {}.rope_type '{}' (supported: default, linear, llama3)",
               field, type);
  }
  if (!(c.rope.factor > 0)) fail_input("config.json: {}.factor must be positive", field);
}

std::vector<int32_t> parse_ids(const nlohmann::json& v) {
  std::vector<int32_t> ids;
  if (v.is_number_integer()) ids.push_back(v.get<int32_t>());
  if (v.is_array())
    for (const auto& e : v)
      if (e.is_number_integer()) ids.push_back(e.get<int32_t>());
  return ids;
}

}  // namespace

ModelConfig ModelConfig::from_json(const nlohmann::json& j) {
  if (!j.is_object()) fail_input("config.json: expected a JSON object");
  ModelConfig c;
  if (!j.contains("architectures") || !j["architectures"].is_array() || j["architectures"].empty() ||
      !j["architectures"][0].is_string())
    fail_input("config.json: missing field 'architectures'");
  c.architecture = j["architectures"][0].get<std::string>();
  const ArchSpec* spec = nullptr;
  for (const auto& s : supported_architectures())
    if (c.architecture == s.architecture) spec = &s;
  if (!spec) {
    std::string names;
    for (const auto& s : supported_architectures()) names += (names.empty() ? "" : ", ") + std::string(s.architecture);
    fail_input("unsupported architecture '{}' (supported: {})", c.architecture, names);
  }
  c.model_type = spec->model_type;

  c.vocab_size = get_int(j, "vocab_size");
  c.hidden_size = get_int(j, "hidden_size");
  c.intermediate_size = get_int(j, "intermediate_size");
  c.num_layers = get_int(j, "num_hidden_layers");
  c.num_heads = get_int(j, "num_attention_heads");
  c.num_kv_heads = get_int_or(j, "num_key_value_heads", c.num_heads);
  require_positive(c.vocab_size, "vocab_size");
  require_positive(c.hidden_size, "hidden_size");
  require_positive(c.intermediate_size, "intermediate_size");
  require_positive(c.num_layers, "num_hidden_layers");
  require_positive(c.num_heads, "num_attention_heads");
  require_positive(c.num_kv_heads, "num_key_value_heads");
  if (c.num_heads % c.num_kv_heads != 0)
    fail_input("config.json: num_attention_heads ({}) is not a multiple of num_key_value_heads ({})",
               c.num_heads, c.num_kv_heads);
  if (j.contains("head_dim") && !j["head_dim"].is_null()) {
    c.head_dim = get_int(j, "head_dim");
  } else {
    if (c.hidden_size % c.num_heads != 0)
      fail_input("config.json: hidden_size ({}) is not a multiple of num_attention_heads ({}) and no head_dim is given",
                 c.hidden_size, c.num_heads);
    c.head_dim = c.hidden_size / c.num_heads;
  }
  require_positive(c.head_dim, "head_dim");
  if (c.head_dim % 2 != 0) fail_input("config.json: head_dim ({}) must be even for RoPE", c.head_dim);
  c.max_position_embeddings = get_int_or(j, "max_position_embeddings", 4096);
  c.rms_norm_eps = get_double_or(j, "rms_norm_eps", 1e-6);
  std::string act = j.value("hidden_act", std::string("silu"));
  if (act != "silu" && act != "swish")
    fail_input("config.json: unsupported hidden_act '{}' (supported: silu)", act);
  c.tie_word_embeddings = j.value("tie_word_embeddings", false);
  parse_rope(j, c);
  if (j.contains("eos_token_id")) c.eos_token_ids = parse_ids(j["eos_token_id"]);
  if (j.contains("bos_token_id") && j["bos_token_id"].is_number_integer())
    c.bos_token_id = j["bos_token_id"].get<int32_t>();
  spec->apply(j, c);
  return c;
}

ModelConfig ModelConfig::from_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail_input("cannot open '{}'", path);
  std::stringstream ss;
  ss << in.rdbuf();
  nlohmann::json j = nlohmann::json::parse(ss.str(), nullptr, false);
  if (j.is_discarded()) fail_input("'{}' is not valid JSON", path);
  return from_json(j);
}

nlohmann::json ModelConfig::to_json() const {
  const char* rope_names[] = {"default", "linear", "llama3"};
  return {{"architecture", architecture},
          {"vocab_size", vocab_size},
          {"hidden_size", hidden_size},
          {"intermediate_size", intermediate_size},
          {"num_layers", num_layers},
          {"num_heads", num_heads},
          {"num_kv_heads", num_kv_heads},
          {"head_dim", head_dim},
          {"rms_norm_eps", rms_norm_eps},
          {"rope", {{"type", rope_names[static_cast<int>(rope.type)]},
                    {"theta", rope.theta},
                    {"factor", rope.factor},
                    {"low_freq_factor", rope.low_freq_factor},
                    {"high_freq_factor", rope.high_freq_factor},
                    {"original_max_position", rope.original_max_position}}},
          {"tie_word_embeddings", tie_word_embeddings},
          {"qkv_bias", qkv_bias},
          {"o_bias", o_bias},
          {"mlp_bias", mlp_bias},
          {"qk_norm", qk_norm},
          {"layer_window", layer_window}};
}

}  // namespace hwledger
