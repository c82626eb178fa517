// The CUDA kernels against the CPU backend on fresh random inputs of several shapes (tolerances
// from the device method: f32 math far under 1e-3, bf16 operands 1e-3..1e-2 relative L2).
// Skipped where no CUDA device is visible (CI builds the code but has no GPU).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kv/block_pool.h"
#include "ops/cuda/cuda.h"
#include "ops/ops.h"
#include "util/error.h"
#include "util/thread_pool.h"

namespace hwledger {
namespace {

class CudaOps : public ::testing::Test {
 protected:
  void SetUp() override {
    if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA device";
    cx = std::make_unique<cuda::Context>(0);
    gpu.device = Device::CUDA;
    gpu.cuda = cx.get();
    cpu.device = Device::CPU;
    cpu.pool = &pool;
  }

  // Device copy of host data; freed with the fixture.
  void* up(const void* data, size_t bytes) {
    mem.push_back(cuda::make_device(0, bytes));
    cuda::copy_h2d(mem.back().get(), data, bytes, *cx);
    cx->synchronize();
    return mem.back().get();
  }
  template <typename T>
  T* up(const std::vector<T>& v) {
    return static_cast<T*>(up(v.data(), v.size() * sizeof(T)));
  }
  // Device buffer filled with NaN bytes (0xff), so that an unwritten output fails.
  void* poisoned(size_t bytes) {
    mem.push_back(cuda::make_device(0, bytes));
    cuda::memset_async(mem.back().get(), 0xff, bytes, *cx);
    return mem.back().get();
  }
  template <typename T>
  std::vector<T> down(const void* p, size_t n) {
    std::vector<T> v(n);
    cx->synchronize();
    cuda::copy_d2h(v.data(), p, n * sizeof(T), *cx);
    cx->synchronize();
    return v;
  }

  // The raw kernels' batch (device arrays) for sequences given in row order as (cache, position
  // of the first new row, new rows), their block tables padded to the longest.
  struct SeqRows {
    const KVSequence* kv;
    int64_t pos0, rows;
  };
  cuda::PagedBatch batch(const KVLayout& L, int64_t layer, const std::vector<SeqRows>& seqs) {
    std::vector<int32_t> q_start = {0}, pos0, row_seq;
    int64_t width = 1, max_new = 0, max_ctx = 0;
    for (size_t s = 0; s < seqs.size(); ++s) {
      pos0.push_back(static_cast<int32_t>(seqs[s].pos0));
      row_seq.insert(row_seq.end(), seqs[s].rows, static_cast<int32_t>(s));
      q_start.push_back(static_cast<int32_t>(row_seq.size()));
      width = std::max<int64_t>(width, static_cast<int64_t>(seqs[s].kv->block_ptrs.size()));
      max_new = std::max(max_new, seqs[s].rows);
      max_ctx = std::max(max_ctx, seqs[s].pos0 + seqs[s].rows);
    }
    std::vector<uint8_t*> table(seqs.size() * width, nullptr);
    for (size_t s = 0; s < seqs.size(); ++s)
      std::copy(seqs[s].kv->block_ptrs.begin(), seqs[s].kv->block_ptrs.end(),
                table.begin() + s * width);
    cuda::PagedBatch b;
    cuda::set_geometry(b, L, layer);
    b.n_seqs = static_cast<int>(seqs.size());
    b.n_rows = static_cast<int64_t>(row_seq.size());
    b.max_new = static_cast<int>(max_new);
    b.max_ctx = static_cast<int>(max_ctx);
    b.q_start = up(q_start);
    b.pos0 = up(pos0);
    b.row_seq = up(row_seq);
    b.blocks = up(table);
    b.table_width = static_cast<int>(width);
    return b;
  }

  std::vector<float> randn(size_t n, float scale = 1.0f) {
    std::normal_distribution<float> d(0.0f, scale);
    std::vector<float> v(n);
    for (auto& x : v) x = d(rng);
    return v;
  }

  ThreadPool pool{2};
  std::unique_ptr<cuda::Context> cx;
  ops::Context gpu, cpu;
  std::vector<cuda::DevicePtr> mem;
  std::mt19937 rng{std::random_device{}()};
};

double rel_l2(const std::vector<float>& a, const std::vector<float>& b) {
  double d = 0, n = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i])) return INFINITY;
    d += (static_cast<double>(a[i]) - b[i]) * (static_cast<double>(a[i]) - b[i]);
    n += static_cast<double>(b[i]) * b[i];
  }
  return std::sqrt(d / std::max(n, 1e-30));
}

std::vector<uint16_t> to_bf16(const std::vector<float>& v) {
  std::vector<uint16_t> o(v.size());
  for (size_t i = 0; i < v.size(); ++i) o[i] = f32_to_bf16(v[i]);
  return o;
}
std::vector<float> from_bf16(const std::vector<uint16_t>& v) {
  std::vector<float> o(v.size());
  for (size_t i = 0; i < v.size(); ++i) o[i] = bf16_to_f32(v[i]);
  return o;
}

TEST_F(CudaOps, MatmulBf16MatchesCpu) {
  struct S {
    int64_t M, N, K;
  };
  for (S s : {S{1, 64, 128}, S{3, 200, 4096}, S{4, 37, 264}, S{7, 96, 80}, S{33, 256, 512},
              S{300, 160, 96}}) {
    auto xb = to_bf16(randn(s.M * s.K)), wb = to_bf16(randn(s.N * s.K, 0.05f));
    auto bias = randn(s.N);
    auto y0 = randn(s.M * s.N);
    // CPU on the same bf16-rounded activations, accumulating into y0, with bias.
    auto xf = from_bf16(xb);
    std::vector<float> ref = y0;
    Tensor xc(xf.data(), DType::F32, {s.M, s.K}), wc(wb.data(), DType::BF16, {s.N, s.K}),
        bc(bias.data(), DType::F32, {s.N}), yc(ref.data(), DType::F32, {s.M, s.N});
    ops::matmul(xc, wc, &bc, yc, true, cpu);

    Tensor xg(up(xb), DType::BF16, {s.M, s.K}, Device::CUDA),
        wg(up(wb), DType::BF16, {s.N, s.K}, Device::CUDA),
        bg(up(bias), DType::F32, {s.N}, Device::CUDA),
        yg(up(y0), DType::F32, {s.M, s.N}, Device::CUDA);
    ops::matmul(xg, wg, &bg, yg, true, gpu);
    EXPECT_LT(rel_l2(down<float>(yg.data, s.M * s.N), ref), 1e-5)
        << s.M << "x" << s.N << "x" << s.K;

    // bf16 output, no accumulation.
    Tensor yb(poisoned(s.M * s.N * 2), DType::BF16, {s.M, s.N}, Device::CUDA);
    ops::matmul(xg, wg, nullptr, yb, false, gpu);
    std::vector<float> ref2(s.M * s.N);
    Tensor yc2(ref2.data(), DType::F32, {s.M, s.N});
    ops::matmul(xc, wc, nullptr, yc2, false, cpu);
    EXPECT_LT(rel_l2(from_bf16(down<uint16_t>(yb.data, s.M * s.N)), ref2), 8e-3);
  }
}

