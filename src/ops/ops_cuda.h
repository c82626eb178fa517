// The ops.h entries' CUDA side: validates device placement and dtypes, then calls the raw
// kernels in ops/cuda/cuda.h on the context's stream. Called only through ops.h.
#pragma once
#include <span>

#include "ops/ops.h"

namespace hwledger::ops {

void matmul_cuda(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y, bool accumulate,
                 Context& ctx);
void rms_norm_cuda(const Tensor& x, const Tensor& weight, float eps, Tensor& y, Context& ctx);
void embedding_cuda(const Tensor& table, std::span<const int32_t> ids, Tensor& y, Context& ctx);
void rope_cuda(Tensor& x, const Tensor& cos, const Tensor& sin, Context& ctx);
void swiglu_cuda(const Tensor& gate, const Tensor& up, Tensor& out, Context& ctx);
void kv_store_cuda(const Tensor& k, const Tensor& v, int64_t pos0, const PagedKVView& kv,
                   Context& ctx);
void attention_cuda(const Tensor& q, int64_t pos0, const PagedKVView& kv, float scale,
                    int64_t window, Tensor& out, Context& ctx);

}  // namespace hwledger::ops
