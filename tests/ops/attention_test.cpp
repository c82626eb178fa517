// The CPU attention over a paged KV cache, for every KV element type (f32, f16, bf16, q8_0,
// q4_0): the AVX-512 kernel against the generic one, the generic one against exact attention on
// the unrounded keys and values, the q8_0/q4_0 bytes against ggml's quantizers, and the layout
// checks.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "ops/cpu/kernels_cpu.h"
#include "ops/cpu/simd.h"
#include "ops/ops.h"
#include "util/error.h"

namespace hwledger::cpu {
namespace {

constexpr DType kKVTypes[] = {DType::F32, DType::F16, DType::BF16, DType::Q8_0, DType::Q4_0};

// Forces a SIMD level for the lifetime of the object.
class ScopedSimdLevel {
 public:
  explicit ScopedSimdLevel(SimdLevel level) { set_simd_level(level); }
  ~ScopedSimdLevel() { reset_simd_level(); }
};

// One sequence's paged KV cache. The blocks are handed out in reverse storage order so that
// consecutive pages are not adjacent in memory, as in the engine's pool.
struct PagedCache {
  KVLayout layout;
  std::vector<uint8_t> storage;  // [n_blocks][block_bytes]
  std::vector<uint8_t*> blocks;  // in token order

  PagedCache(const KVLayout& l, int64_t n_tokens, uint8_t fill) : layout(l) {
    const int64_t n = (n_tokens + l.block_tokens - 1) / l.block_tokens;
    storage.assign(static_cast<size_t>(n) * l.block_bytes(), fill);
    for (int64_t b = n - 1; b >= 0; --b) blocks.push_back(storage.data() + b * l.block_bytes());
  }
  PagedKVView view(int64_t layer) const {
    return PagedKVView{&layout, blocks.data(), static_cast<int64_t>(blocks.size()), layer};
  }
};

struct Shape {
  int64_t n_kv_heads, group, head_dim;
  int64_t pos0, T;  // queries at positions pos0 .. pos0+T-1 over a context of pos0+T keys
  int64_t window;   // 0: none
  int64_t block_tokens;
  std::string str() const {
    return "nkv" + std::to_string(n_kv_heads) + "/g" + std::to_string(group) + "/hd" +
           std::to_string(head_dim) + "/pos0=" + std::to_string(pos0) + "/T" + std::to_string(T) +
           "/win" + std::to_string(window) + "/bt" + std::to_string(block_tokens);
  }
};

// q8_0/q4_0 need head_dim and block_tokens multiples of 32 (validate_kv_layout).
bool fits(const Shape& s, DType t) {
  return !is_quantized(t) || (s.head_dim % 32 == 0 && s.block_tokens % 32 == 0);
}

const std::vector<Shape>& shapes() {
  static const std::vector<Shape> s = {
      {1, 1, 32, 0, 1, 0, 32},       // a single key
      {1, 1, 32, 5, 1, 0, 32},       // decode inside the first block
      {2, 2, 64, 31, 2, 0, 32},      // crosses the first block boundary
      {1, 4, 128, 100, 1, 0, 32},    // decode over 4 blocks, GQA 4
      {2, 4, 128, 250, 50, 0, 32},   // chunked prefill up to 300 keys
      {8, 1, 64, 77, 40, 0, 64},     // MHA, 8 heads, 64-token blocks
      {4, 2, 32, 290, 10, 0, 32},    // 300 keys, hd 32
      {2, 2, 64, 200, 7, 64, 32},    // sliding window of 64, window start inside a block
      {1, 4, 128, 150, 3, 37, 32},   // window of 37 (odd start)
      {3, 1, 128, 1, 299, 100, 32},  // prefill of 300 tokens with a window of 100
      {2, 1, 256, 60, 4, 0, 32},     // the largest head dim of the AVX-512 kernel
      {2, 2, 96, 70, 5, 0, 32},      // 3 quantization groups, hd known only at run time
      {1, 2, 80, 40, 3, 0, 16},      // 16-token blocks, hd 80 (float types only)
      {2, 1, 64, 100, 1, 20, 16},    // 16-token blocks with a window (float types only)
  };
  return s;
}

struct Inputs {
  std::vector<float> q;     // [T, nh, hd]
  std::vector<float> k, v;  // [pos0+T, nkv, hd], unrounded
};

Inputs random_inputs(const Shape& s, std::mt19937& rng) {
  const int64_t nh = s.n_kv_heads * s.group, n = s.pos0 + s.T;
  std::normal_distribution<float> dist(0.f, 1.f);
  Inputs in;
  in.q.resize(s.T * nh * s.head_dim);
  in.k.resize(n * s.n_kv_heads * s.head_dim);
  in.v.resize(in.k.size());
  // Scores of standard deviation 1.5 make the softmax peakier than uniform. (Real K caches
  // also have a few large channels; those make q4_0 much worse: see docs/cache-format.md.)
  for (float& x : in.q) x = 1.5f * dist(rng);
  for (float& x : in.k) x = dist(rng);
  for (float& x : in.v) x = dist(rng);
  return in;
}

// Stores keys and values for positions [0, pos0) and [pos0, pos0+T) in two calls, as a
// prefill followed by a later chunk, into layer 1 of a two-layer cache.
PagedCache fill_cache(const Shape& s, DType dtype, const Inputs& in, uint8_t fill = 0x5a) {
  KVLayout layout{2, s.n_kv_heads, s.head_dim, s.block_tokens, dtype};
  PagedCache cache(layout, s.pos0 + s.T, fill);
  const int64_t width = s.n_kv_heads * s.head_dim;
  PagedKVView view = cache.view(1);
  if (s.pos0 > 0) kv_store(in.k.data(), in.v.data(), s.pos0, 0, view);
  kv_store(in.k.data() + s.pos0 * width, in.v.data() + s.pos0 * width, s.T, s.pos0, view);
  return cache;
}

std::vector<float> run_attention(const Shape& s, const PagedCache& cache, const Inputs& in,
                                 ThreadPool& pool) {
  const int64_t nh = s.n_kv_heads * s.group;
  std::vector<float> out(in.q.size(), std::nanf(""));
  attention(in.q.data(), s.T, nh, s.pos0, cache.view(1),
            1.0f / std::sqrt(static_cast<float>(s.head_dim)), s.window, out.data(), pool);
  return out;
}

// Attention in double precision on the unrounded keys and values.
std::vector<float> exact_attention(const Shape& s, const Inputs& in) {
  const int64_t nh = s.n_kv_heads * s.group, hd = s.head_dim, nkv = s.n_kv_heads;
  const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
  std::vector<float> out(in.q.size());
  std::vector<double> p;
  for (int64_t t = 0; t < s.T; ++t) {
    const int64_t n_keys = s.pos0 + t + 1;
    const int64_t lo = s.window > 0 && n_keys > s.window ? n_keys - s.window : 0;
    for (int64_t h = 0; h < nh; ++h) {
      const float* q = &in.q[(t * nh + h) * hd];
      const int64_t g = h / s.group;
      p.assign(n_keys, 0.0);
      double mx = -1e300, sum = 0;
      for (int64_t j = lo; j < n_keys; ++j) {
        double dot = 0;
        for (int64_t d = 0; d < hd; ++d)
          dot += static_cast<double>(q[d]) * in.k[(j * nkv + g) * hd + d];
        p[j] = dot * scale;
        mx = std::max(mx, p[j]);
      }
      for (int64_t j = lo; j < n_keys; ++j) sum += p[j] = std::exp(p[j] - mx);
      for (int64_t d = 0; d < hd; ++d) {
        double o = 0;
        for (int64_t j = lo; j < n_keys; ++j) o += p[j] * in.v[(j * nkv + g) * hd + d];
        out[(t * nh + h) * hd + d] = static_cast<float>(o / sum);
      }
    }
  }
  return out;
}

// max |a - b| / max |b|.
double relative_error(const std::vector<float>& a, const std::vector<float>& b) {
  double diff = 0, mag = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, std::fabs(static_cast<double>(a[i]) - b[i]));
    if (std::isnan(a[i])) diff = INFINITY;
    mag = std::max(mag, std::fabs(static_cast<double>(b[i])));
  }
  return diff / mag;
}

