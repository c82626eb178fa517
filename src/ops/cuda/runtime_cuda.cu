// Device memory, the per-device context (stream + cuBLAS), graphs, probes and the GEMM.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "ops/cuda/common.cuh"

namespace hwledger::cuda {

bool built_with_cuda() {
  return true;
}

namespace {
// HWLEDGER_CUDA_GEMV=0 sends small products to cuBLAS too (for comparisons).
bool gemv_enabled() {
  static const bool on = [] {
    const char* v = std::getenv("HWLEDGER_CUDA_GEMV");
    return !(v && std::string(v) == "0");
  }();
  return on;
}
// HWLEDGER_CUDA_PDL=0: the f32 decode GEMVs launch without programmatic dependent launch.
bool pdl_enabled() {
  static const bool on = [] {
    const char* v = std::getenv("HWLEDGER_CUDA_PDL");
    return !(v && std::string(v) == "0");
  }();
  return on;
}
}  // namespace

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // no driver or no device: not an error for callers that only ask
    return 0;
  }
  return n;
}

DeviceInfo device_info(int device) {
  cudaDeviceProp p{};
  CUDA_CHECK(cudaGetDeviceProperties(&p, device));
  DeviceInfo d;
  d.name = p.name;
  d.sm_count = p.multiProcessorCount;
  d.cc_major = p.major;
  d.cc_minor = p.minor;
  size_t free_b = 0, total_b = 0;
  CUDA_CHECK(cudaSetDevice(device));
  CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  d.total_bytes = total_b;
  d.free_bytes = free_b;
  return d;
}

Context::Context(int device) : device_(device) {
  const int n = device_count();
  if (device < 0 || device >= n)
    raise_input_error("CUDA device " + std::to_string(device) + " does not exist (" +
                      std::to_string(n) + " visible)");
  CUDA_CHECK(cudaSetDevice(device));
  cudaStream_t s;
  CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  stream_ = s;
  cublasHandle_t h;
  CUBLAS_CHECK(cublasCreate(&h));
  CUBLAS_CHECK(cublasSetStream(h, s));
  // A fixed workspace keeps cuBLAS from allocating inside graph capture.
  const size_t ws = 64ull << 20;
  CUDA_CHECK(cudaMalloc(&cublas_ws_, ws));
  CUBLAS_CHECK(cublasSetWorkspace(h, cublas_ws_, ws));
  CUBLAS_CHECK(cublasSetMathMode(h, CUBLAS_DEFAULT_MATH));
  cublas_ = h;
}

Context::~Context() {
  cudaSetDevice(device_);
  if (cublas_) cublasDestroy(static_cast<cublasHandle_t>(cublas_));
  if (stream_) cudaStreamDestroy(static_cast<cudaStream_t>(stream_));
  cudaFree(cublas_ws_);
  cudaFree(scratch_);
}

void Context::synchronize() {
  CUDA_CHECK(cudaStreamSynchronize(stream_of(*this)));
}

void* Context::scratch(size_t bytes) {
  if (bytes > scratch_bytes_) {
    CUDA_CHECK(cudaStreamSynchronize(stream_of(*this)));
    cudaFree(scratch_);
    scratch_ = nullptr;
    scratch_bytes_ = std::max(bytes, scratch_bytes_ * 2);
    CUDA_CHECK(cudaMalloc(&scratch_, scratch_bytes_));
  }
  return scratch_;
}

void Context::begin_capture() {
  CUDA_CHECK(cudaStreamBeginCapture(stream_of(*this), cudaStreamCaptureModeThreadLocal));
}

void* Context::end_capture() {
  cudaGraph_t g;
  CUDA_CHECK(cudaStreamEndCapture(stream_of(*this), &g));
  cudaGraphExec_t exec;
  CUDA_CHECK(cudaGraphInstantiate(&exec, g, 0));
  CUDA_CHECK(cudaGraphDestroy(g));
  return exec;
}

void Context::launch_graph(void* exec) {
  CUDA_CHECK(cudaGraphLaunch(static_cast<cudaGraphExec_t>(exec), stream_of(*this)));
}

void Context::destroy_graph(void* exec) {
  if (exec) cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(exec));
}

