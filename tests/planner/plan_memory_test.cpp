// plan_memory: weights under each format, prefill and runtime terms, the verdict thresholds and
// the JSON shape, each against a hand derivation written beside it.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "planner/memory_plan.h"
#include "planner/plan_model.h"
#include "util/error.h"

namespace hwledger::planner {
namespace {

// The Llama-3.1-8B geometry (see published_configs_test.cpp), trimmed to 2 layers.
const char* kSmallLlama = R"({
  "model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 4096,
  "intermediate_size": 14336, "num_attention_heads": 32, "num_key_value_heads": 8,
  "num_hidden_layers": 2, "vocab_size": 128256, "max_position_embeddings": 131072,
  "tie_word_embeddings": false, "torch_dtype": "bfloat16"})";

PlanModel small_llama() {
  return parse_plan_model(nlohmann::json::parse(kSmallLlama));
}

TEST(PlanMemory, LayerWeightsUnderEachFormat) {
  PlanModel model = small_llama();
  // One layer: matrices 4096x4096 x 2 + 1024x4096 x 2 + 14336x4096 x 2 + 4096x14336 =
  // 218,103,808 weights; 2 norms of 4096 values.
  const uint64_t matrices = 218'103'808, vectors = 8192;
  auto layer_bytes = [&](WeightFormat format) {
    PlanOptions options;
    options.weights = format;
    return plan_memory(model, options).layers[0].weights_bytes;
  };
  EXPECT_EQ(layer_bytes(WeightFormat::kBF16), (matrices + vectors) * 2);
  EXPECT_EQ(layer_bytes(WeightFormat::kF32), (matrices + vectors) * 4);
  // Block formats: every row (4096 or 14336 values) is whole blocks; norms stay f32.
  EXPECT_EQ(layer_bytes(WeightFormat::kQ8_0), matrices / 32 * 34 + vectors * 4);
  EXPECT_EQ(layer_bytes(WeightFormat::kQ4_0), matrices / 32 * 18 + vectors * 4);
  EXPECT_EQ(layer_bytes(WeightFormat::kQ4_K), matrices / 256 * 144 + vectors * 4);
  EXPECT_EQ(layer_bytes(WeightFormat::kQ6_K), matrices / 256 * 210 + vectors * 4);
  // fp8: 1 byte per weight + one f32 scale for each of the 7 matrices; norms in bf16.
  EXPECT_EQ(layer_bytes(WeightFormat::kFp8), matrices + 7 * 4 + vectors * 2);
}

TEST(PlanMemory, EmbeddingsAndHead) {
  PlanModel model = small_llama();
  PlanOptions options;
  MemoryPlan bf16 = plan_memory(model, options);
  EXPECT_EQ(bf16.embedding_bytes, 128256ull * 4096 * 2);
  EXPECT_EQ(bf16.lm_head_bytes, 128256ull * 4096 * 2);
  EXPECT_EQ(bf16.other_weights_bytes, 4096u * 2);
  EXPECT_EQ(bf16.weights_bytes, bf16.layers[0].weights_bytes + bf16.layers[1].weights_bytes +
                                    bf16.embedding_bytes + bf16.lm_head_bytes +
                                    bf16.other_weights_bytes);
  // llama.cpp quantizes the embeddings too; vLLM's fp8 leaves them in bf16.
  options.weights = WeightFormat::kQ8_0;
  EXPECT_EQ(plan_memory(model, options).embedding_bytes, 128256ull * 4096 / 32 * 34);
  options.weights = WeightFormat::kFp8;
  EXPECT_EQ(plan_memory(model, options).lm_head_bytes, 128256ull * 4096 * 2);
}

TEST(PlanMemory, RuntimeIsBasePlusLogitsPerUser) {
  PlanModel model = small_llama();
  PlanOptions options;
  options.users = 3;
  options.runtime_base_bytes = 1000;
  // 1000 + 3 users x 128256 logits x (4 bytes + 4 bytes for the sampler's sorted copy).
  EXPECT_EQ(plan_memory(model, options).runtime_bytes, 1000u + 3ull * 128256 * 8);
}