// The bound on the generic kernel's error (max |err| / max |out|) against exact attention on
// the unrounded keys and values, per KV type. Measured worst cases over these shapes with seeds
// 11 to 14: f32 1.6e-6, f16 9.1e-4, bf16 6.7e-3, q8_0 2.0e-2, q4_0 2.6e-1.
double accuracy_bound(DType t) {
  switch (t) {
    case DType::F32:
      return 1e-5;
    case DType::F16:
      return 2e-3;
    case DType::BF16:
      return 1.5e-2;
    case DType::Q8_0:
      return 3e-2;
    case DType::Q4_0:
      return 3.5e-1;
    default:
      return 0;
  }
}

// ggml's reference quantizers (ggml-quants.c, quantize_row_q8_0_ref / quantize_row_q4_0_ref)
// for one block of 32 values: the f16 scale and the stored integers.
struct GgmlBlock {
  uint16_t d;
  int q[32];
};

GgmlBlock ggml_q8_0(const float* x) {
  float amax = 0;
  for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[i]));
  const float d = amax / ((1 << 7) - 1);
  const float id = d ? 1.0f / d : 0.0f;
  GgmlBlock b{f32_to_f16(d), {}};
  for (int i = 0; i < 32; ++i) b.q[i] = static_cast<int>(std::roundf(x[i] * id));
  return b;
}

