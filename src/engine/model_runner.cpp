#include "engine/model_runner.h"

#include <algorithm>
#include <cmath>

#include "engine/cuda_runner.h"
#include "util/error.h"

namespace hwledger {

ModelRunner::ModelRunner(const Model& model, KVCacheManager& kv, ThreadPool& threads)
    : model_(model), kv_(kv), pool_(kv.pool()), threads_(threads), rope_(model.config.rope, model.config.head_dim) {
  ctx_.device = Device::CPU;
  ctx_.pool = &threads_;
  const ModelConfig& c = model.config;
  const KVLayout& L = pool_.layout();
  HW_CHECK(L.n_layers == c.num_layers && L.n_kv_heads == c.num_kv_heads && L.head_dim == c.head_dim,
           "KV layout ({} layers, {} heads of {}) does not match the model ({}, {}, {})", L.n_layers,
           L.n_kv_heads, L.head_dim, c.num_layers, c.num_kv_heads, c.head_dim);
  if (pool_.device() == Device::CUDA) cuda_ = std::make_unique<CudaRunner>(model, kv, pool_.device_index());
}

ModelRunner::~ModelRunner() = default;

std::vector<int32_t> ModelRunner::forward_greedy(std::span<BatchItem> batch) {
  if (cuda_) {
    std::vector<int32_t> ids = cuda_->forward_greedy(batch);
    workspace_bytes_ = cuda_->workspace_bytes();
    return ids;
  }
  const int64_t V = model_.config.vocab_size;
  std::vector<float>& logits = forward(batch);
  std::vector<int32_t> ids(logits.size() / static_cast<size_t>(V));
  for (size_t r = 0; r < ids.size(); ++r) ids[r] = ops::argmax(logits.data() + r * V, V);
  return ids;
}

void ModelRunner::publish_workspace_bytes() {
  workspace_bytes_ = x_.size() + h_.size() + q_.size() + attn_.size() + k_.size() + v_.size() +
                     gate_.size() + up_.size() + cos_.size() + sin_.size() + sel_.size() +
                     logits_.capacity() * sizeof(float);
}

void ModelRunner::ensure_workspace(int64_t T) {
  if (T <= capacity_) return;
  const ModelConfig& c = model_.config;
  const size_t f = sizeof(float);
  x_ = Buffer(T * c.hidden_size * f);
  h_ = Buffer(T * c.hidden_size * f);
  q_ = Buffer(T * c.q_dim() * f);
  attn_ = Buffer(T * c.q_dim() * f);
  k_ = Buffer(T * c.kv_dim() * f);
  v_ = Buffer(T * c.kv_dim() * f);
  gate_ = Buffer(T * c.intermediate_size * f);
  up_ = Buffer(T * c.intermediate_size * f);
  cos_ = Buffer(T * (c.head_dim / 2) * f);
  sin_ = Buffer(T * (c.head_dim / 2) * f);
  sel_ = Buffer(T * c.hidden_size * f);
  capacity_ = T;
  publish_workspace_bytes();
}

std::vector<float>& ModelRunner::forward(std::span<BatchItem> batch, const LayerHook& hook) {
  if (cuda_) {
    std::vector<float>& out = cuda_->forward(batch, hook);
    workspace_bytes_ = cuda_->workspace_bytes();  // device memory, for memory_report
    return out;
  }
  const ModelConfig& c = model_.config;
  const int64_t H = c.hidden_size, F = c.intermediate_size, V = c.vocab_size;
  const int64_t nh = c.num_heads, nkv = c.num_kv_heads, hd = c.head_dim;
  const int64_t Q = c.q_dim(), KV = c.kv_dim();

  // Token layout of the batch: item i owns rows [offset[i], offset[i] + n_i).
  int64_t T = 0;
  std::vector<int64_t> offset(batch.size());
  std::vector<int32_t> ids;
  std::vector<int64_t> positions;
  for (size_t i = 0; i < batch.size(); ++i) {
    HW_CHECK(!batch[i].tokens.empty(), "forward: batch item {} has no tokens", i);
    offset[i] = T;
    T += static_cast<int64_t>(batch[i].tokens.size());
    for (size_t t = 0; t < batch[i].tokens.size(); ++t) {
      ids.push_back(batch[i].tokens[t]);
      positions.push_back(batch[i].kv->n_tokens + static_cast<int64_t>(t));
    }
  }
  if (T == 0) {
    logits_.clear();
    return logits_;
  }
  for (auto& item : batch)
    kv_.reserve(*item.kv, item.kv->n_tokens + static_cast<int64_t>(item.tokens.size()));
  ensure_workspace(T);

  Tensor x(x_.data(), DType::F32, {T, H}), h(h_.data(), DType::F32, {T, H});
  Tensor q(q_.data(), DType::F32, {T, Q}), attn(attn_.data(), DType::F32, {T, Q});
  Tensor k(k_.data(), DType::F32, {T, KV}), v(v_.data(), DType::F32, {T, KV});
  Tensor gate(gate_.data(), DType::F32, {T, F}), up(up_.data(), DType::F32, {T, F});
  Tensor cos(cos_.data(), DType::F32, {T, hd / 2}), sin(sin_.data(), DType::F32, {T, hd / 2});
  rope_.fill(positions, cos.as<float>(), sin.as<float>());
  const float eps = static_cast<float>(c.rms_norm_eps);
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  auto bias = [](const Tensor& b) { return b.empty() ? nullptr : &b; };

  ops::embedding(model_.embed, ids, x, ctx_);
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const LayerWeights& w = model_.layers[l];
    // Attention block: x += o_proj(attention(rope(q), rope(k), v)).
    ops::rms_norm(x, w.attn_norm, eps, h, ctx_);
    ops::matmul(h, w.wq, bias(w.bq), q, false, ctx_);
    ops::matmul(h, w.wk, bias(w.bk), k, false, ctx_);
    ops::matmul(h, w.wv, bias(w.bv), v, false, ctx_);
    Tensor q_heads(q.data, DType::F32, {T, nh, hd}), k_heads(k.data, DType::F32, {T, nkv, hd});
    if (c.qk_norm) {
      ops::rms_norm(q_heads, w.q_norm, eps, q_heads, ctx_);
      ops::rms_norm(k_heads, w.k_norm, eps, k_heads, ctx_);
    }
    ops::rope(q_heads, cos, sin, ctx_);
    ops::rope(k_heads, cos, sin, ctx_);
    for (size_t i = 0; i < batch.size(); ++i) {
      const int64_t n = static_cast<int64_t>(batch[i].tokens.size()), r = offset[i];
      const PagedKVView view = batch[i].kv->view(pool_, l);
      Tensor ki(k.as<float>() + r * KV, DType::F32, {n, KV}), vi(v.as<float>() + r * KV, DType::F32, {n, KV});
      ops::kv_store(ki, vi, batch[i].kv->n_tokens, view, ctx_);
      Tensor qi(q.as<float>() + r * Q, DType::F32, {n, nh, hd});
      Tensor oi(attn.as<float>() + r * Q, DType::F32, {n, Q});
      ops::attention(qi, batch[i].kv->n_tokens, view, scale, c.window(l), oi, ctx_);
    }
    ops::matmul(attn, w.wo, bias(w.bo), x, /*accumulate=*/true, ctx_);
    // MLP block: x += down(silu(gate(h)) * up(h)).
    ops::rms_norm(x, w.mlp_norm, eps, h, ctx_);
    ops::matmul(h, w.w_gate, bias(w.b_gate), gate, false, ctx_);
    ops::matmul(h, w.w_up, bias(w.b_up), up, false, ctx_);
    ops::swiglu(gate, up, gate, ctx_);
    ops::matmul(gate, w.w_down, bias(w.b_down), x, /*accumulate=*/true, ctx_);
    if (hook && l + 1 < c.num_layers) hook(l, x.as<float>(), T, H);
  }
  for (auto& item : batch) item.kv->n_tokens += static_cast<int64_t>(item.tokens.size());

