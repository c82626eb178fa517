// The CPU attention over a paged KV cache, for every KV element type (f32, f16, bf16, q8_0,
// q4_0, fp8): the AVX-512 kernel against the generic one, the generic one against exact attention
// on the unrounded keys and values, the q8_0/q4_0 bytes against ggml's quantizers, the fp8 e4m3
// encoder and decoder on every code and the fp8 bytes against a brute-force reference, and the
// layout checks.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "ops/cpu/kernels_cpu.h"
#include "ops/cpu/simd.h"
#include "ops/ops.h"
#include "util/error.h"

namespace hwledger::cpu {
namespace {

constexpr DType kKVTypes[] = {DType::F32,  DType::F16,  DType::BF16,
                              DType::Q8_0, DType::Q4_0, DType::F8_E4M3};

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

// q8_0/q4_0/fp8 need head_dim and block_tokens multiples of 32 (validate_kv_layout).
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
// 11 to 14: f32 1.6e-6, f16 9.1e-4, bf16 6.7e-3, q8_0 2.0e-2, q4_0 2.6e-1, fp8 7.2e-2.
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
    case DType::F8_E4M3:
      return 1.2e-1;
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

// ---- fp8 (e4m3) ------------------------------------------------------------------------------

// The value of e4m3fn code b from the format's definition (sign, 4 exponent bits of bias 7, 3
// mantissa bits, subnormals at exponent 0), in double.
double e4m3_value(int b) {
  const int e = (b >> 3) & 15, m = b & 7;
  const double v = e == 0 ? std::ldexp(m, -9) : std::ldexp(8 + m, e - 10);
  return (b & 0x80) ? -v : v;
}

// The nearest finite e4m3 code to x by search over all codes (ties to the even code), saturated
// to +-448; NaN gives +0, and the sign of x is kept (-0 for tiny negatives).
uint8_t nearest_e4m3(double x) {
  static const std::vector<double> value = [] {
    std::vector<double> v(0x7f);
    for (int b = 0; b < 0x7f; ++b) v[b] = e4m3_value(b);
    return v;
  }();
  if (std::isnan(x)) return 0;
  const double a = std::fabs(x);
  int best = 0;
  for (int b = 1; b <= 0x7e; ++b) {
    const double d = std::fabs(value[b] - a), db = std::fabs(value[best] - a);
    if (d < db || (d == db && (b & 1) == 0)) best = b;
  }
  return static_cast<uint8_t>((std::signbit(x) ? 0x80 : 0) | best);
}

// The documented fp8 group: d = f16(max(amax / 448, 2^-14)) (at most 65504), codes nearest
// to x / d.
struct Fp8Group {
  uint16_t d;
  uint8_t q[32];
};
Fp8Group reference_fp8(const float* x) {
  float amax = 0;
  for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[i]));
  Fp8Group g{f32_to_f16(std::min(std::max(amax / 448.0f, std::ldexp(1.0f, -14)), 65504.0f)), {}};
  const float d = f16_to_f32(g.d);
  for (int i = 0; i < 32; ++i) g.q[i] = nearest_e4m3(static_cast<double>(x[i] / d));
  return g;
}

// Keys or values [n, nkv, hd] (hd % 32 == 0) replaced by their fp8 dequantization, e4m3(q) * d.
std::vector<float> fp8_roundtrip(const std::vector<float>& x) {
  std::vector<float> y(x.size());
  for (size_t i = 0; i < x.size(); i += 32) {
    const Fp8Group g = reference_fp8(&x[i]);
    for (int j = 0; j < 32; ++j)
      y[i + j] = static_cast<float>(e4m3_value(g.q[j])) * f16_to_f32(g.d);
  }
  return y;
}

std::string hex(int b) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "0x%02x", b);
  return buf;
}

