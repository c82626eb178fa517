// Safetensors headers: exact parameter counts when the weights are present, and refusals of
// headers that lie. The golden models in ../shared/golden were written by PyTorch/transformers.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "planner/checkpoint.h"
#include "planner/model_source.h"
#include "util/error.h"

namespace hwledger::planner {
namespace {

namespace fs = std::filesystem;
const fs::path kGolden = fs::path(HWLEDGER_SHARED_DIR) / "golden";

// Parameter counts of the golden checkpoints: the sum of the element counts in their
// safetensors headers, counted with Python's json module (not with this code).
struct GoldenModel {
  const char* name;
  int64_t parameters;
};
const GoldenModel kGoldenModels[] = {
    {"llama-tiny", 754'560}, {"qwen3-tiny", 574'528}, {"qwen2-tiny", 582'784}};

class GoldenCheckpoint : public testing::TestWithParam<GoldenModel> {};

TEST_P(GoldenCheckpoint, ConfigDerivedTensorsMatchTheCheckpoint) {
  const GoldenModel& golden = GetParam();
  const fs::path dir = kGolden / golden.name;
  std::ifstream in(dir / "config.json");
  PlanModel from_config = parse_plan_model(nlohmann::json::parse(in));
  EXPECT_EQ(from_config.parameters(), golden.parameters);

  // Every tensor the config implies is in the checkpoint with the same shape, and no more.
  std::set<std::pair<std::string, std::vector<int64_t>>> implied, stored;
  auto add_all = [&](const std::vector<PlanTensor>& tensors) {
    for (const PlanTensor& t : tensors) implied.insert({t.name, t.shape});
  };
  for (const PlanLayer& layer : from_config.layers) add_all(layer.tensors);
  add_all(from_config.embedding);
  add_all(from_config.lm_head);
  add_all(from_config.other);
  for (const CheckpointTensor& t : read_safetensors_header(dir / "model.safetensors"))
    stored.insert({t.name, t.shape});
  EXPECT_EQ(implied, stored);
}

TEST_P(GoldenCheckpoint, ModelFolderUsesTheHeader) {
  const GoldenModel& golden = GetParam();
  LoadedModel loaded = load_plan_model((kGolden / golden.name).string());
  EXPECT_TRUE(loaded.read_checkpoint);
  EXPECT_EQ(loaded.model.parameters_source, "safetensors");
  EXPECT_EQ(loaded.model.parameters(), golden.parameters);
  // Given the config.json file itself, the checkpoint beside it is read as well.
  LoadedModel from_file = load_plan_model((kGolden / golden.name / "config.json").string());
  EXPECT_EQ(from_file.model.parameters_source, "safetensors");
}

INSTANTIATE_TEST_SUITE_P(Planner, GoldenCheckpoint, testing::ValuesIn(kGoldenModels),
                         [](const auto& info) {
                           std::string name = info.param.name;
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

// --- crafted files ------------------------------------------------------------------------------

class CraftedCheckpoint : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(testing::TempDir()) /
           ("planner_ckpt_" +
            std::string(testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Writes an 8-byte length, the header text, then `data_bytes` zero bytes.
  fs::path write(const std::string& name, const std::string& header, uint64_t data_bytes,
                 std::optional<uint64_t> claimed_length = std::nullopt) {
    const fs::path path = dir_ / name;
    std::ofstream out(path, std::ios::binary);
    uint64_t length = claimed_length.value_or(header.size());
    for (int i = 0; i < 8; ++i) out.put(char((length >> (8 * i)) & 0xff));
    out << header << std::string(data_bytes, '\0');
    return path;
  }

  void expect_refused(const fs::path& path, const std::vector<std::string>& parts) {
    try {
      read_safetensors_header(path);
      FAIL() << "expected an InputError for " << path;
    } catch (const InputError& e) {
      for (const std::string& part : parts)
        EXPECT_NE(std::string(e.what()).find(part), std::string::npos)
            << "'" << part << "' not in: " << e.what();
    }
  }

  fs::path dir_;
};

TEST_F(CraftedCheckpoint, ValidHeaderIsRead) {
  auto path = write("ok.safetensors",
                    R"({"__metadata__": {"format": "pt"},
                        "a": {"dtype": "BF16", "shape": [2, 3], "data_offsets": [0, 12]},
                        "b": {"dtype": "F8_E4M3", "shape": [4], "data_offsets": [12, 16]}})",
                    16);
  std::vector<CheckpointTensor> tensors = read_safetensors_header(path);
  ASSERT_EQ(tensors.size(), 2u);
  EXPECT_EQ(tensors[0].name, "a");
  EXPECT_EQ(tensors[0].shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(tensors[1].bytes, 4u);
}

TEST_F(CraftedCheckpoint, LyingHeadersAreRefused) {
  expect_refused(write("empty-header.safetensors", "", 0), {"empty-header", "not valid JSON"});
  {
    std::ofstream tiny(dir_ / "tiny.safetensors", std::ios::binary);
    tiny << "abc";
  }
  expect_refused(dir_ / "tiny.safetensors", {"too short"});
  expect_refused(write("long.safetensors", "{}", 0, 1000), {"header length 1000"});
  expect_refused(write("json.safetensors", "{not json", 0), {"not valid JSON"});
  expect_refused(write("array.safetensors", "[1]", 0), {"JSON object"});
  expect_refused(write("dtype.safetensors",
                       R"({"w": {"dtype": "Q4", "shape": [2], "data_offsets": [0, 2]}})", 2),
                 {"\"w\"", "Q4"});
  expect_refused(write("outside.safetensors",
                       R"({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})", 8),
                 {"\"w\"", "outside"});
  expect_refused(write("size.safetensors",
                       R"({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 16]}})", 16),
                 {"\"w\"", "16 bytes", "12"});
  expect_refused(write("overlap.safetensors",
                       R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                           "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
                       12),
                 {"overlap"});
  expect_refused(write("negative.safetensors",
                       R"({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 0]}})", 0),
                 {"\"w\"", "-1"});
  expect_refused(write("reversed.safetensors",
                       R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [8, 4]}})", 8),
                 {"\"w\""});
  expect_refused(write("meta.safetensors", R"({"__metadata__": {"format": 3}})", 0),
                 {"__metadata__"});
  expect_refused(write("overflow.safetensors",
                       R"({"w": {"dtype": "F64", "shape": [1099511627776, 1099511627776],
                                 "data_offsets": [0, 0]}})",
                       0),
                 {"\"w\"", "overflow"});
}

// A 2-layer Llama with hidden 64, written as an fp8 checkpoint with block scales and an extra
// layer 2 (as DeepSeek's MTP module sits beyond num_hidden_layers).
class Fp8Checkpoint : public CraftedCheckpoint {
 protected:
  void write_model(bool include_extra_layer, bool packed = false) {
    std::ofstream(dir_ / "config.json") << R"({"model_type": "llama", "hidden_size": 64,
        "intermediate_size": 128, "num_attention_heads": 4, "num_hidden_layers": 2,
        "vocab_size": 100, "tie_word_embeddings": true})";
    nlohmann::json header = nlohmann::json::object();
    uint64_t offset = 0;
    auto add = [&](const std::string& name, const std::string& dtype, std::vector<int64_t> shape,
                   uint64_t element_bytes) {
      uint64_t bytes = element_bytes;
      for (int64_t d : shape) bytes *= uint64_t(d);
      header[name] = {
          {"dtype", dtype}, {"shape", shape}, {"data_offsets", {offset, offset + bytes}}};
      offset += bytes;
    };
    add("model.embed_tokens.weight", "BF16", {100, 64}, 2);
    add("model.norm.weight", "BF16", {64}, 2);
    for (int layer = 0; layer < (include_extra_layer ? 3 : 2); ++layer) {
      const std::string p = "model.layers." + std::to_string(layer) + ".";
      for (const char* proj : {"q_proj", "k_proj", "v_proj", "o_proj"}) {
        add(p + "self_attn." + proj + ".weight", "F8_E4M3", {64, 64}, 1);
        add(p + "self_attn." + proj + ".weight_scale_inv", "F32", {1, 1}, 4);
      }
      for (const char* proj : {"gate_proj", "up_proj"})
        add(p + "mlp." + proj + ".weight", "F8_E4M3", {128, 64}, 1);
      add(p + "mlp.down_proj.weight", "F8_E4M3", {64, 128}, 1);
      add(p + "input_layernorm.weight", "BF16", {64}, 2);
      add(p + "post_attention_layernorm.weight", "BF16", {64}, 2);
      if (packed) add(p + "mlp.down_proj.qweight", "I32", {8, 128}, 4);
    }
    write("model.safetensors", header.dump(), offset);
  }
};