GgmlBlock ggml_q4_0(const float* x) {
  float amax = 0, max = 0;
  for (int i = 0; i < 32; ++i) {
    if (amax < std::fabs(x[i])) {
      amax = std::fabs(x[i]);
      max = x[i];
    }
  }
  const float d = max / -8;
  const float id = d ? 1.0f / d : 0.0f;
  GgmlBlock b{f32_to_f16(d), {}};
  for (int i = 0; i < 32; ++i)
    b.q[i] = std::min(15, static_cast<int>(static_cast<int8_t>(x[i] * id + 8.5f)));
  return b;
}

// Keys or values [n, nkv, hd] (hd % 32 == 0) replaced by ggml's dequantization of them, (q - zero)
// * d per group.
std::vector<float> ggml_roundtrip(const std::vector<float>& x, DType dtype) {
  std::vector<float> y(x.size());
  for (size_t i = 0; i < x.size(); i += 32) {
    const GgmlBlock b = dtype == DType::Q8_0 ? ggml_q8_0(&x[i]) : ggml_q4_0(&x[i]);
    const int zero = dtype == DType::Q8_0 ? 0 : 8;
    for (int j = 0; j < 32; ++j) y[i + j] = static_cast<float>(b.q[j] - zero) * f16_to_f32(b.d);
  }
  return y;
}

TEST(Attention, Avx512MatchesGenericForEveryKVType) {
  if (detected_simd_level() < SimdLevel::AVX512) GTEST_SKIP() << "no AVX-512 on this CPU";
  ThreadPool pool(2);
  std::mt19937 rng(7);
  for (const Shape& s : shapes()) {
    const Inputs in = random_inputs(s, rng);
    for (DType dtype : kKVTypes) {
      if (!fits(s, dtype)) continue;
      const PagedCache cache = fill_cache(s, dtype, in);
      std::vector<float> generic;
      {
        ScopedSimdLevel level(SimdLevel::Generic);
        generic = run_attention(s, cache, in, pool);
      }
      std::vector<float> simd;
      {
        ScopedSimdLevel level(SimdLevel::AVX512);
        simd = run_attention(s, cache, in, pool);
      }
      // Both read the same (de)quantized values; they differ only in summation order and exp.
      EXPECT_LT(relative_error(simd, generic), 1e-5) << dtype_name(dtype) << " " << s.str();
    }
  }
}

TEST(Attention, GenericIsCloseToExactAttentionForEveryKVType) {
  ScopedSimdLevel level(SimdLevel::Generic);
  ThreadPool pool(2);
  std::mt19937 rng(11);
  for (DType dtype : kKVTypes) {
    double worst = 0;
    for (const Shape& s : shapes()) {
      const Inputs in = random_inputs(s, rng);
      if (!fits(s, dtype)) continue;
      const double err = relative_error(run_attention(s, fill_cache(s, dtype, in), in, pool),
                                        exact_attention(s, in));
      EXPECT_LT(err, accuracy_bound(dtype)) << dtype_name(dtype) << " " << s.str();
      worst = std::max(worst, err);
    }
    RecordProperty(std::string("worst_rel_err_") + std::string(dtype_name(dtype)),
                   std::to_string(worst));
    std::printf("%-5s worst max|err|/max|out| vs exact attention: %.3g\n",
                std::string(dtype_name(dtype)).c_str(), worst);
  }
}

