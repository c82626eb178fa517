// Bad configs are refused with a message that names the field (and the bad value).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "planner/memory_plan.h"
#include "planner/plan_model.h"
#include "util/error.h"

namespace hwledger::planner {
namespace {

struct BadConfig {
  const char* label;
  const char* config;
  std::vector<std::string> message_parts;
};

// A small valid Llama that each case breaks in one place.
// clang-format off
#define LLAMA_FIELDS R"("model_type": "llama", "hidden_size": 256, "intermediate_size": 512, "vocab_size": 1000, "num_hidden_layers": 2)"
// clang-format on

const BadConfig kBadConfigs[] = {
    {"missing heads", "{" LLAMA_FIELDS "}", {"missing", "num_attention_heads"}},
    {"zero heads",
     "{" LLAMA_FIELDS R"(, "num_attention_heads": 0})",
     {"num_attention_heads", "is 0"}},
    {"negative heads",
     "{" LLAMA_FIELDS R"(, "num_attention_heads": -8})",
     {"num_attention_heads", "-8"}},
    {"heads not divisible by kv heads",
     "{" LLAMA_FIELDS R"(, "num_attention_heads": 8, "num_key_value_heads": 3})",
     {"num_attention_heads", "8", "num_key_value_heads", "3", "divisible"}},
    {"hidden not divisible by heads",
     R"({"model_type": "llama", "hidden_size": 250, "intermediate_size": 512,
         "vocab_size": 1000, "num_hidden_layers": 2, "num_attention_heads": 8})",
     {"hidden_size", "250", "num_attention_heads", "head_dim"}},
    {"string where a number belongs",
     R"({"model_type": "llama", "hidden_size": "256", "intermediate_size": 512,
         "vocab_size": 1000, "num_hidden_layers": 2, "num_attention_heads": 8})",
     {"hidden_size", "integer", "\"256\""}},
    {"fractional size",
     "{" LLAMA_FIELDS R"(, "num_attention_heads": 8.5})",
     {"num_attention_heads", "8.5"}},
    {"missing vocab",
     R"({"model_type": "llama", "hidden_size": 256, "intermediate_size": 512,
         "num_hidden_layers": 2, "num_attention_heads": 8})",
     {"missing", "vocab_size"}},
    {"missing intermediate",
     R"({"model_type": "llama", "hidden_size": 256, "vocab_size": 1000,
         "num_hidden_layers": 2, "num_attention_heads": 8})",
     {"missing", "intermediate_size"}},
    {"implausible size",
     "{" LLAMA_FIELDS R"(, "num_attention_heads": 99999999999999})",
     {"num_attention_heads", "implausibly large"}},
    {"unknown architecture",
     R"({"model_type": "gpt_bigcode", "hidden_size": 256})",
     {"gpt_bigcode", "llama"}},
    {"unknown architecture without model_type",
     R"({"architectures": ["FalconForCausalLM"], "hidden_size": 256})",
     {"FalconForCausalLM", "model_type"}},
    {"nothing to go on", R"({"hidden_size": 256})", {"model_type"}},
    {"not an object", R"([1, 2, 3])", {"object"}},
    {"layer_types of the wrong length",
     "{" LLAMA_FIELDS R"(, "num_attention_heads": 8,
                        "layer_types": ["full_attention"]})",
     {"layer_types", "1", "num_hidden_layers", "2"}},
    {"unknown layer type",
     "{" LLAMA_FIELDS R"(, "num_attention_heads": 8,
                        "layer_types": ["full_attention", "linear_attention"]})",
     {"layer_types", "linear_attention"}},
    {"more experts per token than experts",
     R"({"model_type": "mixtral", "hidden_size": 256, "intermediate_size": 512,
         "vocab_size": 1000, "num_hidden_layers": 2, "num_attention_heads": 8,
         "num_local_experts": 4, "num_experts_per_tok": 6})",
     {"num_experts_per_tok", "6", "num_local_experts", "4"}},
    {"MoE without expert count",
     R"({"model_type": "qwen3_moe", "hidden_size": 256, "intermediate_size": 512,
         "vocab_size": 1000, "num_hidden_layers": 2, "num_attention_heads": 8,
         "num_experts_per_tok": 2, "moe_intermediate_size": 128})",
     {"missing", "num_experts"}},
    {"DeepSeek without kv_lora_rank",
     R"({"model_type": "deepseek_v3", "hidden_size": 256, "intermediate_size": 512,
         "vocab_size": 1000, "num_hidden_layers": 2, "num_attention_heads": 8,
         "qk_nope_head_dim": 32, "qk_rope_head_dim": 16, "v_head_dim": 32})",
     {"missing", "kv_lora_rank"}},
    {"Mamba-2 heads that do not make d_inner",
     R"({"model_type": "mamba2", "hidden_size": 256, "num_hidden_layers": 2,
         "vocab_size": 1000, "state_size": 64, "num_heads": 7, "head_dim": 64,
         "n_groups": 1})",
     {"num_heads", "7", "head_dim", "expand", "hidden_size"}},
    {"Mamba-2 groups",
     R"({"model_type": "mamba2", "hidden_size": 256, "num_hidden_layers": 2,
         "vocab_size": 1000, "state_size": 64, "num_heads": 8, "head_dim": 64,
         "n_groups": 3})",
     {"num_heads", "n_groups", "3"}},
    {"mamba_ssm with attention layers",
     R"({"d_model": 256, "n_layer": 4, "vocab_size": 1000, "ssm_cfg": {"layer": "Mamba2"},
         "attn_layer_idx": [1]})",
     {"attn_layer_idx"}},
    {"mamba_ssm with an unknown layer",
     R"({"d_model": 256, "n_layer": 4, "vocab_size": 1000, "ssm_cfg": {"layer": "Mamba3"}})",
     {"ssm_cfg.layer", "Mamba3"}},
    {"nested text_config missing a field",
     R"({"model_type": "gemma3", "architectures": ["Gemma3ForConditionalGeneration"],
         "text_config": {"hidden_size": 2560, "num_hidden_layers": 34}})",
     {"text_config.intermediate_size"}},
    {"bad boolean",
     "{" LLAMA_FIELDS R"(, "num_attention_heads": 8, "tie_word_embeddings": 3})",
     {"tie_word_embeddings", "true or false"}},
};

