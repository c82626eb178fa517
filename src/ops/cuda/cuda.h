// The CUDA backend's host-side interface: device memory, streams, probes and the raw kernels
// the GPU forward pass calls. Plain C++ (no CUDA headers), so callers build without nvcc; when
// hwledger is built without CUDA (HWLEDGER_CUDA=OFF) every call but device_count() throws.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "ops/dtype.h"

namespace hwledger {
struct KVLayout;
}

// The .cu files see only this header and dtype.h: nvcc 13 cannot compile fmt 9 (util/error.h),
// so they report errors through these, defined in ops_cuda.cpp.
namespace hwledger::cuda {

[[noreturn]] void raise_error(const std::string& msg);
[[noreturn]] void raise_input_error(const std::string& msg);

// Devices this process can use: 0 without a driver, a GPU, or a CUDA build.
int device_count();
bool built_with_cuda();

struct DeviceInfo {
  std::string name;
  int sm_count = 0;
  int cc_major = 0, cc_minor = 0;
  uint64_t total_bytes = 0, free_bytes = 0;
};
DeviceInfo device_info(int device);

// One device's stream, cuBLAS handle and scratch. Ops enqueue on its stream.
class Context {
 public:
  explicit Context(int device);
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  int device() const { return device_; }
  void* stream() const { return stream_; }
  void* cublas() const { return cublas_; }
  void synchronize();
  // Device scratch of at least `bytes`, valid until the next call (grows, never shrinks).
  void* scratch(size_t bytes);

  // CUDA graph of the work enqueued between begin_capture and end_capture (decode steps).
  void begin_capture();
  void* end_capture();  // returns an executable graph; free with destroy_graph
  void launch_graph(void* exec);
  static void destroy_graph(void* exec);

 private:
  int device_ = 0;
  void* stream_ = nullptr;
  void* cublas_ = nullptr;
  void* cublas_ws_ = nullptr;
  void* scratch_ = nullptr;
  size_t scratch_bytes_ = 0;
};

// Device memory (plain cudaMalloc on the current device).
void* device_alloc(int device, size_t bytes);
void device_free(void* p);
// Page-locked host memory, for copies that overlap and can be captured in graphs.
void* host_alloc_pinned(size_t bytes);
void host_free_pinned(void* p);

struct DeviceDeleter {
  void operator()(void* p) const { device_free(p); }
};
using DevicePtr = std::unique_ptr<void, DeviceDeleter>;
inline DevicePtr make_device(int device, size_t bytes) {
  return DevicePtr(device_alloc(device, bytes));
}

// A stream of its own for copies between host and device (the KV cache's RAM and SSD tiers),
// beside the compute stream. Host memory should be pinned (host_alloc_pinned) for the copies
// to be asynchronous and run at full bus speed.
class CopyStream {
 public:
  explicit CopyStream(int device);
  ~CopyStream();
  CopyStream(const CopyStream&) = delete;
  CopyStream& operator=(const CopyStream&) = delete;
  void h2d(void* dst, const void* src, size_t bytes);  // enqueued, returns at once
  void d2h(void* dst, const void* src, size_t bytes);  // enqueued, returns at once
  void synchronize();                                  // waits for everything enqueued

 private:
  int device_ = 0;
  void* stream_ = nullptr;
};

void copy_h2d(void* dst, const void* src, size_t bytes, Context& ctx);  // async on ctx's stream
void copy_d2h(void* dst, const void* src, size_t bytes, Context& ctx);  // async on ctx's stream
void copy_d2d(void* dst, const void* src, size_t bytes, Context& ctx);
void memset_async(void* dst, int value, size_t bytes, Context& ctx);

// Measured ceilings (METHOD.md): device-to-device copy bandwidth in GB/s counting bytes read
// plus written, and the bf16 cuBLAS matrix rate in TFLOP/s (8192^3, random data, median).
double measure_copy_gbps(Context& ctx);
double measure_bf16_tflops(Context& ctx);

// Seconds between two points on ctx's stream (events), for benchmarks.
class Timer {
 public:
  explicit Timer(Context& ctx);
  ~Timer();
  void start();
  double stop();  // waits, returns seconds since start()

