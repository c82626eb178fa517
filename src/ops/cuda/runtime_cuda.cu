// Device memory, the per-device context (stream + cuBLAS), graphs, probes and the GEMM.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
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

// Decode-size products (M <= 4 rows of x): one warp per output column n streams w's row n with
// 16-byte loads, four in flight per lane; x (a few KB) comes from L1. cuBLAS reaches well
// under the bandwidth roofline at M = 1.
template <typename T, int M>
__global__ __launch_bounds__(256) void gemv_kernel(const T* __restrict__ x, const T* __restrict__ w,
                                                   float* __restrict__ y, int64_t N, int64_t K,
                                                   int64_t ldy, bool accumulate) {
  const int lane = threadIdx.x % 32;
  const int64_t n = static_cast<int64_t>(blockIdx.x) * 8 + threadIdx.x / 32;
  if (n >= N) return;
  const uint4* wr = reinterpret_cast<const uint4*>(w + n * K);
  const int64_t chunks = K / 8;
  float acc[M];
#pragma unroll
  for (int m = 0; m < M; ++m) acc[m] = 0.0f;
  constexpr int U = 8;  // K = 4096: two rounds of loads per lane
  int64_t c = lane;
  for (; c + 32 * (U - 1) < chunks; c += 32 * U) {
    uint4 wv[U];
#pragma unroll
    for (int u = 0; u < U; ++u) wv[u] = __ldcs(wr + c + 32 * u);  // streamed once: no cache
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const T* wp = reinterpret_cast<const T*>(&wv[u]);
#pragma unroll
      for (int m = 0; m < M; ++m) {
        const uint4 xv = __ldg(reinterpret_cast<const uint4*>(x + m * K) + c + 32 * u);
        const T* xp = reinterpret_cast<const T*>(&xv);
#pragma unroll
        for (int e = 0; e < 8; ++e) acc[m] += to_f32(wp[e]) * to_f32(xp[e]);
      }
    }
  }
  for (; c < chunks; c += 32) {
    const uint4 wv = __ldcs(wr + c);
    const T* wp = reinterpret_cast<const T*>(&wv);
#pragma unroll
    for (int m = 0; m < M; ++m) {
      const uint4 xv = __ldg(reinterpret_cast<const uint4*>(x + m * K) + c);
      const T* xp = reinterpret_cast<const T*>(&xv);
#pragma unroll
      for (int e = 0; e < 8; ++e) acc[m] += to_f32(wp[e]) * to_f32(xp[e]);
    }
  }
#pragma unroll
  for (int m = 0; m < M; ++m) {
    float v = acc[m];
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    if (lane == 0) {
      float* out = y + m * ldy + n;
      *out = accumulate ? *out + v : v;
    }
  }
}

// The MLP's gate|up product fused with SwiGLU for decode sizes: warp n streams rows n (gate)
// and F + n (up) of w together and writes silu(gate) * up for column n in T, so neither the
// f32 gate/up rows nor a separate SwiGLU launch exist.
template <typename T, int M>
__global__ __launch_bounds__(256) void gemv_swiglu_kernel(const T* __restrict__ x,
                                                          const T* __restrict__ w,
                                                          T* __restrict__ out, int64_t F,
                                                          int64_t K) {
  const int lane = threadIdx.x % 32;
  const int64_t n = static_cast<int64_t>(blockIdx.x) * 8 + threadIdx.x / 32;
  if (n >= F) return;
  const uint4* wg = reinterpret_cast<const uint4*>(w + n * K);
  const uint4* wu = reinterpret_cast<const uint4*>(w + (F + n) * K);
  const int64_t chunks = K / 8;
  float ag[M], au[M];
#pragma unroll
  for (int m = 0; m < M; ++m) ag[m] = au[m] = 0.0f;
  constexpr int U = 4;
  int64_t c = lane;
  auto step = [&](const uint4& gv, const uint4& uv, int64_t cc) {
    const T* gp = reinterpret_cast<const T*>(&gv);
    const T* up = reinterpret_cast<const T*>(&uv);
#pragma unroll
    for (int m = 0; m < M; ++m) {
      const uint4 xv = __ldg(reinterpret_cast<const uint4*>(x + m * K) + cc);
      const T* xp = reinterpret_cast<const T*>(&xv);
#pragma unroll
      for (int e = 0; e < 8; ++e) {
        const float xe = to_f32(xp[e]);
        ag[m] += to_f32(gp[e]) * xe;
        au[m] += to_f32(up[e]) * xe;
      }
    }
  };
  for (; c + 32 * (U - 1) < chunks; c += 32 * U) {
    uint4 gv[U], uv[U];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      gv[u] = __ldcs(wg + c + 32 * u);
      uv[u] = __ldcs(wu + c + 32 * u);
    }
#pragma unroll
    for (int u = 0; u < U; ++u) step(gv[u], uv[u], c + 32 * u);
  }
  for (; c < chunks; c += 32) step(__ldcs(wg + c), __ldcs(wu + c), c);
