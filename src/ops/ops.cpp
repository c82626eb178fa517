#include "ops/ops.h"

#include "ops/cpu/kernels_cpu.h"
#include "ops/cpu/matmul_cpu.h"
#include "ops/ops_cuda.h"
#include "util/error.h"

namespace hwledger::ops {

namespace {

void require_cpu(const Context& ctx, const char* op) {
  if (ctx.device != Device::CPU) fail("{}: no implementation for this device yet", op);
  if (!ctx.pool) fail("{}: context has no thread pool", op);
}

void require_f32(const Tensor& t, const char* op, const char* name) {
  if (t.dtype != DType::F32) fail("{}: {} must be f32, got {}", op, name, dtype_name(t.dtype));
}

}  // namespace

void matmul(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y, bool accumulate,
            Context& ctx) {
  if (ctx.device == Device::CUDA) return matmul_cuda(x, w, bias, y, accumulate, ctx);
  require_cpu(ctx, "matmul");
  require_f32(x, "matmul", "x");
  require_f32(y, "matmul", "y");
  if (x.ndim != 2 || w.ndim != 2 || y.ndim != 2 || x.dim(1) != w.dim(1) || y.dim(0) != x.dim(0) ||
      y.dim(1) != w.dim(0))
    fail("matmul: shapes x{} w{} y{} do not fit y[M,N] = x[M,K] w[N,K]^T", x.shape_str(), w.shape_str(),
         y.shape_str());
  if (bias && (bias->dtype != DType::F32 || bias->numel() != w.dim(0)))
    fail("matmul: bias {} {} does not match N={}", dtype_name(bias->dtype), bias->shape_str(), w.dim(0));
  if (w.dtype == DType::I32) fail("matmul: integer weights are not supported");
  cpu::matmul(x.as<float>(), x.dim(1), w.data, w.dtype, bias ? bias->as<float>() : nullptr, y.as<float>(),
              y.dim(1), x.dim(0), w.dim(0), x.dim(1), accumulate, *ctx.pool);
}

void rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor& y, Context& ctx) {
  if (ctx.device == Device::CUDA) return rms_norm_cuda(x, weight, eps, y, ctx);
  require_cpu(ctx, "rms_norm");
  require_f32(x, "rms_norm", "x");
  require_f32(weight, "rms_norm", "weight");
  const int64_t D = weight.numel();
  if (D == 0 || x.numel() % D != 0 || y.numel() != x.numel())
    fail("rms_norm: x{} is not rows of the weight's {} elements (y{})", x.shape_str(), D, y.shape_str());
  cpu::rms_norm(x.as<float>(), weight.as<float>(), eps, y.as<float>(), x.numel() / D, D, *ctx.pool);
}

void embedding(const Tensor& table, std::span<const int32_t> ids, Tensor& y, Context& ctx) {
  if (ctx.device == Device::CUDA) return embedding_cuda(table, ids, y, ctx);
  require_cpu(ctx, "embedding");
  require_f32(y, "embedding", "y");
  const int64_t V = table.dim(0), H = table.dim(1);
  if (y.numel() != static_cast<int64_t>(ids.size()) * H)
    fail("embedding: output {} does not hold {} rows of {}", y.shape_str(), ids.size(), H);
  for (int32_t id : ids)
    if (id < 0 || id >= V) fail_input("token id {} is outside the vocabulary [0, {})", id, V);
  cpu::embedding(table.data, table.dtype, H, ids.data(), static_cast<int64_t>(ids.size()), y.as<float>());
}

void rope(Tensor& x, const Tensor& cos, const Tensor& sin, Context& ctx) {
  if (ctx.device == Device::CUDA) return rope_cuda(x, cos, sin, ctx);
  require_cpu(ctx, "rope");
  require_f32(x, "rope", "x");
  if (x.ndim != 3 || cos.ndim != 2 || cos.dim(0) != x.dim(0) || cos.dim(1) * 2 != x.dim(2) ||
      sin.numel() != cos.numel())
    fail("rope: x{} needs cos/sin [T, hd/2], got {}", x.shape_str(), cos.shape_str());
  cpu::rope(x.as<float>(), x.dim(0), x.dim(1), x.dim(2), cos.as<float>(), sin.as<float>());
}

void swiglu(const Tensor& gate, const Tensor& up, Tensor& out, Context& ctx) {
  if (ctx.device == Device::CUDA) return swiglu_cuda(gate, up, out, ctx);
  require_cpu(ctx, "swiglu");
  if (gate.numel() != up.numel() || out.numel() != gate.numel())
    fail("swiglu: gate{} up{} out{} differ", gate.shape_str(), up.shape_str(), out.shape_str());
  cpu::swiglu(gate.as<float>(), up.as<float>(), out.as<float>(), gate.numel(), *ctx.pool);
}

namespace {
void check_kv(const PagedKVView& kv, int64_t end_pos, const char* op) {
  if (!kv.layout || kv.layer < 0 || kv.layer >= kv.layout->n_layers)
    fail("{}: bad KV view (layer {})", op, kv.layer);
  validate_kv_layout(*kv.layout);  // e.g. q8_0 with a head_dim that is no multiple of 32
  if (end_pos > kv.n_blocks * kv.layout->block_tokens)
    fail("{}: position {} is beyond the {} cached blocks of {} tokens", op, end_pos - 1, kv.n_blocks,
         kv.layout->block_tokens);
}
}  // namespace

void kv_store(const Tensor& k, const Tensor& v, int64_t pos0, const PagedKVView& kv, Context& ctx) {
  if (ctx.device == Device::CUDA) return kv_store_cuda(k, v, pos0, kv, ctx);
  require_cpu(ctx, "kv_store");
  const int64_t T = k.dim(0);
  check_kv(kv, pos0 + T, "kv_store");
  const int64_t width = kv.layout->n_kv_heads * kv.layout->head_dim;
  if (k.numel() != T * width || v.numel() != T * width)
    fail("kv_store: k{} v{} are not [T, {}]", k.shape_str(), v.shape_str(), width);
  cpu::kv_store(k.as<float>(), v.as<float>(), T, pos0, kv);
}

void attention(const Tensor& q, int64_t pos0, const PagedKVView& kv, float scale, int64_t window,
               Tensor& out, Context& ctx) {
  if (ctx.device == Device::CUDA) return attention_cuda(q, pos0, kv, scale, window, out, ctx);
  require_cpu(ctx, "attention");
  if (q.ndim != 3 || q.dim(2) != kv.layout->head_dim || q.dim(1) % kv.layout->n_kv_heads != 0)
    fail("attention: q{} does not fit {} KV heads of dim {}", q.shape_str(), kv.layout->n_kv_heads,
         kv.layout->head_dim);
  if (out.numel() != q.numel()) fail("attention: out{} differs from q{}", out.shape_str(), q.shape_str());
  check_kv(kv, pos0 + q.dim(0), "attention");
  cpu::attention(q.as<float>(), q.dim(0), q.dim(1), pos0, kv, scale, window, out.as<float>(), *ctx.pool);
}

int32_t argmax(const float* v, int64_t n) {
  if (n <= 0) fail("argmax: empty input ({} values)", n);
  return cpu::argmax(v, n);
}

float max_value(const float* v, int64_t n) {
  if (n <= 0) fail("max_value: empty input ({} values)", n);
  return cpu::max_value(v, n);
}

}  // namespace hwledger::ops
