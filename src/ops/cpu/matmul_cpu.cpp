// The matmul driver: checks the arguments, picks the kernels for the CPU (simd.h), splits the
// output between threads and gives each thread its scratch memory. The arithmetic lives in
// matmul_<isa>.cpp (see matmul_impl.h).
#include "ops/cpu/matmul_cpu.h"

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <new>

#include "ops/cpu/matmul_bf16.h"
#include "ops/cpu/matmul_kernels.h"
#include "ops/cpu/simd.h"
#include "util/error.h"

namespace hwledger::cpu {

namespace {

inline float load_weight(const void* w, DType t, size_t i) {
  switch (t) {
    case DType::F32:
      return static_cast<const float*>(w)[i];
    case DType::F16:
      return f16_to_f32(static_cast<const uint16_t*>(w)[i]);
    case DType::BF16:
      return bf16_to_f32(static_cast<const uint16_t*>(w)[i]);
    default:
      return 0.f;
  }
}

void check_arguments(const float* x, size_t ldx, const void* w, DType wtype, float* y, size_t ldy,
                     int64_t M, int64_t N, int64_t K) {
  HW_CHECK(M >= 0 && N >= 0 && K >= 0, "matmul: negative size M={} N={} K={}", M, N, K);
  HW_CHECK(wtype == DType::F32 || wtype == DType::F16 || wtype == DType::BF16,
           "matmul: weight type {} is not supported (f32, f16 or bf16)", dtype_name(wtype));
  if (M == 0 || N == 0) return;
  HW_CHECK(y != nullptr, "matmul: y is null (M={} N={})", M, N);
  HW_CHECK(M == 1 || ldy >= static_cast<size_t>(N), "matmul: ldy={} < N={}", ldy, N);
  if (K == 0) return;
  HW_CHECK(x != nullptr && w != nullptr, "matmul: x or w is null (M={} N={} K={})", M, N, K);
  HW_CHECK(M == 1 || ldx >= static_cast<size_t>(K), "matmul: ldx={} < K={}", ldx, K);
}

const detail::MatmulKernels& kernels_for(SimdLevel level) {
  switch (level) {
    case SimdLevel::AVX512:
      return detail::kMatmulAvx512;
    case SimdLevel::AVX2:
      return detail::kMatmulAvx2;
    case SimdLevel::Generic:
      break;
  }
  return detail::kMatmulGeneric;
}

// 64-byte aligned scratch private to the calling thread, kept for the thread's lifetime (the
// pool's workers live as long as the pool) so that prefill does not allocate per call.
float* thread_scratch(size_t floats) {
  struct Free {
    void operator()(float* p) const { std::free(p); }
  };
  thread_local std::unique_ptr<float, Free> buffer;
  thread_local size_t capacity = 0;
  if (capacity < floats) {
    const size_t bytes = (floats * sizeof(float) + 63) / 64 * 64;
    float* p = static_cast<float*>(std::aligned_alloc(64, bytes));
    if (p == nullptr) throw std::bad_alloc();
    buffer.reset(p);
    capacity = floats;
  }
  return buffer.get();
}

// Below this many multiply-adds per thread, waking another thread costs more than it saves.
constexpr int64_t kMinMacsPerThread = int64_t{1} << 17;

// Splits [0, units) into `parts` near-equal contiguous ranges; returns range `index`.
std::pair<int64_t, int64_t> split_range(int64_t units, int parts, int index) {
  const int64_t per = units / parts, extra = units % parts;
  const int64_t begin = index * per + std::min<int64_t>(index, extra);
  return {begin, begin + per + (index < extra ? 1 : 0)};
}

void run_gemv(const detail::MatmulKernels& kern, const detail::MatmulProblem& p, ThreadPool& pool) {
  // Rows of w per chunk: at least 32 KiB of weights, so a thread has enough to stream.
  const int64_t row_bytes = p.K * static_cast<int64_t>(dtype_size(p.wtype));
  int64_t grain = std::max<int64_t>(16, (int64_t{32} << 10) / std::max<int64_t>(row_bytes, 1));
  grain = (grain + 15) / 16 * 16;
  pool.parallel_for(static_cast<size_t>(p.N), static_cast<size_t>(grain),
                    [&](size_t n0, size_t n1) {
                      kern.gemv(p, static_cast<int64_t>(n0), static_cast<int64_t>(n1));
                    });
}

void run_gemm(const detail::MatmulKernels& kern, const detail::MatmulProblem& p, ThreadPool& pool) {
  const int64_t panels = (p.N + kern.panel_n - 1) / kern.panel_n;
  const int64_t tiles = (p.M + kern.tile_m - 1) / kern.tile_m;
  const int64_t macs = p.M * p.N * p.K;
  const int threads = static_cast<int>(
      std::clamp<int64_t>(macs / kMinMacsPerThread, 1, static_cast<int64_t>(pool.size())));

  // threads = split_n * split_m. Minimise the largest share; on a tie prefer splitting N, since
  // threads that split M both convert the same weights.
  int split_n = 1, split_m = threads;
  int64_t best = -1;
  for (int sn = threads; sn >= 1; --sn) {
    if (threads % sn != 0) continue;
    const int sm = threads / sn;
    const int64_t share = ((panels + sn - 1) / sn) * ((tiles + sm - 1) / sm);
    if (best < 0 || share < best) {
      best = share;
      split_n = sn;
      split_m = sm;
    }
  }

  auto work = [&](int t) {
    if (t >= threads) return;
    auto [pb, pe] = split_range(panels, split_n, t % split_n);
    auto [tb, te] = split_range(tiles, split_m, t / split_n);
    const int64_t n0 = pb * kern.panel_n, n1 = std::min(pe * kern.panel_n, p.N);
    const int64_t m0 = tb * kern.tile_m, m1 = std::min(te * kern.tile_m, p.M);
    if (n0 >= n1 || m0 >= m1) return;
    kern.gemm(p, m0, m1, n0, n1, thread_scratch(kern.gemm_scratch_floats));
  };
  if (threads == 1) {
    work(0);
  } else {
    pool.run(work);
  }
}

}  // namespace

void matmul_reference(const float* x, size_t ldx, const void* w, DType wtype, const float* bias,
                      float* y, size_t ldy, int64_t M, int64_t N, int64_t K, bool accumulate) {
  check_arguments(x, ldx, w, wtype, y, ldy, M, N, K);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      float acc = 0.f;
      for (int64_t k = 0; k < K; ++k) acc += x[m * ldx + k] * load_weight(w, wtype, n * K + k);
      if (bias) acc += bias[n];
      y[m * ldy + n] = accumulate ? y[m * ldy + n] + acc : acc;
    }
}