TEST_F(CudaOps, GemvSwigluMatchesCpu) {
  for (int64_t M : {1, 3, 4}) {
    const int64_t F = 200, K = 264;
    auto xb = to_bf16(randn(M * K)), wb = to_bf16(randn(2 * F * K, 0.1f));
    auto xf = from_bf16(xb);
    std::vector<float> gu(M * 2 * F), ref(M * F);
    Tensor xc(xf.data(), DType::F32, {M, K}), wc(wb.data(), DType::BF16, {2 * F, K}),
        gc(gu.data(), DType::F32, {M, 2 * F});
    ops::matmul(xc, wc, nullptr, gc, false, cpu);
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < F; ++n) {
        const float g = gu[m * 2 * F + n], u = gu[m * 2 * F + F + n];
        ref[m * F + n] = g / (1.0f + std::exp(-g)) * u;
      }
    void* out = poisoned(M * F * 2);
    ASSERT_TRUE(cuda::gemv_swiglu(up(xb), up(wb), DType::BF16, out, M, F, K, *cx));
    EXPECT_LT(rel_l2(from_bf16(down<uint16_t>(out, M * F)), ref), 8e-3) << "M " << M;
  }
}

// The decode GEMVs on f32 activations, plain and with the RMSNorm fused (f32 math: the CPU
// computes norm(x) in f32 and the product on the same bf16/f16 weights).
TEST_F(CudaOps, GemvF32WithFusedNormMatchesCpu) {
  struct S {
    int64_t M, N, K;
  };
  for (DType wt : {DType::BF16, DType::F16})
    for (S s : {S{1, 64, 128}, S{2, 200, 4096}, S{3, 37, 264}, S{4, 96, 1000}}) {
      auto x = randn(s.M * s.K, 3.0f), g = randn(s.K), w = randn(s.N * s.K, 0.05f);
      std::vector<uint16_t> wq(w.size());
      for (size_t i = 0; i < w.size(); ++i)
        wq[i] = wt == DType::BF16 ? f32_to_bf16(w[i]) : f32_to_f16(w[i]);
      auto y0 = randn(s.M * s.N);
      std::vector<float> h(s.M * s.K);
      Tensor xc(x.data(), DType::F32, {s.M, s.K}), gc(g.data(), DType::F32, {s.K}),
          hc(h.data(), DType::F32, {s.M, s.K}), wc(wq.data(), wt, {s.N, s.K});
      ops::rms_norm(xc, gc, 1e-6f, hc, cpu);
      for (bool norm : {false, true})
        for (bool acc : {false, true}) {
          std::vector<float> ref = y0;
          Tensor yc(ref.data(), DType::F32, {s.M, s.N});
          ops::matmul(norm ? hc : xc, wc, nullptr, yc, acc, cpu);
          float* y = acc ? up(y0) : static_cast<float*>(poisoned(s.M * s.N * 4));
          ASSERT_TRUE(cuda::gemv_f32(up(x), norm ? up(g) : nullptr, 1e-6f, up(wq), wt, y, s.M, s.N,
                                     s.K, s.N, acc, *cx));
          EXPECT_LT(rel_l2(down<float>(y, s.M * s.N), ref), 1e-5)
              << dtype_name(wt) << " " << s.M << "x" << s.N << "x" << s.K << " norm " << norm
              << " acc " << acc;
        }
      // gate|up + SwiGLU on the normalised rows (F = N / 2 columns), f32 and 16-bit out.
      if (s.N % 2) continue;
      const int64_t F = s.N / 2;
      std::vector<float> gu(s.M * s.N), sref(s.M * F);
      Tensor guc(gu.data(), DType::F32, {s.M, s.N});
      ops::matmul(hc, wc, nullptr, guc, false, cpu);
      for (int64_t m = 0; m < s.M; ++m)
        for (int64_t n = 0; n < F; ++n) {
          const float a = gu[m * s.N + n], b = gu[m * s.N + F + n];
          sref[m * F + n] = a / (1.0f + std::exp(-a)) * b;
        }
      void* o = poisoned(s.M * F * 4);
      ASSERT_TRUE(
          cuda::gemv_swiglu_f32(up(x), up(g), 1e-6f, up(wq), wt, o, DType::F32, s.M, F, s.K, *cx));
      EXPECT_LT(rel_l2(down<float>(o, s.M * F), sref), 1e-5) << "swiglu f32 " << s.M;
      void* o16 = poisoned(s.M * F * 2);
      ASSERT_TRUE(
          cuda::gemv_swiglu_f32(up(x), up(g), 1e-6f, up(wq), wt, o16, wt, s.M, F, s.K, *cx));
      std::vector<uint16_t> r16 = down<uint16_t>(o16, s.M * F);
      std::vector<float> r(r16.size());
      for (size_t i = 0; i < r.size(); ++i)
        r[i] = wt == DType::BF16 ? bf16_to_f32(r16[i]) : f16_to_f32(r16[i]);
      EXPECT_LT(rel_l2(r, sref), 8e-3) << "swiglu 16-bit " << s.M;
    }
}

// hi/lo split of an f32 activation: hi · w + lo · w (one GEMM over the 2M stacked rows, then
// sum_pair) is the f32-input product to about bf16 precision squared.
TEST_F(CudaOps, HiLoSplitProductMatchesF32Input) {
  for (int64_t M : {5, 33, 257}) {
    const int64_t N = 300, K = 256;
    auto x = randn(M * K, 2.0f), w = randn(N * K, 0.05f);
    auto wb = to_bf16(w);
    auto y0 = randn(M * N);
    std::vector<float> ref = y0;
    Tensor xc(x.data(), DType::F32, {M, K}), wc(wb.data(), DType::BF16, {N, K}),
        yc(ref.data(), DType::F32, {M, N});
    ops::matmul(xc, wc, nullptr, yc, true, cpu);
    auto* hl = static_cast<uint8_t*>(poisoned(2 * M * K * 2));
    auto* pair = static_cast<float*>(poisoned(2 * M * N * 4));
    float* y = up(y0);
    cuda::split_hi_lo(up(x), hl, hl + M * K * 2, DType::BF16, M * K, *cx);
    cuda::gemm(hl, up(wb), DType::BF16, pair, DType::F32, 2 * M, N, K, N, false, *cx);
    cuda::sum_pair(pair, pair + M * N, M, N, y, N, true, *cx);
    const double e = rel_l2(down<float>(y, M * N), ref);
    EXPECT_LT(e, 1e-4) << "M " << M;
    // The hi part alone is the bf16-rounded input: two orders of magnitude worse.
    cuda::gemm(hl, up(wb), DType::BF16, pair, DType::F32, M, N, K, N, false, *cx);
    std::vector<float> ref0(M * N);
    Tensor y0c(ref0.data(), DType::F32, {M, N});
    ops::matmul(xc, wc, nullptr, y0c, false, cpu);
    EXPECT_GT(rel_l2(down<float>(pair, M * N), ref0), 10 * e) << "M " << M;
  }
}

