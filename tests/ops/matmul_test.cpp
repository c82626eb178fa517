// The CPU matmul at every SIMD level this machine has, against the plain reference loop on
// random inputs of awkward shapes, and against PyTorch's logits for the qwen3-tiny golden model.
#include "ops/cpu/matmul_cpu.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "ops/cpu/matmul_bf16.h"
#include "ops/cpu/simd.h"
#include "util/error.h"

namespace hwledger::cpu {
namespace {

std::vector<SimdLevel> available_levels() {
  std::vector<SimdLevel> levels;
  for (SimdLevel l : {SimdLevel::Generic, SimdLevel::AVX2, SimdLevel::AVX512})
    if (l <= detected_simd_level()) levels.push_back(l);
  return levels;
}

// Forces a SIMD level for the lifetime of the object.
class ScopedSimdLevel {
 public:
  explicit ScopedSimdLevel(SimdLevel level) { set_simd_level(level); }
  ~ScopedSimdLevel() { reset_simd_level(); }
};

// A weight matrix [N, K] in one dtype, plus its exact fp32 values.
struct Weights {
  std::vector<uint16_t> half;  // F16 / BF16 storage
  std::vector<float> full;     // F32 storage, and the exact values for every dtype
  DType type;
  const void* data() const {
    return type == DType::F32 ? static_cast<const void*>(full.data()) : half.data();
  }
};

Weights random_weights(DType type, int64_t N, int64_t K, std::mt19937& rng) {
  std::normal_distribution<float> dist(0.f, 1.f);
  Weights w{{}, std::vector<float>(N * K), type};
  if (type != DType::F32) w.half.resize(N * K);
  for (int64_t i = 0; i < N * K; ++i) {
    float v = dist(rng);
    if (type == DType::BF16) {
      w.half[i] = f32_to_bf16(v);
      v = bf16_to_f32(w.half[i]);
    } else if (type == DType::F16) {
      w.half[i] = f32_to_f16(v);
      v = f16_to_f32(w.half[i]);
    }
    w.full[i] = v;
  }
  return w;
}

std::vector<float> random_vector(size_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(-2.f, 2.f);
  std::vector<float> v(n);
  for (float& f : v) f = dist(rng);
  return v;
}

struct Case {
  int64_t M, N, K;
  DType type;
  bool bias, accumulate;
  int threads;
  size_t x_pad, y_pad;  // extra elements per row: ldx = K + x_pad, ldy = N + y_pad
};

std::string describe(const Case& c) {
  return fmt::format(
      "M={} N={} K={} w={} bias={} accumulate={} threads={} ldx=K+{} ldy=N+{} "
      "simd={}",
      c.M, c.N, c.K, dtype_name(c.type), c.bias, c.accumulate, c.threads, c.x_pad, c.y_pad,
      simd_level_name());
}

using MatmulFn = void (*)(const float*, size_t, const void*, DType, const float*, float*, size_t,
                          int64_t, int64_t, int64_t, bool, ThreadPool&);

// Runs `fn` (matmul by default) and matmul_reference on the same fresh random inputs and compares
// every output element with a tolerance relative to the magnitude of its terms. Also checks that
// the padding between rows of y is left untouched. With round_x, the reference sees x rounded to
// bf16 (what matmul_bf16_activations multiplies).
void check_case(const Case& c, uint32_t seed, MatmulFn fn = matmul, bool round_x = false) {
  SCOPED_TRACE(describe(c));
  std::mt19937 rng(seed);
  const size_t ldx = c.K + c.x_pad, ldy = c.N + c.y_pad;
  Weights w = random_weights(c.type, c.N, c.K, rng);
  std::vector<float> x = random_vector(c.M * ldx + 1, rng);
  std::vector<float> bias = random_vector(c.N, rng);
  std::vector<float> y0 = random_vector(c.M * ldy, rng);  // the old y, for accumulate
  std::vector<float> y = y0, y_ref = y0;
  std::vector<float> x_ref = x;
  if (round_x)
    for (float& v : x_ref) v = bf16_to_f32(f32_to_bf16(v));

  ThreadPool pool(c.threads);
  const float* b = c.bias ? bias.data() : nullptr;
  fn(x.data(), ldx, w.data(), c.type, b, y.data(), ldy, c.M, c.N, c.K, c.accumulate, pool);
  matmul_reference(x_ref.data(), ldx, w.data(), c.type, b, y_ref.data(), ldy, c.M, c.N, c.K,
                   c.accumulate);

  int failures = 0;
  for (int64_t m = 0; m < c.M; ++m) {
    for (int64_t n = 0; n < c.N; ++n) {
      double magnitude = 0.0;
      for (int64_t k = 0; k < c.K; ++k)
        magnitude += std::fabs(double{x_ref[m * ldx + k]} * w.full[n * c.K + k]);
      if (c.bias) magnitude += std::fabs(bias[n]);
      if (c.accumulate) magnitude += std::fabs(y0[m * ldy + n]);
      const float got = y[m * ldy + n], want = y_ref[m * ldy + n];
      const double tolerance = 1e-4 * magnitude + 1e-6;
      if (!(std::fabs(double{got} - want) <= tolerance) && ++failures <= 5) {
        ADD_FAILURE() << "y[" << m << ", " << n << "] = " << got << ", reference " << want
                      << ", tolerance " << tolerance;
      }
    }
    for (size_t n = c.N; n < ldy && m * ldy + n < y.size(); ++n)
      if (y[m * ldy + n] != y0[m * ldy + n] && ++failures <= 5)
        ADD_FAILURE() << "padding y[" << m << ", " << n << "] was overwritten";
  }
}

class MatmulAtLevel : public ::testing::TestWithParam<SimdLevel> {
 protected:
  void SetUp() override {
    if (GetParam() > detected_simd_level())
      GTEST_SKIP() << "this CPU has no " << simd_level_name(GetParam());
    set_simd_level(GetParam());
  }
  void TearDown() override { reset_simd_level(); }
};

// Shapes around the kernels' block sizes (16 lanes, 32-column panels, 14-row tiles, 256-deep k
// blocks), degenerate ones, and small versions of the model's.
TEST_P(MatmulAtLevel, MatchesReferenceOnAwkwardShapes) {
  const std::vector<int64_t> Ms = {1, 2, 3, 7, 8, 9, 16, 17, 33, 48, 49};
  const std::vector<std::pair<int64_t, int64_t>> NKs = {{1, 1},   {1, 37},   {5, 1},   {17, 3},
                                                        {33, 16}, {31, 31},  {64, 64}, {47, 65},
                                                        {100, 7}, {96, 300}, {7, 513}, {130, 257}};
  uint32_t seed = 1;
  for (DType type : {DType::F32, DType::F16, DType::BF16})
    for (int64_t M : Ms)
      for (auto [N, K] : NKs) {
        // Cycle the flags through the cases so that every combination is exercised.
        const uint32_t s = seed++;
        Case c{M,
               N,
               K,
               type,
               (s & 1) != 0,
               (s & 2) != 0,
               1 + static_cast<int>(s % 3),
               (s & 4) ? 3u : 0u,
               (s & 8) ? 5u : 0u};
        check_case(c, s);
        if (HasFailure()) return;
      }
}

TEST_P(MatmulAtLevel, EveryFlagCombination) {
  uint32_t seed = 1000;
  for (DType type : {DType::F32, DType::F16, DType::BF16})
    for (auto [M, N, K] :
         {std::tuple<int64_t, int64_t, int64_t>{1, 45, 70}, {5, 45, 70}, {29, 45, 70}})
      for (bool bias : {false, true})
        for (bool accumulate : {false, true})
          for (int threads : {1, 2, 3})
            for (size_t pad : {0u, 9u}) {
              check_case(Case{M, N, K, type, bias, accumulate, threads, pad, pad}, seed++);
              if (HasFailure()) return;
            }
}

// The prefill shape (M = 512) and a decode-sized batch on a model-like weight, with threads.
TEST_P(MatmulAtLevel, MatchesReferenceOnLargeShapes) {
  check_case(Case{512, 96, 200, DType::BF16, true, false, 2, 0, 0}, 7);
  check_case(Case{512, 72, 300, DType::F16, false, true, 3, 4, 1}, 8);
  check_case(Case{1, 3000, 1024, DType::BF16, false, true, 2, 0, 0}, 9);
  check_case(Case{6, 520, 1030, DType::F32, true, true, 3, 2, 3}, 10);
  check_case(Case{40, 300, 600, DType::BF16, true, true, 2, 0, 0}, 11);
  // More rows than one packed block of x (kMC), more columns than one block of w (kNC).
  check_case(Case{1200, 300, 40, DType::F16, true, false, 1, 1, 0}, 12);
  check_case(Case{700, 530, 20, DType::F32, false, true, 2, 0, 2}, 13);
}

// Splitting the work differently between threads must not change a single bit: each output is
// always summed in the same order, so results do not depend on --threads.
TEST_P(MatmulAtLevel, ResultDoesNotDependOnThreadCount) {
  for (int64_t M : {1, 4, 100}) {
    std::mt19937 rng(static_cast<uint32_t>(M));
    const int64_t N = 300, K = 333;
    Weights w = random_weights(DType::BF16, N, K, rng);
    std::vector<float> x = random_vector(M * K, rng), bias = random_vector(N, rng);
    std::vector<float> first;
    for (int threads : {1, 2, 3}) {
      ThreadPool pool(threads);
      std::vector<float> y(M * N);
      matmul(x.data(), K, w.data(), w.type, bias.data(), y.data(), N, M, N, K, false, pool);
      if (first.empty()) {
        first = y;
      } else {
        EXPECT_EQ(0, std::memcmp(first.data(), y.data(), y.size() * sizeof(float)))
            << "M=" << M << " threads=" << threads;
      }
    }
  }
}

TEST_P(MatmulAtLevel, EmptySumGivesBias) {
  ThreadPool pool(2);
  std::vector<float> bias = {1.f, -2.f, 3.f}, y = {10.f, 10.f, 10.f, 20.f, 20.f, 20.f};
  matmul(nullptr, 0, nullptr, DType::BF16, bias.data(), y.data(), 3, 2, 3, 0, true, pool);
  EXPECT_EQ(y, (std::vector<float>{11.f, 8.f, 13.f, 21.f, 18.f, 23.f}));
  matmul(nullptr, 0, nullptr, DType::BF16, nullptr, y.data(), 3, 2, 3, 0, false, pool);
  EXPECT_EQ(y, std::vector<float>(6, 0.f));
}

INSTANTIATE_TEST_SUITE_P(Simd, MatmulAtLevel,
                         ::testing::Values(SimdLevel::Generic, SimdLevel::AVX2, SimdLevel::AVX512),
                         [](const auto& info) { return std::string(simd_level_name(info.param)); });

TEST(Matmul, RejectsBadArguments) {
  ThreadPool pool(1);
  std::vector<float> x(64), y(64), w(64);
  try {
    matmul(x.data(), 8, w.data(), DType::I32, nullptr, y.data(), 8, 2, 8, 8, false, pool);
    FAIL() << "i32 weights accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("i32"), std::string::npos) << e.what();
  }
  try {
    matmul(x.data(), 4, w.data(), DType::F32, nullptr, y.data(), 8, 2, 8, 8, false, pool);
    FAIL() << "ldx < K accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("ldx=4"), std::string::npos) << e.what();
  }
  EXPECT_THROW(
      matmul(x.data(), 8, w.data(), DType::F32, nullptr, y.data(), 8, -1, 8, 8, false, pool),
      Error);
  EXPECT_THROW(
      matmul(x.data(), 8, w.data(), DType::F32, nullptr, y.data(), 4, 2, 8, 8, false, pool), Error);
}

// --- Optional bf16-activation GEMM -------------------------------------------------------------

// Exact against the reference fed the same bf16-rounded activations: only the rounding of x
// differs from matmul(), the accumulation is fp32.
TEST(MatmulBf16Activations, MatchesReferenceOnRoundedActivations) {
  if (!matmul_bf16_activations_available()) GTEST_SKIP() << "no avx512_bf16 here";
  uint32_t seed = 5000;
  for (int64_t M : {9, 15, 33, 512, 700})
    for (auto [N, K] : std::vector<std::pair<int64_t, int64_t>>{
             {1, 1}, {17, 2}, {32, 31}, {33, 33}, {70, 64}, {300, 65}, {40, 513}, {33, 1030}}) {
      const uint32_t s = seed++;
      Case c{M,
             N,
             K,
             DType::BF16,
             (s & 1) != 0,
             (s & 2) != 0,
             1 + static_cast<int>(s % 3),
             (s & 4) ? 3u : 0u,
             (s & 8) ? 5u : 0u};
      check_case(c, s, matmul_bf16_activations, /*round_x=*/true);
      if (HasFailure()) return;
    }
}

// Where it has no fast path (other weight types, decode-sized M, lower SIMD levels) it is
// matmul() itself, bit for bit.
TEST(MatmulBf16Activations, FallsBackToExactMatmul) {
  for (SimdLevel level : available_levels()) {
    ScopedSimdLevel scoped(level);
    for (auto [M, type] :
         {std::pair{40, DType::F16}, {40, DType::F32}, {3, DType::BF16}, {40, DType::BF16}}) {
      if (type == DType::BF16 && M > 8 && matmul_bf16_activations_available()) continue;
      std::mt19937 rng(M);
      const int64_t N = 50, K = 70;
      Weights w = random_weights(type, N, K, rng);
      std::vector<float> x = random_vector(M * K, rng), y1(M * N), y2(M * N);
      ThreadPool pool(2);
      matmul(x.data(), K, w.data(), type, nullptr, y1.data(), N, M, N, K, false, pool);
      matmul_bf16_activations(x.data(), K, w.data(), type, nullptr, y2.data(), N, M, N, K, false,
                              pool);
      EXPECT_EQ(y1, y2) << "M=" << M << " w=" << dtype_name(type) << " simd=" << simd_level_name();
    }
  }
}

// --- SIMD level selection ---------------------------------------------------------------------

TEST(Simd, ForcingALevelIsVisibleAndReversible) {
  for (SimdLevel level : available_levels()) {
    ScopedSimdLevel scoped(level);
    EXPECT_EQ(simd_level(), level);
    EXPECT_STREQ(simd_level_name(), simd_level_name(level));
  }
  EXPECT_LE(simd_level(), detected_simd_level());
}

TEST(Simd, CannotForceALevelTheCpuLacks) {
  if (detected_simd_level() == SimdLevel::AVX512) GTEST_SKIP() << "this CPU has every level";
  EXPECT_THROW(set_simd_level(SimdLevel::AVX512), Error);
}

TEST(Simd, ParsesLevelNames) {
  EXPECT_EQ(parse_simd_level("avx512"), SimdLevel::AVX512);
  EXPECT_EQ(parse_simd_level("avx2"), SimdLevel::AVX2);
  EXPECT_EQ(parse_simd_level("generic"), SimdLevel::Generic);
  try {
    parse_simd_level("avx9");
    FAIL() << "avx9 accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("'avx9'"), std::string::npos) << e.what();
  }
}

TEST(Simd, ReportsFeaturesConsistentWithTheLevel) {
  const CpuFeatures& f = cpu_features();
  if (detected_simd_level() >= SimdLevel::AVX2) {
    EXPECT_TRUE(f.avx2 && f.fma && f.f16c);
  }
  if (detected_simd_level() == SimdLevel::AVX512) {
    EXPECT_TRUE(f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq);
  }
}

// The environment variable is read once per process, so each check runs in a fresh child.
TEST(SimdDeathTest, EnvironmentVariableLowersTheLevel) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        setenv("HWLEDGER_SIMD", "generic", 1);
        std::exit(simd_level() == SimdLevel::Generic ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "");
  EXPECT_EXIT(
      {
        setenv("HWLEDGER_SIMD", "avx512", 1);  // never above what the CPU has
        std::exit(simd_level() == detected_simd_level() ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "");
  EXPECT_EXIT(
      {
        setenv("HWLEDGER_SIMD", "sse9", 1);
        try {
          simd_level();
        } catch (const InputError& e) {
          std::fprintf(stderr, "%s\n", e.what());
          std::exit(3);
        }
        std::exit(0);
      },
      ::testing::ExitedWithCode(3), "'sse9'");
}

// --- Golden: PyTorch's logits of the qwen3-tiny model --------------------------------------------

// A tensor read from a .safetensors file: the header's dtype and shape, and the raw bytes.
struct StoredTensor {
  std::string dtype;
  std::vector<int64_t> shape;
  std::vector<char> bytes;
};

std::map<std::string, StoredTensor> read_safetensors(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path);
  uint64_t header_size = 0;
  in.read(reinterpret_cast<char*>(&header_size), 8);
  std::string header(header_size, '\0');
  in.read(header.data(), static_cast<std::streamsize>(header_size));
  const auto meta = nlohmann::json::parse(header);
  std::vector<char> data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::map<std::string, StoredTensor> tensors;
  for (const auto& [name, info] : meta.items()) {
    if (name == "__metadata__") continue;
    const size_t begin = info["data_offsets"][0], end = info["data_offsets"][1];
    tensors[name] = StoredTensor{info["dtype"], info["shape"].get<std::vector<int64_t>>(),
                                 std::vector<char>(data.begin() + begin, data.begin() + end)};
  }
  return tensors;
}

// qwen3-tiny ties its embeddings: logits = final hidden state [T, 128] x embed_tokens^T, where
// embed_tokens is the bf16 [1024, 128] weight exactly as stored. PyTorch computed both the hidden
// state (after the final norm) and the logits, so this is our matmul against PyTorch's.
TEST(MatmulGolden, TiedLmHeadReproducesPyTorchLogits) {
  const std::string dir = std::string(HWLEDGER_SHARED_DIR) + "/golden/qwen3-tiny/";
  auto model = read_safetensors(dir + "model.safetensors");
  auto reference = read_safetensors(dir + "reference.safetensors");
  const StoredTensor& embed = model.at("model.embed_tokens.weight");
  const StoredTensor& hidden = reference.at("hidden_short_L2");
  const StoredTensor& logits = reference.at("logits_short");
  ASSERT_EQ(embed.dtype, "BF16");
  ASSERT_EQ(hidden.dtype, "F32");
  const int64_t T = hidden.shape[0], K = hidden.shape[1], N = embed.shape[0];
  ASSERT_EQ(embed.shape[1], K);
  ASSERT_EQ(logits.shape, (std::vector<int64_t>{T, N}));
  const float* ref = reinterpret_cast<const float*>(logits.bytes.data());

  // The 5 positions as decode (M = 5) and repeated 20 times as a prefill batch (M = 100).
  for (int repeat : {1, 20}) {
    const int64_t M = T * repeat;
    std::vector<float> x(M * K);
    for (int r = 0; r < repeat; ++r)
      std::memcpy(x.data() + r * T * K, hidden.bytes.data(), T * K * sizeof(float));
    for (SimdLevel level : available_levels()) {
      ScopedSimdLevel scoped(level);
      ThreadPool pool(2);
      std::vector<float> y(M * N);
      matmul(x.data(), K, embed.bytes.data(), DType::BF16, nullptr, y.data(), N, M, N, K, false,
             pool);
      double max_err = 0, max_ref = 0;
      for (int64_t i = 0; i < M * N; ++i) {
        max_err = std::max(max_err, std::fabs(double{y[i]} - ref[i % (T * N)]));
        max_ref = std::max(max_ref, std::fabs(double{ref[i % (T * N)]}));
      }
      // The project's parity bound is 1e-3; a lone matmul in fp32 should be far inside it.
      EXPECT_LT(max_err / max_ref, 1e-5) << "M=" << M << " simd=" << simd_level_name();
    }
  }
}

}  // namespace
}  // namespace hwledger::cpu
