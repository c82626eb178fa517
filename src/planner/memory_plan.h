// The ledger: how much memory a model needs, per layer and in total, for a context length, a
// number of concurrent users, a weight format and a KV dtype. plan_memory() is a pure function
// of the model and the options; docs/planner.md derives every formula it uses.
//
// MemoryPlan is also the shape of the engine's measured report (SPEC memory_report: total_bytes,
// weights_bytes, kv_bytes, runtime_bytes, layers[{index, weights_bytes, kv_bytes}]), so that a
// measured plan (source = "measured") can be set beside a predicted one.
#pragma once
#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "planner/formats.h"
#include "planner/plan_model.h"

namespace hwledger::planner {

struct PlanOptions {
  int64_t context_tokens = 4096;  // per user: prompt + generated tokens the cache must hold
  int64_t users = 1;              // sequences served at once, each with its own cache
  WeightFormat weights = WeightFormat::kBF16;
  KvDtype kv_dtype = KvDtype::kF16;
  // Price the KV cache as hwledger's engine stores it (fp8 with an f16 scale per 32 values, 34
  // bytes per 32; `plan --measure` and `--export hwledger` set it). Otherwise fp8 is vLLM's
  // cache, one byte per value. The other KV dtypes are the same bytes either way.
  bool hwledger_kv = false;
  KvDtype state_dtype = KvDtype::kF32;  // recurrent (Mamba) state: kept in f32 for precision
  int64_t prefill_chunk = 512;          // tokens of one sequence per prefill step (capped at ctx)
  int64_t prefill_sequences = 0;        // sequences prefilled in one step; 0 = users
  int64_t activation_bytes = 4;         // bytes per activation value (the engine computes in f32)
  bool flash_attention = true;          // false: attention scores are materialised
  bool cap_sliding_window = true;       // false: sliding layers keep the whole context
  uint64_t runtime_base_bytes = 256ull << 20;  // program, allocator, threads (see docs)
};

struct LayerMemory {
  int index = 0;
  LayerKind kind = LayerKind::kAttention;
  FfnKind ffn = FfnKind::kDense;
  int64_t parameters = 0;
  uint64_t weights_bytes = 0;
  uint64_t kv_bytes = 0;                  // KV cache or recurrent state, all users, at the context
  uint64_t kv_bytes_per_token = 0;        // one user's cache growth per token; 0 for recurrent
  int64_t kv_tokens = 0;                  // tokens cached per user: min(ctx, window)
  uint64_t state_bytes_per_sequence = 0;  // recurrent layers: fixed, whatever the context
};

struct MemoryPlan {
  std::string source = "predicted";  // "measured" when the engine fills it in
  std::string architecture;
  std::string model_type;
  int64_t hidden_size = 0;
  int64_t vocab_size = 0;
  int64_t max_position_embeddings = 0;
  bool tied_embeddings = false;
  int64_t parameters = 0;
  std::string parameters_source;  // "config" or "safetensors"
  int64_t embedding_parameters = 0;
  int64_t lm_head_parameters = 0;
  int64_t unplanned_parameters = 0;

  PlanOptions options;

  std::vector<LayerMemory> layers;
  uint64_t embedding_bytes = 0;
  uint64_t lm_head_bytes = 0;
  uint64_t other_weights_bytes = 0;  // final norm and tensors outside the layers
  uint64_t weights_bytes = 0;        // layers + embedding + lm_head + other
  uint64_t kv_bytes = 0;             // sum over layers
  uint64_t runtime_bytes = 0;
  uint64_t prefill_bytes = 0;
  uint64_t total_bytes = 0;  // weights + kv + runtime + prefill

  uint64_t kv_bytes_per_token = 0;        // one user, all layers, before any window caps
  uint64_t state_bytes_per_sequence = 0;  // one user, all recurrent layers
  std::vector<std::string> notes;
};

// Throws InputError for options it cannot plan (zero users or context, a KV block dtype that
// does not divide a head, ...), naming the option.
MemoryPlan plan_memory(const PlanModel& model, const PlanOptions& options);

// Bytes of one tensor stored in `format` (quantizable tensors) or its unquantized companion.
uint64_t tensor_bytes(const PlanTensor& tensor, WeightFormat format);

enum class Verdict { kGreen, kYellow, kRed };
std::string_view to_string(Verdict verdict);

// Green: total <= 80% of the device; yellow: <= 100%; red: more than the device has.
constexpr double kGreenFraction = 0.80;
constexpr double kYellowFraction = 1.00;

struct DeviceFit {
  uint64_t device_bytes = 0;
  std::string device_source;  // "--device-memory", "/proc/meminfo MemTotal", "nvidia-smi GPU 0"
  uint64_t free_bytes = 0;    // device - total, or 0 when it does not fit
  double used_fraction = 0;   // total / device
  Verdict verdict = Verdict::kRed;
};

DeviceFit assess_fit(const MemoryPlan& plan, uint64_t device_bytes, std::string device_source);

// The plan (and the fit) as JSON, keys named as in the engine's memory_report.
nlohmann::json plan_to_json(const MemoryPlan& plan, const DeviceFit& fit);

}  // namespace hwledger::planner