class BadConfigTest : public testing::TestWithParam<BadConfig> {};

TEST_P(BadConfigTest, MessageNamesTheField) {
  const BadConfig& bad = GetParam();
  try {
    parse_plan_model(nlohmann::json::parse(bad.config));
    FAIL() << bad.label << ": expected an InputError";
  } catch (const InputError& e) {
    for (const std::string& part : bad.message_parts)
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos)
          << bad.label << ": '" << part << "' not in: " << e.what();
  }
}

INSTANTIATE_TEST_SUITE_P(Planner, BadConfigTest, testing::ValuesIn(kBadConfigs),
                         [](const testing::TestParamInfo<BadConfig>& info) {
                           std::string name = info.param.label;
                           for (char& c : name)
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           return name;
                         });

TEST(BadOptions, KvBlockDtypeMustDivideTheHead) {
  // head_dim 80 (as Phi-2's): q8_0 blocks of 32 do not divide a K row of 2 x 80 values.
  PlanModel model = parse_plan_model(nlohmann::json::parse(
      R"({"model_type": "llama", "hidden_size": 160, "intermediate_size": 512,
          "vocab_size": 1000, "num_hidden_layers": 2, "num_attention_heads": 2,
          "num_key_value_heads": 1})"));
  PlanOptions options;
  options.kv_dtype = KvDtype::kQ8_0;
  try {
    plan_memory(model, options);
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("head_dim"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("q8_0"), std::string::npos) << e.what();
  }
  options.kv_dtype = KvDtype::kF16;
  EXPECT_NO_THROW(plan_memory(model, options));
}

TEST(BadOptions, ZeroUsersOrContextAreRefused) {
  PlanModel model =
      parse_plan_model(nlohmann::json::parse("{" LLAMA_FIELDS R"(, "num_attention_heads": 8})"));
  PlanOptions options;
  options.users = 0;
  EXPECT_THROW(plan_memory(model, options), InputError);
  options.users = 1;
  options.context_tokens = 0;
  try {
    plan_memory(model, options);
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("--ctx"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace hwledger::planner