TEST_F(CudaOps, RmsNormRopeSwigluEmbeddingMatchCpu) {
  for (int64_t T : {1, 5, 64}) {
    const int64_t D = 320, nh = 3, hd = 64, F = 200, V = 50;
    auto x = randn(T * D), w = randn(D);
    std::vector<float> ref(T * D);
    Tensor xc(x.data(), DType::F32, {T, D}), wc(w.data(), DType::F32, {D}),
        rc(ref.data(), DType::F32, {T, D});
    ops::rms_norm(xc, wc, 1e-6f, rc, cpu);
    Tensor xg(up(x), DType::F32, {T, D}, Device::CUDA), wg(up(w), DType::F32, {D}, Device::CUDA);
    Tensor yg(poisoned(T * D * 4), DType::F32, {T, D}, Device::CUDA);
    ops::rms_norm(xg, wg, 1e-6f, yg, gpu);
    EXPECT_LT(rel_l2(down<float>(yg.data, T * D), ref), 1e-6);
    Tensor yb(poisoned(T * D * 2), DType::BF16, {T, D}, Device::CUDA);
    ops::rms_norm(xg, wg, 1e-6f, yb, gpu);
    EXPECT_LT(rel_l2(from_bf16(down<uint16_t>(yb.data, T * D)), ref), 5e-3);

    auto q = randn(T * nh * hd), cs = randn(T * hd / 2), sn = randn(T * hd / 2);
    std::vector<float> qref = q;
    Tensor qc(qref.data(), DType::F32, {T, nh, hd}), cc(cs.data(), DType::F32, {T, hd / 2}),
        sc(sn.data(), DType::F32, {T, hd / 2});
    ops::rope(qc, cc, sc, cpu);
    Tensor qg(up(q), DType::F32, {T, nh, hd}, Device::CUDA),
        cg(up(cs), DType::F32, {T, hd / 2}, Device::CUDA),
        sg(up(sn), DType::F32, {T, hd / 2}, Device::CUDA);
    ops::rope(qg, cg, sg, gpu);
    EXPECT_LT(rel_l2(down<float>(qg.data, T * nh * hd), qref), 1e-6);

    auto g = randn(T * F), u = randn(T * F);
    std::vector<float> sref(T * F);
    Tensor gc(g.data(), DType::F32, {T, F}), uc(u.data(), DType::F32, {T, F}),
        oc(sref.data(), DType::F32, {T, F});
    ops::swiglu(gc, uc, oc, cpu);
    Tensor gg(up(g), DType::F32, {T, F}, Device::CUDA), ug(up(u), DType::F32, {T, F}, Device::CUDA),
        og(poisoned(T * F * 4), DType::F32, {T, F}, Device::CUDA);
    ops::swiglu(gg, ug, og, gpu);
    EXPECT_LT(rel_l2(down<float>(og.data, T * F), sref), 1e-5);

    auto table = to_bf16(randn(V * D));
    std::vector<int32_t> ids(T);
    for (auto& id : ids) id = static_cast<int32_t>(rng() % V);
    std::vector<float> eref(T * D);
    Tensor tc(table.data(), DType::BF16, {V, D}), ec(eref.data(), DType::F32, {T, D});
    ops::embedding(tc, ids, ec, cpu);
    Tensor tg(up(table), DType::BF16, {V, D}, Device::CUDA),
        eg(poisoned(T * D * 4), DType::F32, {T, D}, Device::CUDA);
    ops::embedding(tg, ids, eg, gpu);
    EXPECT_EQ(down<float>(eg.data, T * D), eref);
  }
}

