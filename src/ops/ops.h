// Device-neutral op entry points. Each validates its arguments (shapes, dtypes, devices) and
// dispatches to the implementation for the tensors' device: ops/cpu/*_cpu for the CPU and
// ops/cuda/ (through ops_cuda.cpp) for Device::CUDA. Shapes are given outermost first; T =
// tokens in the batch. On CUDA every tensor is device memory and ops enqueue on the context's
// stream; 16-bit activations are allowed where noted.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "ops/paged_kv.h"
#include "ops/tensor.h"
#include "util/thread_pool.h"

namespace hwledger::cuda {
class Context;
}

namespace hwledger::ops {

// Where ops run: the device, and the CPU threads they may use (CPU) or the stream (CUDA).
struct Context {
  Device device = Device::CPU;
  ThreadPool* pool = nullptr;
  cuda::Context* cuda = nullptr;  // set when device is CUDA
};

// y[M, N] (+)= x[M, K] · w[N, K]ᵀ + bias[N]. x, y f32; w bf16/f16/f32.
// CUDA: x has w's dtype (cuBLAS, f32 accumulate); y f32 or w's dtype.
void matmul(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y, bool accumulate,
            Context& ctx);

// y[M, D] = x / sqrt(mean(x²) + eps) * weight[D]; y may be x. CUDA: y may be bf16/f16.
void rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor& y, Context& ctx);

// y[T, H] = table[ids[t], :] converted to f32.
void embedding(const Tensor& table, std::span<const int32_t> ids, Tensor& y, Context& ctx);

// Rotary embedding, rotate-half convention (as Hugging Face): x is f32 [T, n_heads, hd];
// cos/sin are f32 [T, hd/2] for each token's position.
void rope(Tensor& x, const Tensor& cos, const Tensor& sin, Context& ctx);

// out[T, F] = silu(gate) * up. CUDA: out may be bf16/f16 (then not gate).
void swiglu(const Tensor& gate, const Tensor& up, Tensor& out, Context& ctx);

// Writes k, v (f32 [T, nkv*hd]) for positions pos0 .. pos0+T-1 into the paged cache.
// CUDA: kv.blocks is a host array of device block addresses.
void kv_store(const Tensor& k, const Tensor& v, int64_t pos0, const PagedKVView& kv, Context& ctx);

// Causal attention of queries q (f32 [T, nh, hd], at positions pos0 ..) over the cached keys
// and values 0 .. pos0+t (keys must be stored first). window > 0 limits each query to the
// last `window` keys. out is f32 [T, nh*hd]. Grouped-query: head h reads KV head h/(nh/nkv).
void attention(const Tensor& q, int64_t pos0, const PagedKVView& kv, float scale, int64_t window,
               Tensor& out, Context& ctx);

// The index of the largest of v[0 .. n) in host memory, the first one on ties (as
// torch.argmax); NaNs are never chosen over numbers. Greedy decoding over a whole vocabulary.
int32_t argmax(const float* v, int64_t n);
// The largest of v[0 .. n) in host memory (softmax normalisers over a vocabulary).
float max_value(const float* v, int64_t n);

}  // namespace hwledger::ops