TEST(PlanMemory, PrefillIsTokensPerStepTimesTheWidestLayer) {
  PlanModel model = small_llama();
  PlanOptions options;
  options.context_tokens = 8192;
  options.users = 2;
  options.prefill_chunk = 512;
  options.activation_bytes = 4;
  // Per token: residual + normed input 2 x 4096; then max(attention: q 4096 + k,v 2 x 1024 +
  // output 4096 = 10,240; MLP: gate + up 2 x 14336 = 28,672) -> 36,864 values. A step runs
  // 2 users x 512 tokens = 1024 tokens: 1024 x 36,864 x 4 bytes.
  EXPECT_EQ(plan_memory(model, options).prefill_bytes, 1024ull * 36'864 * 4);
  // The chunk never exceeds the context.
  options.context_tokens = 100;
  EXPECT_EQ(plan_memory(model, options).prefill_bytes, 200ull * 36'864 * 4);
  // Without flash attention the scores of one layer are materialised in f32:
  // 2 sequences x 32 heads x 100 query tokens x 100 keys x 4 bytes.
  options.flash_attention = false;
  EXPECT_EQ(plan_memory(model, options).prefill_bytes,
            200ull * 36'864 * 4 + 2ull * 32 * 100 * 100 * 4);
}

TEST(PlanMemory, MoePrefillCountsTheChosenExperts) {
  PlanModel model = parse_plan_model(nlohmann::json::parse(R"({
    "model_type": "qwen3_moe", "hidden_size": 2048, "intermediate_size": 6144,
    "moe_intermediate_size": 768, "num_experts": 128, "num_experts_per_tok": 8,
    "num_attention_heads": 32, "num_key_value_heads": 4, "head_dim": 128,
    "num_hidden_layers": 2, "vocab_size": 151936, "decoder_sparse_step": 1,
    "mlp_only_layers": [1]})"));
  EXPECT_EQ(model.layers[0].ffn, FfnKind::kMoe);
  EXPECT_EQ(model.layers[1].ffn, FfnKind::kDense);  // listed in mlp_only_layers
  // Router 128 + 8 experts x (gate + up) 2 x 768 = 12,416 values per token.
  EXPECT_EQ(model.layers[0].ffn_activations_per_token, 128 + 8 * 2 * 768);
  EXPECT_EQ(model.layers[1].ffn_activations_per_token, 2 * 6144);
  // Layer 0: q 4096x2048, k,v 512x2048 each, o 2048x4096 = 18,874,368; q/k norms 2 x 128;
  // router 128x2048 = 262,144; 128 experts x 3 x 2048x768 = 603,979,776; norms 2 x 2048.
  EXPECT_EQ(model.layers[0].parameters(), 18'874'368 + 256 + 262'144 + 603'979'776 + 4096);
}

TEST(PlanMemory, VerdictThresholds) {
  MemoryPlan plan;
  plan.total_bytes = 800;
  EXPECT_EQ(assess_fit(plan, 1000, "test").verdict, Verdict::kGreen);  // exactly 80%
  plan.total_bytes = 801;
  EXPECT_EQ(assess_fit(plan, 1000, "test").verdict, Verdict::kYellow);
  plan.total_bytes = 1000;
  DeviceFit full = assess_fit(plan, 1000, "test");
  EXPECT_EQ(full.verdict, Verdict::kYellow);
  EXPECT_EQ(full.free_bytes, 0u);
  plan.total_bytes = 1001;
  DeviceFit over = assess_fit(plan, 1000, "test");
  EXPECT_EQ(over.verdict, Verdict::kRed);
  EXPECT_EQ(over.free_bytes, 0u);
  EXPECT_DOUBLE_EQ(over.used_fraction, 1.001);
  EXPECT_THROW(assess_fit(plan, 0, "test"), InputError);
}

TEST(PlanMemory, JsonShape) {
  PlanModel model = small_llama();
  PlanOptions options;
  options.context_tokens = 1024;
  options.users = 2;
  MemoryPlan plan = plan_memory(model, options);
  DeviceFit fit = assess_fit(plan, 80ull << 30, "--device-memory 80G");
  nlohmann::json j = plan_to_json(plan, fit);
  // The memory_report keys of the SPEC, at the top level.
  for (const char* key : {"total_bytes", "weights_bytes", "kv_bytes", "runtime_bytes",
                          "prefill_bytes", "layers", "model", "options", "device", "notes"})
    EXPECT_TRUE(j.contains(key)) << key;
  EXPECT_EQ(j["source"], "predicted");
  EXPECT_EQ(j["total_bytes"].get<uint64_t>(), plan.total_bytes);
  EXPECT_EQ(j["total_bytes"].get<uint64_t>(),
            j["weights_bytes"].get<uint64_t>() + j["kv_bytes"].get<uint64_t>() +
                j["runtime_bytes"].get<uint64_t>() + j["prefill_bytes"].get<uint64_t>());
  ASSERT_EQ(j["layers"].size(), 2u);
  const nlohmann::json& layer = j["layers"][1];
  EXPECT_EQ(layer["index"], 1);
  EXPECT_EQ(layer["kind"], "attention");
  EXPECT_EQ(layer["ffn"], "dense");
  // 1024 tokens x 2 users x 2 x 8 x 128 x 2 bytes.
  EXPECT_EQ(layer["kv_bytes"].get<uint64_t>(), 1024ull * 2 * 4096);
  EXPECT_EQ(layer["kv_bytes_per_token"].get<uint64_t>(), 4096u);
  EXPECT_TRUE(layer.contains("weights_bytes"));
  EXPECT_EQ(j["model"]["parameters"].get<int64_t>(), model.parameters());
  EXPECT_EQ(j["model"]["architecture"], "LlamaForCausalLM");
  EXPECT_EQ(j["options"]["ctx"], 1024);
  EXPECT_EQ(j["options"]["users"], 2);
  EXPECT_EQ(j["options"]["weights"], "bf16");
  EXPECT_EQ(j["options"]["kv_dtype"], "f16");
  EXPECT_EQ(j["device"]["memory_bytes"].get<uint64_t>(), 80ull << 30);
  EXPECT_EQ(j["device"]["verdict"], "green");
  EXPECT_EQ(j["kv_bytes_per_token"].get<uint64_t>(), 2u * 4096);
}

TEST(PlanMemory, NotesForContextBeyondTheModel) {
  PlanModel model = small_llama();
  PlanOptions options;
  options.context_tokens = 200'000;
  MemoryPlan plan = plan_memory(model, options);
  ASSERT_FALSE(plan.notes.empty());
  EXPECT_NE(plan.notes.back().find("131072"), std::string::npos);
}

}  // namespace
}  // namespace hwledger::planner