// The f16 down-projection input with its overflow guard: SwiGLU outputs past f16's range (rows
// scaled up to ~1e6, as "massive activations" are), per-row power-of-two scales, the f16 product
// and the scaled residual add + RMSNorm, against the CPU's f32 SwiGLU, product and norm.
TEST_F(CudaOps, SwigluScaledGuardsF16OverflowAndMatchesCpu) {
  struct Shape {
    int64_t T, F, H;
  };
  for (Shape sh : {Shape{7, 200, 96}, Shape{5, 14336, 64}, Shape{3, 40000, 32}}) {
    const int64_t T = sh.T, F = sh.F, H = sh.H;
    auto g = randn(T * F), u = randn(T * F);
    // Row t scaled so that max |silu(g) u| reaches about 10^(t-1): rows 0..4 stay under 2^14,
    // the later ones pass 65504 (row 6: about 1e6); row 1 has one huge element only.
    std::vector<float> row_mul(T);
    for (int64_t t = 0; t < T; ++t) {
      row_mul[t] = static_cast<float>(std::pow(10.0, static_cast<double>(t) - 1.0) / 4.0);
      for (int64_t i = 0; i < F; ++i) u[t * F + i] *= row_mul[t];
    }
    g[1 * F + F / 2] = 30.0f;
    u[1 * F + F / 2] = 2500.0f;  // 75000: past 65504 in a row of small values
    std::vector<float> sref(T * F);
    Tensor gc(g.data(), DType::F32, {T, F}), uc(u.data(), DType::F32, {T, F}),
        oc(sref.data(), DType::F32, {T, F});
    ops::swiglu(gc, uc, oc, cpu);
    const float amax_all = std::fabs(*std::max_element(
        sref.begin(), sref.end(), [](float a, float b) { return std::fabs(a) < std::fabs(b); }));
    ASSERT_GT(amax_all, 65504.0f) << "the test must pass f16's range";

    // gate | up interleaved as the runner's gu_ rows: [T, 2F].
    std::vector<float> gu(T * 2 * F);
    for (int64_t t = 0; t < T; ++t)
      for (int64_t i = 0; i < F; ++i) {
        gu[t * 2 * F + i] = g[t * F + i];
        gu[t * 2 * F + F + i] = u[t * F + i];
      }
    float* gud = up(gu);
    void* o16 = poisoned(T * F * 2);
    float* scale = static_cast<float*>(poisoned(T * 8));
    cuda::swiglu_scaled(gud, gud + F, 2 * F, o16, DType::F16, scale, T, F, *cx);
    std::vector<uint16_t> oh = down<uint16_t>(o16, T * F);
    std::vector<float> sc = down<float>(scale, T);
    std::vector<float> back(T * F);
    for (int64_t t = 0; t < T; ++t) {
      float rmax = 0;
      for (int64_t i = 0; i < F; ++i) rmax = std::max(rmax, std::fabs(sref[t * F + i]));
      int e = 0;
      const float m = std::frexp(sc[t], &e);
      EXPECT_EQ(m, 0.5f) << "scale " << sc[t] << " of row " << t << " is not a power of two";
      EXPECT_GE(sc[t], 1.0f);
      if (rmax <= 16384.0f * 0.999f) {
        EXPECT_EQ(sc[t], 1.0f) << "row " << t << " max " << rmax;
      }
      EXPECT_LE(rmax / sc[t], 16384.0f * 1.001f) << "row " << t;
      EXPECT_GT(rmax / sc[t], 16384.0f * 0.499f * (sc[t] > 1.0f)) << "row " << t << ": least k";
      for (int64_t i = 0; i < F; ++i) {
        const float v = f16_to_f32(oh[t * F + i]);
        ASSERT_TRUE(std::isfinite(v)) << "row " << t << " element " << i;
        back[t * F + i] = v * sc[t];
      }
    }
    EXPECT_LT(rel_l2(back, sref), 1e-3);  // f16 rounding: about 3e-4
    for (int64_t t = 0; t < T; ++t) {     // and per row (a scaled row keeps its relative precision)
      std::vector<float> a(back.begin() + t * F, back.begin() + (t + 1) * F),
          b(sref.begin() + t * F, sref.begin() + (t + 1) * F);
      EXPECT_LT(rel_l2(a, b), 1e-3) << "row " << t;
    }

    // The down product in f16 (weights converted on the device) and x += s · y, then RMSNorm.
    auto w = randn(H * F, 0.02f), x = randn(T * H), bias = randn(H), nw = randn(H);
    float* wf = up(w);
    void* w16 = poisoned(H * F * 2);
    cuda::convert(wf, DType::F32, w16, DType::F16, H * F, *cx);
    std::vector<uint16_t> w16h = down<uint16_t>(w16, H * F);
    float* y = static_cast<float*>(poisoned(T * H * 4));
    cuda::gemm(o16, w16, DType::F16, y, DType::F32, T, H, F, H, false, *cx);
    float* xd = up(x);
    void* hn = poisoned(T * H * 2);
    cuda::add_scaled_rms_norm(xd, y, scale, up(bias), up(nw), 1e-6f, hn, DType::F16, T, H, *cx);
    std::vector<float> xr(T * H), nr(T * H);
    for (int64_t t = 0; t < T; ++t) {
      double ss = 0;
      for (int64_t n = 0; n < H; ++n) {
        double acc = 0;
        for (int64_t i = 0; i < F; ++i)
          acc += static_cast<double>(sref[t * F + i]) * f16_to_f32(w16h[n * F + i]);
        xr[t * H + n] = static_cast<float>(x[t * H + n] + acc + bias[n]);
        ss += static_cast<double>(xr[t * H + n]) * xr[t * H + n];
      }
      const double r = 1.0 / std::sqrt(ss / H + 1e-6);
      for (int64_t n = 0; n < H; ++n) nr[t * H + n] = static_cast<float>(xr[t * H + n] * r * nw[n]);
    }
    std::vector<float> xg = down<float>(xd, T * H);
    for (int64_t t = 0; t < T; ++t) {
      std::vector<float> a(xg.begin() + t * H, xg.begin() + (t + 1) * H),
          b(xr.begin() + t * H, xr.begin() + (t + 1) * H);
      EXPECT_LT(rel_l2(a, b), 2e-3) << "residual row " << t << " F " << F;
    }
    std::vector<uint16_t> hh = down<uint16_t>(hn, T * H);
    std::vector<float> hg(T * H);
    for (int64_t i = 0; i < T * H; ++i) hg[i] = f16_to_f32(hh[i]);
    EXPECT_LT(rel_l2(hg, nr), 2e-3) << "norm F " << F;
    // Without the guard the same input is not representable: the plain f16 SwiGLU overflows.
    void* o16u = poisoned(T * F * 2);
    cuda::swiglu(gud, gud + F, 2 * F, o16u, DType::F16, T, F, *cx);
    std::vector<uint16_t> ou = down<uint16_t>(o16u, T * F);
    EXPECT_TRUE(
        std::any_of(ou.begin(), ou.end(), [](uint16_t b) { return (b & 0x7c00) == 0x7c00; }));
  }
}

// The weights' conversion reports values past the target type's range (the runner then keeps
// the checkpoint's type).
TEST_F(CudaOps, ConvertFitsReportsOverflow) {
  std::vector<float> a = {1.0f, -3.0f, 65504.0f, 1e-9f}, b = {1.0f, 7e4f, 2.0f, -1e6f};
  void* d = poisoned(8);
  EXPECT_TRUE(cuda::convert_fits(up(a), DType::F32, d, DType::F16, 4, *cx));
  EXPECT_FALSE(cuda::convert_fits(up(b), DType::F32, d, DType::F16, 4, *cx));
  EXPECT_TRUE(cuda::convert_fits(up(b), DType::F32, d, DType::BF16, 4, *cx));
}

TEST_F(CudaOps, ArgmaxRows) {
  const int64_t rows = 9, V = 70001;
  auto l = randn(rows * V);
  l[3 * V + 7] = 50;
  l[3 * V + 9] = 50;  // ties: the first
  int32_t* d_ids = static_cast<int32_t*>(poisoned(rows * 4));
  cuda::argmax_rows(up(l), rows, V, d_ids, *cx);
  std::vector<int32_t> ids = down<int32_t>(d_ids, rows);
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t best =
        std::max_element(l.begin() + r * V, l.begin() + (r + 1) * V) - (l.begin() + r * V);
    EXPECT_EQ(ids[r], best) << "row " << r;
  }
}

// Paged KV: the same keys/values stored by the CPU and by the GPU must give the same blocks,
// and attention over them the same outputs, for both GPU kernels.
struct AttnShape {
  int64_t nkv, group, hd, pos0, T, window, bt;
  DType kv;
};