void* device_alloc(int device, size_t bytes) {
  CUDA_CHECK(cudaSetDevice(device));
  void* p = nullptr;
  cudaError_t e = cudaMalloc(&p, std::max<size_t>(bytes, 1));
  if (e != cudaSuccess) {
    cudaGetLastError();
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    raise_error("CUDA: cannot allocate " + std::to_string(bytes) + " bytes on device " +
                std::to_string(device) + " (" + std::to_string(free_b) + " of " +
                std::to_string(total_b) + " bytes free): " + cudaGetErrorString(e));
  }
  return p;
}

void device_free(void* p) {
  if (p) cudaFree(p);
}

void* host_alloc_pinned(size_t bytes) {
  void* p = nullptr;
  CUDA_CHECK(cudaMallocHost(&p, std::max<size_t>(bytes, 1)));
  return p;
}

void host_free_pinned(void* p) {
  if (p) cudaFreeHost(p);
}

void copy_h2d(void* dst, const void* src, size_t bytes, Context& ctx) {
  CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_of(ctx)));
}
void copy_d2h(void* dst, const void* src, size_t bytes, Context& ctx) {
  CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_of(ctx)));
}
void copy_d2d(void* dst, const void* src, size_t bytes, Context& ctx) {
  CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_of(ctx)));
}
void memset_async(void* dst, int value, size_t bytes, Context& ctx) {
  CUDA_CHECK(cudaMemsetAsync(dst, value, bytes, stream_of(ctx)));
}

Timer::Timer(Context& ctx) : ctx_(ctx) {
  cudaEvent_t a, b;
  CUDA_CHECK(cudaEventCreate(&a));
  CUDA_CHECK(cudaEventCreate(&b));
  a_ = a;
  b_ = b;
}
Timer::~Timer() {
  cudaEventDestroy(static_cast<cudaEvent_t>(a_));
  cudaEventDestroy(static_cast<cudaEvent_t>(b_));
}
void Timer::start() {
  CUDA_CHECK(cudaEventRecord(static_cast<cudaEvent_t>(a_), stream_of(ctx_)));
}
double Timer::stop() {
  CUDA_CHECK(cudaEventRecord(static_cast<cudaEvent_t>(b_), stream_of(ctx_)));
  CUDA_CHECK(cudaEventSynchronize(static_cast<cudaEvent_t>(b_)));
  float ms = 0;
  CUDA_CHECK(cudaEventElapsedTime(&ms, static_cast<cudaEvent_t>(a_), static_cast<cudaEvent_t>(b_)));
  return ms / 1e3;
}

struct StageProfile::Impl {
  Context* ctx;
  std::vector<cudaEvent_t> pool;
  std::vector<std::pair<const char*, cudaEvent_t>> step;
  std::vector<std::pair<std::string, std::pair<double, long>>> totals;  // in first-seen order
  cudaEvent_t event() {
    if (step.size() < pool.size()) return pool[step.size()];
    cudaEvent_t e;
    CUDA_CHECK(cudaEventCreate(&e));
    pool.push_back(e);
    return e;
  }
};

StageProfile::StageProfile(Context& ctx) : impl_(std::make_unique<Impl>()) {
  impl_->ctx = &ctx;
}
StageProfile::~StageProfile() {
  for (cudaEvent_t e : impl_->pool) cudaEventDestroy(e);
}
void StageProfile::start() {
  impl_->step.clear();
  mark("");
}
void StageProfile::mark(const char* stage) {
  cudaEvent_t e = impl_->event();
  CUDA_CHECK(cudaEventRecord(e, stream_of(*impl_->ctx)));
  impl_->step.emplace_back(stage, e);
}
void StageProfile::collect() {
  auto& st = impl_->step;
  for (size_t i = 1; i < st.size(); ++i) {
    float ms = 0;
    CUDA_CHECK(cudaEventElapsedTime(&ms, st[i - 1].second, st[i].second));
    auto it = std::find_if(impl_->totals.begin(), impl_->totals.end(),
                           [&](const auto& t) { return t.first == st[i].first; });
    if (it == impl_->totals.end()) {
      impl_->totals.push_back({st[i].first, {0.0, 0}});
      it = impl_->totals.end() - 1;
    }
    it->second.first += ms;
    it->second.second += 1;
  }
  st.clear();
}
std::string StageProfile::report() const {
  double total = 0;
  for (const auto& t : impl_->totals) total += t.second.first;
  std::string r;
  char line[160];
  for (const auto& t : impl_->totals) {
    std::snprintf(line, sizeof line, "  %-14s %10.3f ms %5.1f%% %8ld calls %8.2f us/call\n",
                  t.first.c_str(), t.second.first, 100 * t.second.first / std::max(total, 1e-9),
                  t.second.second, 1e3 * t.second.first / std::max<long>(t.second.second, 1));
    r += line;
  }
  std::snprintf(line, sizeof line, "  %-14s %10.3f ms\n", "total", total);
  return r + line;
}