  // Final norm and the LM head, only for rows whose logits were asked for.
  if (hook) {
    ops::rms_norm(x, model_.final_norm, eps, h, ctx_);
    hook(c.num_layers - 1, h.as<float>(), T, H);
  }
  int64_t rows = 0;
  float* sel = static_cast<float*>(sel_.data());
  for (size_t i = 0; i < batch.size(); ++i) {
    const int64_t n = static_cast<int64_t>(batch[i].tokens.size());
    int64_t first = batch[i].logits == BatchItem::Logits::All ? 0 : n - 1;
    if (batch[i].logits == BatchItem::Logits::None) continue;
    for (int64_t t = first; t < n; ++t, ++rows)
      std::copy_n(x.as<float>() + (offset[i] + t) * H, H, sel + rows * H);
  }
  const size_t logits_capacity = logits_.capacity();
  logits_.resize(static_cast<size_t>(rows * V));
  if (logits_.capacity() != logits_capacity) publish_workspace_bytes();
  if (rows > 0) {
    Tensor s(sel, DType::F32, {rows, H});
    ops::rms_norm(s, model_.final_norm, eps, s, ctx_);
    Tensor out(logits_.data(), DType::F32, {rows, V});
    ops::matmul(s, model_.lm_head, nullptr, out, false, ctx_);
  }
  return logits_;
}

}  // namespace hwledger