TEST_F(CudaOps, KvStoreAndAttentionMatchCpu) {
  const AttnShape shapes[] = {
      {1, 4, 32, 0, 1, 0, 32, DType::BF16},    {2, 2, 64, 0, 37, 0, 16, DType::BF16},
      {8, 4, 128, 200, 1, 0, 32, DType::BF16}, {8, 4, 128, 0, 300, 0, 32, DType::BF16},
      {2, 7, 64, 45, 70, 0, 32, DType::F16},   {4, 2, 128, 100, 129, 64, 32, DType::BF16},
      {2, 3, 40, 10, 20, 0, 16, DType::F32},   {1, 8, 128, 1500, 1, 0, 64, DType::F16},
      {2, 4, 128, 600, 65, 0, 32, DType::F32}, {8, 1, 64, 0, 130, 50, 16, DType::F16},
  };
  for (const AttnShape& s : shapes) {
    SCOPED_TRACE("nkv" + std::to_string(s.nkv) + " g" + std::to_string(s.group) + " hd" +
                 std::to_string(s.hd) + " pos0 " + std::to_string(s.pos0) + " T" +
                 std::to_string(s.T) + " win" + std::to_string(s.window) + " kv " +
                 std::string(dtype_name(s.kv)));
    KVLayout L;
    L.n_layers = 2;
    L.n_kv_heads = s.nkv;
    L.head_dim = s.hd;
    L.block_tokens = s.bt;
    L.dtype = s.kv;
    const int64_t n = s.pos0 + s.T, nb = (n + s.bt - 1) / s.bt, W = s.nkv * s.hd,
                  nh = s.nkv * s.group;
    BlockPool hp(L, nb + 2), dp(L, nb + 2, Device::CUDA, 0);
    KVSequence hs, ds;
    reserve_tokens(hp, hs, n);
    reserve_tokens(dp, ds, n);
    // Different block orders on the two sides: the tables, not adjacency, must be followed.
    std::reverse(ds.blocks.begin(), ds.blocks.end());
    std::reverse(ds.block_ptrs.begin(), ds.block_ptrs.end());
    auto k = randn(n * W), v = randn(n * W), q = randn(s.T * nh * s.hd);
    const float scale = 1.0f / std::sqrt(static_cast<float>(s.hd));
    // The cache before pos0 written in one go, then the T new rows (as prefill then a step).
    for (int64_t layer : {int64_t{1}}) {
      PagedKVView hv = hs.view(hp, layer), dv = ds.view(dp, layer);
      for (auto [p, len] : {std::pair<int64_t, int64_t>{0, s.pos0}, {s.pos0, s.T}}) {
        if (len == 0) continue;
        Tensor kc(k.data() + p * W, DType::F32, {len, W}),
            vc(v.data() + p * W, DType::F32, {len, W});
        ops::kv_store(kc, vc, p, hv, cpu);
        std::vector<float> ks(k.begin() + p * W, k.begin() + (p + len) * W),
            vs(v.begin() + p * W, v.begin() + (p + len) * W);
        Tensor kg(up(ks), DType::F32, {len, W}, Device::CUDA),
            vg(up(vs), DType::F32, {len, W}, Device::CUDA);
        ops::kv_store(kg, vg, p, dv, gpu);
      }
      // Block bytes equal (the layer's slabs; other layers untouched on both sides).
      for (int64_t b = 0; b < nb; ++b) {
        std::vector<uint8_t> hb(hp.data(hs.blocks[b]) + L.k_offset(layer),
                                hp.data(hs.blocks[b]) + L.k_offset(layer) + 2 * L.slab_bytes());
        auto db = down<uint8_t>(dp.data(ds.blocks[b]) + L.k_offset(layer), 2 * L.slab_bytes());
        // Slots past n in the last block hold whatever the pools held: compare token slots < n.
        if ((b + 1) * s.bt <= n) {
          EXPECT_EQ(hb, db) << "block " << b;
        }
      }
      std::vector<float> ref(s.T * nh * s.hd);
      Tensor qc(q.data(), DType::F32, {s.T, nh, s.hd}),
          oc(ref.data(), DType::F32, {s.T, nh * s.hd});
      ops::attention(qc, s.pos0, hv, scale, s.window, oc, cpu);
      // Both kernels (where the flash one applies), f32 and bf16 outputs.
      const bool flash_ok = s.kv != DType::F32 && (s.hd == 32 || s.hd == 64 || s.hd == 128);
      for (int force : {1, 2}) {
        if (force == 2 && !flash_ok) continue;
        Tensor qg(up(q), DType::F32, {s.T, nh, s.hd}, Device::CUDA);
        void* out = poisoned(s.T * nh * s.hd * 4);
        // The raw entry with a one-sequence batch (as ops::attention builds it).
        const cuda::PagedBatch b = batch(L, layer, {{&ds, s.pos0, s.T}});
        cuda::attention(static_cast<const float*>(qg.data), b, nh, scale, s.window, out, DType::F32,
                        *cx, force);
        const double tol = force == 2 ? 1e-2 : s.kv == DType::F32 ? 1e-5 : 2e-3;
        EXPECT_LT(rel_l2(down<float>(out, s.T * nh * s.hd), ref), tol) << "kernel " << force;
      }
      // And through ops::attention (auto choice), bf16 output.
      Tensor qg(up(q), DType::F32, {s.T, nh, s.hd}, Device::CUDA);
      Tensor og(poisoned(s.T * nh * s.hd * 2), DType::BF16, {s.T, nh * s.hd}, Device::CUDA);
      ops::attention(qg, s.pos0, dv, scale, s.window, og, gpu);
      EXPECT_LT(rel_l2(from_bf16(down<uint16_t>(og.data, s.T * nh * s.hd)), ref), 1.5e-2);
    }
    release_sequence(hp, hs);
    release_sequence(dp, ds);
  }
}

// Many sequences of different lengths in one batch (GQA), decode rows and prefill rows: the
// batched kernels against the CPU per sequence.
TEST_F(CudaOps, BatchedPagedAttentionManySequences) {
  KVLayout L;
  L.n_layers = 1;
  L.n_kv_heads = 8;
  L.head_dim = 128;
  L.block_tokens = 32;
  const int64_t group = 4, nh = 32, W = L.n_kv_heads * L.head_dim, hd = L.head_dim;
  const float scale = 1.0f / std::sqrt(128.0f);
  // bf16 and fp8 KV (the GPU against the CPU on the same type), decode rows then prefill rows.
  const std::pair<DType, bool> runs[] = {
      {DType::BF16, false}, {DType::BF16, true}, {DType::F8_E4M3, false}, {DType::F8_E4M3, true}};
  for (auto [kv_type, prefill] : runs) {
    L.dtype = kv_type;
    const std::vector<int64_t> ctx_before = {0, 1, 31, 32, 33, 700, 2047, 5};
    const int64_t B = static_cast<int64_t>(ctx_before.size());
    std::vector<int64_t> new_rows(B);
    for (int64_t s = 0; s < B; ++s)
      new_rows[s] = prefill ? 1 + static_cast<int64_t>(rng() % 90) : 1;
    BlockPool hp(L, 600), dp(L, 600, Device::CUDA, 0);
    std::vector<KVSequence> hs(B), ds(B);
    std::vector<std::vector<float>> ks(B), vs(B), qs(B);
    int64_t T = 0;
    std::vector<SeqRows> seqs;
    std::vector<int64_t> qstart;  // each sequence's first row, then the row count
    std::vector<float> q_all;
    for (int64_t s = 0; s < B; ++s) {
      const int64_t n = ctx_before[s] + new_rows[s];
      reserve_tokens(hp, hs[s], n);
      reserve_tokens(dp, ds[s], n);
      ks[s] = randn(n * W);
      vs[s] = randn(n * W);
      qs[s] = randn(new_rows[s] * nh * hd);
      Tensor kc(ks[s].data(), DType::F32, {n, W}), vc(vs[s].data(), DType::F32, {n, W});
      ops::kv_store(kc, vc, 0, hs[s].view(hp, 0), cpu);
      Tensor kg(up(ks[s]), DType::F32, {n, W}, Device::CUDA),
          vg(up(vs[s]), DType::F32, {n, W}, Device::CUDA);
      ops::kv_store(kg, vg, 0, ds[s].view(dp, 0), gpu);
      seqs.push_back({&ds[s], ctx_before[s], new_rows[s]});
      qstart.push_back(T);
      q_all.insert(q_all.end(), qs[s].begin(), qs[s].end());
      T += new_rows[s];
    }
    qstart.push_back(T);
    const cuda::PagedBatch b = batch(L, 0, seqs);
    const float* qd = up(q_all);
    void* out = poisoned(T * nh * hd * 2);
    cuda::attention(qd, b, nh, scale, 0, out, DType::BF16, *cx);
    std::vector<float> got = from_bf16(down<uint16_t>(out, T * nh * hd));
    for (int64_t s = 0; s < B; ++s) {
      std::vector<float> ref(new_rows[s] * nh * hd);
      Tensor qc(qs[s].data(), DType::F32, {new_rows[s], nh, hd}),
          oc(ref.data(), DType::F32, {new_rows[s], nh * hd});
      ops::attention(qc, ctx_before[s], hs[s].view(hp, 0), scale, 0, oc, cpu);
      std::vector<float> mine(got.begin() + qstart[s] * nh * hd,
                              got.begin() + qstart[s + 1] * nh * hd);
      EXPECT_LT(rel_l2(mine, ref), 1.5e-2)
          << dtype_name(kv_type) << (prefill ? " prefill" : " decode") << " seq " << s << " ctx "
          << ctx_before[s] << " + " << new_rows[s];
    }
    (void)group;
  }
}