namespace {

cudaDataType_t cuda_type(DType t) {
  switch (t) {
    case DType::F32:
      return CUDA_R_32F;
    case DType::F16:
      return CUDA_R_16F;
    case DType::BF16:
      return CUDA_R_16BF;
    default:
      raise_error("CUDA gemm: dtype " + std::string(dtype_name(t)) + " is not supported");
  }
}

__global__ void fill_random_bf16(__nv_bfloat16* p, int64_t n, uint32_t seed) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    uint32_t h = static_cast<uint32_t>(i) * 2654435761u ^ seed;
    h ^= h >> 15;
    h *= 2246822519u;
    h ^= h >> 13;
    p[i] = __float2bfloat16((h & 0xffff) / 65536.0f - 0.5f);
  }
}

// Programmatic dependent launch (sm_90): a kernel launched with the attribute may start while
// the previous one finishes (once every block of that one has called pdl_launch_dependents or
// exited); before reading anything the previous kernels wrote it calls pdl_wait, which returns
// once they are complete and their writes visible. Launched without the attribute, both are
// no-ops. The decode GEMVs let the next kernel in and stream their first weights (constant)
// before waiting: the next product's ramp overlaps this one's tail.
__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
__device__ __forceinline__ void pdl_launch_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

template <typename... P, typename... A>
void launch_pdl(void (*kernel)(P...), dim3 grid, dim3 block, cudaStream_t s, A&&... args) {
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.stream = s;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = pdl_enabled() ? 1 : 0;
  cfg.attrs = attr;
  cfg.numAttrs = 1;
  CUDA_CHECK(cudaLaunchKernelEx(&cfg, kernel, std::forward<A>(args)...));
}

// Eight consecutive elements of x (16-byte aligned) as f32: one 16-byte load of a 16-bit type,
// two of f32. Through the read-only path: x is a few KB that every warp of the grid reads.
template <typename XT>
__device__ __forceinline__ void load8(const XT* p, float (&v)[8]) {
  if constexpr (std::is_same_v<XT, float>) {
    const float4 a = __ldg(reinterpret_cast<const float4*>(p));
    const float4 b = __ldg(reinterpret_cast<const float4*>(p) + 1);
    v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
  } else {
    const uint4 a = __ldg(reinterpret_cast<const uint4*>(p));
    const XT* e = reinterpret_cast<const XT*>(&a);
#pragma unroll
    for (int i = 0; i < 8; ++i) v[i] = to_f32(e[i]);
  }
}

// One chunk (8 elements of K) of the decode GEMVs for M rows of x and P rows of w (one uint4
// each): loads x's chunk once (times the norm weight g when NORM, adding x² to ss) and
// accumulates each w row's 8 elements into acc[p].
template <typename XT, typename T, int M, int P, bool NORM>
__device__ __forceinline__ void gemv_chunk(const XT* __restrict__ x, const float* __restrict__ g,
                                           int64_t K, int64_t cc, const uint4 (&wv)[P],
                                           float (&acc)[P][M], float (&ss)[M]) {
  float ge[8];
  if constexpr (NORM) load8(g + cc * 8, ge);
#pragma unroll
  for (int m = 0; m < M; ++m) {
    float xe[8];
    load8(x + m * K + cc * 8, xe);
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      if constexpr (NORM) {
        ss[m] += xe[e] * xe[e];
        xe[e] *= ge[e];
      }
#pragma unroll
      for (int p = 0; p < P; ++p) acc[p][m] += to_f32(reinterpret_cast<const T*>(&wv[p])[e]) * xe[e];
    }
  }
}

