// The forward pass on a CUDA device (ModelRunner delegates here for --device cuda). Weights are
// uploaded once as f16 (from bf16 or f16; f32 models stay f32; HWLEDGER_CUDA_ACT picks), q/k/v
// and gate/up fused into one matrix each; the residual stream is f32, matmul inputs are f16
// (the down projection's scaled per row by a power of two against overflow) or f32,
// and the KV blocks are the device-memory BlockPool's, in the same paged layout as on the CPU.
// Each step's host inputs (ids, RoPE tables, block tables) go up in one copy from pinned memory,
// so a decode step is a fixed sequence of launches that is captured once as a CUDA graph.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <tuple>
#include <vector>

#include "engine/rope.h"
#include "kv/kv_cache.h"
#include "model/model.h"
#include "ops/cuda/cuda.h"

namespace hwledger {

struct BatchItem;
using LayerHook = std::function<void(int64_t layer, const float* x, int64_t T, int64_t H)>;

class CudaRunner {
 public:
  CudaRunner(const Model& model, KVCacheManager& kv, int device);
  ~CudaRunner();

  // As ModelRunner::forward: logits f32 [rows, V] copied to the host.
  std::vector<float>& forward(std::span<BatchItem> batch, const LayerHook& hook);
  // The argmax of each logits row, computed on the device (no logits copy): greedy decoding.
  const std::vector<int32_t>& forward_greedy(std::span<BatchItem> batch);

  cuda::Context& context() { return *ctx_; }
  uint64_t weights_bytes() const { return weight_bytes_; }
  uint64_t workspace_bytes() const { return workspace_bytes_; }
  // CUDA graphs for decode steps (on by default; HWLEDGER_CUDA_GRAPHS=0 turns them off).
  void set_graphs(bool on) { graphs_ = on; }

 private:
  struct Layer {
    cuda::DevicePtr attn_norm, mlp_norm, q_norm, k_norm;  // f32
    cuda::DevicePtr wqkv, wo, wgu, wdown;  // act dtype: [Q+2KV, H], [H, Q], [2F, H], [H, F]
    cuda::DevicePtr bqkv, bo, bgu, bdown;  // f32, or null
  };
  struct Step {  // the current batch, as laid out in the staging buffer
    int64_t T = 0, rows = 0;
    int n_seqs = 0, width = 0, max_new = 0, max_ctx = 0;
    size_t bytes = 0;
    size_t off_ids = 0, off_cos = 0, off_sin = 0, off_qstart = 0, off_pos0 = 0, off_rowseq = 0,
           off_sel = 0, off_table = 0;
  };

  // Which products take f32 activations (HWLEDGER_CUDA_PREC, a comma list; default
  // "decode,head"; "none" is the all-bf16 arithmetic of before): decode = GEMV-size steps (norms
  // fused), head = the LM head, proj = every product (hi/lo split: twice the prefill matmul
  // work, for measurements), split = the f32 split-key attention kernel for prefill too.
  struct Precision {
    bool decode = true, head = true, proj = false, split = false;
  };

  void upload_weights();
  // Copies t into dst (device, t.numel() elements of `as`), converting on the device.
  void put(void* dst, const Tensor& t, DType as);
  // y[M, N] (+)= a · wᵀ with a f32 [M, K] taken at f32 precision: f32 GEMM (f32 weights), the
  // f32 GEMV (M <= 4), or a = hi + lo in the weights' type stacked as 2M rows of one GEMM.
  void product(const float* a, const void* w, float* y, int64_t M, int64_t N, int64_t K,
               int64_t ldy, bool accumulate);
  cuda::DevicePtr upload(const Tensor& t, DType as);
  cuda::DevicePtr upload_cat(std::initializer_list<const Tensor*> parts, int64_t cols, DType as);
  cuda::DevicePtr upload_bias(std::initializer_list<std::pair<const Tensor*, int64_t>> parts);
  void ensure_workspace(int64_t T, int64_t rows, size_t staging);
  Step prepare(std::span<BatchItem> batch);
  void enqueue(const Step& st, const LayerHook& hook, bool greedy);
  void run(std::span<BatchItem> batch, const LayerHook& hook, bool greedy);

  const Model& model_;
  KVCacheManager& kv_;
  BlockPool& pool_;
  std::unique_ptr<cuda::Context> ctx_;
  RopeTable rope_;
  DType act_ = DType::F16;
  bool guard_ = true;  // the down projection's per-row power-of-two scaling (f16 activations)
  bool fits_ = true;   // every weight converted within the activation type's range
  static double max_abs(const Tensor& t);
  Precision prec_;
  std::vector<Layer> layers_;
  cuda::DevicePtr embed_, final_norm_, lm_head_own_;
  DType embed_dtype_ = DType::BF16;  // the stored embedding's type on the device
  const void* lm_head_ = nullptr;
  uint64_t weight_bytes_ = 0, workspace_bytes_ = 0;

  // Workspace, sized for the largest batch seen (T tokens, rows of logits).
  int64_t cap_T_ = 0, cap_rows_ = 0;
  size_t cap_staging_ = 0;
  cuda::DevicePtr x_, h_, qkv_, q_, attn_, gu_, act_f_, seln_, logits_d_, ids_d_, staging_d_;
  cuda::DevicePtr rscale_;       // f32 [2T]: the guarded down input's per-row scales, workspace
  cuda::DevicePtr hilo_, pair_;  // product(): the hi/lo rows and the two f32 results
  size_t cap_hilo_ = 0, cap_pair_ = 0;
  void* staging_h_ = nullptr;  // pinned
  void* out_h_ = nullptr;      // pinned: logits [rows, V] or ids [rows] of the last step
  std::vector<float> logits_;
  std::vector<int32_t> ids_;
  std::vector<float> hidden_;

  std::unique_ptr<cuda::StageProfile> profile_;  // HWLEDGER_CUDA_PROFILE=1: per-stage times (no graphs)
  bool graphs_ = true;
  std::map<std::tuple<int64_t, int, bool>, void*> graphs_cache_;  // (T, width, greedy) -> graph
  void clear_graphs();
};

}  // namespace hwledger
