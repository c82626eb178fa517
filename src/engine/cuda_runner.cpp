#include "engine/cuda_runner.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "engine/model_runner.h"
#include "util/error.h"

namespace hwledger {

namespace {

constexpr int64_t kProductRows = 1024;  // product()'s hi/lo path works in chunks of rows

size_t align_up(size_t v, size_t a) {
  return (v + a - 1) / a * a;
}

}  // namespace

CudaRunner::CudaRunner(const Model& model, KVCacheManager& kv, int device)
    : model_(model), kv_(kv), pool_(kv.pool()), rope_(model.config.rope, model.config.head_dim) {
  HW_CHECK(pool_.device() == Device::CUDA && pool_.device_index() == device,
           "CudaRunner: the KV pool is not on CUDA device {}", device);
  ctx_ = std::make_unique<cuda::Context>(device);
  const DType wt = model.layers.empty() ? model.lm_head.dtype : model.layers[0].wq.dtype;
  // 16-bit checkpoints run f16 weights and activations by default: bf16 weights convert to f16
  // exactly for |w| in [2^-14, 65504], f16 tensor cores run at the bf16 rate, and f16's 11
  // significant bits (bf16: 8) cut the rounding of the activations entering the products by 8x.
  // f16's range is guarded: the RMSNorm outputs (q|k|v, gate|up, LM head inputs) are at most
  // sqrt(H) max|norm weight| (checked below), the attention output at most max|V| (f16 in the
  // flash kernel already), and the down projection's input silu(gate) up, which reaches
  // thousands in real models, is scaled per row by a power of two (swiglu_scaled, guard_).
  act_ = wt == DType::F32 ? DType::F32 : DType::F16;
  // HWLEDGER_CUDA_ACT=f32: weights upcast to f32 and f32 products (TF32 off) - the fp32
  // arithmetic of the references, for checking the kernels end to end at fp32 tolerance.
  // HWLEDGER_CUDA_ACT=bf16: the weights' own 16-bit type (bf16 for bf16 checkpoints), the
  // arithmetic before f16 became the default. HWLEDGER_CUDA_GUARD=0: f16 without the down
  // projection's scaling (for measuring the guard's cost; can overflow on real models).
  if (const char* a = std::getenv("HWLEDGER_CUDA_ACT"); a && std::string(a) == "f32")
    act_ = DType::F32;
  else if (a && std::string(a) == "bf16")
    act_ = wt == DType::F32 ? DType::F32 : wt;
  else if (a && std::string(a) == "f16")
    act_ = DType::F16;
  if (const char* g = std::getenv("HWLEDGER_CUDA_GUARD")) guard_ = std::string(g) != "0";
  if (act_ == DType::F16 && wt != DType::F16) {
    // A norm weight whose bound sqrt(D) max|w| passes f16's range: the weights' type instead.
    const double lim = 65504.0;
    auto bound = [&](const Tensor& t) {
      return std::sqrt(static_cast<double>(t.numel())) * max_abs(t);
    };
    double worst = model.final_norm.empty() ? 0.0 : bound(model.final_norm);
    for (const LayerWeights& w : model.layers)
      worst = std::max({worst, bound(w.attn_norm), bound(w.mlp_norm)});
    if (worst > lim) {
      std::fprintf(stderr,
                   "hwledger: CUDA: an RMSNorm output can reach %.3g, past f16's range: %s "
                   "activations\n",
                   worst, std::string(dtype_name(wt)).c_str());
      act_ = wt;
    }
  }
  if (const char* p = std::getenv("HWLEDGER_CUDA_PREC")) {
    const std::string v = std::string(",") + p + ",";
    auto has = [&](const char* k) { return v.find(std::string(",") + k + ",") != std::string::npos; };
    prec_ = Precision{has("decode"), has("head"), has("proj"), has("split")};
  }
  if (const char* g = std::getenv("HWLEDGER_CUDA_GRAPHS")) graphs_ = std::string(g) != "0";
  if (const char* p = std::getenv("HWLEDGER_CUDA_PROFILE"); p && std::string(p) == "1") {
    profile_ = std::make_unique<cuda::StageProfile>(*ctx_);
    graphs_ = false;  // events between stages: plain launches
  }
  upload_weights();
  if (!fits_) {  // a weight past f16's range (none in the checkpoints seen): the weights' type
    std::fprintf(stderr, "hwledger: CUDA: a weight is past f16's range: %s activations\n",
                 std::string(dtype_name(wt)).c_str());
    layers_.clear();
    embed_.reset();
    final_norm_.reset();
    lm_head_own_.reset();
    weight_bytes_ = 0;
    act_ = wt;
    fits_ = true;
    upload_weights();
  }
}

CudaRunner::~CudaRunner() {
  if (profile_)
    std::fprintf(stderr, "CUDA stage times (HWLEDGER_CUDA_PROFILE):\n%s",
                 profile_->report().c_str());
  clear_graphs();
  cuda::host_free_pinned(staging_h_);
  cuda::host_free_pinned(out_h_);
}

double CudaRunner::max_abs(const Tensor& t) {
  double m = 0.0;
  const int64_t n = t.empty() ? 0 : t.numel();
  for (int64_t i = 0; i < n; ++i) {
    float v = 0.0f;
    if (t.dtype == DType::F32)
      v = static_cast<const float*>(t.data)[i];
    else if (t.dtype == DType::BF16)
      v = bf16_to_f32(static_cast<const uint16_t*>(t.data)[i]);
    else if (t.dtype == DType::F16)
      v = f16_to_f32(static_cast<const uint16_t*>(t.data)[i]);
    m = std::max(m, static_cast<double>(std::fabs(v)));
  }
  return m;
}

void CudaRunner::clear_graphs() {
  for (auto& [key, g] : graphs_cache_)
    if (g) cuda::Context::destroy_graph(g);
  graphs_cache_.clear();
}

void CudaRunner::put(void* dst, const Tensor& t, DType as) {
  cuda::DevicePtr src;  // freed after the synchronize below
  if (t.dtype == as) {
    cuda::copy_h2d(dst, t.data, t.nbytes(), *ctx_);
  } else {  // f32/f16/bf16 to `as` on the device (convert throws for other dtypes)
    src = cuda::make_device(ctx_->device(), t.nbytes());
    cuda::copy_h2d(src.get(), t.data, t.nbytes(), *ctx_);
    fits_ &= cuda::convert_fits(src.get(), t.dtype, dst, as, t.numel(), *ctx_);
  }
  ctx_->synchronize();  // pageable sources: keep the copy bounded in time and memory
}

cuda::DevicePtr CudaRunner::upload(const Tensor& t, DType as) {
  if (t.empty()) return {};
  cuda::DevicePtr d = cuda::make_device(ctx_->device(), t.numel() * dtype_size(as));
  put(d.get(), t, as);
  weight_bytes_ += t.numel() * dtype_size(as);
  return d;
}

cuda::DevicePtr CudaRunner::upload_cat(std::initializer_list<const Tensor*> parts, int64_t cols,
                                       DType as) {
  int64_t rows = 0;
  for (const Tensor* p : parts) {
    HW_CHECK(p->ndim == 2 && p->dim(1) == cols, "CudaRunner: matrix {} does not have {} columns",
             p->shape_str(), cols);
    rows += p->dim(0);
  }
  const size_t es = dtype_size(as);
  cuda::DevicePtr d = cuda::make_device(ctx_->device(), static_cast<size_t>(rows * cols) * es);
  size_t at = 0;
  for (const Tensor* p : parts) {
    put(static_cast<uint8_t*>(d.get()) + at, *p, as);
    at += static_cast<size_t>(p->numel()) * es;
  }
  weight_bytes_ += at;
  return d;
}

cuda::DevicePtr CudaRunner::upload_bias(
    std::initializer_list<std::pair<const Tensor*, int64_t>> parts) {
  bool any = false;
  int64_t n = 0;
  for (auto& [t, len] : parts) {
    any |= !t->empty();
    n += len;
  }
  if (!any) return {};
  std::vector<float> host(static_cast<size_t>(n), 0.0f);
  int64_t at = 0;
  for (auto& [t, len] : parts) {
    if (!t->empty()) std::memcpy(host.data() + at, t->data, static_cast<size_t>(len) * 4);
    at += len;
  }
  cuda::DevicePtr d = cuda::make_device(ctx_->device(), host.size() * 4);
  cuda::copy_h2d(d.get(), host.data(), host.size() * 4, *ctx_);
  ctx_->synchronize();
  return d;
}

void CudaRunner::upload_weights() {
  const ModelConfig& c = model_.config;
  const int64_t H = c.hidden_size, Q = c.q_dim(), KV = c.kv_dim(), F = c.intermediate_size;
  layers_.resize(model_.layers.size());
  for (size_t l = 0; l < model_.layers.size(); ++l) {
    const LayerWeights& w = model_.layers[l];
    Layer& d = layers_[l];
    d.attn_norm = upload(w.attn_norm, DType::F32);
    d.mlp_norm = upload(w.mlp_norm, DType::F32);
    d.q_norm = upload(w.q_norm, DType::F32);
    d.k_norm = upload(w.k_norm, DType::F32);
    d.wqkv = upload_cat({&w.wq, &w.wk, &w.wv}, H, act_);
    d.wo = upload(w.wo, act_);
    d.wgu = upload_cat({&w.w_gate, &w.w_up}, H, act_);
    d.wdown = upload(w.w_down, act_);
    d.bqkv = upload_bias({{&w.bq, Q}, {&w.bk, KV}, {&w.bv, KV}});
    d.bo = upload_bias({{&w.bo, H}});
    d.bgu = upload_bias({{&w.b_gate, F}, {&w.b_up, F}});
    d.bdown = upload_bias({{&w.b_down, H}});
  }
  // The embedding stays in its stored dtype (the lookup converts); the LM head is a matmul. A
  // tied 16-bit embedding is stored once, in the activation type.
  const bool tied = model_.lm_head.data == model_.embed.data;
  embed_dtype_ = tied && model_.embed.dtype != DType::F32 && act_ != DType::F32 ? act_
                                                                               : model_.embed.dtype;
  embed_ = upload(model_.embed, embed_dtype_);
  final_norm_ = upload(model_.final_norm, DType::F32);
  if (tied && embed_dtype_ == act_) {
    lm_head_ = embed_.get();
  } else {
    lm_head_own_ = upload(model_.lm_head, act_);
    lm_head_ = lm_head_own_.get();
  }
}

void CudaRunner::ensure_workspace(int64_t T, int64_t rows, size_t staging) {
  const ModelConfig& c = model_.config;
  const int64_t H = c.hidden_size, Q = c.q_dim(), KV = c.kv_dim(), F = c.intermediate_size,
                V = c.vocab_size;
  const size_t a = dtype_size(act_ == DType::F32 ? DType::BF16 : act_);
  const int dev = ctx_->device();
  if (T > cap_T_ || rows > cap_rows_) {
    clear_graphs();
    ctx_->synchronize();
    T = std::max(T, cap_T_);
    rows = std::max(rows, cap_rows_);
    // h_, attn_, act_f_ and seln_ hold f32 activations where they are kept f32 (prec_).
    x_ = cuda::make_device(dev, T * H * 4);
    h_ = cuda::make_device(dev, T * H * 4);
    qkv_ = cuda::make_device(dev, T * (Q + 2 * KV) * 4);
    q_ = cuda::make_device(dev, T * Q * 4);
    attn_ = cuda::make_device(dev, T * Q * 4);
    gu_ = cuda::make_device(dev, T * std::max(2 * F, H) * 4);  // also the guarded down product
    rscale_ = cuda::make_device(dev, T * 8);  // scales + swiglu_scaled's workspace
    act_f_ = cuda::make_device(dev, T * F * 4);
    seln_ = cuda::make_device(dev, std::max<int64_t>(rows, 1) * H * 4);
    logits_d_ = cuda::make_device(dev, std::max<int64_t>(rows, 1) * V * 4);
    ids_d_ = cuda::make_device(dev, std::max<int64_t>(rows, 1) * 4);
    cuda::host_free_pinned(out_h_);
    out_h_ = cuda::host_alloc_pinned(std::max<int64_t>(rows, 1) * V * 4);
    // product()'s hi/lo path: the LM head's rows, every product's rows with prec_.proj (and
    // decode-size rows where the GEMV does not apply).
    const int64_t pr =
        std::min(std::max({prec_.proj ? T : std::min<int64_t>(T, 4), rows, int64_t{1}}), kProductRows);
    const int64_t pk = std::max({H, Q, F});
    const int64_t pn = std::max({Q + 2 * KV, 2 * F, V});
    cap_hilo_ = static_cast<size_t>(2 * pr * pk) * a;
    cap_pair_ = static_cast<size_t>(2 * pr * pn) * 4;
    hilo_ = cuda::make_device(dev, cap_hilo_);
    pair_ = cuda::make_device(dev, cap_pair_);
    cap_T_ = T;
    cap_rows_ = rows;
    workspace_bytes_ =
        static_cast<uint64_t>(T * H * 8 + T * (Q + 2 * KV) * 4 + T * Q * 8 +
                              T * std::max(2 * F, H) * 4 + T * 8 +
                              T * F * 4 + rows * H * 4 + rows * V * 4 + rows * 4) +
        cap_hilo_ + cap_pair_;
  }
  if (staging > cap_staging_) {
    clear_graphs();
    ctx_->synchronize();
    staging = std::max(staging, cap_staging_ * 2);
    cuda::host_free_pinned(staging_h_);
    staging_h_ = cuda::host_alloc_pinned(staging);
    staging_d_ = cuda::make_device(dev, staging);
    cap_staging_ = staging;
  }
}

void CudaRunner::product(const float* a, const void* w, float* y, int64_t M, int64_t N, int64_t K,
                         int64_t ldy, bool accumulate) {
  cuda::Context& cx = *ctx_;
  if (act_ == DType::F32)
    return cuda::gemm(a, w, DType::F32, y, DType::F32, M, N, K, ldy, accumulate, cx);
  if (cuda::gemv_f32(a, nullptr, 0.0f, w, act_, y, M, N, K, ldy, accumulate, cx)) return;
  // a = hi + lo, both in the weights' type, stacked as 2m rows: one GEMM reads w once.
  const size_t es = dtype_size(act_);
  for (int64_t m0 = 0; m0 < M; m0 += kProductRows) {
    const int64_t m = std::min(kProductRows, M - m0);
    HW_CHECK(static_cast<size_t>(2 * m * K) * es <= cap_hilo_ &&
                 static_cast<size_t>(2 * m * N) * 4 <= cap_pair_,
             "CudaRunner::product: {}x{}x{} exceeds the workspace", m, N, K);
    auto* hl = static_cast<uint8_t*>(hilo_.get());
    auto* pr = static_cast<float*>(pair_.get());
    cuda::split_hi_lo(a + m0 * K, hl, hl + static_cast<size_t>(m * K) * es, act_, m * K, cx);
    cuda::gemm(hl, w, act_, pr, DType::F32, 2 * m, N, K, N, false, cx);
    cuda::sum_pair(pr, pr + m * N, m, N, y + m0 * ldy, ldy, accumulate, cx);
  }
}

CudaRunner::Step CudaRunner::prepare(std::span<BatchItem> batch) {
  const ModelConfig& c = model_.config;
  const int64_t half = c.head_dim / 2, bt = pool_.layout().block_tokens;
  Step st;
  st.n_seqs = static_cast<int>(batch.size());
  int64_t max_blocks = 1;
  for (auto& item : batch) {
    HW_CHECK(!item.tokens.empty(), "forward: a batch item has no tokens");
    const int64_t n = static_cast<int64_t>(item.tokens.size());
    kv_.reserve(*item.kv, item.kv->n_tokens + n);
    st.T += n;
    st.max_new = std::max<int>(st.max_new, static_cast<int>(n));
    max_blocks = std::max<int64_t>(max_blocks, static_cast<int64_t>(item.kv->blocks.size()));
    if (item.logits == BatchItem::Logits::All) st.rows += n;
    if (item.logits == BatchItem::Logits::Last) st.rows += 1;
  }
  // Block tables padded to a power of two: a decode step's launches stay the same for many
  // steps (one graph per width), and the split kernel's grid covers width * bt keys.
  int64_t w = 4;
  while (w < max_blocks) w *= 2;
  st.width = static_cast<int>(w);
  st.max_ctx = static_cast<int>(w * bt);
  size_t at = 0;
  auto take = [&](size_t bytes, size_t align) {
    at = align_up(at, align);
    size_t o = at;
    at += bytes;
    return o;
  };
  st.off_ids = take(st.T * 4, 16);
  st.off_cos = take(st.T * half * 4, 16);
  st.off_sin = take(st.T * half * 4, 16);
  st.off_qstart = take((st.n_seqs + 1) * 4, 16);
  st.off_pos0 = take(st.n_seqs * 4, 16);
  st.off_rowseq = take(st.T * 4, 16);
  st.off_sel = take(std::max<int64_t>(st.rows, 1) * 4, 16);
  st.off_table = take(static_cast<size_t>(st.n_seqs) * w * sizeof(void*), 16);
  st.bytes = align_up(at, 16);
  ensure_workspace(st.T, st.rows, st.bytes);

  auto* base = static_cast<uint8_t*>(staging_h_);
  auto* ids = reinterpret_cast<int32_t*>(base + st.off_ids);
  auto* qstart = reinterpret_cast<int32_t*>(base + st.off_qstart);
  auto* pos0 = reinterpret_cast<int32_t*>(base + st.off_pos0);
  auto* rowseq = reinterpret_cast<int32_t*>(base + st.off_rowseq);
  auto* sel = reinterpret_cast<int32_t*>(base + st.off_sel);
  auto* table = reinterpret_cast<uint8_t**>(base + st.off_table);
  std::vector<int64_t> positions;
  positions.reserve(st.T);
  int64_t row = 0, r = 0;
  const int64_t V = c.vocab_size;
  for (int s = 0; s < st.n_seqs; ++s) {
    const BatchItem& item = batch[s];
    const int64_t n = static_cast<int64_t>(item.tokens.size());
    qstart[s] = static_cast<int32_t>(row);
    pos0[s] = static_cast<int32_t>(item.kv->n_tokens);
    for (int64_t t = 0; t < n; ++t) {
      const int32_t id = item.tokens[t];
      if (id < 0 || id >= V) fail_input("token id {} is outside the vocabulary [0, {})", id, V);
      ids[row + t] = id;
      rowseq[row + t] = s;
      positions.push_back(item.kv->n_tokens + t);
    }
    if (item.logits == BatchItem::Logits::All)
      for (int64_t t = 0; t < n; ++t) sel[r++] = static_cast<int32_t>(row + t);
    if (item.logits == BatchItem::Logits::Last) sel[r++] = static_cast<int32_t>(row + n - 1);
    const size_t nb = item.kv->block_ptrs.size();
    for (int64_t b = 0; b < w; ++b)
      table[static_cast<int64_t>(s) * w + b] =
          b < static_cast<int64_t>(nb) ? item.kv->block_ptrs[b] : nullptr;
    row += n;
  }
  qstart[st.n_seqs] = static_cast<int32_t>(row);
  rope_.fill(positions, reinterpret_cast<float*>(base + st.off_cos),
             reinterpret_cast<float*>(base + st.off_sin));
  return st;
}

void CudaRunner::enqueue(const Step& st, const LayerHook& hook, bool greedy) {
  const ModelConfig& c = model_.config;
  const int64_t H = c.hidden_size, F = c.intermediate_size, V = c.vocab_size;
  const int64_t nh = c.num_heads, Q = c.q_dim(), KV = c.kv_dim(), T = st.T, NQKV = Q + 2 * KV;
  const float eps = static_cast<float>(c.rms_norm_eps);
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  cuda::Context& cx = *ctx_;
  auto* sd = static_cast<uint8_t*>(staging_d_.get());
  auto f32 = [](const cuda::DevicePtr& p) { return static_cast<float*>(p.get()); };
  // Stage names say whether the step is a decode step (one row per sequence) or prefill.
  const bool dec = st.max_new == 1;
  auto mark = [&](const char* decode_name, const char* prefill_name) {
    if (profile_) profile_->mark(dec ? decode_name : prefill_name);
  };
  if (profile_) profile_->start();

  cuda::copy_h2d(sd, staging_h_, st.bytes, cx);
  mark("d.upload", "p.upload");
  cuda::PagedBatch pb;
  pb.n_seqs = st.n_seqs;
  pb.n_rows = T;
  pb.max_new = st.max_new;
  pb.max_ctx = st.max_ctx;
  pb.q_start = reinterpret_cast<const int32_t*>(sd + st.off_qstart);
  pb.pos0 = reinterpret_cast<const int32_t*>(sd + st.off_pos0);
  pb.row_seq = reinterpret_cast<const int32_t*>(sd + st.off_rowseq);
  pb.blocks = reinterpret_cast<uint8_t* const*>(sd + st.off_table);
  pb.table_width = st.width;
  const float* cos = reinterpret_cast<const float*>(sd + st.off_cos);
  const float* sin = reinterpret_cast<const float*>(sd + st.off_sin);

  cuda::embedding(embed_.get(), embed_dtype_,
                  reinterpret_cast<const int32_t*>(sd + st.off_ids), f32(x_), T, H, V, cx);
  mark("d.embed", "p.embed");
  // Decode-size steps (GEMVs): f32 activations into every product, RMSNorm fused into the
  // GEMV that reads it. Otherwise (prefill, batched decode: compute-bound or near it) the
  // products take the weights' type, or f32 through product() with prec_.proj.
  const bool fuse = prec_.decode && act_ != DType::F32 && T <= 4;
  const bool wide = fuse || (prec_.proj && act_ != DType::F32);
  const DType at = wide ? DType::F32 : act_;  // the activations h_, attn_, act_f_
  // f16 activations into the down projection: act_f_ row t holds silu(gate) up / s_t (s_t a
  // power of two, rscale_), the product goes to gu_ (f32), and x_ += s_t · gu_ (+ bias) is
  // fused into the next RMSNorm (or done alone after the last layer and before a hook).
  const bool guard = guard_ && at == DType::F16;
  const float* pend = nullptr;  // gu_ while a down product awaits its scaled residual add
  const float* pend_bias = nullptr;
  auto settle = [&](const float* norm_w, void* out, DType ot) {
    cuda::add_scaled_rms_norm(f32(x_), pend, f32(rscale_), pend_bias, norm_w, eps, out, ot, T, H,
                              cx);
    pend = pend_bias = nullptr;
  };
  // The products below: y (+)= a · wᵀ with a in `at`.
  auto mul = [&](const void* a, const void* w, float* y, int64_t N, int64_t K, int64_t ldy,
                 bool accumulate) {
    if (wide)
      product(static_cast<const float*>(a), w, y, T, N, K, ldy, accumulate);
    else
      cuda::gemm(a, w, act_, y, DType::F32, T, N, K, ldy, accumulate, cx);
  };
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const Layer& w = layers_[l];
    cuda::set_geometry(pb, pool_.layout(), l);
    // Attention block: x += o_proj(attention(rope(norm(q)), rope(norm(k)), v)).
    if (pend && fuse) settle(nullptr, nullptr, at);  // (fuse implies no guard: never taken)
    if (!(fuse && cuda::gemv_f32(f32(x_), f32(w.attn_norm), eps, w.wqkv.get(), act_, f32(qkv_), T,
                                 NQKV, H, NQKV, false, cx))) {
      if (pend)
        settle(f32(w.attn_norm), h_.get(), at);
      else
        cuda::rms_norm(f32(x_), f32(w.attn_norm), eps, h_.get(), at, T, H, cx);
      mark("d.norm", "p.norm");
      mul(h_.get(), w.wqkv.get(), f32(qkv_), NQKV, H, NQKV, false);
    }
    mark("d.qkv_gemm", "p.qkv_gemm");
    cuda::qkv_finish(f32(qkv_), NQKV, f32(w.bqkv), f32(w.q_norm), f32(w.k_norm), eps, cos, sin, nh,
                     f32(q_), pb, cx);
    mark("d.qkv_finish", "p.qkv_finish");
    cuda::attention(f32(q_), pb, nh, scale, c.window(l), attn_.get(), at, cx, prec_.split ? 1 : 0);
    mark("d.attention", "p.attention");
    mul(attn_.get(), w.wo.get(), f32(x_), H, Q, H, true);
    if (w.bo) cuda::add_bias(f32(x_), f32(w.bo), T, H, H, cx);
    mark("d.o_gemm", "p.o_gemm");
    // MLP block: x += down(silu(gate(h)) * up(h)). Decode sizes: gate|up and SwiGLU in one GEMV
    // (no bias; with the norm when fused); otherwise GEMM + SwiGLU.
    if (!w.bgu && fuse &&
        cuda::gemv_swiglu_f32(f32(x_), f32(w.mlp_norm), eps, w.wgu.get(), act_, act_f_.get(),
                              DType::F32, T, F, H, cx)) {
      mark("d.gu_swiglu", "p.gu_swiglu");
    } else {
      cuda::rms_norm(f32(x_), f32(w.mlp_norm), eps, h_.get(), at, T, H, cx);
      mark("d.norm", "p.norm");
      if (!w.bgu && !wide && !guard &&
          cuda::gemv_swiglu(h_.get(), w.wgu.get(), act_, act_f_.get(), T, F, H, cx)) {
        mark("d.gu_swiglu", "p.gu_swiglu");
      } else {
        mul(h_.get(), w.wgu.get(), f32(gu_), 2 * F, H, 2 * F, false);
        if (w.bgu) cuda::add_bias(f32(gu_), f32(w.bgu), T, 2 * F, 2 * F, cx);
        mark("d.gu_gemm", "p.gu_gemm");
        if (guard)
          cuda::swiglu_scaled(f32(gu_), f32(gu_) + F, 2 * F, act_f_.get(), at, f32(rscale_), T, F,
                              cx);
        else
          cuda::swiglu(f32(gu_), f32(gu_) + F, 2 * F, act_f_.get(), at, T, F, cx);
        mark("d.swiglu", "p.swiglu");
      }
    }
    if (guard) {
      cuda::gemm(act_f_.get(), w.wdown.get(), act_, f32(gu_), DType::F32, T, H, F, H, false, cx);
      pend = f32(gu_);
      pend_bias = f32(w.bdown);
    } else {
      mul(act_f_.get(), w.wdown.get(), f32(x_), H, F, H, true);
      if (w.bdown) cuda::add_bias(f32(x_), f32(w.bdown), T, H, H, cx);
    }
    mark("d.down_gemm", "p.down_gemm");
    if (pend && (l + 1 == c.num_layers || hook)) settle(nullptr, nullptr, at);
    if (hook && l + 1 < c.num_layers) {
      hidden_.resize(static_cast<size_t>(T * H));
      cuda::copy_d2h(hidden_.data(), x_.get(), hidden_.size() * 4, cx);
      cx.synchronize();
      hook(l, hidden_.data(), T, H);
    }
  }
  if (hook) {  // the last layer's output with the final norm applied, every row (f32)
    cuda::rms_norm(f32(x_), f32(final_norm_), eps, qkv_.get(), DType::F32, T, H, cx);
    hidden_.resize(static_cast<size_t>(T * H));
    cuda::copy_d2h(hidden_.data(), qkv_.get(), hidden_.size() * 4, cx);
    cx.synchronize();
    hook(c.num_layers - 1, hidden_.data(), T, H);
  }
  if (st.rows == 0) return;
  // The LM head's input stays f32 (prec_.head): the logits carry no rounding of it.
  const bool head_wide = prec_.head && act_ != DType::F32;
  cuda::rms_norm(f32(x_), f32(final_norm_), eps, seln_.get(), head_wide ? DType::F32 : act_, st.rows,
                 H, cx, reinterpret_cast<const int32_t*>(sd + st.off_sel));
  if (head_wide)
    product(f32(seln_), lm_head_, f32(logits_d_), st.rows, V, H, V, false);
  else
    cuda::gemm(seln_.get(), lm_head_, act_, logits_d_.get(), DType::F32, st.rows, V, H, V, false,
               cx);
  mark("d.lm_head", "p.lm_head");
  if (greedy) {
    cuda::argmax_rows(f32(logits_d_), st.rows, V, static_cast<int32_t*>(ids_d_.get()), cx);
    cuda::copy_d2h(out_h_, ids_d_.get(), static_cast<size_t>(st.rows) * 4, cx);
  } else {
    cuda::copy_d2h(out_h_, logits_d_.get(), static_cast<size_t>(st.rows * V) * 4, cx);
  }
  mark("d.out", "p.out");
}

