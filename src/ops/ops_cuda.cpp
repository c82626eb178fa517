#include "ops/ops_cuda.h"

#include <cstring>
#include <vector>

#include "ops/cuda/cuda.h"
#include "util/error.h"

namespace hwledger::cuda {

void raise_error(const std::string& msg) {
  throw Error(msg);
}
void raise_input_error(const std::string& msg) {
  throw InputError(msg);
}

void set_geometry(PagedBatch& b, const KVLayout& L, int64_t layer) {
  if ((is_quantized(L.dtype) && L.dtype != DType::F8_E4M3) || L.dtype == DType::I32)
    fail_input("--kv-dtype {} is not supported on CUDA (use bf16, f16, f32 or fp8)",
               dtype_name(L.dtype));
  if (layer < 0 || layer >= L.n_layers) fail("CUDA KV cache: layer {} of {}", layer, L.n_layers);
  b.block_tokens = L.block_tokens;
  b.head_dim = L.head_dim;
  b.n_kv_heads = L.n_kv_heads;
  b.kv_dtype = L.dtype;
  b.k_off = static_cast<int64_t>(L.k_offset(layer));
  b.v_off = static_cast<int64_t>(L.v_offset(layer));
  b.head_bytes = static_cast<int64_t>(L.head_bytes());
}

}  // namespace hwledger::cuda