void matmul(const float* x, size_t ldx, const void* w, DType wtype, const float* bias, float* y,
            size_t ldy, int64_t M, int64_t N, int64_t K, bool accumulate, ThreadPool& pool) {
  check_arguments(x, ldx, w, wtype, y, ldy, M, N, K);
  if (M == 0 || N == 0) return;
  if (K == 0) {  // an empty sum: y (+)= bias
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) {
        const float b = bias ? bias[n] : 0.f;
        y[m * ldy + n] = accumulate ? y[m * ldy + n] + b : b;
      }
    return;
  }
  const detail::MatmulKernels& kern = kernels_for(simd_level());
  const detail::MatmulProblem p{x, ldx, w, wtype, bias, y, ldy, M, N, K, accumulate};
  if (M <= kern.gemv_max_m) {
    run_gemv(kern, p, pool);
  } else {
    run_gemm(kern, p, pool);
  }
}

bool matmul_bf16_activations_available() {
  return simd_level() == SimdLevel::AVX512 && cpu_features().avx512_bf16;
}

void matmul_bf16_activations(const float* x, size_t ldx, const void* w, DType wtype,
                             const float* bias, float* y, size_t ldy, int64_t M, int64_t N,
                             int64_t K, bool accumulate, ThreadPool& pool) {
  // Up to 8 rows the fp32 decode path streams w faster than packing it for vdpbf16ps.
  constexpr int64_t kMaxDecodeRows = 8;
  if (wtype != DType::BF16 || K == 0 || M <= kMaxDecodeRows ||
      !matmul_bf16_activations_available()) {
    return matmul(x, ldx, w, wtype, bias, y, ldy, M, N, K, accumulate, pool);
  }
  check_arguments(x, ldx, w, wtype, y, ldy, M, N, K);
  if (N == 0) return;
  const detail::MatmulProblem p{x, ldx, w, wtype, bias, y, ldy, M, N, K, accumulate};
  run_gemm(detail::kMatmulBf16Avx512, p, pool);
}

}  // namespace hwledger::cpu
