// Real, published config.json files, copied here from the model repositories on the Hugging
// Face hub. For each one: the parameter count must be within 0.5% of the figure the model card
// publishes, equal the hand-derived exact count written beside it, and the KV bytes per token
// must equal the hand derivation written beside it.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "planner/memory_plan.h"
#include "planner/plan_model.h"

namespace hwledger::planner {
namespace {

PlanModel model_from(const char* text) {
  return parse_plan_model(nlohmann::json::parse(text));
}

MemoryPlan plan(const PlanModel& model, int64_t ctx = 4096, int64_t users = 1,
                KvDtype kv = KvDtype::kF16) {
  PlanOptions options;
  options.context_tokens = ctx;
  options.users = users;
  options.kv_dtype = kv;
  return plan_memory(model, options);
}

void expect_within_half_percent(int64_t ours, double published) {
  EXPECT_LT(std::fabs(double(ours) - published) / published, 0.005)
      << "ours " << ours << " vs published " << published;
}

// meta-llama/Llama-3.1-8B config.json.
constexpr const char* kLlama31_8B = R"({
  "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "bos_token_id": 128000, "eos_token_id": 128001, "hidden_act": "silu", "hidden_size": 4096,
  "initializer_range": 0.02, "intermediate_size": 14336, "max_position_embeddings": 131072,
  "mlp_bias": false, "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 32,
  "num_key_value_heads": 8, "pretraining_tp": 1, "rms_norm_eps": 1e-05,
  "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                   "original_max_position_embeddings": 8192, "rope_type": "llama3"},
  "rope_theta": 500000.0, "tie_word_embeddings": false, "torch_dtype": "bfloat16",
  "transformers_version": "4.43.0.dev0", "use_cache": true, "vocab_size": 128256})";

