// Loading a model folder: synthesized models load and are fingerprinted by content; every
// kind of broken folder is an InputError that says what is wrong.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "model/model.h"
#include "model/synth.h"
#include "util/error.h"

namespace hwledger {
namespace {

namespace fs = std::filesystem;

nlohmann::json tiny_config() {
  return nlohmann::json::parse(R"({"architectures":["LlamaForCausalLM"],"vocab_size":64,"hidden_size":32,
    "intermediate_size":48,"num_hidden_layers":2,"num_attention_heads":2,"num_key_value_heads":1,
    "rms_norm_eps":1e-5,"tie_word_embeddings":false,"attention_bias":true})");
}

class LoaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("hwledger-loader-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    synth_model(tiny_config(), 7, DType::BF16, dir_.string(), false);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string load_error() {
    try {
      LoadOptions o;
      o.show_progress = false;
      Model::load(dir_.string(), o);
    } catch (const InputError& e) {
      return e.what();
    }
    return "";
  }
  fs::path dir_;
};

TEST_F(LoaderTest, LoadsSynthesizedModelWithBiasesAndUntiedHead) {
  auto m = Model::load(dir_.string(), {true, false});
  EXPECT_EQ(m->layers.size(), 2u);
  EXPECT_FALSE(m->layers[0].bq.empty());
  EXPECT_FALSE(m->layers[0].bo.empty());
  EXPECT_NE(m->lm_head.data, m->embed.data);
  EXPECT_EQ(m->fingerprint.size(), 64u);
}

TEST_F(LoaderTest, FingerprintChangesWithTheWeights) {
  std::string a = Model::load(dir_.string(), {true, false})->fingerprint;
  synth_model(tiny_config(), 8, DType::BF16, dir_.string(), false);
  std::string b = Model::load(dir_.string(), {true, false})->fingerprint;
  EXPECT_NE(a, b);
}

TEST_F(LoaderTest, TruncatedWeights) {
  fs::resize_file(dir_ / "model.safetensors", fs::file_size(dir_ / "model.safetensors") - 100);
  EXPECT_NE(load_error().find("truncated file"), std::string::npos) << load_error();
}

TEST_F(LoaderTest, MissingWeightsFile) {
  fs::remove(dir_ / "model.safetensors");
  EXPECT_NE(load_error().find("neither model.safetensors nor"), std::string::npos);
}

TEST_F(LoaderTest, ShapeMismatchWithConfig) {
  auto c = tiny_config();
  c["intermediate_size"] = 64;
  std::ofstream(dir_ / "config.json") << c.dump();
  EXPECT_NE(load_error().find("has shape [48, 32] but config.json implies [64, 32]"), std::string::npos)
      << load_error();
}

TEST_F(LoaderTest, MissingTensor) {
  auto c = tiny_config();
  c["num_hidden_layers"] = 3;
  std::ofstream(dir_ / "config.json") << c.dump();
  EXPECT_NE(load_error().find("missing tensor 'model.layers.2.input_layernorm.weight'"), std::string::npos)
      << load_error();
}

TEST_F(LoaderTest, UnknownArchitecture) {
  auto c = tiny_config();
  c["architectures"] = {"FalconForCausalLM"};
  std::ofstream(dir_ / "config.json") << c.dump();
  EXPECT_NE(load_error().find("unsupported architecture 'FalconForCausalLM'"), std::string::npos);
}

TEST_F(LoaderTest, ShardedIndexWithEscapingPathIsRefused) {
  std::ofstream(dir_ / "model.safetensors.index.json") << R"({"weight_map":{"a":"../../etc/passwd"}})";
  EXPECT_NE(load_error().find("outside the model folder"), std::string::npos);
}

TEST_F(LoaderTest, ShardedIndexLoads) {
  // One shard named through an index is the sharded layout's smallest case.
  fs::rename(dir_ / "model.safetensors", dir_ / "model-00001-of-00001.safetensors");
  std::ofstream(dir_ / "model.safetensors.index.json")
      << R"({"weight_map":{"model.embed_tokens.weight":"model-00001-of-00001.safetensors"}})";
  auto m = Model::load(dir_.string(), {true, false});
  EXPECT_EQ(m->layers.size(), 2u);
}

}  // namespace
}  // namespace hwledger