TEST(Fp8, EveryCodeDecodesToItsValueAndEncodesBack) {
  for (int b = 0; b < 256; ++b) {
    const uint8_t c = static_cast<uint8_t>(b);
    const float v = e4m3_to_f32(c);
    // The f16 shortcut of the SIMD and GPU decoders: the same value times 2^-8, exactly.
    const float via_f16 = f16_to_f32(e4m3_to_f16_bits_div256(c)) * 256.0f;
    EXPECT_EQ(std::memcmp(&v, &via_f16, 4), 0) << hex(b) << ": " << v << " vs " << via_f16;
    if ((b & 0x7f) == 0x7f) {  // e4m3fn's NaN codes: never written, read as +-480
      EXPECT_EQ(v, b & 0x80 ? -480.0f : 480.0f) << hex(b);
      continue;
    }
    EXPECT_EQ(static_cast<double>(v), e4m3_value(b)) << hex(b);
    EXPECT_EQ(f32_to_e4m3(v), c) << hex(b) << " = " << v;
    EXPECT_EQ(std::signbit(v), (b & 0x80) != 0) << hex(b);
  }
  EXPECT_EQ(e4m3_to_f32(0x7e), 448.0f);
  EXPECT_EQ(e4m3_to_f32(0x01), std::ldexp(1.0f, -9));      // the smallest subnormal
  EXPECT_EQ(e4m3_to_f32(0x07), 7 * std::ldexp(1.0f, -9));  // the largest subnormal
  EXPECT_EQ(e4m3_to_f32(0x08), std::ldexp(1.0f, -6));      // the smallest normal
}

TEST(Fp8, EncoderRoundsToNearestEvenSaturatesAndNeverWritesNaN) {
  const float inf = std::numeric_limits<float>::infinity(), sub = std::ldexp(1.0f, -9);
  struct Case {
    float x;
    int code;
  };
  const Case cases[] = {
      {0.0f, 0x00},          {-0.0f, 0x80},          {sub, 0x01},    {-sub, 0x81},
      {sub / 2, 0x00},       {-sub / 2, 0x80},    // ties to even (0)
      {sub * 0.51f, 0x01},   {sub * 1.5f, 0x02},  // 1.5 subnormal steps: tie to 2
      {sub * 2.5f, 0x02},    {sub * 7.5f, 0x08},  // 7.5: up to the smallest normal
      {1.0f, 0x38},          {1.0625f, 0x38},     // halfway 1 .. 1.125: to even 1
      {1.1875f, 0x3a},       {-1.125f, 0xb9},     // halfway 1.125 .. 1.25: to even 1.25
      {448.0f, 0x7e},        {449.0f, 0x7e},         {464.0f, 0x7e}, {480.0f, 0x7e},
      {1e30f, 0x7e},         {-1e30f, 0xfe},         {inf, 0x7e},    {-inf, 0xfe},
      {416.0f, 0x7d},        {432.0f, 0x7e},  // 432 halfway 416 .. 448: to even 448
      {std::nanf(""), 0x00}, {-std::nanf(""), 0x00},
  };
  for (const Case& c : cases)
    EXPECT_EQ(f32_to_e4m3(c.x), c.code) << c.x << ": got " << hex(f32_to_e4m3(c.x));
  // Every midpoint between neighbouring codes goes to the even one, and one f32 step either
  // side of it to the nearer one.
  for (int b = 0; b < 0x7e; ++b) {
    const float lo = e4m3_to_f32(static_cast<uint8_t>(b)),
                hi = e4m3_to_f32(static_cast<uint8_t>(b + 1));
    const float mid = (lo + hi) / 2;  // exact: 4 significant bits at most
    EXPECT_EQ(f32_to_e4m3(mid), (b & 1) ? b + 1 : b) << "midpoint " << mid;
    EXPECT_EQ(f32_to_e4m3(-mid), 0x80 | ((b & 1) ? b + 1 : b)) << "midpoint " << -mid;
    EXPECT_EQ(f32_to_e4m3(std::nextafter(mid, 0.0f)), b) << "below " << mid;
    EXPECT_EQ(f32_to_e4m3(std::nextafter(mid, 1e9f)), b + 1) << "above " << mid;
  }
  // A sweep of every 997th finite f32 and its negation against the search over all codes.
  int64_t bad = 0;
  for (uint32_t u = 0; u < 0x7f800000u; u += 997)
    for (uint32_t s : {0u, 0x80000000u}) {
      float x;
      const uint32_t bits = u | s;
      std::memcpy(&x, &bits, 4);
      if (std::fabs(x) > 600 || std::fabs(x) < 1e-4) {
        const uint8_t c = f32_to_e4m3(x);  // far outside: only saturation / zero
        if ((c & 0x7f) != (std::fabs(x) > 600 ? 0x7e : 0) && bad++ < 5)
          ADD_FAILURE() << x << " -> " << hex(c);
        continue;
      }
      const uint8_t got = f32_to_e4m3(x), want = nearest_e4m3(x);
      if (got != want && bad++ < 5)
        ADD_FAILURE() << std::hexfloat << x << ": " << hex(got) << ", nearest even " << hex(want);
    }
  EXPECT_EQ(bad, 0);
}

