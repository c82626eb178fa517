// The forward pass: runs a batch of sequences' new tokens through the model. Each sequence
// may bring many tokens (prefill, or a chunk of it) or one (decode); all tokens go through
// the matrix multiplications together, and attention runs per sequence over its paged cache.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "kv/block_pool.h"
#include "kv/kv_cache.h"
#include "model/model.h"
#include "engine/rope.h"
#include "ops/ops.h"
#include "ops/tensor.h"

namespace hwledger {

struct BatchItem {
  KVSequence* kv;                    // the sequence's cache; grows by tokens.size()
  std::span<const int32_t> tokens;   // new tokens, at positions kv->n_tokens ...
  enum class Logits { None, Last, All } logits = Logits::Last;
};

// Called with each layer's output for the whole batch, x f32 [T, H]; the last layer's has
// the final norm applied (the convention of transformers' hidden_states).
using LayerHook = std::function<void(int64_t layer, const float* x, int64_t T, int64_t H)>;

class CudaRunner;

class ModelRunner {
 public:
  // Runs on the device of the KV pool: the CPU, or a CUDA device (through CudaRunner).
  ModelRunner(const Model& model, KVCacheManager& kv, ThreadPool& threads);
  ~ModelRunner();

  // Runs the batch. Returns logits f32 [rows, V]: for each item in order, its last token's
  // row (Logits::Last) or one row per token (Logits::All). The caller may modify them
  // (samplers mask and penalise in place); they live until the next forward().
  std::vector<float>& forward(std::span<BatchItem> batch, const LayerHook& hook = {});
  // The argmax of each logits row (greedy decoding); on CUDA computed on the device.
  std::vector<int32_t> forward_greedy(std::span<BatchItem> batch);
  Device device() const { return pool_.device(); }
  CudaRunner* cuda() { return cuda_.get(); }

  const Model& model() const { return model_; }
  BlockPool& pool() { return kv_.pool(); }
  ThreadPool& threads() { return threads_; }
  // Bytes of the runner's own scratch buffers (activations), for the memory report. Safe from
  // any thread while forward() runs on another (it reads a published count).
  uint64_t workspace_bytes() const { return workspace_bytes_.load(std::memory_order_relaxed); }

 private:
  void ensure_workspace(int64_t T);
  void publish_workspace_bytes();  // on the forward() thread, after the buffers change

  const Model& model_;
  KVCacheManager& kv_;
  BlockPool& pool_;
  ThreadPool& threads_;
  ops::Context ctx_;
  RopeTable rope_;

  // Scratch, sized for the largest batch seen: T = tokens in the batch.
  int64_t capacity_ = 0;
  Buffer x_, h_;            // [T, H]
  Buffer q_, attn_;         // [T, nh*hd]
  Buffer k_, v_;            // [T, nkv*hd]
  Buffer gate_, up_;        // [T, F]
  Buffer cos_, sin_;        // [T, hd/2]
  Buffer sel_;              // [rows, H] final-normed rows that need logits
  std::vector<float> logits_;  // [rows, V]
  std::atomic<uint64_t> workspace_bytes_{0};
  std::unique_ptr<CudaRunner> cuda_;
};

}  // namespace hwledger
