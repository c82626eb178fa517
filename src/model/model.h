// A loaded model: its config and its weights as tensors. Large matrices are views into the
// memory-mapped safetensors files (bf16/f16/f32 as stored); small vectors (norm weights,
// biases) are converted to fp32 copies at load, since every op reads them in fp32.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/safetensors.h"
#include "ops/tensor.h"

namespace hwledger {

struct LayerWeights {
  Tensor attn_norm;                  // f32 [H]
  Tensor wq, wk, wv;                 // [nh*hd, H], [nkv*hd, H], [nkv*hd, H]
  Tensor wo;                         // [H, nh*hd]
  Tensor bq, bk, bv, bo;             // f32 [nh*hd], [nkv*hd], [nkv*hd], [H]; empty if none
  Tensor q_norm, k_norm;             // f32 [hd] (Qwen3); empty otherwise
  Tensor mlp_norm;                   // f32 [H]
  Tensor w_gate, w_up;               // [F, H]
  Tensor w_down;                     // [H, F]
  Tensor b_gate, b_up, b_down;       // f32 [F], [F], [H]; empty if none

  uint64_t bytes() const;  // bytes of every tensor above, as stored
};

struct LoadOptions {
  bool prefault = true;       // read all weights into memory now (with a progress bar)
  bool show_progress = true;
};

class Model {
 public:
  static std::unique_ptr<Model> load(const std::string& dir, const LoadOptions& opts = {});

  ModelConfig config;
  std::string dir;
  std::string fingerprint;  // hex SHA-256 over config, tensor table and weight contents

  Tensor embed;       // [V, H]
  Tensor final_norm;  // f32 [H]
  Tensor lm_head;     // [V, H]; the same memory as embed when tied
  std::vector<LayerWeights> layers;

  uint64_t weights_bytes() const;      // all weights, counting a tied embedding once
  uint64_t embedding_bytes() const;    // embed (+ lm_head when untied)

 private:
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::vector<Buffer> owned_;  // fp32 copies of small vectors
  friend class ModelLoader;
};

}  // namespace hwledger