TEST_F(Fp8Checkpoint, ScalesAreNotParametersAndExtraLayersAreNotPlanned) {
  write_model(/*include_extra_layer=*/true);
  LoadedModel loaded = load_plan_model(dir_.string());
  ASSERT_EQ(loaded.model.parameters_source, "safetensors");
  // Per layer: 4 x 64x64 + 3 x 128x64 + 2 x 64 = 41,088. Two planned layers, tied embeddings
  // 100x64, final norm 64. The scales (F32 [1,1]) are not parameters.
  const int64_t per_layer = 4 * 64 * 64 + 3 * 128 * 64 + 2 * 64;
  EXPECT_EQ(loaded.model.parameters(), 2 * per_layer + 100 * 64 + 64);
  EXPECT_EQ(loaded.model.unplanned_parameters, per_layer);
  // The config agrees with the checkpoint on the planned part: no note about a mismatch.
  for (const std::string& note : loaded.model.notes)
    EXPECT_EQ(note.find("implies"), std::string::npos) << note;
}

TEST_F(Fp8Checkpoint, PackedQuantizationFallsBackToTheConfig) {
  write_model(false, /*packed=*/true);
  LoadedModel loaded = load_plan_model(dir_.string());
  EXPECT_EQ(loaded.model.parameters_source, "config");
  ASSERT_FALSE(loaded.model.notes.empty());
  EXPECT_NE(loaded.model.notes.back().find("qweight"), std::string::npos);
}