TEST(PublishedConfigs, Llama31_8B) {
  PlanModel model = model_from(kLlama31_8B);
  // Published: 8.03B (model card). By hand, per layer: q 4096x4096 + k,v 2 x 1024x4096 +
  // o 4096x4096 = 41,943,040; MLP 3 x 4096x14336 = 176,160,768; 2 norms 8,192 -> 218,112,000.
  // x 32 = 6,979,584,000; embeddings + untied lm_head 2 x 128256x4096 = 1,050,673,152; final
  // norm 4,096. Total 8,030,261,248.
  EXPECT_EQ(model.parameters(), 8'030'261'248);
  expect_within_half_percent(model.parameters(), 8.03e9);
  // KV/token: 32 layers x 2 (K,V) x 8 kv heads x 128 head_dim x 2 bytes = 131,072 B at f16.
  MemoryPlan p = plan(model);
  EXPECT_EQ(p.kv_bytes_per_token, 131'072u);
  // At q8_0: a K row is 8 x 128 = 1024 values = 32 blocks x 34 bytes = 1,088 B; x 2 x 32 layers.
  EXPECT_EQ(plan(model, 4096, 1, KvDtype::kQ8_0).kv_bytes_per_token, 69'632u);
  // 8192 tokens x 2 users x 131,072 B = 2 GiB exactly.
  EXPECT_EQ(plan(model, 8192, 2).kv_bytes, 2ull << 30);
}

// meta-llama/Llama-3.1-70B config.json.
constexpr const char* kLlama31_70B = R"({
  "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "bos_token_id": 128000, "eos_token_id": 128001, "hidden_act": "silu", "hidden_size": 8192,
  "initializer_range": 0.02, "intermediate_size": 28672, "max_position_embeddings": 131072,
  "mlp_bias": false, "model_type": "llama", "num_attention_heads": 64, "num_hidden_layers": 80,
  "num_key_value_heads": 8, "pretraining_tp": 1, "rms_norm_eps": 1e-05,
  "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                   "original_max_position_embeddings": 8192, "rope_type": "llama3"},
  "rope_theta": 500000.0, "tie_word_embeddings": false, "torch_dtype": "bfloat16",
  "transformers_version": "4.43.0.dev0", "use_cache": true, "vocab_size": 128256})";

TEST(PublishedConfigs, Llama31_70B) {
  PlanModel model = model_from(kLlama31_70B);
  // Published: 70.6B (model card). By hand, per layer: q,o 2 x 8192^2 + k,v 2 x 1024x8192 =
  // 150,994,944; MLP 3 x 8192x28672 = 704,643,072; norms 16,384 -> 855,654,400 x 80 =
  // 68,452,352,000; embeddings + lm_head 2 x 128256x8192 = 2,101,346,304; norm 8,192.
  EXPECT_EQ(model.parameters(), 70'553'706'496);
  expect_within_half_percent(model.parameters(), 70.6e9);
  // KV/token: 80 layers x 2 x 8 kv heads x 128 x 2 bytes = 327,680 B.
  EXPECT_EQ(plan(model).kv_bytes_per_token, 327'680u);
}

// mistralai/Mistral-7B-v0.1 config.json.
constexpr const char* kMistral7B = R"({
  "architectures": ["MistralForCausalLM"], "bos_token_id": 1, "eos_token_id": 2,
  "hidden_act": "silu", "hidden_size": 4096, "initializer_range": 0.02,
  "intermediate_size": 14336, "max_position_embeddings": 32768, "model_type": "mistral",
  "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
  "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "sliding_window": 4096,
  "tie_word_embeddings": false, "torch_dtype": "bfloat16", "transformers_version": "4.34.0.dev0",
  "use_cache": true, "vocab_size": 32000})";

TEST(PublishedConfigs, Mistral7B) {
  PlanModel model = model_from(kMistral7B);
  // Published: 7.24B (model card / HF). By hand: 32 x 218,112,000 (as Llama-3.1-8B's layers) +
  // 2 x 32000x4096 + 4096 = 7,241,732,096.
  EXPECT_EQ(model.parameters(), 7'241'732'096);
  expect_within_half_percent(model.parameters(), 7.24e9);
  // KV/token: 32 x 2 x 8 x 128 x 2 = 131,072 B.
  EXPECT_EQ(plan(model).kv_bytes_per_token, 131'072u);
}

TEST(PublishedConfigs, Mistral7BSlidingWindowCapsTheCache) {
  PlanModel model = model_from(kMistral7B);
  for (const PlanLayer& layer : model.layers) {
    EXPECT_EQ(layer.kind, LayerKind::kSlidingAttention);
    EXPECT_EQ(layer.sliding_window, 4096);
  }
  // Below the window every token is kept: 2048 tokens x 131,072 B = 256 MiB.
  EXPECT_EQ(plan(model, 2048).kv_bytes, 268'435'456u);
  // From the window on, each layer keeps the last 4096 tokens: 32 layers x 4096 tokens x
  // 4,096 B (2 x 8 x 128 x 2) = 512 MiB at 8k and at 32k alike.
  EXPECT_EQ(plan(model, 8192).kv_bytes, 536'870'912u);
  EXPECT_EQ(plan(model, 32768).kv_bytes, 536'870'912u);
  EXPECT_EQ(plan(model, 32768).layers[0].kv_tokens, 4096);
  // Without the cap (a runtime that keeps everything) 32k tokens cost 4 GiB.
  PlanOptions uncapped;
  uncapped.context_tokens = 32768;
  uncapped.cap_sliding_window = false;
  EXPECT_EQ(plan_memory(model, uncapped).kv_bytes, 4ull << 30);
}

// mistralai/Mixtral-8x7B-v0.1 config.json.
constexpr const char* kMixtral8x7B = R"({
  "architectures": ["MixtralForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 1,
  "eos_token_id": 2, "hidden_act": "silu", "hidden_size": 4096, "initializer_range": 0.02,
  "intermediate_size": 14336, "max_position_embeddings": 32768, "model_type": "mixtral",
  "num_attention_heads": 32, "num_experts_per_tok": 2, "num_hidden_layers": 32,
  "num_key_value_heads": 8, "num_local_experts": 8, "output_router_logits": false,
  "rms_norm_eps": 1e-05, "rope_theta": 1000000.0, "router_aux_loss_coef": 0.02,
  "sliding_window": null, "tie_word_embeddings": false, "torch_dtype": "bfloat16",
  "transformers_version": "4.36.0.dev0", "use_cache": true, "vocab_size": 32000})";

TEST(PublishedConfigs, Mixtral8x7BAllExpertsResident) {
  PlanModel model = model_from(kMixtral8x7B);
  // Published: 46.7B total (Mistral AI's announcement; 12.9B active). By hand, per layer:
  // attention 41,943,040; 8 experts x 3 x 4096x14336 = 1,409,286,144; router 8x4096 = 32,768;
  // norms 8,192 -> 1,451,270,144 x 32 = 46,440,644,608; + 2 x 32000x4096 + 4096.
  EXPECT_EQ(model.parameters(), 46'702'792'704);
  expect_within_half_percent(model.parameters(), 46.7e9);
  EXPECT_EQ(model.layers[0].ffn, FfnKind::kMoe);
  EXPECT_EQ(model.layers[0].kind, LayerKind::kAttention);  // sliding_window null: no window
  // KV/token: 32 x 2 x 8 x 128 x 2 = 131,072 B.
  EXPECT_EQ(plan(model).kv_bytes_per_token, 131'072u);
}

// Qwen/Qwen2.5-7B config.json.
constexpr const char* kQwen25_7B = R"({
  "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
  "eos_token_id": 151643, "hidden_act": "silu", "hidden_size": 3584, "initializer_range": 0.02,
  "intermediate_size": 18944, "max_position_embeddings": 131072, "max_window_layers": 28,
  "model_type": "qwen2", "num_attention_heads": 28, "num_hidden_layers": 28,
  "num_key_value_heads": 4, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0,
  "sliding_window": 131072, "tie_word_embeddings": false, "torch_dtype": "bfloat16",
  "transformers_version": "4.40.1", "use_cache": true, "use_mrope": false,
  "use_sliding_window": false, "vocab_size": 152064})";

TEST(PublishedConfigs, Qwen25_7B) {
  PlanModel model = model_from(kQwen25_7B);
  // Published: 7.61B (model card; the hub shows 7.62B). By hand, per layer: q 3584x3584 + bias
  // 3584; k,v 512x3584 + bias 512 each; o 3584x3584 -> 29,364,736; MLP 3 x 3584x18944 =
  // 203,685,888; norms 7,168 -> 233,057,792 x 28 = 6,525,618,176; + 2 x 152064x3584 + 3584.
  EXPECT_EQ(model.parameters(), 7'615'616'512);
  expect_within_half_percent(model.parameters(), 7.61e9);
  // use_sliding_window is false: the declared window of 131072 is not used.
  EXPECT_EQ(model.layers[27].kind, LayerKind::kAttention);
  // KV/token: 28 x 2 x 4 kv heads x 128 x 2 bytes = 57,344 B.
  EXPECT_EQ(plan(model).kv_bytes_per_token, 57'344u);
}

// Qwen/Qwen3-0.6B config.json.
constexpr const char* kQwen3_0_6B = R"({
  "architectures": ["Qwen3ForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "bos_token_id": 151643, "eos_token_id": 151645, "head_dim": 128, "hidden_act": "silu",
  "hidden_size": 1024, "initializer_range": 0.02, "intermediate_size": 3072,
  "max_position_embeddings": 40960, "max_window_layers": 28, "model_type": "qwen3",
  "num_attention_heads": 16, "num_hidden_layers": 28, "num_key_value_heads": 8,
  "rms_norm_eps": 1e-06, "rope_scaling": null, "rope_theta": 1000000, "sliding_window": null,
  "tie_word_embeddings": true, "torch_dtype": "bfloat16", "transformers_version": "4.51.0",
  "use_cache": true, "use_sliding_window": false, "vocab_size": 151936})";

TEST(PublishedConfigs, Qwen3_0_6B) {
  PlanModel model = model_from(kQwen3_0_6B);
  // Published: 0.6B, 0.44B non-embedding (model card); the hub shows 596M. By hand, per layer:
  // q 2048x1024, k,v 1024x1024, o 1024x2048 -> 6,291,456; q_norm, k_norm 2 x 128; MLP
  // 3 x 1024x3072 = 9,437,184; norms 2,048 -> 15,730,944 x 28 = 440,466,432 (the 0.44B);
  // tied embeddings 151936x1024 = 155,582,464; final norm 1024. Total 596,049,920.
  EXPECT_EQ(model.parameters(), 596'049'920);
  expect_within_half_percent(model.parameters(), 0.596e9);
  EXPECT_EQ(model.parameters() - model.embedding_parameters() - 1024, 440'466'432);
  EXPECT_TRUE(model.lm_head.empty());
  // KV/token: 28 x 2 x 8 kv heads x 128 head_dim x 2 bytes = 114,688 B.
  EXPECT_EQ(plan(model).kv_bytes_per_token, 114'688u);
}

// google/gemma-2-9b config.json.
constexpr const char* kGemma2_9B = R"({
  "architectures": ["Gemma2ForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "attn_logit_softcapping": 50.0, "bos_token_id": 2, "cache_implementation": "hybrid",
  "eos_token_id": 1, "final_logit_softcapping": 30.0, "head_dim": 256,
  "hidden_act": "gelu_pytorch_tanh", "hidden_activation": "gelu_pytorch_tanh",
  "hidden_size": 3584, "initializer_range": 0.02, "intermediate_size": 14336,
  "max_position_embeddings": 8192, "model_type": "gemma2", "num_attention_heads": 16,
  "num_hidden_layers": 42, "num_key_value_heads": 8, "pad_token_id": 0,
  "query_pre_attn_scalar": 256, "rms_norm_eps": 1e-06, "rope_theta": 10000.0,
  "sliding_window": 4096, "sliding_window_size": 4096, "torch_dtype": "float32",
  "transformers_version": "4.42.0.dev0", "use_cache": true, "vocab_size": 256000})";

TEST(PublishedConfigs, Gemma2_9B) {
  PlanModel model = model_from(kGemma2_9B);
  // Published: 9.24B (hub). head_dim is 256 (not 3584/16 = 224). By hand, per layer: q
  // 4096x3584, k,v 2048x3584, o 3584x4096 -> 44,040,192; MLP 3 x 3584x14336 = 154,140,672;
  // 4 norms 14,336 -> 198,195,200 x 42 = 8,324,198,400; tied embeddings 256000x3584 =
  // 917,504,000; final norm 3584. Total 9,241,705,984.
  EXPECT_EQ(model.parameters(), 9'241'705'984);
  expect_within_half_percent(model.parameters(), 9.24e9);
  EXPECT_EQ(model.layers[0].head_dim, 256);
  // KV/token: 42 x 2 x 8 kv heads x 256 head_dim x 2 bytes = 344,064 B.
  EXPECT_EQ(plan(model).kv_bytes_per_token, 344'064u);
}

TEST(PublishedConfigs, Gemma2_9BAlternatesSlidingAndGlobalLayers) {
  PlanModel model = model_from(kGemma2_9B);
  for (const PlanLayer& layer : model.layers)
    EXPECT_EQ(layer.kind,
              layer.index % 2 == 0 ? LayerKind::kSlidingAttention : LayerKind::kAttention)
        << layer.index;
  // At 8192 tokens: 21 sliding layers x 4096 tokens + 21 global layers x 8192 tokens, each
  // token 2 x 8 x 256 x 2 = 8,192 B per layer: 21 x 8192 x (4096 + 8192) = 2,113,929,216 B.
  MemoryPlan p = plan(model, 8192);
  EXPECT_EQ(p.kv_bytes, 2'113'929'216u);
  EXPECT_EQ(p.layers[0].kv_tokens, 4096);
  EXPECT_EQ(p.layers[1].kv_tokens, 8192);
  // Below the window both kinds keep everything: 2048 x 344,064 B.
  EXPECT_EQ(plan(model, 2048).kv_bytes, 2048ull * 344'064);
}

// deepseek-ai/DeepSeek-V3 config.json (auto_map omitted; it names Python files).
constexpr const char* kDeepSeekV3 = R"({
  "architectures": ["DeepseekV3ForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "aux_loss_alpha": 0.001, "bos_token_id": 0, "eos_token_id": 1, "ep_size": 1,
  "first_k_dense_replace": 3, "hidden_act": "silu", "hidden_size": 7168,
  "initializer_range": 0.02, "intermediate_size": 18432, "kv_lora_rank": 512,
  "max_position_embeddings": 163840, "model_type": "deepseek_v3", "moe_intermediate_size": 2048,
  "moe_layer_freq": 1, "n_group": 8, "n_routed_experts": 256, "n_shared_experts": 1,
  "norm_topk_prob": true, "num_attention_heads": 128, "num_experts_per_tok": 8,
  "num_hidden_layers": 61, "num_key_value_heads": 128, "num_nextn_predict_layers": 1,
  "pretraining_tp": 1, "q_lora_rank": 1536, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64,
  "quantization_config": {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8",
                          "weight_block_size": [128, 128]},
  "rms_norm_eps": 1e-06,
  "rope_scaling": {"beta_fast": 32, "beta_slow": 1, "factor": 40, "mscale": 1.0,
                   "mscale_all_dim": 1.0, "original_max_position_embeddings": 4096,
                   "type": "yarn"},
  "rope_theta": 10000, "routed_scaling_factor": 2.5, "scoring_func": "sigmoid", "seq_aux": true,
  "tie_word_embeddings": false, "topk_group": 4, "topk_method": "noaux_tc",
  "torch_dtype": "bfloat16", "transformers_version": "4.33.1", "use_cache": true,
  "v_head_dim": 128, "vocab_size": 129280})";

TEST(PublishedConfigs, DeepSeekV3) {
  PlanModel model = model_from(kDeepSeekV3);
  // Published: 671B total, 37B active (model card); the HF checkpoint's 685B adds the 14B
  // multi-token-prediction module, which inference does not load: we match the 671B.
  // By hand, MLA per layer: q_a 7168x1536 + q_a_norm 1536 + q_b 1536x(128x192) +
  // kv_a 7168x576 + kv_a_norm 512 + kv_b 512x(128x256) + o (128x128)x7168 = 187,107,328.
  // Dense MLP (layers 0-2) 3 x 7168x18432 = 396,361,728. MoE (layers 3-60): 256 experts x
  // 3 x 7168x2048 + shared expert 3 x 7168x2048 + router 256x7168 + e_score bias 256 =
  // 11,320,164,608. Norms 2 x 7168. Total 3 x 583,483,392 + 58 x 11,507,286,272 +
  // embeddings and lm_head 2 x 129280x7168 + final norm 7168 = 671,026,419,200.
  EXPECT_EQ(model.parameters(), 671'026'419'200);
  expect_within_half_percent(model.parameters(), 671e9);
  EXPECT_EQ(model.layers[2].ffn, FfnKind::kDense);
  EXPECT_EQ(model.layers[3].ffn, FfnKind::kMoe);
  EXPECT_EQ(model.native_format, WeightFormat::kFp8);
  // MLA caches one compressed latent and the shared rope key per token and layer:
  // (kv_lora_rank 512 + qk_rope_head_dim 64) x 61 layers x 2 bytes = 70,272 B at f16.
  EXPECT_EQ(plan(model).kv_bytes_per_token, 70'272u);
  // fp8: 576 x 61 x 1 byte; 4096 tokens x 2 users.
  EXPECT_EQ(plan(model, 4096, 2, KvDtype::kFp8).kv_bytes, 576ull * 61 * 4096 * 2);
}

// state-spaces/mamba2-2.7b config.json (the mamba_ssm format).
constexpr const char* kMamba2_2_7B = R"({
  "d_model": 2560, "d_intermediate": 0, "n_layer": 64, "vocab_size": 50277,
  "ssm_cfg": {"layer": "Mamba2"}, "attn_layer_idx": [], "attn_cfg": {}, "rms_norm": true,
  "residual_in_fp32": true, "fused_add_norm": true, "pad_vocab_size_multiple": 16,
  "tie_embeddings": true})";

TEST(PublishedConfigs, Mamba2_2_7B) {
  PlanModel model = model_from(kMamba2_2_7B);
  // Published: 2.7B (model name, Mamba-2 paper). Mamba2 defaults: d_state 128, d_conv 4,
  // expand 2, headdim 64, ngroups 1 -> d_inner 5120, 80 heads. By hand, per layer: in_proj
  // 2560 x (2x5120 + 2x128 + 80) = 27,074,560; conv1d 5376 x 4 + bias 5376 = 26,880; dt_bias,
  // A_log, D 3 x 80; gated norm 5120; out_proj 5120x2560 = 13,107,200; norm 2560 ->
  // 40,216,560 x 64 = 2,573,859,840; vocab padded to 50288: tied 50288x2560 = 128,737,280;
  // norm_f 2560. Total 2,702,599,680.
  EXPECT_EQ(model.vocab_size, 50288);
  EXPECT_EQ(model.parameters(), 2'702'599'680);
  expect_within_half_percent(model.parameters(), 2.7e9);
  EXPECT_EQ(model.layers[0].kind, LayerKind::kMamba2);
}

TEST(PublishedConfigs, Mamba2StateDoesNotGrowWithContext) {
  PlanModel model = model_from(kMamba2_2_7B);
  // Per layer, per sequence, in f32: conv (4 - 1) x (5120 + 2x128) = 16,128 values + SSM
  // 80 heads x 64 x 128 = 655,360 values -> 671,488 x 4 B = 2,685,952 B; x 64 = 171,900,928 B.
  MemoryPlan short_ctx = plan(model, 1024);
  MemoryPlan long_ctx = plan(model, 1'000'000);
  EXPECT_EQ(short_ctx.kv_bytes_per_token, 0u);
  EXPECT_EQ(short_ctx.state_bytes_per_sequence, 171'900'928u);
  EXPECT_EQ(short_ctx.kv_bytes, 171'900'928u);
  EXPECT_EQ(long_ctx.kv_bytes, short_ctx.kv_bytes);
  EXPECT_EQ(plan(model, 1024, 3).kv_bytes, 3ull * 171'900'928);
}

// microsoft/Phi-3-mini-4k-instruct config.json (auto_map omitted).
constexpr const char* kPhi3Mini = R"({
  "_name_or_path": "Phi-3-mini-4k-instruct", "architectures": ["Phi3ForCausalLM"],
  "attention_dropout": 0.0, "bos_token_id": 1, "embd_pdrop": 0.0, "eos_token_id": 32000,
  "hidden_act": "silu", "hidden_size": 3072, "initializer_range": 0.02,
  "intermediate_size": 8192, "max_position_embeddings": 4096, "model_type": "phi3",
  "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 32,
  "original_max_position_embeddings": 4096, "pad_token_id": 32000, "resid_pdrop": 0.0,
  "rms_norm_eps": 1e-05, "rope_scaling": null, "rope_theta": 10000.0, "sliding_window": 2047,
  "tie_word_embeddings": false, "torch_dtype": "bfloat16", "transformers_version": "4.40.2",
  "use_cache": true, "attention_bias": false, "vocab_size": 32064})";

TEST(PublishedConfigs, Phi3MiniFusedProjections) {
  PlanModel model = model_from(kPhi3Mini);
  // Published: 3.8B (model card); 3,821,079,552 exactly (keras-hub's preset metadata). By
  // hand, per layer: fused qkv_proj (3x3072)x3072 = 28,311,552; o 3072x3072 = 9,437,184;
  // fused gate_up_proj (2x8192)x3072 = 50,331,648; down 3072x8192 = 25,165,824; norms 6,144
  // -> 113,252,352 x 32 = 3,624,075,264; + 2 x 32064x3072 + 3072.
  EXPECT_EQ(model.parameters(), 3'821'079'552);
  expect_within_half_percent(model.parameters(), 3.82e9);
  ASSERT_EQ(model.layers[0].tensors[0].name, "model.layers.0.self_attn.qkv_proj.weight");
  EXPECT_EQ(model.layers[0].tensors[0].shape, (std::vector<int64_t>{9216, 3072}));
  // KV/token: 32 x 2 x 32 kv heads x 96 head_dim x 2 bytes = 393,216 B; the declared window
  // of 2047 caps a 4096-token context.
  MemoryPlan p = plan(model, 4096);
  EXPECT_EQ(p.kv_bytes_per_token, 393'216u);
  EXPECT_EQ(p.kv_bytes, 2047ull * 393'216);
}

// ai21labs/Jamba-v0.1 config.json: a hybrid of Mamba-1 and attention layers with MoE.
constexpr const char* kJambaV01 = R"({
  "architectures": ["JambaForCausalLM"], "attention_dropout": 0.0, "attn_layer_offset": 4,
  "attn_layer_period": 8, "bos_token_id": 1, "eos_token_id": 2, "expert_layer_offset": 1,
  "expert_layer_period": 2, "hidden_act": "silu", "hidden_size": 4096,
  "initializer_range": 0.02, "intermediate_size": 14336, "mamba_conv_bias": true,
  "mamba_d_conv": 4, "mamba_d_state": 16, "mamba_dt_rank": 256, "mamba_expand": 2,
  "mamba_proj_bias": false, "max_position_embeddings": 262144, "model_type": "jamba",
  "num_attention_heads": 32, "num_experts": 16, "num_experts_per_tok": 2,
  "num_hidden_layers": 32, "num_key_value_heads": 8, "num_logits_to_keep": 1,
  "output_router_logits": false, "pad_token_id": 0, "rms_norm_eps": 1e-06,
  "router_aux_loss_coef": 0.001, "sliding_window": null, "tie_word_embeddings": false,
  "torch_dtype": "bfloat16", "use_cache": true, "use_mamba_kernels": true,
  "vocab_size": 65536})";

TEST(PublishedConfigs, JambaHybrid) {
  PlanModel model = model_from(kJambaV01);
  // Published: 52B total, 12B active (AI21); the hub shows 51.6B. By hand: Mamba mixer
  // (d_inner 8192, d_state 16, dt_rank 256): in_proj 4096x16384 + conv 8192x4 + 8192 + x_proj
  // 8192x288 + dt_proj 256x8192 + 8192 + A_log 8192x16 + D 8192 + out_proj 8192x4096 + inner
  // norms 256 + 16 + 16 = 105,308,448; attention (layers 4, 12, 20, 28) 41,943,040; MoE (odd
  // layers) 16 x 176,160,768 + router 16x4096; dense MLP 176,160,768; 2 norms per layer;
  // embeddings + lm_head 2 x 65536x4096; final norm. Total 51,570,323,328.
  EXPECT_EQ(model.parameters(), 51'570'323'328);
  expect_within_half_percent(model.parameters(), 51.6e9);
  EXPECT_EQ(model.layers[4].kind, LayerKind::kAttention);
  EXPECT_EQ(model.layers[5].kind, LayerKind::kMamba);
  EXPECT_EQ(model.layers[5].ffn, FfnKind::kMoe);
  EXPECT_EQ(model.layers[4].ffn, FfnKind::kDense);
  // KV/token: only the 4 attention layers: 4 x 2 x 8 x 128 x 2 = 16,384 B. State per
  // sequence: 28 Mamba layers x ((4-1) x 8192 + 8192 x 16) x 4 B = 28 x 622,592 B.
  MemoryPlan p = plan(model, 4096);
  EXPECT_EQ(p.kv_bytes_per_token, 16'384u);
  EXPECT_EQ(p.state_bytes_per_sequence, 28ull * 622'592);
  EXPECT_EQ(p.kv_bytes, 4096ull * 16'384 + 28ull * 622'592);
}

// --- further architectures the planner covers ---------------------------------------------------

// Qwen/Qwen1.5-MoE-A2.7B config.json: Qwen2-MoE with a gated shared expert.
constexpr const char* kQwen15MoE = R"({
  "architectures": ["Qwen2MoeForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
  "decoder_sparse_step": 1, "eos_token_id": 151643, "hidden_act": "silu", "hidden_size": 2048,
  "initializer_range": 0.02, "intermediate_size": 5632, "max_position_embeddings": 8192,
  "max_window_layers": 21, "model_type": "qwen2_moe", "moe_intermediate_size": 1408,
  "norm_topk_prob": false, "num_attention_heads": 16, "num_experts": 60,
  "num_experts_per_tok": 4, "num_hidden_layers": 24, "num_key_value_heads": 16,
  "output_router_logits": false, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0,
  "router_aux_loss_coef": 0.001, "shared_expert_intermediate_size": 5632,
  "sliding_window": 32768, "tie_word_embeddings": false, "torch_dtype": "bfloat16",
  "use_cache": true, "use_sliding_window": false, "vocab_size": 151936})";

TEST(PublishedConfigs, Qwen15MoeSharedExpert) {
  PlanModel model = model_from(kQwen15MoE);
  // Published: 14.3B total, 2.7B active (model card). By hand, per layer: q,k,v,o 4 x 2048^2 +
  // q,k,v biases 3 x 2048; 60 experts x 3 x 2048x1408; shared expert 3 x 2048x5632; its gate
  // 1x2048; router 60x2048; norms 2 x 2048; x 24, + 2 x 151936x2048 + 2048 = 14,315,784,192.
  EXPECT_EQ(model.parameters(), 14'315'784'192);
  expect_within_half_percent(model.parameters(), 14.3e9);
  // KV/token: 24 x 2 x 16 x 128 x 2 = 196,608 B.
  EXPECT_EQ(plan(model).kv_bytes_per_token, 196'608u);
}

// deepseek-ai/DeepSeek-V2-Lite config.json: MLA without a query LoRA (q_lora_rank null).
constexpr const char* kDeepSeekV2Lite = R"({
  "architectures": ["DeepseekV2ForCausalLM"], "attention_bias": false, "aux_loss_alpha": 0.001,
  "first_k_dense_replace": 1, "hidden_act": "silu", "hidden_size": 2048,
  "intermediate_size": 10944, "kv_lora_rank": 512, "max_position_embeddings": 163840,
  "model_type": "deepseek_v2", "moe_intermediate_size": 1408, "moe_layer_freq": 1,
  "n_group": 1, "n_routed_experts": 64, "n_shared_experts": 2, "norm_topk_prob": false,
  "num_attention_heads": 16, "num_experts_per_tok": 6, "num_hidden_layers": 27,
  "num_key_value_heads": 16, "q_lora_rank": null, "qk_nope_head_dim": 128,
  "qk_rope_head_dim": 64, "rms_norm_eps": 1e-06, "rope_theta": 10000,
  "routed_scaling_factor": 1.0, "scoring_func": "softmax", "seq_aux": true,
  "tie_word_embeddings": false, "topk_group": 1, "topk_method": "greedy",
  "torch_dtype": "bfloat16", "v_head_dim": 128, "vocab_size": 102400})";

TEST(PublishedConfigs, DeepSeekV2Lite) {
  PlanModel model = model_from(kDeepSeekV2Lite);
  // Published: 15.7B total, 2.4B active (model card). By hand: MLA with q_proj 2048x(16x192),
  // kv_a 2048x576, kv_a_norm 512, kv_b 512x(16x256), o (16x128)x2048; layer 0 dense MLP
  // 3 x 2048x10944; layers 1-26: 64 experts x 3 x 2048x1408 + 2 shared 3 x 2048x2816 + router
  // 64x2048 (no score bias: topk_method greedy); 2 norms per layer; + 2 x 102400x2048 + 2048.
  EXPECT_EQ(model.parameters(), 15'706'484'224);
  expect_within_half_percent(model.parameters(), 15.7e9);
  // KV/token: (512 + 64) x 27 layers x 2 bytes = 31,104 B.
  EXPECT_EQ(plan(model).kv_bytes_per_token, 31'104u);
}

// google/gemma-3-1b-pt config.json: 5 sliding layers to 1 global.
constexpr const char* kGemma3_1B = R"({
  "architectures": ["Gemma3ForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "attn_logit_softcapping": null, "bos_token_id": 2, "cache_implementation": "hybrid",
  "eos_token_id": 1, "final_logit_softcapping": null, "head_dim": 256,
  "hidden_activation": "gelu_pytorch_tanh", "hidden_size": 1152, "initializer_range": 0.02,
  "intermediate_size": 6912, "max_position_embeddings": 32768, "model_type": "gemma3_text",
  "num_attention_heads": 4, "num_hidden_layers": 26, "num_key_value_heads": 1, "pad_token_id": 0,
  "query_pre_attn_scalar": 256, "rms_norm_eps": 1e-06, "rope_local_base_freq": 10000,
  "rope_scaling": null, "rope_theta": 1000000, "sliding_window": 512,
  "sliding_window_pattern": 6, "torch_dtype": "bfloat16", "use_cache": true,
  "vocab_size": 262144})";

TEST(PublishedConfigs, Gemma3_1BFiveSlidingToOneGlobal) {
  PlanModel model = model_from(kGemma3_1B);
  // Published: 1B (model card). By hand, per layer: q 1024x1152, k,v 256x1152, o 1152x1024,
  // q/k norms 2 x 256, MLP 3 x 1152x6912, 4 norms -> 26,842,112 x 26; tied embeddings
  // 262144x1152; final norm. Total 999,885,952.
  EXPECT_EQ(model.parameters(), 999'885'952);
  expect_within_half_percent(model.parameters(), 1.0e9);
  // Layers 5, 11, 17, 23 are global ((i + 1) % 6 == 0), the other 22 slide over 512 tokens.
  for (const PlanLayer& layer : model.layers)
    EXPECT_EQ(layer.kind,
              (layer.index + 1) % 6 == 0 ? LayerKind::kAttention : LayerKind::kSlidingAttention)
        << layer.index;
  // KV/token: 26 x 2 x 1 x 256 x 2 = 26,624 B; each layer holds 1,024 B per token. At 32k:
  // (22 x 512 + 4 x 32768) tokens x 1,024 B.
  MemoryPlan p = plan(model, 32768);
  EXPECT_EQ(p.kv_bytes_per_token, 26'624u);
  EXPECT_EQ(p.kv_bytes, (22ull * 512 + 4ull * 32768) * 1024);
}

// google/gemma-3-4b-it config.json: multimodal; the language model is in text_config, which
// states only what differs from Gemma3TextConfig's defaults. (vision_config abridged.)
constexpr const char* kGemma3_4B = R"({
  "architectures": ["Gemma3ForConditionalGeneration"], "boi_token_index": 255999,
  "eoi_token_index": 256000, "eos_token_id": [1, 106], "image_token_index": 262144,
  "initializer_range": 0.02, "mm_tokens_per_image": 256, "model_type": "gemma3",
  "text_config": {"hidden_size": 2560, "intermediate_size": 10240, "model_type": "gemma3_text",
                  "num_hidden_layers": 34, "rope_scaling": {"factor": 8.0, "rope_type": "linear"},
                  "sliding_window": 1024},
  "torch_dtype": "bfloat16", "transformers_version": "4.50.0.dev0",
  "vision_config": {"hidden_size": 1152, "image_size": 896, "intermediate_size": 4304,
                    "model_type": "siglip_vision_model", "num_attention_heads": 16,
                    "num_hidden_layers": 27, "patch_size": 14, "vision_use_head": false}})";

TEST(PublishedConfigs, Gemma3_4BTextConfigWithDefaults) {
  PlanModel model = model_from(kGemma3_4B);
  EXPECT_EQ(model.model_type, "gemma3_text");
  EXPECT_EQ(model.architecture, "Gemma3ForConditionalGeneration");
  // Published: 4.3B with the 0.4B SigLIP vision encoder, which a config-only plan leaves out
  // (with a note). The language model by hand, with the defaults 8 heads, 4 kv heads,
  // head_dim 256, vocab 262208: per layer q 2048x2560, k,v 1024x2560, o 2560x2048, q/k norms,
  // MLP 3 x 2560x10240, 4 norms -> 94,382,592 x 34; tied embeddings 262208x2560; final norm.
  EXPECT_EQ(model.parameters(), 3'880'263'168);
  bool noted_vision = false, noted_default = false;
  for (const std::string& note : model.notes) {
    noted_vision |= note.find("vision_config") != std::string::npos;
    noted_default |= note.find("text_config.vocab_size") != std::string::npos;
  }
  EXPECT_TRUE(noted_vision);
  EXPECT_TRUE(noted_default);
  // KV/token: 34 x 2 x 4 x 256 x 2 = 139,264 B.
  EXPECT_EQ(plan(model).kv_bytes_per_token, 139'264u);
}

// state-spaces/mamba-2.8b-hf config.json (Hugging Face MambaForCausalLM, Mamba-1).
constexpr const char* kMamba2_8BHf = R"({
  "architectures": ["MambaForCausalLM"], "bos_token_id": 0, "conv_kernel": 4, "eos_token_id": 0,
  "expand": 2, "hidden_act": "silu", "hidden_size": 2560, "initializer_range": 0.1,
  "intermediate_size": 5120, "layer_norm_epsilon": 1e-05, "model_type": "mamba",
  "num_hidden_layers": 64, "pad_token_id": 0, "rescale_prenorm_residual": false,
  "residual_in_fp32": true, "state_size": 16, "time_step_rank": 160, "torch_dtype": "float32",
  "use_bias": false, "use_cache": true, "use_conv_bias": true, "vocab_size": 50280})";

TEST(PublishedConfigs, Mamba1_2_8B) {
  PlanModel model = model_from(kMamba2_8BHf);
  // Published: 2.8B (model name). By hand, per layer: in_proj 2560x10240, conv 5120x4 + 5120,
  // x_proj 5120x(160 + 32), dt_proj 160x5120 + 5120, A_log 5120x16, D 5120, out_proj 5120x2560,
  // norm 2560; x 64; tied embeddings 50280x2560; norm_f. Total 2,768,345,600.
  EXPECT_EQ(model.parameters(), 2'768'345'600);
  expect_within_half_percent(model.parameters(), 2.77e9);
  EXPECT_EQ(model.native_format, WeightFormat::kF32);
  // State per layer: ((4 - 1) x 5120 conv + 5120 x 16 SSM) x 4 B = 389,120 B.
  MemoryPlan p = plan(model, 8192);
  EXPECT_EQ(p.kv_bytes_per_token, 0u);
  EXPECT_EQ(p.state_bytes_per_sequence, 64ull * 389'120);
}

}  // namespace
}  // namespace hwledger::planner