// Decode-size products (M <= 4 rows of x): one warp per output column n streams w's row n with
// 16-byte loads, eight in flight per lane; x (a few KB) comes from L1. cuBLAS reaches well
// under the bandwidth roofline at M = 1. x is w's type or f32 (no rounding of the activation:
// free, the product is bound by w's bytes). NORM: x is the f32 residual stream and each row is
// RMS-normalised on the fly, y = rsqrt(mean(x²) + eps) · ((x ∘ g) · w), the sum of squares
// taken by the same warp over the same chunks: no norm launch, no rounded copy of x.
template <typename XT, typename T, int M, bool NORM>
__global__ __launch_bounds__(256) void gemv_kernel(const XT* __restrict__ x,
                                                   const float* __restrict__ g, float eps,
                                                   const T* __restrict__ w, float* __restrict__ y,
                                                   int64_t N, int64_t K, int64_t ldy,
                                                   bool accumulate) {
  pdl_launch_dependents();
  const int lane = threadIdx.x % 32;
  const int64_t n = static_cast<int64_t>(blockIdx.x) * 8 + threadIdx.x / 32;
  if (n >= N) return;
  const uint4* wr = reinterpret_cast<const uint4*>(w + n * K);
  const int64_t chunks = K / 8;
  float acc[1][M], ss[M];
#pragma unroll
  for (int m = 0; m < M; ++m) acc[0][m] = ss[m] = 0.0f;
  constexpr int U = 8;  // K = 4096: two rounds of loads per lane
  auto step = [&](const uint4& w0, int64_t cc) {
    const uint4 wv[1] = {w0};
    gemv_chunk<XT, T, M, 1, NORM>(x, g, K, cc, wv, acc, ss);
  };
  int64_t c = lane;
  bool waited = false;
  for (; c + 32 * (U - 1) < chunks; c += 32 * U) {
    uint4 wv[U];
#pragma unroll
    for (int u = 0; u < U; ++u) wv[u] = __ldcs(wr + c + 32 * u);  // streamed once: no cache
    if (!waited) pdl_wait(), waited = true;  // x (and y) come from the previous kernels
#pragma unroll
    for (int u = 0; u < U; ++u) step(wv[u], c + 32 * u);
  }
  if (!waited) pdl_wait();
  for (; c < chunks; c += 32) step(__ldcs(wr + c), c);
#pragma unroll
  for (int m = 0; m < M; ++m) {
    float v = warp_sum(acc[0][m]);
    if constexpr (NORM) v *= rsqrtf(warp_sum(ss[m]) / static_cast<float>(K) + eps);
    if (lane == 0) {
      float* out = y + m * ldy + n;
      *out = accumulate ? *out + v : v;
    }
  }
}

// The MLP's gate|up product fused with SwiGLU for decode sizes: warp n streams rows n (gate)
// and F + n (up) of w together and writes silu(gate) * up for column n in OT, so neither the
// f32 gate/up rows nor a separate SwiGLU launch exist. x and NORM as in gemv_kernel.
template <typename XT, typename T, typename OT, int M, bool NORM>
__global__ __launch_bounds__(256) void gemv_swiglu_kernel(const XT* __restrict__ x,
                                                          const float* __restrict__ g, float eps,
                                                          const T* __restrict__ w,
                                                          OT* __restrict__ out, int64_t F,
                                                          int64_t K) {
  pdl_launch_dependents();
  const int lane = threadIdx.x % 32;
  const int64_t n = static_cast<int64_t>(blockIdx.x) * 8 + threadIdx.x / 32;
  if (n >= F) return;
  const uint4* wg = reinterpret_cast<const uint4*>(w + n * K);
  const uint4* wu = reinterpret_cast<const uint4*>(w + (F + n) * K);
  const int64_t chunks = K / 8;
  float acc[2][M], ss[M];  // acc[0] gate, acc[1] up
#pragma unroll
  for (int m = 0; m < M; ++m) acc[0][m] = acc[1][m] = ss[m] = 0.0f;
  constexpr int U = 4;
  int64_t c = lane;
  auto step = [&](const uint4& gv, const uint4& uv, int64_t cc) {
    const uint4 wv[2] = {gv, uv};
    gemv_chunk<XT, T, M, 2, NORM>(x, g, K, cc, wv, acc, ss);
  };
  bool waited = false;
  for (; c + 32 * (U - 1) < chunks; c += 32 * U) {
    uint4 gv[U], uv[U];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      gv[u] = __ldcs(wg + c + 32 * u);
      uv[u] = __ldcs(wu + c + 32 * u);
    }
    if (!waited) pdl_wait(), waited = true;
#pragma unroll
    for (int u = 0; u < U; ++u) step(gv[u], uv[u], c + 32 * u);
  }
  if (!waited) pdl_wait();
  for (; c < chunks; c += 32) step(__ldcs(wg + c), __ldcs(wu + c), c);