TEST(Fp8, GroupScaleIsAmaxOver448WithinF16sNormalRange) {
  EXPECT_EQ(f16_to_f32(fp8_group_scale(448.0f)), 1.0f);
  EXPECT_EQ(f16_to_f32(fp8_group_scale(1.0f)), f16_to_f32(f32_to_f16(1.0f / 448)));
  EXPECT_EQ(f16_to_f32(fp8_group_scale(0.0f)), std::ldexp(1.0f, -14));   // all-zero group
  EXPECT_EQ(f16_to_f32(fp8_group_scale(1e-3f)), std::ldexp(1.0f, -14));  // not subnormal
  EXPECT_EQ(f16_to_f32(fp8_group_scale(1e9f)), 65504.0f);
  EXPECT_EQ(f16_to_f32(fp8_group_scale(std::numeric_limits<float>::infinity())), 65504.0f);
}

// The stored fp8 bytes: q8_0's layout with e4m3 codes, equal to the brute-force reference.
TEST(KVStore, Fp8BlocksAreTheReferenceQuantizationInTheDocumentedLayout) {
  std::mt19937 rng(23);
  std::normal_distribution<float> dist(0.f, 1.f);
  const int64_t nkv = 2, hd = 64, bt = 32, n_tokens = 40, groups = hd / 32;
  std::vector<float> k(n_tokens * nkv * hd), v(k.size());
  for (size_t i = 0; i < k.size(); ++i) {
    k[i] = dist(rng) * (i % 7 == 0 ? 50.f : 1.f);     // outliers: many values far below amax
    v[i] = dist(rng) * (i % 200 < 32 ? 1e-4f : 1.f);  // some tiny groups: the 2^-14 scale
  }
  for (int i = 0; i < 32; ++i) k[hd + i] = 0;  // an all-zero group
  k[3] = -0.0f;
  v[7] = 1e6f;  // saturates nothing: its group's scale follows it
  KVLayout layout{3, nkv, hd, bt, DType::F8_E4M3};
  PagedCache cache(layout, n_tokens, 0xff);
  for (int64_t t = 0; t < n_tokens; ++t)
    kv_store(k.data() + t * nkv * hd, v.data() + t * nkv * hd, 1, t, cache.view(2));
  for (int64_t t = 0; t < n_tokens; ++t) {
    const uint8_t* block = cache.blocks[t / bt];
    const int64_t j = t % bt;
    for (int64_t h = 0; h < nkv; ++h) {
      const uint8_t* kh = block + layout.k_offset(2) + h * layout.head_bytes();
      const uint8_t* vh = block + layout.v_offset(2) + h * layout.head_bytes();
      for (int64_t g = 0; g < groups; ++g) {
        const Fp8Group kr = reference_fp8(&k[(t * nkv + h) * hd + g * 32]);
        const Fp8Group vr = reference_fp8(&v[(t * nkv + h) * hd + g * 32]);
        const size_t values = hd * bt;  // one byte each; scales K [groups][bt], V [bt][groups]
        ASSERT_EQ(u16_at(kh + values + 2 * (g * bt + j)), kr.d)
            << "K t" << t << " h" << h << " g" << g;
        ASSERT_EQ(u16_at(vh + values + 2 * (j * groups + g)), vr.d)
            << "V t" << t << " h" << h << " g" << g;
        for (int64_t i = 0; i < 32; ++i) {
          const int64_t d = g * 32 + i;
          ASSERT_EQ(kh[d * bt + j], kr.q[i]) << "K t" << t << " h" << h << " d" << d;  // [hd][bt]
          ASSERT_EQ(vh[j * hd + d], vr.q[i]) << "V t" << t << " h" << h << " d" << d;  // [bt][hd]
        }
      }
    }
  }
}