 private:
  Context& ctx_;
  void* a_ = nullptr;
  void* b_ = nullptr;
};

// Device time per stage of enqueued work (HWLEDGER_CUDA_PROFILE=1 in CudaRunner): events
// between stages, summed by stage name over steps.
class StageProfile {
 public:
  explicit StageProfile(Context& ctx);
  ~StageProfile();
  void start();                  // begins a step
  void mark(const char* stage);  // the work enqueued since the last mark belongs to `stage`
  void collect();                // after the step's synchronize: adds its times
  std::string report() const;    // one line per stage: total ms, share, calls

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// ---- raw kernels (device pointers; all enqueue on ctx's stream) -------------------------------

// y[M, N] (beta=1: +=) x[M, K] · w[N, K]ᵀ; x and w the same type (bf16, f16 or f32, f32 with
// TF32 off); y f32 or the x type. ldy: y's row stride in elements.
void gemm(const void* x, const void* w, DType ab, void* y, DType yt, int64_t M, int64_t N,
          int64_t K, int64_t ldy, bool accumulate, Context& ctx);
// Decode-size MLP input: out[M, F] (ab) = silu(x · w[:F]ᵀ) * (x · w[F:]ᵀ), w = gate|up [2F, K].
// Returns false (nothing enqueued) where it does not apply: M > 4, f32, unaligned.
bool gemv_swiglu(const void* x, const void* w_gate_up, DType ab, void* out, int64_t M, int64_t F,
                 int64_t K, Context& ctx);
// Decode-size products on an f32 activation (the activation is not rounded: free, the product
// is bound by w's bytes): y[M, N] (+)= a · wᵀ, w bf16/f16 [N, K], a = x f32 [M, K], or with
// norm_w (f32 [K]) x's rows RMS-normalised on the fly (a = x ∘ norm_w · rsqrt(mean(x²) + eps)):
// no norm launch. Returns false (nothing enqueued) where it does not apply: M > 4, w f32,
// K not a multiple of 8, unaligned.
bool gemv_f32(const float* x, const float* norm_w, float eps, const void* w, DType wt, float* y,
              int64_t M, int64_t N, int64_t K, int64_t ldy, bool accumulate, Context& ctx);
// As gemv_swiglu on an f32 activation (normalised as above when norm_w is given); out[M, F] in
// ot (f32 or wt).
bool gemv_swiglu_f32(const float* x, const float* norm_w, float eps, const void* w_gate_up,
                     DType wt, void* out, DType ot, int64_t M, int64_t F, int64_t K,
                     Context& ctx);
// hi = round(x), lo = round(x - hi) in t (bf16/f16) for n elements of x f32: hi · w + lo · w
// carries x to about t's precision squared (two products where one f32-exact input matters).
void split_hi_lo(const float* x, void* hi, void* lo, DType t, int64_t n, Context& ctx);
// y[M, N] (row stride ldy; accumulate: +=) a + b, a and b f32 [M, N] contiguous.
void sum_pair(const float* a, const float* b, int64_t M, int64_t N, float* y, int64_t ldy,
              bool accumulate, Context& ctx);
// y[M, N] += bias[N] (f32).
void add_bias(float* y, const float* bias, int64_t M, int64_t N, int64_t ldy, Context& ctx);
// out[M, D] (type ot) = x[M, D] f32 normalised and scaled by w[D] f32; with `rows` (device
// int32 [M]), out row i is x row rows[i] (gathers the rows that need logits).
void rms_norm(const float* x, const float* w, float eps, void* out, DType ot, int64_t M, int64_t D,
              Context& ctx, const int32_t* rows = nullptr);
// y[T, H] f32 = table[ids[t]] (table bf16/f16/f32; ids device int32).
void embedding(const void* table, DType tt, const int32_t* ids, float* y, int64_t T, int64_t H,
               int64_t V, Context& ctx);
// In place on x f32 [T, n_heads, hd] (row stride ldx elements), cos/sin f32 [T, hd/2].
void rope(float* x, int64_t T, int64_t n_heads, int64_t hd, int64_t ldx, const float* cos,
          const float* sin, Context& ctx);
// out[T, F] (type ot) = silu(gate) * up, gate/up f32 rows of stride ld_in elements.
void swiglu(const float* gate, const float* up, int64_t ld_in, void* out, DType ot, int64_t T,
            int64_t F, Context& ctx);
// The f16 down-projection input, guarded against f16 overflow: out[T, F] (ot) = v / scale[t]
// with v = silu(gate) * up and scale[t] = 2^k, the least k >= 0 such that every |v| / 2^k of
// row t is <= 2^14 (k = 0 for rows under 2^14). Power-of-two scales are exact, so the product of
// out's row t, times scale[t], is the product of v (add_scaled_rms_norm). scale: f32 [2T], the
// second half workspace (the rows' amax).
void swiglu_scaled(const float* gate, const float* up, int64_t ld_in, void* out, DType ot,
                   float* scale, int64_t T, int64_t F, Context& ctx);
// x[M, D] += scale[m] · y[m] (scale null: 1) + bias (f32 [D] or null), written back; then with
// w (f32 [D]) out[M, D] (ot) = rms_norm(x) as rms_norm computes it (w null: the add only).
void add_scaled_rms_norm(float* x, const float* y, const float* scale, const float* bias,
                         const float* w, float eps, void* out, DType ot, int64_t M, int64_t D,
                         Context& ctx);
// ids[rows] = argmax of each row of logits f32 [rows, V] (first on ties).
void argmax_rows(const float* logits, int64_t rows, int64_t V, int32_t* ids, Context& ctx);
// Converts n elements between f32/f16/bf16.
void convert(const void* src, DType st, void* dst, DType dt, int64_t n, Context& ctx);
// As convert, and waits: false where a finite value became infinite (out of dt's range).
bool convert_fits(const void* src, DType st, void* dst, DType dt, int64_t n, Context& ctx);

// Many sequences' tokens in one batch, as the attention and cache kernels see it. Arrays are
// device memory. Rows of the batch are grouped by sequence: sequence s owns rows
// [q_start[s], q_start[s+1]) at positions pos0[s] + (row - q_start[s]).
struct PagedBatch {
  // The cache geometry for one layer (set_geometry).
  int64_t block_tokens = 0, head_dim = 0, n_kv_heads = 0;
  DType kv_dtype = DType::F16;
  int64_t k_off = 0, v_off = 0, head_bytes = 0;  // bytes: layer's K/V slab in a block; one head
  int n_seqs = 0;
  int64_t n_rows = 0;                // q_start[n_seqs]
  int max_new = 0;                   // host: most rows of one sequence
  int max_ctx = 0;                   // host: most keys any row attends (pos0 + new, at most)
  const int32_t* q_start = nullptr;  // [n_seqs + 1]
  const int32_t* pos0 = nullptr;     // [n_seqs]
  const int32_t* row_seq = nullptr;  // [n_rows]: the sequence of each row
  uint8_t* const* blocks = nullptr;  // [n_seqs][table_width] block base addresses
  int table_width = 0;
};
// Fills b's geometry for `layer` of `layout` (throws for KV types CUDA does not support).
void set_geometry(PagedBatch& b, const KVLayout& layout, int64_t layer);

// Writes rows of k, v (f32, row strides ldk/ldv) into the cache at each row's position.
void kv_store(const float* k, int64_t ldk, const float* v, int64_t ldv, const PagedBatch& b,
              Context& ctx);

// The attention block's elementwise work after the qkv matmul, fused: qkv f32 [T, ld] holding
// q | k | v per row; adds the bias (f32 [Q+2KV] or null), applies the per-head RMSNorm (q_norm /
// k_norm f32 [hd] or null), RoPE (cos/sin f32 [T, hd/2]), writes q to q_out f32 [T, nh*hd] and
// stores k, v into the cache.
void qkv_finish(const float* qkv, int64_t ld, const float* bias, const float* q_norm,
                const float* k_norm, float eps, const float* cos, const float* sin, int64_t nh,
                float* q_out, const PagedBatch& b, Context& ctx);

// Causal attention of every row's query (f32 [T, nh, hd]) over its sequence's cache (keys
// stored first); out [T, nh*hd] of type ot. Picks the tensor-core flash kernel for 16-bit or
// fp8 KV, head_dim 32/64/128 and prefill rows, and the split-key kernel for decode rows and the
// rest.
// force: 0 auto, 1 split-key kernel, 2 flash kernel (tests).
void attention(const float* q, const PagedBatch& b, int64_t nh, float scale, int64_t window,
               void* out, DType ot, Context& ctx, int force = 0);

}  // namespace hwledger::cuda