#pragma unroll
  for (int m = 0; m < M; ++m) {
    float gs = warp_sum(acc[0][m]), us = warp_sum(acc[1][m]);
    if constexpr (NORM) {
      const float r = rsqrtf(warp_sum(ss[m]) / static_cast<float>(K) + eps);
      gs *= r;
      us *= r;
    }
    if (lane == 0) out[m * F + n] = from_f32<OT>(gs / (1.0f + __expf(-gs)) * us);
  }
}

// Calls f.template operator()<M>() for M = 1..4.
template <typename F>
void with_rows(int64_t M, F&& f) {
  switch (M) {
    case 1:
      return f.template operator()<1>();
    case 2:
      return f.template operator()<2>();
    case 3:
      return f.template operator()<3>();
    default:
      return f.template operator()<4>();
  }
}

// Calls f.template operator()<T>() for the 16-bit weight types; false for the others.
template <typename F>
bool with_half_type(DType t, F&& f) {
  if (t == DType::BF16) return f.template operator()<__nv_bfloat16>(), true;
  if (t == DType::F16) return f.template operator()<__half>(), true;
  return false;
}

bool gemv_applies(int64_t M, int64_t K, const void* x, const void* w) {
  return M >= 1 && M <= 4 && K % 8 == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0 &&
         reinterpret_cast<uintptr_t>(w) % 16 == 0 && gemv_enabled();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

void gemm(const void* x, const void* w, DType ab, void* y, DType yt, int64_t M, int64_t N,
          int64_t K, int64_t ldy, bool accumulate, Context& ctx) {
  if (M == 0 || N == 0) return;
  // Small M: our GEMV (x and w 16-byte aligned rows: K a multiple of 8).
  if (yt == DType::F32 && gemv_applies(M, K, x, w) &&
      with_half_type(ab, [&]<typename T>() {
        with_rows(M, [&]<int R>() {
          gemv_kernel<T, T, R, false><<<static_cast<unsigned>((N + 7) / 8), 256, 0,
                                        stream_of(ctx)>>>(static_cast<const T*>(x), nullptr, 0.0f,
                                                          static_cast<const T*>(w),
                                                          static_cast<float*>(y), N, K, ldy,
                                                          accumulate);
        });
      })) {
    CUDA_LAUNCH_CHECK();
    return;
  }
  const float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
  // Row-major y[M,N] = x[M,K] w[N,K]^T is column-major y^T[N,M] = w^T... : cuBLAS sees w as a
  // K x N column-major matrix (op T) and x as K x M (op N).
  const cublasComputeType_t compute =
      ab == DType::F32 ? CUBLAS_COMPUTE_32F_PEDANTIC : CUBLAS_COMPUTE_32F;
  CUBLAS_CHECK(cublasGemmEx(static_cast<cublasHandle_t>(ctx.cublas()), CUBLAS_OP_T, CUBLAS_OP_N,
                            static_cast<int>(N), static_cast<int>(M), static_cast<int>(K), &alpha,
                            w, cuda_type(ab), static_cast<int>(K), x, cuda_type(ab),
                            static_cast<int>(K), &beta, y, cuda_type(yt), static_cast<int>(ldy),
                            compute, CUBLAS_GEMM_DEFAULT));
}

bool gemv_swiglu(const void* x, const void* w_gate_up, DType ab, void* out, int64_t M, int64_t F,
                 int64_t K, Context& ctx) {
  if (!gemv_applies(M, K, x, w_gate_up)) return false;
  const bool ok = with_half_type(ab, [&]<typename T>() {
    with_rows(M, [&]<int R>() {
      gemv_swiglu_kernel<T, T, T, R, false>
          <<<static_cast<unsigned>((F + 7) / 8), 256, 0, stream_of(ctx)>>>(
              static_cast<const T*>(x), nullptr, 0.0f, static_cast<const T*>(w_gate_up),
              static_cast<T*>(out), F, K);
    });
  });
  if (ok) CUDA_LAUNCH_CHECK();
  return ok;
}

bool gemv_f32(const float* x, const float* norm_w, float eps, const void* w, DType wt, float* y,
              int64_t M, int64_t N, int64_t K, int64_t ldy, bool accumulate, Context& ctx) {
  if (!gemv_applies(M, K, x, w) || (norm_w && reinterpret_cast<uintptr_t>(norm_w) % 16)) return false;
  const bool ok = with_half_type(wt, [&]<typename T>() {
    with_rows(M, [&]<int R>() {
      const dim3 grid(static_cast<unsigned>((N + 7) / 8));
      const T* wt_ = static_cast<const T*>(w);
      if (norm_w)
        launch_pdl(gemv_kernel<float, T, R, true>, grid, 256, stream_of(ctx), x, norm_w, eps, wt_,
                   y, N, K, ldy, accumulate);
      else
        launch_pdl(gemv_kernel<float, T, R, false>, grid, 256, stream_of(ctx), x,
                   static_cast<const float*>(nullptr), 0.0f,
                   wt_, y, N, K, ldy, accumulate);
    });
  });
  if (ok) CUDA_LAUNCH_CHECK();
  return ok;
}

bool gemv_swiglu_f32(const float* x, const float* norm_w, float eps, const void* w_gate_up,
                     DType wt, void* out, DType ot, int64_t M, int64_t F, int64_t K,
                     Context& ctx) {
  if (!gemv_applies(M, K, x, w_gate_up) || (norm_w && reinterpret_cast<uintptr_t>(norm_w) % 16) ||
      (ot != DType::F32 && ot != wt))
    return false;
  const bool ok = with_half_type(wt, [&]<typename T>() {
    with_rows(M, [&]<int R>() {
      const dim3 grid(static_cast<unsigned>((F + 7) / 8));
      const T* w_ = static_cast<const T*>(w_gate_up);
      auto go = [&]<typename OT>() {
        if (norm_w)
          launch_pdl(gemv_swiglu_kernel<float, T, OT, R, true>, grid, 256, stream_of(ctx), x,
                     norm_w, eps, w_, static_cast<OT*>(out), F, K);
        else
          launch_pdl(gemv_swiglu_kernel<float, T, OT, R, false>, grid, 256, stream_of(ctx), x,
                     static_cast<const float*>(nullptr), 0.0f, w_, static_cast<OT*>(out), F, K);
      };
      if (ot == DType::F32)
        go.template operator()<float>();
      else
        go.template operator()<T>();
    });
  });
  if (ok) CUDA_LAUNCH_CHECK();
  return ok;
}

double measure_copy_gbps(Context& ctx) {
  const size_t bytes = 1ull << 30;
  DevicePtr a = make_device(ctx.device(), bytes), b = make_device(ctx.device(), bytes);
  memset_async(a.get(), 1, bytes, ctx);
  Timer t(ctx);
  std::vector<double> runs;
  for (int i = 0; i < 12; ++i) {
    t.start();
    copy_d2d(b.get(), a.get(), bytes, ctx);
    double s = t.stop();
    if (i >= 2) runs.push_back(2.0 * bytes / s / 1e9);  // read + write
  }
  return median(runs);
}

double measure_bf16_tflops(Context& ctx) {
  const int64_t n = 8192;
  const size_t elems = static_cast<size_t>(n * n);
  DevicePtr a = make_device(ctx.device(), elems * 2), b = make_device(ctx.device(), elems * 2),
            c = make_device(ctx.device(), elems * 2);
  fill_random_bf16<<<1024, 256, 0, stream_of(ctx)>>>(static_cast<__nv_bfloat16*>(a.get()), elems,
                                                     1);
  fill_random_bf16<<<1024, 256, 0, stream_of(ctx)>>>(static_cast<__nv_bfloat16*>(b.get()), elems,
                                                     2);
  CUDA_LAUNCH_CHECK();
  Timer t(ctx);
  std::vector<double> runs;
  for (int i = 0; i < 12; ++i) {
    t.start();
    gemm(a.get(), b.get(), DType::BF16, c.get(), DType::BF16, n, n, n, n, false, ctx);
    double s = t.stop();
    if (i >= 2) runs.push_back(2.0 * n * n * n / s / 1e12);
  }
  return median(runs);
}

}  // namespace hwledger::cuda