// Both kernels compute attention over exactly the dequantized fp8 keys and values.
TEST(Attention, Fp8IsExactAttentionOverItsDequantizedValues) {
  ThreadPool pool(2);
  std::mt19937 rng(29);
  for (SimdLevel simd : {SimdLevel::Generic, SimdLevel::AVX512}) {
    if (simd > detected_simd_level()) continue;
    ScopedSimdLevel level(simd);
    for (const Shape& s : shapes()) {
      if (!fits(s, DType::F8_E4M3)) continue;
      const Inputs in = random_inputs(s, rng);
      Inputs rounded = in;
      rounded.k = fp8_roundtrip(in.k);
      rounded.v = fp8_roundtrip(in.v);
      EXPECT_LT(relative_error(run_attention(s, fill_cache(s, DType::F8_E4M3, in), in, pool),
                               exact_attention(s, rounded)),
                1e-5)
          << simd_level_name(simd) << " " << s.str();
    }
  }
}

// fp8 KV against f32 KV (the same kernel): max |err| / max |out| over every shape, per SIMD
// level. Measured worst over seeds 31 to 34: 7.9e-2, relative L2 5.1e-2 (q8_0 under the same
// test: 1.9e-2): e4m3's 3 mantissa bits (relative step 1/16 to 1/8) cost more than int8's
// amax/127 steps on Gaussian data, less on values far below their group's largest.
TEST(Attention, Fp8IsCloseToF32KV) {
  ThreadPool pool(2);
  for (SimdLevel simd : {SimdLevel::Generic, SimdLevel::AVX512}) {
    if (simd > detected_simd_level()) continue;
    ScopedSimdLevel level(simd);
    std::mt19937 rng(31);
    double worst = 0, worst_q8 = 0, worst_l2 = 0;
    for (const Shape& s : shapes()) {
      if (!fits(s, DType::F8_E4M3)) continue;
      const Inputs in = random_inputs(s, rng);
      const std::vector<float> f32 = run_attention(s, fill_cache(s, DType::F32, in), in, pool);
      const std::vector<float> f8 = run_attention(s, fill_cache(s, DType::F8_E4M3, in), in, pool);
      const double err = relative_error(f8, f32);
      EXPECT_LT(err, 1.2e-1) << simd_level_name(simd) << " " << s.str();
      worst = std::max(worst, err);
      double d2 = 0, n2 = 0;
      for (size_t i = 0; i < f32.size(); ++i) {
        d2 += (static_cast<double>(f8[i]) - f32[i]) * (static_cast<double>(f8[i]) - f32[i]);
        n2 += static_cast<double>(f32[i]) * f32[i];
      }
      worst_l2 = std::max(worst_l2, std::sqrt(d2 / n2));
      worst_q8 =
          std::max(worst_q8,
                   relative_error(run_attention(s, fill_cache(s, DType::Q8_0, in), in, pool), f32));
    }
    std::printf(
        "%s: fp8 KV vs f32 KV worst max|err|/max|out| %.3g, relative L2 %.3g (q8_0: %.3g)\n",
        std::string(simd_level_name(simd)).c_str(), worst, worst_l2, worst_q8);
    RecordProperty("fp8_vs_f32_" + std::string(simd_level_name(simd)), std::to_string(worst));
  }
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
  // fp8: q8_0's layout, one e4m3 byte per value plus an f16 scale per 32 (34 bytes per 32).
  KVLayout f8{28, 8, 128, 32, DType::F8_E4M3};
  EXPECT_EQ(f8.head_value_bytes(), 128u * 32);
  EXPECT_EQ(f8.head_bytes(), q8.head_bytes());
  EXPECT_EQ(f8.bytes_per_token(), q8.bytes_per_token());
  EXPECT_EQ(dtype_name(DType::F8_E4M3), "fp8");
  EXPECT_EQ(static_cast<int>(DType::F8_E4M3), 6);  // stored in SSD headers
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
  const std::string f8 = message({2, 2, 40, 32, DType::F8_E4M3});
  EXPECT_NE(f8.find("fp8"), std::string::npos) << f8;
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