namespace hwledger::ops {

namespace {

cuda::Context& cuda_of(Context& ctx, const char* op) {
  if (!ctx.cuda) fail("{}: CUDA context is not set", op);
  return *ctx.cuda;
}

void on_device(const Tensor& t, const char* op, const char* name) {
  if (t.device != Device::CUDA) fail("{}: {} is not in device memory", op, name);
}

void need_dtype(const Tensor& t, DType want, const char* op, const char* name) {
  if (t.dtype != want)
    fail("{}: {} must be {}, got {}", op, name, dtype_name(want), dtype_name(t.dtype));
}

bool is_float(DType t) {
  return t == DType::F32 || t == DType::F16 || t == DType::BF16;
}

// A one-sequence PagedBatch whose index arrays live in `mem` (device) until the op is done.
cuda::PagedBatch single_batch(const PagedKVView& kv, int64_t T, int64_t pos0, cuda::DevicePtr& mem,
                              cuda::Context& c) {
  const size_t ints = 3 + static_cast<size_t>(T);
  const size_t bytes = ints * 4 + 16 + static_cast<size_t>(kv.n_blocks) * sizeof(void*);
  std::vector<uint8_t> host(bytes, 0);
  auto* i32 = reinterpret_cast<int32_t*>(host.data());
  i32[0] = 0;
  i32[1] = static_cast<int32_t>(T);
  i32[2] = static_cast<int32_t>(pos0);  // row_seq follows: all zero
  const size_t ptr_off = (ints * 4 + 15) / 16 * 16;
  std::memcpy(host.data() + ptr_off, kv.blocks, static_cast<size_t>(kv.n_blocks) * sizeof(void*));
  mem = cuda::make_device(c.device(), bytes);
  cuda::copy_h2d(mem.get(), host.data(), bytes, c);
  auto* d = static_cast<uint8_t*>(mem.get());
  cuda::PagedBatch b;
  cuda::set_geometry(b, *kv.layout, kv.layer);
  b.n_seqs = 1;
  b.n_rows = T;
  b.max_new = static_cast<int>(T);
  b.max_ctx = static_cast<int>(pos0 + T);
  b.q_start = reinterpret_cast<const int32_t*>(d);
  b.pos0 = reinterpret_cast<const int32_t*>(d) + 2;
  b.row_seq = reinterpret_cast<const int32_t*>(d) + 3;
  b.blocks = reinterpret_cast<uint8_t* const*>(d + ptr_off);
  b.table_width = static_cast<int>(kv.n_blocks);
  return b;
}

void check_kv(const PagedKVView& kv, int64_t end_pos, const char* op) {
  if (!kv.layout || kv.layer < 0 || kv.layer >= kv.layout->n_layers)
    fail("{}: bad KV view (layer {})", op, kv.layer);
  validate_kv_layout(*kv.layout);
  if (end_pos > kv.n_blocks * kv.layout->block_tokens)
    fail("{}: position {} is beyond the {} cached blocks of {} tokens", op, end_pos - 1,
         kv.n_blocks, kv.layout->block_tokens);
}

}  // namespace

void matmul_cuda(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y, bool accumulate,
                 Context& ctx) {
  cuda::Context& c = cuda_of(ctx, "matmul");
  on_device(x, "matmul", "x");
  on_device(w, "matmul", "w");
  on_device(y, "matmul", "y");
  if (x.ndim != 2 || w.ndim != 2 || y.ndim != 2 || x.dim(1) != w.dim(1) || y.dim(0) != x.dim(0) ||
      y.dim(1) != w.dim(0))
    fail("matmul: shapes x{} w{} y{} do not fit y[M,N] = x[M,K] w[N,K]^T", x.shape_str(),
         w.shape_str(), y.shape_str());
  if (!is_float(w.dtype) || x.dtype != w.dtype || (y.dtype != DType::F32 && y.dtype != w.dtype))
    fail("matmul on CUDA: x {} and w {} must share a float type, y {} f32 or that type",
         dtype_name(x.dtype), dtype_name(w.dtype), dtype_name(y.dtype));
  if (bias) {
    on_device(*bias, "matmul", "bias");
    if (bias->dtype != DType::F32 || bias->numel() != w.dim(0) || y.dtype != DType::F32)
      fail("matmul: bias {} {} does not match N={} (f32, f32 output)", dtype_name(bias->dtype),
           bias->shape_str(), w.dim(0));
  }
  cuda::gemm(x.data, w.data, w.dtype, y.data, y.dtype, x.dim(0), w.dim(0), x.dim(1), y.dim(1),
             accumulate, c);
  if (bias) cuda::add_bias(y.as<float>(), bias->as<float>(), y.dim(0), y.dim(1), y.dim(1), c);
}

void rms_norm_cuda(const Tensor& x, const Tensor& weight, float eps, Tensor& y, Context& ctx) {
  cuda::Context& c = cuda_of(ctx, "rms_norm");
  on_device(x, "rms_norm", "x");
  on_device(weight, "rms_norm", "weight");
  on_device(y, "rms_norm", "y");
  need_dtype(x, DType::F32, "rms_norm", "x");
  need_dtype(weight, DType::F32, "rms_norm", "weight");
  const int64_t D = weight.numel();
  if (D == 0 || x.numel() % D != 0 || y.numel() != x.numel())
    fail("rms_norm: x{} is not rows of the weight's {} elements (y{})", x.shape_str(), D,
         y.shape_str());
  if (y.data == x.data && y.dtype != DType::F32) fail("rms_norm: in place needs an f32 output");
  cuda::rms_norm(x.as<float>(), weight.as<float>(), eps, y.data, y.dtype, x.numel() / D, D, c);
}

void embedding_cuda(const Tensor& table, std::span<const int32_t> ids, Tensor& y, Context& ctx) {
  cuda::Context& c = cuda_of(ctx, "embedding");
  on_device(table, "embedding", "table");
  on_device(y, "embedding", "y");
  need_dtype(y, DType::F32, "embedding", "y");
  const int64_t V = table.dim(0), H = table.dim(1), T = static_cast<int64_t>(ids.size());
  if (y.numel() != T * H)
    fail("embedding: output {} does not hold {} rows of {}", y.shape_str(), T, H);
  for (int32_t id : ids)
    if (id < 0 || id >= V) fail_input("token id {} is outside the vocabulary [0, {})", id, V);
  cuda::DevicePtr d = cuda::make_device(c.device(), ids.size_bytes());
  cuda::copy_h2d(d.get(), ids.data(), ids.size_bytes(), c);
  cuda::embedding(table.data, table.dtype, static_cast<const int32_t*>(d.get()), y.as<float>(), T,
                  H, V, c);
  c.synchronize();  // d is freed on return
}

void rope_cuda(Tensor& x, const Tensor& cos, const Tensor& sin, Context& ctx) {
  cuda::Context& c = cuda_of(ctx, "rope");
  on_device(x, "rope", "x");
  on_device(cos, "rope", "cos");
  on_device(sin, "rope", "sin");
  need_dtype(x, DType::F32, "rope", "x");
  if (x.ndim != 3 || cos.ndim != 2 || cos.dim(0) != x.dim(0) || cos.dim(1) * 2 != x.dim(2) ||
      sin.numel() != cos.numel())
    fail("rope: x{} needs cos/sin [T, hd/2], got {}", x.shape_str(), cos.shape_str());
  cuda::rope(x.as<float>(), x.dim(0), x.dim(1), x.dim(2), x.dim(1) * x.dim(2), cos.as<float>(),
             sin.as<float>(), c);
}

void swiglu_cuda(const Tensor& gate, const Tensor& up, Tensor& out, Context& ctx) {
  cuda::Context& c = cuda_of(ctx, "swiglu");
  on_device(gate, "swiglu", "gate");
  on_device(up, "swiglu", "up");
  on_device(out, "swiglu", "out");
  need_dtype(gate, DType::F32, "swiglu", "gate");
  need_dtype(up, DType::F32, "swiglu", "up");
  if (gate.numel() != up.numel() || out.numel() != gate.numel())
    fail("swiglu: gate{} up{} out{} differ", gate.shape_str(), up.shape_str(), out.shape_str());
  const int64_t F = gate.dim(-1), T = gate.numel() / F;
  cuda::swiglu(gate.as<float>(), up.as<float>(), F, out.data, out.dtype, T, F, c);
}

void kv_store_cuda(const Tensor& k, const Tensor& v, int64_t pos0, const PagedKVView& kv,
                   Context& ctx) {
  cuda::Context& c = cuda_of(ctx, "kv_store");
  on_device(k, "kv_store", "k");
  on_device(v, "kv_store", "v");
  need_dtype(k, DType::F32, "kv_store", "k");
  need_dtype(v, DType::F32, "kv_store", "v");
  const int64_t T = k.dim(0);
  check_kv(kv, pos0 + T, "kv_store");
  const int64_t width = kv.layout->n_kv_heads * kv.layout->head_dim;
  if (k.numel() != T * width || v.numel() != T * width)
    fail("kv_store: k{} v{} are not [T, {}]", k.shape_str(), v.shape_str(), width);
  cuda::DevicePtr mem;
  cuda::PagedBatch b = single_batch(kv, T, pos0, mem, c);
  cuda::kv_store(k.as<float>(), width, v.as<float>(), width, b, c);
  c.synchronize();
}

void attention_cuda(const Tensor& q, int64_t pos0, const PagedKVView& kv, float scale,
                    int64_t window, Tensor& out, Context& ctx) {
  cuda::Context& c = cuda_of(ctx, "attention");
  on_device(q, "attention", "q");
  on_device(out, "attention", "out");
  need_dtype(q, DType::F32, "attention", "q");
  if (q.ndim != 3 || q.dim(2) != kv.layout->head_dim || q.dim(1) % kv.layout->n_kv_heads != 0)
    fail("attention: q{} does not fit {} KV heads of dim {}", q.shape_str(), kv.layout->n_kv_heads,
         kv.layout->head_dim);
  if (out.numel() != q.numel())
    fail("attention: out{} differs from q{}", out.shape_str(), q.shape_str());
  check_kv(kv, pos0 + q.dim(0), "attention");
  cuda::DevicePtr mem;
  cuda::PagedBatch b = single_batch(kv, q.dim(0), pos0, mem, c);
  cuda::attention(q.as<float>(), b, q.dim(1), scale, window, out.data, out.dtype, c);
  c.synchronize();
}

}  // namespace hwledger::ops