// A query row's output does not depend on how the queries are batched: the same bits whether
// the T tokens are one call (a prefill chunk), T calls of one token (decode steps) or another
// thread count. Restored and recomputed prefixes agree exactly in attention because of this.
TEST(Attention, EachRowIsBitIdenticalHoweverTheQueriesAreBatched) {
  ThreadPool pool2(2), pool1(1);
  std::mt19937 rng(17);
  for (SimdLevel simd : {SimdLevel::Generic, SimdLevel::AVX512}) {
    if (simd > detected_simd_level()) continue;
    ScopedSimdLevel level(simd);
    for (const Shape& s : shapes()) {
      const Inputs in = random_inputs(s, rng);
      const int64_t nh = s.n_kv_heads * s.group, row = nh * s.head_dim;
      for (DType dtype : kKVTypes) {
        if (!fits(s, dtype)) continue;
        const PagedCache cache = fill_cache(s, dtype, in);
        const std::vector<float> batched = run_attention(s, cache, in, pool2);
        std::vector<float> one_by_one(batched.size());
        for (int64_t t = 0; t < s.T; ++t) {
          Shape st = s;
          st.pos0 = s.pos0 + t;
          st.T = 1;
          Inputs it;
          it.q.assign(in.q.begin() + t * row, in.q.begin() + (t + 1) * row);
          const std::vector<float> o = run_attention(st, cache, it, pool1);
          std::copy(o.begin(), o.end(), one_by_one.begin() + t * row);
        }
        ASSERT_EQ(std::memcmp(batched.data(), one_by_one.data(), batched.size() * sizeof(float)),
                  0)
            << dtype_name(dtype) << " " << simd_level_name(simd) << " " << s.str();
      }
    }
  }
}

// Slots of a block past the last written token hold whatever the pool left there (NaN bytes
// here): they must never reach the output.
TEST(Attention, UnwrittenSlotsOfTheLastBlockAreNeverRead) {
  ThreadPool pool(2);
  std::mt19937 rng(19);
  for (SimdLevel simd : {SimdLevel::Generic, SimdLevel::AVX512}) {
    if (simd > detected_simd_level()) continue;
    ScopedSimdLevel level(simd);
    for (const Shape& s : shapes()) {
      const Inputs in = random_inputs(s, rng);
      for (DType dtype : kKVTypes) {
        if (!fits(s, dtype)) continue;
        const std::vector<float> clean = run_attention(s, fill_cache(s, dtype, in, 0x00), in, pool);
        const std::vector<float> nan = run_attention(s, fill_cache(s, dtype, in, 0xff), in, pool);
        ASSERT_EQ(std::memcmp(clean.data(), nan.data(), clean.size() * sizeof(float)), 0)
            << dtype_name(dtype) << " " << simd_level_name(simd) << " " << s.str();
      }
    }
  }
}

// On q8_0/q4_0 the kernels compute attention over exactly ggml's dequantized keys and values:
// all of their error is the quantization's.
TEST(Attention, QuantizedIsExactAttentionOverGgmlDequantizedValues) {
  ThreadPool pool(2);
  std::mt19937 rng(13);
  for (SimdLevel simd : {SimdLevel::Generic, SimdLevel::AVX512}) {
    if (simd > detected_simd_level()) continue;
    ScopedSimdLevel level(simd);
    for (const Shape& s : shapes()) {
      const Inputs in = random_inputs(s, rng);
      for (DType dtype : {DType::Q8_0, DType::Q4_0}) {
        if (!fits(s, dtype)) continue;
        Inputs rounded = in;
        rounded.k = ggml_roundtrip(in.k, dtype);
        rounded.v = ggml_roundtrip(in.v, dtype);
        EXPECT_LT(relative_error(run_attention(s, fill_cache(s, dtype, in), in, pool),
                                 exact_attention(s, rounded)),
                  1e-5)
            << dtype_name(dtype) << " " << simd_level_name(simd) << " " << s.str();
      }
    }
  }
}

