#include "planner/memory_plan.h"

#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "util/error.h"

namespace hwledger::planner {

using nlohmann::json;

namespace {

uint64_t mul(uint64_t a, uint64_t b) {
  uint64_t out = 0;
  if (__builtin_mul_overflow(a, b, &out))
    fail_input("memory size overflows 64 bits ({} x {})", a, b);
  return out;
}

uint64_t add(uint64_t a, uint64_t b) {
  uint64_t out = 0;
  if (__builtin_add_overflow(a, b, &out)) fail_input("memory size overflows 64 bits");
  return out;
}

// Embeddings are gathered, not multiplied: llama.cpp quantizes them with the rest, vLLM's fp8
// keeps them (and lm_head) in the model dtype.
WeightFormat embedding_format(WeightFormat format) {
  return format == WeightFormat::kFp8 ? WeightFormat::kBF16 : format;
}

uint64_t sum_bytes(const std::vector<PlanTensor>& tensors, WeightFormat format) {
  uint64_t total = 0;
  for (const PlanTensor& t : tensors) total = add(total, tensor_bytes(t, format));
  return total;
}

int64_t sum_parameters(const std::vector<PlanTensor>& tensors) {
  int64_t total = 0;
  for (const PlanTensor& t : tensors) total += t.parameters();
  return total;
}

void check_option(bool ok, std::string_view name, int64_t value, std::string_view rule) {
  if (!ok) fail_input("{} is {}; it must be {}", name, value, rule);
}

}  // namespace

uint64_t tensor_bytes(const PlanTensor& tensor, WeightFormat format) {
  const WeightFormat stored = tensor.quantizable ? format : unquantized_companion(format);
  int64_t rows_per_copy = 1;
  for (int64_t d : tensor.shape)
    if (d < 0) fail_input("tensor {} has a negative dimension", tensor.name);
  for (size_t i = 0; i + 1 < tensor.shape.size(); ++i)
    if (__builtin_mul_overflow(rows_per_copy, tensor.shape[i], &rows_per_copy))
      fail_input("tensor {} has a shape whose size overflows", tensor.name);
  return mul(uint64_t(tensor.copies), matrix_bytes(stored, rows_per_copy, tensor.row_elements()));
}

MemoryPlan plan_memory(const PlanModel& model, const PlanOptions& options) {
  constexpr int64_t kMaxCount = int64_t{1} << 31;
  check_option(options.context_tokens > 0 && options.context_tokens < kMaxCount, "--ctx",
               options.context_tokens, "a positive number of tokens");
  check_option(options.users > 0 && options.users <= 1'000'000, "--users", options.users,
               "between 1 and 1000000");
  check_option(options.prefill_chunk > 0 && options.prefill_chunk < kMaxCount, "prefill chunk",
               options.prefill_chunk, "positive");
  check_option(options.prefill_sequences >= 0, "prefill sequences", options.prefill_sequences,
               "0 (all users) or more");
  check_option(options.activation_bytes > 0 && options.activation_bytes <= 8, "activation bytes",
               options.activation_bytes, "between 1 and 8");
  if (model.layers.empty()) fail_input("the model has no layers to plan");

  MemoryPlan plan;
  plan.architecture = model.architecture;
  plan.model_type = model.model_type;
  plan.hidden_size = model.hidden_size;
  plan.vocab_size = model.vocab_size;
  plan.max_position_embeddings = model.max_position_embeddings;
  plan.tied_embeddings = model.tied_embeddings;
  plan.parameters = model.parameters();
  plan.parameters_source = model.parameters_source;
  plan.embedding_parameters = sum_parameters(model.embedding);
  plan.lm_head_parameters = sum_parameters(model.lm_head);
  plan.unplanned_parameters = model.unplanned_parameters;
  plan.options = options;
  plan.notes = model.notes;

  const uint64_t users = uint64_t(options.users);
  const int64_t ctx = options.context_tokens;
  bool has_recurrent = false;
  for (const PlanLayer& layer : model.layers) {
    LayerMemory out;
    out.index = layer.index;
    out.kind = layer.kind;
    out.ffn = layer.ffn;
    out.parameters = layer.parameters();
    out.weights_bytes = sum_bytes(layer.tensors, options.weights);
    switch (layer.kind) {
      case LayerKind::kAttention:
      case LayerKind::kSlidingAttention: {
        out.kv_bytes_per_token =
            add(kv_row_bytes(options.kv_dtype, layer.num_kv_heads * layer.head_dim,
                             "num_key_value_heads x head_dim", options.hwledger_kv),
                kv_row_bytes(options.kv_dtype, layer.num_kv_heads * layer.v_head_dim,
                             "num_key_value_heads x head_dim", options.hwledger_kv));
        const bool windowed = layer.kind == LayerKind::kSlidingAttention &&
                              layer.sliding_window > 0 && options.cap_sliding_window;
        out.kv_tokens = windowed ? std::min(ctx, layer.sliding_window) : ctx;
        break;
      }
      case LayerKind::kMla:
        out.kv_bytes_per_token =
            kv_row_bytes(options.kv_dtype, layer.kv_lora_rank + layer.qk_rope_head_dim,
                         "kv_lora_rank + qk_rope_head_dim", options.hwledger_kv);
        out.kv_tokens = ctx;
        break;
      case LayerKind::kMamba:
      case LayerKind::kMamba2:
        out.state_bytes_per_sequence =
            add(kv_row_bytes(options.state_dtype, layer.conv_state_elements, "conv state"),
                kv_row_bytes(options.state_dtype, layer.ssm_state_elements, "SSM state"));
        has_recurrent = true;
        break;
    }
    out.kv_bytes = add(mul(users, mul(uint64_t(out.kv_tokens), out.kv_bytes_per_token)),
                       mul(users, out.state_bytes_per_sequence));
    plan.weights_bytes = add(plan.weights_bytes, out.weights_bytes);
    plan.kv_bytes = add(plan.kv_bytes, out.kv_bytes);
    plan.kv_bytes_per_token = add(plan.kv_bytes_per_token, out.kv_bytes_per_token);
    plan.state_bytes_per_sequence =
        add(plan.state_bytes_per_sequence, out.state_bytes_per_sequence);
    plan.layers.push_back(out);
  }

  plan.embedding_bytes = sum_bytes(model.embedding, embedding_format(options.weights));
  plan.lm_head_bytes = sum_bytes(model.lm_head, embedding_format(options.weights));
  plan.other_weights_bytes = sum_bytes(model.other, options.weights);
  plan.weights_bytes =
      add(plan.weights_bytes,
          add(plan.embedding_bytes, add(plan.lm_head_bytes, plan.other_weights_bytes)));

  // Runtime: a fixed allowance plus, per user, the last step's logits and the sampler's sorted
  // copy of them (f32 each).
  plan.runtime_bytes =
      add(options.runtime_base_bytes, mul(users, mul(uint64_t(model.vocab_size), 2 * 4)));

  // Prefill: one step runs `sequences x chunk` tokens through one layer at a time; the buffers
  // of the widest layer are what must exist at once.
  const uint64_t chunk = uint64_t(std::min(options.prefill_chunk, ctx));
  const uint64_t sequences = options.prefill_sequences > 0
                                 ? uint64_t(std::min(options.prefill_sequences, options.users))
                                 : users;
  const uint64_t step_tokens = mul(sequences, chunk);
  uint64_t widest = 0, scores = 0;
  for (size_t i = 0; i < model.layers.size(); ++i) {
    const PlanLayer& layer = model.layers[i];
    const uint64_t per_token =
        uint64_t(2 * model.hidden_size) +
        uint64_t(std::max(layer.mixer_activations_per_token, layer.ffn_activations_per_token));
    widest = std::max(widest, per_token);
    if (!options.flash_attention && plan.layers[i].kv_tokens > 0)
      scores = std::max(scores, mul(mul(sequences, uint64_t(layer.num_heads)),
                                    mul(chunk, mul(uint64_t(plan.layers[i].kv_tokens), 4))));
  }
  plan.prefill_bytes =
      add(mul(step_tokens, mul(widest, uint64_t(options.activation_bytes))), scores);

  plan.total_bytes =
      add(add(plan.weights_bytes, plan.kv_bytes), add(plan.runtime_bytes, plan.prefill_bytes));

  if (model.max_position_embeddings > 0 && ctx > model.max_position_embeddings)
    plan.notes.push_back(fmt::format("--ctx {} is beyond the model's max_position_embeddings {}",
                                     ctx, model.max_position_embeddings));
  if (options.kv_dtype == KvDtype::kFp8)
    plan.notes.push_back(options.hwledger_kv
                             ? "fp8 KV priced as hwledger stores it: e4m3 values with an f16 scale "
                               "per 32 (34 bytes per 32 values)"
                             : "fp8 KV priced as vLLM stores it: one byte per value (hwledger's "
                               "engine adds an f16 scale per 32 values; --export hwledger and "
                               "--measure price that)");
  if (has_recurrent && options.state_dtype != options.kv_dtype)
    plan.notes.push_back(fmt::format(
        "recurrent (Mamba) state is kept in {}; the KV dtype applies to attention layers only",
        to_string(options.state_dtype)));
  return plan;
}

std::string_view to_string(Verdict verdict) {
  switch (verdict) {
    case Verdict::kGreen:
      return "green";
    case Verdict::kYellow:
      return "yellow";
    case Verdict::kRed:
      return "red";
  }
  return "?";
}

DeviceFit assess_fit(const MemoryPlan& plan, uint64_t device_bytes, std::string device_source) {
  if (device_bytes == 0) fail_input("device memory is 0 bytes; pass --device-memory SIZE");
  DeviceFit fit;
  fit.device_bytes = device_bytes;
  fit.device_source = std::move(device_source);
  fit.used_fraction = double(plan.total_bytes) / double(device_bytes);
  fit.free_bytes = plan.total_bytes <= device_bytes ? device_bytes - plan.total_bytes : 0;
  // Compare in integers so that the 80% boundary is exact: total x 100 <= device x 80.
  const unsigned __int128 total = plan.total_bytes, device = device_bytes;
  if (total * 100 <= device * 80)
    fit.verdict = Verdict::kGreen;
  else if (total <= device)
    fit.verdict = Verdict::kYellow;
  else
    fit.verdict = Verdict::kRed;
  return fit;
}

json plan_to_json(const MemoryPlan& plan, const DeviceFit& fit) {
  const PlanOptions& o = plan.options;
  json layers = json::array();
  for (const LayerMemory& layer : plan.layers)
    layers.push_back({{"index", layer.index},
                      {"kind", to_string(layer.kind)},
                      {"ffn", to_string(layer.ffn)},
                      {"parameters", layer.parameters},
                      {"weights_bytes", layer.weights_bytes},
                      {"kv_bytes", layer.kv_bytes},
                      {"kv_bytes_per_token", layer.kv_bytes_per_token},
                      {"kv_tokens", layer.kv_tokens},
                      {"state_bytes_per_sequence", layer.state_bytes_per_sequence}});
  return {
      {"source", plan.source},
      {"model",
       {{"architecture", plan.architecture},
        {"model_type", plan.model_type},
        {"layers", plan.layers.size()},
        {"hidden_size", plan.hidden_size},
        {"vocab_size", plan.vocab_size},
        {"max_position_embeddings", plan.max_position_embeddings},
        {"tied_embeddings", plan.tied_embeddings},
        {"parameters", plan.parameters},
        {"parameters_source", plan.parameters_source},
        {"embedding_parameters", plan.embedding_parameters},
        {"lm_head_parameters", plan.lm_head_parameters},
        {"unplanned_parameters", plan.unplanned_parameters}}},
      {"options",
       {{"ctx", o.context_tokens},
        {"users", o.users},
        {"weights", to_string(o.weights)},
        {"kv_dtype", to_string(o.kv_dtype)},
        {"state_dtype", to_string(o.state_dtype)},
        {"prefill_chunk", o.prefill_chunk},
        {"prefill_sequences", o.prefill_sequences > 0 ? o.prefill_sequences : o.users},
        {"activation_bytes", o.activation_bytes},
        {"flash_attention", o.flash_attention},
        {"cap_sliding_window", o.cap_sliding_window},
        {"runtime_base_bytes", o.runtime_base_bytes}}},
      {"total_bytes", plan.total_bytes},
      {"weights_bytes", plan.weights_bytes},
      {"kv_bytes", plan.kv_bytes},
      {"runtime_bytes", plan.runtime_bytes},
      {"prefill_bytes", plan.prefill_bytes},
      {"embedding_bytes", plan.embedding_bytes},
      {"lm_head_bytes", plan.lm_head_bytes},
      {"other_weights_bytes", plan.other_weights_bytes},
      {"kv_bytes_per_token", plan.kv_bytes_per_token},
      {"state_bytes_per_sequence", plan.state_bytes_per_sequence},
      {"layers", std::move(layers)},
      {"device",
       {{"memory_bytes", fit.device_bytes},
        {"source", fit.device_source},
        {"free_bytes", fit.free_bytes},
        {"used_fraction", fit.used_fraction},
        {"verdict", to_string(fit.verdict)},
        {"green_up_to", kGreenFraction},
        {"yellow_up_to", kYellowFraction}}},
      {"notes", plan.notes},
  };
}

}  // namespace hwledger::planner