// Where two copies of a layer's K|V slabs first differ, in the layout's terms (fp8: one byte per
// value, then f16 scales; ops/paged_kv.h), or "" if they are equal.
std::string first_difference(const KVLayout& L, const std::vector<uint8_t>& cpu,
                             const std::vector<uint8_t>& gpu) {
  for (size_t i = 0; i < cpu.size(); ++i) {
    if (cpu[i] == gpu[i]) continue;
    const size_t slab = i / L.slab_bytes(), head = i % L.slab_bytes() / L.head_bytes();
    const size_t at = i % L.head_bytes(), values = L.head_value_bytes();
    const int64_t bt = L.block_tokens, hd = L.head_dim;
    std::string where;
    if (at < values)
      where = slab == 0
                  ? "K value dim " + std::to_string(at / bt) + " token " + std::to_string(at % bt)
                  : "V value token " + std::to_string(at / hd) + " dim " + std::to_string(at % hd);
    else
      where = (slab == 0 ? "K scale group " + std::to_string((at - values) / 2 / bt) + " token " +
                               std::to_string((at - values) / 2 % bt)
                         : "V scale token " + std::to_string((at - values) / 2 / (hd / 32)) +
                               " group " + std::to_string((at - values) / 2 % (hd / 32)));
    return "byte " + std::to_string(i) + " (KV head " + std::to_string(head) + ", " + where +
           "): CPU " + std::to_string(cpu[i]) + ", GPU " + std::to_string(gpu[i]);
  }
  return "";
}

// The fused attention epilogue for 16-bit and f32 KV against a plain CPU reference on random
// inputs: bias, per-head RMSNorm of q and k (Qwen3) or none, rotate-half RoPE at random angles,
// q written out, k and v stored into the paged cache (compared through the CPU kv_store's bytes,
// decoded, to within a rounding of the KV type). Head dims 64/128/80 (partial lanes), GQA,
// two sequences in one batch at different positions, 5-row tails past the 8-row blocks.
TEST_F(CudaOps, QkvFinishMatchesCpu) {
  struct Shape {
    int64_t nkv, group, hd, pos0a, ta, pos0b, tb;
    bool norms, bias;
    DType kv;
  };
  const Shape shapes[] = {
      {8, 4, 128, 0, 37, 100, 1, true, false, DType::F16},
      {8, 4, 128, 3, 13, 0, 64, false, true, DType::BF16},
      {2, 2, 64, 31, 5, 0, 9, true, true, DType::F32},
      {1, 3, 80, 0, 21, 7, 3, false, false, DType::BF16},
      {4, 1, 128, 64, 64, 1, 1, true, true, DType::F16},
  };
  for (const Shape& sh : shapes) {
    const std::string name = "nkv" + std::to_string(sh.nkv) + " g" + std::to_string(sh.group) +
                             " hd" + std::to_string(sh.hd) + " " + std::string(dtype_name(sh.kv));
    SCOPED_TRACE(name);
    KVLayout L;
    L.n_layers = 2;
    L.n_kv_heads = sh.nkv;
    L.head_dim = sh.hd;
    L.block_tokens = 32;
    L.dtype = sh.kv;
    const int64_t layer = 1, nh = sh.nkv * sh.group, hd = sh.hd, half = hd / 2, W = sh.nkv * hd;
    const int64_t Q = nh * hd, ld = Q + 2 * W + 3;  // a row stride wider than the row
    const int64_t pos0[2] = {sh.pos0a, sh.pos0b}, len[2] = {sh.ta, sh.tb};
    const int64_t T = sh.ta + sh.tb;
    BlockPool hp(L, 16), dp(L, 16, Device::CUDA, 0);
    KVSequence hs[2], ds[2];
    for (int q = 0; q < 2; ++q) {
      reserve_tokens(hp, hs[q], pos0[q] + len[q]);
      reserve_tokens(dp, ds[q], pos0[q] + len[q]);
    }
    auto qkv = randn(T * ld), bias = randn(Q + 2 * W, 0.5f), qn = randn(hd, 0.3f),
         kn = randn(hd, 0.3f);
    for (auto& w : qn) w += 1.0f;
    for (auto& w : kn) w += 1.0f;
    std::vector<float> cs(T * half), sn(T * half);
    std::uniform_real_distribution<float> angle(-3.14159f, 3.14159f);
    for (int64_t i = 0; i < T * half; ++i) {
      const float t = angle(rng);
      cs[i] = std::cos(t);
      sn[i] = std::sin(t);
    }
    // Reference: q [T, Q], k and v [T, W] in f32.
    std::vector<float> qr(T * Q), kr(T * W), vr(T * W);
    for (int64_t r = 0; r < T; ++r)
      for (int64_t j = 0; j < nh + 2 * sh.nkv; ++j) {
        std::vector<float> x(hd);
        for (int64_t d = 0; d < hd; ++d)
          x[d] = qkv[r * ld + j * hd + d] + (sh.bias ? bias[j * hd + d] : 0.0f);
        const bool is_q = j < nh, is_k = !is_q && j < nh + sh.nkv;
        if (sh.norms && (is_q || is_k)) {
          double ss = 0;
          for (float v : x) ss += double(v) * v;
          const float rs = 1.0f / std::sqrt(static_cast<float>(ss / hd) + 1e-6f);
          for (int64_t d = 0; d < hd; ++d) x[d] *= rs * (is_q ? qn : kn)[d];
        }
        if (is_q || is_k)
          for (int64_t i = 0; i < half; ++i) {
            const float c = cs[r * half + i], s = sn[r * half + i], a = x[i], b = x[i + half];
            x[i] = a * c - b * s;
            x[i + half] = b * c + a * s;
          }
        float* dst = is_q   ? &qr[r * Q + j * hd]
                     : is_k ? &kr[r * W + (j - nh) * hd]
                            : &vr[r * W + (j - nh - sh.nkv) * hd];
        std::copy(x.begin(), x.end(), dst);
      }
    for (int q = 0, r0 = 0; q < 2; r0 += static_cast<int>(len[q]), ++q) {
      if (len[q] == 0) continue;
      Tensor kc(kr.data() + r0 * W, DType::F32, {len[q], W}),
          vc(vr.data() + r0 * W, DType::F32, {len[q], W});
      PagedKVView hv = hs[q].view(hp, layer);
      ops::kv_store(kc, vc, pos0[q], hv, cpu);
    }
    // The GPU: both sequences in one batch.
    const cuda::PagedBatch b =
        batch(L, layer, {{&ds[0], sh.pos0a, sh.ta}, {&ds[1], sh.pos0b, sh.tb}});
    float* q_out = static_cast<float*>(poisoned(T * Q * 4));
    cuda::qkv_finish(up(qkv), ld, sh.bias ? up(bias) : nullptr, sh.norms ? up(qn) : nullptr,
                     sh.norms ? up(kn) : nullptr, 1e-6f, up(cs), up(sn), nh, q_out, b, *cx);
    const auto qg = down<float>(q_out, T * Q);
    double worst = 0;
    for (int64_t i = 0; i < T * Q; ++i)
      worst = std::max(worst, std::fabs(double(qg[i]) - qr[i]) / (1.0 + std::fabs(qr[i])));
    EXPECT_LT(worst, 1e-5) << "q";
    // K and V of the written positions, decoded from both caches.
    const double tol = sh.kv == DType::F32 ? 1e-5 : sh.kv == DType::F16 ? 2e-3 : 1.6e-2;
    auto decode = [&](const uint8_t* p, size_t i) -> float {
      uint16_t h;
      switch (sh.kv) {
        case DType::F32: {
          float f;
          std::memcpy(&f, p + 4 * i, 4);
          return f;
        }
        case DType::F16:
          std::memcpy(&h, p + 2 * i, 2);
          return f16_to_f32(h);
        default:
          std::memcpy(&h, p + 2 * i, 2);
          return bf16_to_f32(h);
      }
    };
    int64_t bad = 0;
    std::string first;
    for (int q = 0; q < 2; ++q)
      for (int64_t t = pos0[q]; t < pos0[q] + len[q]; ++t) {
        const int64_t blk = t / 32, off = t % 32;
        const auto hb = std::vector<uint8_t>(
            hp.data(hs[q].blocks[blk]) + L.k_offset(layer),
            hp.data(hs[q].blocks[blk]) + L.k_offset(layer) + 2 * L.slab_bytes());
        const auto db =
            down<uint8_t>(dp.data(ds[q].blocks[blk]) + L.k_offset(layer), 2 * L.slab_bytes());
        for (int64_t h = 0; h < sh.nkv; ++h)
          for (int64_t d = 0; d < hd; ++d)
            for (int kv = 0; kv < 2; ++kv) {
              const size_t head = kv * L.slab_bytes() + h * L.head_bytes();
              const size_t i = kv == 0 ? d * 32 + off : off * hd + d;  // K transposed, V rows
              const float c = decode(hb.data() + head, i), g = decode(db.data() + head, i);
              if (!(std::fabs(double(c) - g) <= tol * (1.0 + std::fabs(c)))) {
                if (bad++ == 0)
                  first = std::string(kv ? "V" : "K") + " seq " + std::to_string(q) + " pos " +
                          std::to_string(t) + " head " + std::to_string(h) + " dim " +
                          std::to_string(d) + ": CPU " + std::to_string(c) + ", GPU " +
                          std::to_string(g);
              }
            }
      }
    EXPECT_EQ(bad, 0) << first;
  }
}

