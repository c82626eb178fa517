// The engine in one object: a loaded model, the thread pool, the KV block pool and the
// forward-pass runner. Front ends (run, verify, bench, the server) build one of these.
#pragma once
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "engine/model_runner.h"
#include "kv/block_pool.h"
#include "kv/kv_cache.h"
#include "model/model.h"
#include "util/thread_pool.h"

namespace hwledger {

struct EngineOptions {
  int threads = 0;  // 0: one per core
  DType kv_dtype = DType::F16;
  int64_t block_tokens = 32;
  uint64_t max_kv_bytes = 0;    // working-memory KV budget; 0: enough for max_context
  int64_t max_context = 0;      // 0: the model's max_position_embeddings, capped at 32768
  KVCacheOptions cache;         // tiers and prefix reuse (working_blocks is derived)
  Device device = Device::CPU;  // --device: cpu, or cuda[:N] (weights and KV on GPU N)
  int device_index = 0;
  LoadOptions load;
};

// Parses "f16", "bf16", "f32", "q8_0", "q4_0" for --kv-dtype (throws InputError naming the value).
DType parse_kv_dtype(const std::string& name);
// Parses --device: "cpu", "cuda" or "cuda:N" (throws InputError naming the value).
void parse_device(const std::string& name, Device& device, int& index);

class Engine {
 public:
  Engine(const std::string& model_dir, const EngineOptions& opts);

  const Model& model() const { return *model_; }
  const ModelConfig& config() const { return model_->config; }
  ModelRunner& runner() { return *runner_; }
  BlockPool& pool() { return kv_->pool(); }
  KVCacheManager& kv_cache() { return *kv_; }
  ThreadPool& threads() { return *threads_; }
  int64_t max_context() const { return max_context_; }

  // What the engine has allocated, in the terms of SPEC's memory_report and the planner:
  // {total_bytes, weights_bytes, kv_bytes, runtime_bytes, layers: [{index, weights_bytes,
  // kv_bytes}], tiers: KVCacheManager::stats_json()}. KV is the working-memory pool as
  // allocated (every block holds all layers, so each layer has an equal share).
  nlohmann::json memory_report() const;

  // Starts the KV cache afresh as a restarted engine would: working memory and the RAM tier
  // empty, the SSD tier's index rebuilt from its folder. No sequence may be live.
  void restart_kv_cache();

  // Prefill through the prefix cache: restores the longest cached prefix of `prompt` into the
  // empty `seq` (computing the head of an SSD-cached part meanwhile when the disk is slower
  // than the model: PrefixRestore), computes the rest (in chunks of `chunk` tokens; 0: one
  // forward), enters the new full blocks in the cache and returns the last position's logits [V].
  std::vector<float> prefill_cached(KVSequence& seq, std::span<const int32_t> prompt,
                                    PrefixHit* hit = nullptr, const std::string& salt = "",
                                    int64_t chunk = 0);

  // Prefill rate of this engine (tokens/s), an average over recent prefill chunks of 128 tokens
  // or more; 0 until one ran. Decides whether a prefix on the SSD tier is partly recomputed
  // while the rest is read (PrefixRestore::claim). set_prefill_tok_s seeds it (tests).
  double prefill_tok_s() const { return prefill_tok_s_; }
  void set_prefill_tok_s(double v) { prefill_tok_s_ = v; }
  void note_prefill(int64_t tokens, double seconds);
  // On a GPU, called at load: two dummy prefills (one-time costs paid, prefill rate measured).
  void warm_up();

  // Greedy decoding of `n` tokens after `prompt` in a fresh sequence; on_token is called
  // with each new token as soon as it is chosen (return false to stop early). Tokens in
  // `suppress` are never chosen (transformers' min_new_tokens does this to EOS).
  std::vector<int32_t> generate_greedy(std::span<const int32_t> prompt, int64_t n,
                                       const std::function<bool(int32_t)>& on_token = {},
                                       std::span<const int32_t> suppress = {});

 private:
  std::unique_ptr<Model> model_;
  std::unique_ptr<ThreadPool> threads_;
  std::unique_ptr<KVCacheManager> kv_;
  std::unique_ptr<ModelRunner> runner_;
  int64_t max_context_ = 0;
  double prefill_tok_s_ = 0;
  KVLayout layout_;
  KVCacheOptions cache_opts_;
};

// Index of the largest value (the first one on ties, as torch.argmax).
int32_t argmax(const float* logits, int64_t n);

}  // namespace hwledger