void CudaRunner::run(std::span<BatchItem> batch, const LayerHook& hook, bool greedy) {
  const int64_t V = model_.config.vocab_size;
  if (batch.empty()) {
    logits_.clear();
    ids_.clear();
    return;
  }
  Step st = prepare(batch);
  bool decode = !hook && graphs_;
  for (auto& item : batch)
    decode &= item.tokens.size() == 1 && item.logits == BatchItem::Logits::Last;
  if (decode) {
    // The first step of a shape runs plainly (sizing scratch), the second is captured.
    auto key = std::make_tuple(st.T, st.width, greedy);
    auto it = graphs_cache_.find(key);
    if (it == graphs_cache_.end()) {
      graphs_cache_[key] = nullptr;
      enqueue(st, hook, greedy);
    } else {
      if (!it->second) {
        ctx_->begin_capture();
        try {
          enqueue(st, hook, greedy);
        } catch (...) {
          try {
            cuda::Context::destroy_graph(ctx_->end_capture());
          } catch (...) {
          }
          graphs_ = false;
          throw;
        }
        it->second = ctx_->end_capture();
      }
      ctx_->launch_graph(it->second);
    }
  } else {
    enqueue(st, hook, greedy);
  }
  ctx_->synchronize();
  if (profile_) profile_->collect();
  for (auto& item : batch) item.kv->n_tokens += static_cast<int64_t>(item.tokens.size());
  // Results came back to pinned memory (graphs need it); hand them out in vectors.
  if (greedy)
    ids_.assign(static_cast<const int32_t*>(out_h_), static_cast<const int32_t*>(out_h_) + st.rows);
  else
    logits_.assign(static_cast<const float*>(out_h_),
                   static_cast<const float*>(out_h_) + st.rows * V);
}

std::vector<float>& CudaRunner::forward(std::span<BatchItem> batch, const LayerHook& hook) {
  run(batch, hook, false);
  return logits_;
}

const std::vector<int32_t>& CudaRunner::forward_greedy(std::span<BatchItem> batch) {
  run(batch, {}, true);
  return ids_;
}

}  // namespace hwledger