uint16_t u16_at(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return h;
}

// The stored bytes follow the layout documented in ops/paged_kv.h and docs/cache-format.md
// (the SSD tier persists them) and equal ggml's quantization of each token's head vector.
TEST(KVStore, QuantizedBlocksAreGgmlBlocksInTheDocumentedLayout) {
  std::mt19937 rng(3);
  std::normal_distribution<float> dist(0.f, 1.f);
  const int64_t nkv = 2, hd = 64, bt = 32, n_tokens = 40, groups = hd / 32;
  std::vector<float> k(n_tokens * nkv * hd), v(k.size());
  for (size_t i = 0; i < k.size(); ++i) {
    k[i] = dist(rng) * (i % 7 == 0 ? 5.f : 1.f);
    v[i] = dist(rng);
  }
  k[5] = 0;  // an all-zero group: scale 0, values 0
  for (int i = 0; i < 32; ++i) k[hd + i] = 0;
  for (DType dtype : {DType::Q8_0, DType::Q4_0}) {
    KVLayout layout{3, nkv, hd, bt, dtype};
    PagedCache cache(layout, n_tokens, 0xff);
    for (int64_t t = 0; t < n_tokens; ++t)  // one token at a time, as decode does
      kv_store(k.data() + t * nkv * hd, v.data() + t * nkv * hd, 1, t, cache.view(2));
    for (int64_t t = 0; t < n_tokens; ++t) {
      const uint8_t* block = cache.blocks[t / bt];
      const int64_t j = t % bt;
      for (int64_t h = 0; h < nkv; ++h) {
        const uint8_t* kh = block + layout.k_offset(2) + h * layout.head_bytes();
        const uint8_t* vh = block + layout.v_offset(2) + h * layout.head_bytes();
        for (int64_t g = 0; g < groups; ++g) {
          const float* kx = &k[(t * nkv + h) * hd + g * 32];
          const float* vx = &v[(t * nkv + h) * hd + g * 32];
          GgmlBlock kb = dtype == DType::Q8_0 ? ggml_q8_0(kx) : ggml_q4_0(kx);
          GgmlBlock vb = dtype == DType::Q8_0 ? ggml_q8_0(vx) : ggml_q4_0(vx);
          // Scales: K [groups][bt], V [bt][groups], after the values.
          const size_t values = dtype == DType::Q8_0 ? hd * bt : hd * bt / 2;
          ASSERT_EQ(u16_at(kh + values + 2 * (g * bt + j)), kb.d) << t << " " << h << " " << g;
          ASSERT_EQ(u16_at(vh + values + 2 * (j * groups + g)), vb.d) << t << " " << h << " " << g;
          for (int64_t i = 0; i < 32; ++i) {
            const int64_t d = g * 32 + i;
            int kq, vq;
            if (dtype == DType::Q8_0) {  // int8, K [hd][bt], V [bt][hd]
              kq = static_cast<int8_t>(kh[d * bt + j]);
              vq = static_cast<int8_t>(vh[j * hd + d]);
            } else {  // nibbles, low first: K two tokens per byte, V two dims per byte
              kq = (kh[d * (bt / 2) + j / 2] >> (4 * (j % 2))) & 0xf;
              vq = (vh[j * (hd / 2) + d / 2] >> (4 * (d % 2))) & 0xf;
            }
            ASSERT_EQ(kq, kb.q[i]) << dtype_name(dtype) << " K t" << t << " h" << h << " d" << d;
            ASSERT_EQ(vq, vb.q[i]) << dtype_name(dtype) << " V t" << t << " h" << h << " d" << d;
          }
        }
      }
    }
  }
}

