// ops::argmax, the greedy pick over a vocabulary: the first index of the maximum, as
// torch.argmax, at every position and length (the vectorised lanes and the tail).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "ops/ops.h"
#include "util/error.h"

namespace hwledger {
namespace {

TEST(Argmax, FindsTheMaximumAtEveryPositionAndLength) {
  std::mt19937 rng(5);
  std::normal_distribution<float> dist(0.f, 3.f);
  for (int64_t n : {1, 2, 7, 8, 9, 15, 16, 17, 1000, 151936}) {
    std::vector<float> v(static_cast<size_t>(n));
    for (auto& x : v) x = dist(rng);
    EXPECT_EQ(ops::argmax(v.data(), n), std::max_element(v.begin(), v.end()) - v.begin()) << n;
    for (int64_t at : {int64_t{0}, n / 2, n - 1}) {
      std::vector<float> w = v;
      w[static_cast<size_t>(at)] = 100.f;
      EXPECT_EQ(ops::argmax(w.data(), n), at) << n << " " << at;
    }
  }
}

TEST(Argmax, TakesTheFirstOfEqualMaxima) {
  std::vector<float> v(100, -1.f);
  v[37] = v[38] = v[91] = 4.f;
  EXPECT_EQ(ops::argmax(v.data(), 100), 37);
  std::vector<float> inf(20, -INFINITY);  // every token masked
  EXPECT_EQ(ops::argmax(inf.data(), 20), 0);
}

TEST(Argmax, NeverPicksANaNOverANumber) {
  std::vector<float> v(50, 0.f);
  v[0] = NAN;
  v[10] = NAN;
  v[23] = 2.f;
  EXPECT_EQ(ops::argmax(v.data(), 50), 23);
  EXPECT_THROW(ops::argmax(v.data(), 0), Error);
}

}  // namespace
}  // namespace hwledger