#pragma unroll
  for (int m = 0; m < M; ++m) {
    float g = ag[m], u = au[m];
    for (int o = 16; o > 0; o >>= 1) {
      g += __shfl_xor_sync(0xffffffffu, g, o);
      u += __shfl_xor_sync(0xffffffffu, u, o);
    }
    if (lane == 0) out[m * F + n] = from_f32<T>(g / (1.0f + __expf(-g)) * u);
  }
}

template <typename T>
void launch_gemv(const void* x, const void* w, float* y, int64_t M, int64_t N, int64_t K,
                 int64_t ldy, bool acc, cudaStream_t s) {
  const dim3 grid(static_cast<unsigned>((N + 7) / 8));
  const T* xt = static_cast<const T*>(x);
  const T* wt = static_cast<const T*>(w);
  switch (M) {
    case 1:
      gemv_kernel<T, 1><<<grid, 256, 0, s>>>(xt, wt, y, N, K, ldy, acc);
      break;
    case 2:
      gemv_kernel<T, 2><<<grid, 256, 0, s>>>(xt, wt, y, N, K, ldy, acc);
      break;
    case 3:
      gemv_kernel<T, 3><<<grid, 256, 0, s>>>(xt, wt, y, N, K, ldy, acc);
      break;
    default:
      gemv_kernel<T, 4><<<grid, 256, 0, s>>>(xt, wt, y, N, K, ldy, acc);
      break;
  }
  CUDA_LAUNCH_CHECK();
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
  const bool aligned = K % 8 == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0 &&
                       reinterpret_cast<uintptr_t>(w) % 16 == 0;
  if (M <= 4 && yt == DType::F32 && aligned && gemv_enabled()) {
    if (ab == DType::BF16)
      return launch_gemv<__nv_bfloat16>(x, w, static_cast<float*>(y), M, N, K, ldy, accumulate,
                                        stream_of(ctx));
    if (ab == DType::F16)
      return launch_gemv<__half>(x, w, static_cast<float*>(y), M, N, K, ldy, accumulate,
                                 stream_of(ctx));
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
  const bool aligned = K % 8 == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0 &&
                       reinterpret_cast<uintptr_t>(w_gate_up) % 16 == 0;
  if (M < 1 || M > 4 || !aligned || !gemv_enabled() || (ab != DType::BF16 && ab != DType::F16))
    return false;
  const dim3 grid(static_cast<unsigned>((F + 7) / 8));
  auto go = [&]<typename T>() {
    const T* xt = static_cast<const T*>(x);
    const T* wt = static_cast<const T*>(w_gate_up);
    T* o = static_cast<T*>(out);
    switch (M) {
      case 1:
        gemv_swiglu_kernel<T, 1><<<grid, 256, 0, stream_of(ctx)>>>(xt, wt, o, F, K);
        break;
      case 2:
        gemv_swiglu_kernel<T, 2><<<grid, 256, 0, stream_of(ctx)>>>(xt, wt, o, F, K);
        break;
      case 3:
        gemv_swiglu_kernel<T, 3><<<grid, 256, 0, stream_of(ctx)>>>(xt, wt, o, F, K);
        break;
      default:
        gemv_swiglu_kernel<T, 4><<<grid, 256, 0, stream_of(ctx)>>>(xt, wt, o, F, K);
        break;
    }
  };
  if (ab == DType::BF16)
    go.template operator()<__nv_bfloat16>();
  else
    go.template operator()<__half>();
  CUDA_LAUNCH_CHECK();
  return true;
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
