// config.json parsing: every supported architecture's fields, and a clear error naming the field
// for everything else.
#include "model/config.h"

#include <gtest/gtest.h>

#include "util/error.h"

namespace hwledger {
namespace {

nlohmann::json qwen3() {
  return nlohmann::json::parse(R"({"architectures":["Qwen3ForCausalLM"],"vocab_size":1024,"hidden_size":128,
    "intermediate_size":256,"num_hidden_layers":3,"num_attention_heads":4,"num_key_value_heads":2,"head_dim":32,
    "rms_norm_eps":1e-6,"rope_theta":1000000.0,"tie_word_embeddings":true,"eos_token_id":2})");
}

std::string error_of(const nlohmann::json& j) {
  try {
    ModelConfig::from_json(j);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

TEST(ModelConfig, ParsesQwen3) {
  ModelConfig c = ModelConfig::from_json(qwen3());
  EXPECT_EQ(c.head_dim, 32);
  EXPECT_TRUE(c.qk_norm);
  EXPECT_FALSE(c.qkv_bias);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.eos_token_ids, std::vector<int32_t>{2});
  EXPECT_DOUBLE_EQ(c.rope.theta, 1e6);
}

TEST(ModelConfig, Qwen2HasQkvBiasAndDerivedHeadDim) {
  auto j = qwen3();
  j["architectures"] = {"Qwen2ForCausalLM"};
  j.erase("head_dim");
  ModelConfig c = ModelConfig::from_json(j);
  EXPECT_TRUE(c.qkv_bias);
  EXPECT_FALSE(c.o_bias);
  EXPECT_FALSE(c.qk_norm);
  EXPECT_EQ(c.head_dim, 32);
}

TEST(ModelConfig, LlamaRopeScalingBothForms) {
  auto j = qwen3();
  j["architectures"] = {"LlamaForCausalLM"};
  j["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 32.0}, {"low_freq_factor", 1.0},
                       {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 8192}};
  ModelConfig c = ModelConfig::from_json(j);
  EXPECT_EQ(c.rope.type, RopeType::Llama3);
  EXPECT_DOUBLE_EQ(c.rope.factor, 32.0);
  j.erase("rope_scaling");
  j["rope_parameters"] = {{"rope_type", "llama3"}, {"rope_theta", 500000.0}, {"factor", 8.0}};
  c = ModelConfig::from_json(j);
  EXPECT_EQ(c.rope.type, RopeType::Llama3);
  EXPECT_DOUBLE_EQ(c.rope.theta, 500000.0);
  EXPECT_DOUBLE_EQ(c.rope.factor, 8.0);
}

TEST(ModelConfig, MistralSlidingWindow) {
  auto j = qwen3();
  j["architectures"] = {"MistralForCausalLM"};
  j["sliding_window"] = 4096;
  ModelConfig c = ModelConfig::from_json(j);
  ASSERT_EQ(c.layer_window.size(), 3u);
  EXPECT_EQ(c.window(0), 4096);
  j["sliding_window"] = nullptr;
  EXPECT_EQ(ModelConfig::from_json(j).window(0), 0);
}

TEST(ModelConfig, ErrorsNameTheProblem) {
  auto j = qwen3();
  j["architectures"] = {"GPT2LMHeadModel"};
  EXPECT_NE(error_of(j).find("unsupported architecture 'GPT2LMHeadModel'"), std::string::npos);

  j = qwen3();
  j.erase("hidden_size");
  EXPECT_NE(error_of(j).find("missing field 'hidden_size'"), std::string::npos);

  j = qwen3();
  j["num_attention_heads"] = 0;
  EXPECT_NE(error_of(j).find("'num_attention_heads' must be positive"), std::string::npos);

  j = qwen3();
  j["num_key_value_heads"] = 3;
  EXPECT_NE(error_of(j).find("not a multiple of num_key_value_heads (3)"), std::string::npos);

  j = qwen3();
  j["vocab_size"] = "many";
  EXPECT_NE(error_of(j).find("'vocab_size' must be an integer"), std::string::npos);

  j = qwen3();
  j["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
  EXPECT_NE(error_of(j).find("rope_type 'yarn'"), std::string::npos);

  j = qwen3();
  j["hidden_act"] = "gelu";
  EXPECT_NE(error_of(j).find("hidden_act 'gelu'"), std::string::npos);

  EXPECT_NE(error_of(nlohmann::json::array()).find("expected a JSON object"), std::string::npos);
}

}  // namespace
}  // namespace hwledger