// Writing tokens one by one, or in chunks, over blocks that hold stale bytes gives the same
// cache: a token's bytes never depend on its neighbours (q4_0 packs two tokens per K byte).
TEST(KVStore, TokenByTokenEqualsOneCall) {
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> dist(-3.f, 3.f);
  const int64_t nkv = 2, hd = 32, n_tokens = 70;
  std::vector<float> k(n_tokens * nkv * hd), v(k.size());
  for (size_t i = 0; i < k.size(); ++i) k[i] = dist(rng), v[i] = dist(rng);
  for (DType dtype : kKVTypes) {
    KVLayout layout{1, nkv, hd, 32, dtype};
    PagedCache whole(layout, n_tokens, 0xa5), steps(layout, n_tokens, 0x3c);
    std::vector<uint8_t> stale(whole.storage.size());
    for (auto& b : stale) b = static_cast<uint8_t>(rng());
    whole.storage = stale;
    steps.storage = stale;
    kv_store(k.data(), v.data(), n_tokens, 0, whole.view(0));
    for (int64_t t = n_tokens - 1; t >= 0; --t)  // backwards: neighbours written later
      kv_store(k.data() + t * nkv * hd, v.data() + t * nkv * hd, 1, t, steps.view(0));
    EXPECT_TRUE(whole.storage == steps.storage) << dtype_name(dtype);
  }
}

TEST(KVLayout, QuantizedSizesAreGgmlBlockSizes) {
  // ggml's block_q8_0 is 34 bytes per 32 values, block_q4_0 18 bytes.
  KVLayout q8{28, 8, 128, 32, DType::Q8_0}, q4{28, 8, 128, 32, DType::Q4_0},
      f16{28, 8, 128, 32, DType::F16};
  EXPECT_EQ(q8.head_bytes(), 128u * 32 * 34 / 32);
  EXPECT_EQ(q4.head_bytes(), 128u * 32 * 18 / 32);
  EXPECT_EQ(q8.bytes_per_token(), 28u * 2 * 8 * 128 * 34 / 32);
  EXPECT_EQ(q4.bytes_per_token(), 28u * 2 * 8 * 128 * 18 / 32);
  EXPECT_EQ(f16.bytes_per_token(), 28u * 2 * 8 * 128 * 2);
  EXPECT_EQ(q8.block_bytes(), q8.bytes_per_token() * 32);
  EXPECT_EQ(q8.v_offset(3) - q8.k_offset(3), q8.slab_bytes());
  EXPECT_EQ(q8.k_offset(4), 2 * 4 * q8.slab_bytes());
  EXPECT_EQ(dtype_name(DType::Q8_0), "q8_0");
  EXPECT_EQ(dtype_name(DType::Q4_0), "q4_0");
}

TEST(KVLayout, QuantizedTypesNeedGroupsOf32) {
  auto message = [](const KVLayout& l) -> std::string {
    try {
      validate_kv_layout(l);
    } catch (const InputError& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_EQ(message({2, 2, 40, 32, DType::F16}), "");
  EXPECT_EQ(message({2, 2, 64, 64, DType::Q4_0}), "");
  const std::string hd40 = message({2, 2, 40, 32, DType::Q8_0});
  EXPECT_NE(hd40.find("q8_0"), std::string::npos) << hd40;
  EXPECT_NE(hd40.find("40"), std::string::npos) << hd40;
  const std::string bt16 = message({2, 2, 64, 16, DType::Q4_0});
  EXPECT_NE(bt16.find("q4_0"), std::string::npos) << bt16;
  EXPECT_NE(bt16.find("16 tokens"), std::string::npos) << bt16;
  EXPECT_NE(message({2, 2, 64, 24, DType::F16}).find("24"), std::string::npos);

  // The ops entry points refuse such a layout rather than write past a head's bytes.
  KVLayout bad{1, 1, 40, 32, DType::Q8_0};
  std::vector<uint8_t> block(4096);
  uint8_t* blocks[] = {block.data()};
  PagedKVView view{&bad, blocks, 1, 0};
  std::vector<float> kv(40), q(40), out(40);
  ThreadPool pool(1);
  ops::Context ctx;
  ctx.pool = &pool;
  Tensor k(kv.data(), DType::F32, {1, 40}), qt(q.data(), DType::F32, {1, 1, 40}),
      o(out.data(), DType::F32, {1, 40});
  EXPECT_THROW(ops::kv_store(k, k, 0, view, ctx), InputError);
  EXPECT_THROW(ops::attention(qt, 0, view, 1.f, 0, o, ctx), InputError);
}

}  // namespace
}  // namespace hwledger::cpu