TEST_F(CraftedCheckpoint, ShardedIndex) {
  write("model-00001-of-00002.safetensors",
        R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})", 8);
  write("model-00002-of-00002.safetensors",
        R"({"b": {"dtype": "BF16", "shape": [3, 2], "data_offsets": [0, 12]}})", 12);
  std::ofstream(dir_ / "model.safetensors.index.json")
      << R"({"metadata": {"total_size": 20}, "weight_map": {
            "a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}})";
  std::optional<Checkpoint> checkpoint = read_checkpoint(dir_);
  ASSERT_TRUE(checkpoint);
  EXPECT_EQ(checkpoint->tensors.size(), 2u);
  EXPECT_EQ(checkpoint->files.size(), 2u);
  EXPECT_EQ(checkpoint->data_bytes, 20u);
}

TEST_F(CraftedCheckpoint, IndexMayNotPointOutOfTheFolder) {
  std::ofstream(dir_ / "model.safetensors.index.json")
      << R"({"weight_map": {"a": "../../etc/passwd"}})";
  try {
    read_checkpoint(dir_);
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("../../etc/passwd"), std::string::npos) << e.what();
  }
}

TEST_F(CraftedCheckpoint, IndexNamingAMissingTensorIsRefused) {
  write("model-00001-of-00001.safetensors",
        R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})", 8);
  std::ofstream(dir_ / "model.safetensors.index.json")
      << R"({"weight_map": {"a": "model-00001-of-00001.safetensors",
                            "ghost": "model-00001-of-00001.safetensors"}})";
  try {
    read_checkpoint(dir_);
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("ghost"), std::string::npos) << e.what();
  }
}

TEST_F(CraftedCheckpoint, NoCheckpointMeansConfigOnly) {
  EXPECT_FALSE(read_checkpoint(dir_));
  std::ofstream(dir_ / "config.json") << R"({"model_type": "llama", "hidden_size": 64,
      "intermediate_size": 128, "num_attention_heads": 4, "num_hidden_layers": 2,
      "vocab_size": 100})";
  LoadedModel loaded = load_plan_model(dir_.string());
  EXPECT_FALSE(loaded.read_checkpoint);
  EXPECT_EQ(loaded.model.parameters_source, "config");
}

TEST_F(CraftedCheckpoint, ModelPathErrorsNameThePath) {
  try {
    load_plan_model((dir_ / "nowhere").string());
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("nowhere"), std::string::npos);
  }
  try {
    load_plan_model(dir_.string());  // a folder without config.json
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("config.json"), std::string::npos);
  }
  std::ofstream(dir_ / "config.json") << "{ nope";
  EXPECT_THROW(load_plan_model(dir_.string()), InputError);
}

}  // namespace
}  // namespace hwledger::planner