// fp8 (e4m3 + f16 group scales) KV on the GPU against the CPU's fp8 path on fresh random inputs:
// kv_store and qkv_finish write the CPU's bytes exactly (the same quantizer, bit for bit); the
// split-key kernel (scalar for hd 32/96/256, vectorised for 64/128) reads the same dequantized
// values in f32 math; the flash kernel (prefill, hd 32/64/128) dequantizes to f16 for the MMAs.
// Decode and prefill rows, GQA and MHA, windows, two block sizes.
TEST_F(CudaOps, Fp8KvStoreAndAttentionMatchCpu) {
  const AttnShape shapes[] = {
      {1, 4, 32, 0, 1, 0, 32, DType::F8_E4M3},     {2, 2, 64, 0, 37, 0, 32, DType::F8_E4M3},
      {8, 4, 128, 200, 1, 0, 32, DType::F8_E4M3},  {8, 4, 128, 0, 300, 0, 32, DType::F8_E4M3},
      {2, 7, 64, 45, 70, 0, 32, DType::F8_E4M3},   {4, 2, 128, 100, 129, 64, 32, DType::F8_E4M3},
      {2, 3, 96, 10, 20, 0, 32, DType::F8_E4M3},   {1, 8, 128, 1500, 1, 0, 64, DType::F8_E4M3},
      {2, 1, 256, 60, 4, 0, 32, DType::F8_E4M3},   {8, 1, 64, 0, 130, 50, 32, DType::F8_E4M3},
      {2, 4, 128, 600, 65, 0, 64, DType::F8_E4M3},
  };
  for (const AttnShape& s : shapes) {
    const std::string shape = "nkv" + std::to_string(s.nkv) + " g" + std::to_string(s.group) +
                              " hd" + std::to_string(s.hd) + " pos0 " + std::to_string(s.pos0) +
                              " T" + std::to_string(s.T) + " win" + std::to_string(s.window) +
                              " bt" + std::to_string(s.bt) + " fp8";
    SCOPED_TRACE(shape);
    KVLayout L;
    L.n_layers = 2;
    L.n_kv_heads = s.nkv;
    L.head_dim = s.hd;
    L.block_tokens = s.bt;
    L.dtype = s.kv;
    KVLayout L32 = L;
    L32.dtype = DType::F32;
    const int64_t layer = 1, n = s.pos0 + s.T, nb = (n + s.bt - 1) / s.bt, W = s.nkv * s.hd,
                  nh = s.nkv * s.group;
    BlockPool hp(L, nb + 2), dp(L, nb + 2, Device::CUDA, 0), dq(L, nb + 2, Device::CUDA, 0),
        h32(L32, nb + 2);
    KVSequence hs, ds, qs, s32;
    reserve_tokens(hp, hs, n);
    reserve_tokens(dp, ds, n);
    reserve_tokens(dq, qs, n);
    reserve_tokens(h32, s32, n);
    std::reverse(ds.blocks.begin(), ds.blocks.end());
    std::reverse(ds.block_ptrs.begin(), ds.block_ptrs.end());
    // Keys with a few large channels (as real K caches have) and values of mixed magnitude:
    // groups whose scale is set by one value, and tiny groups on the 2^-14 scale floor.
    auto k = randn(n * W), v = randn(n * W), q = randn(s.T * nh * s.hd);
    for (int64_t i = 0; i < n * W; ++i) {
      if (i % s.hd == 5) k[i] *= 20.0f;
      if (i / s.hd % 5 == 3) v[i] *= 1e-4f;
    }
    const float scale = 1.0f / std::sqrt(static_cast<float>(s.hd));
    PagedKVView hv = hs.view(hp, layer), dv = ds.view(dp, layer), v32 = s32.view(h32, layer);
    // The cache before pos0 in one call, then the T new rows (a prefill, then a step).
    for (auto [p, len] : {std::pair<int64_t, int64_t>{0, s.pos0}, {s.pos0, s.T}}) {
      if (len == 0) continue;
      Tensor kc(k.data() + p * W, DType::F32, {len, W}), vc(v.data() + p * W, DType::F32, {len, W});
      ops::kv_store(kc, vc, p, hv, cpu);
      ops::kv_store(kc, vc, p, v32, cpu);
      std::vector<float> ks(k.begin() + p * W, k.begin() + (p + len) * W),
          vs(v.begin() + p * W, v.begin() + (p + len) * W);
      Tensor kg(up(ks), DType::F32, {len, W}, Device::CUDA),
          vg(up(vs), DType::F32, {len, W}, Device::CUDA);
      ops::kv_store(kg, vg, p, dv, gpu);
      // qkv_finish stores the same k, v: no bias or norms, RoPE with cos 1 and sin 0 (exact),
      // q heads first (one q head's columns ahead of k and v here).
      std::vector<float> qkv(len * (s.hd + 2 * W)), cs(len * s.hd / 2, 1.0f),
          sn(len * s.hd / 2, 0.0f);
      for (int64_t r = 0; r < len; ++r)
        for (int64_t c = 0; c < W; ++c) {
          qkv[r * (s.hd + 2 * W) + s.hd + c] = ks[r * W + c];
          qkv[r * (s.hd + 2 * W) + s.hd + W + c] = vs[r * W + c];
        }
      const cuda::PagedBatch b = batch(L, layer, {{&qs, p, len}});
      float* q_out = static_cast<float*>(poisoned(len * s.hd * 4));
      cuda::qkv_finish(up(qkv), s.hd + 2 * W, nullptr, nullptr, nullptr, 1e-6f, up(cs), up(sn), 1,
                       q_out, b, *cx);
    }
    // Full blocks byte for byte (slots past n hold whatever the pools held).
    for (int64_t blk = 0; (blk + 1) * s.bt <= n; ++blk) {
      std::vector<uint8_t> hb(hp.data(hs.blocks[blk]) + L.k_offset(layer),
                              hp.data(hs.blocks[blk]) + L.k_offset(layer) + 2 * L.slab_bytes());
      const std::string store = first_difference(
          L, hb, down<uint8_t>(dp.data(ds.blocks[blk]) + L.k_offset(layer), 2 * L.slab_bytes()));
      EXPECT_EQ(store, "") << "kv_store, block " << blk;
      const std::string fused = first_difference(
          L, hb, down<uint8_t>(dq.data(qs.blocks[blk]) + L.k_offset(layer), 2 * L.slab_bytes()));
      EXPECT_EQ(fused, "") << "qkv_finish, block " << blk;
    }

    std::vector<float> ref(s.T * nh * s.hd), ref32(ref.size());
    Tensor qc(q.data(), DType::F32, {s.T, nh, s.hd}), oc(ref.data(), DType::F32, {s.T, nh * s.hd}),
        oc32(ref32.data(), DType::F32, {s.T, nh * s.hd});
    ops::attention(qc, s.pos0, hv, scale, s.window, oc, cpu);
    ops::attention(qc, s.pos0, v32, scale, s.window, oc32, cpu);
    const bool flash_ok = s.hd == 32 || s.hd == 64 || s.hd == 128;
    for (int force : {1, 2}) {
      if (force == 2 && !flash_ok) continue;
      const cuda::PagedBatch b = batch(L, layer, {{&ds, s.pos0, s.T}});
      void* out = poisoned(s.T * nh * s.hd * 4);
      cuda::attention(up(q), b, nh, scale, s.window, out, DType::F32, *cx, force);
      const std::vector<float> got = down<float>(out, s.T * nh * s.hd);
      // Split-key: the CPU's dequantized values in f32 math (only exp and the summation order
      // differ). Flash: q, k, v and p rounded to f16 for the MMAs.
      const double tol = force == 2 ? 1e-2 : 1e-4, err = rel_l2(got, ref);
      EXPECT_LT(err, tol) << (force == 2 ? "flash" : "split-key") << " kernel vs CPU fp8";
      // And the fp8 cache's own error against f32 KV on the CPU (CPU fp8 vs f32 KV: relative
      // L2 at most 5.1e-2 in tests/ops/attention_test.cpp).
      EXPECT_LT(rel_l2(got, ref32), 8e-2)
          << (force == 2 ? "flash" : "split-key")
          << " kernel vs CPU f32 KV (CPU fp8: " << rel_l2(ref, ref32) << ")";
    }
    // Through ops::attention (the automatic choice), bf16 output.
    Tensor qg(up(q), DType::F32, {s.T, nh, s.hd}, Device::CUDA);
    Tensor og(poisoned(s.T * nh * s.hd * 2), DType::BF16, {s.T, nh * s.hd}, Device::CUDA);
    ops::attention(qg, s.pos0, dv, scale, s.window, og, gpu);
    EXPECT_LT(rel_l2(from_bf16(down<uint16_t>(og.data, s.T * nh * s.hd)), ref), 1.5e-2) << "auto";
    release_sequence(hp, hs);
    release_sequence(dp, ds);
    release_sequence(dq, qs);
    release_sequence(h32, s32);
  }
}

// set_geometry accepts fp8 and still refuses the ggml types on the GPU, naming them.
TEST(CudaKvTypes, SetGeometryAcceptsFp8AndRefusesGgmlTypes) {
  KVLayout L{2, 2, 64, 32, DType::F8_E4M3};
  cuda::PagedBatch b;
  cuda::set_geometry(b, L, 1);
  EXPECT_EQ(b.kv_dtype, DType::F8_E4M3);
  EXPECT_EQ(b.head_bytes, static_cast<int64_t>(64 * 32 * 34 / 32));
  EXPECT_EQ(b.v_off - b.k_off, static_cast<int64_t>(L.slab_bytes()));
  for (DType t : {DType::Q8_0, DType::Q4_0}) {
    L.dtype = t;
    try {
      cuda::set_geometry(b, L, 0);
      ADD_FAILURE() << dtype_name(t) << " accepted";
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(std::string(dtype_name(t))), std::string::npos)
          << e.what();
    }
  }
}

}  // namespace
}  // namespace hwledger
