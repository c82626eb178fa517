// Sampling on hand-made logits: the masks of top-k / top-p / min-p (transformers' warper
// semantics), the penalties (HF repetition, OpenAI presence/frequency), temperature, seeds and
// logprobs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>

#include "sched/sampler.h"
#include "util/error.h"

namespace hwledger {
namespace {

// Logits whose softmax is `probs`.
std::vector<float> logits_of(const std::vector<double>& probs) {
  std::vector<float> l;
  for (double p : probs) l.push_back(static_cast<float>(std::log(p)));
  return l;
}

std::set<int32_t> survivors(const std::vector<float>& logits, float temperature, int32_t top_k, float top_p,
                            float min_p) {
  SamplerWorkspace ws;
  Candidates c = truncate_distribution(logits.data(), static_cast<int64_t>(logits.size()), temperature, top_k,
                                       top_p, min_p, ws);
  std::set<int32_t> out;
  if (c.all) {
    for (size_t i = 0; i < logits.size(); ++i) out.insert(static_cast<int32_t>(i));
  } else {
    for (int64_t i = 0; i < c.n; ++i) out.insert(c.ids[i]);
  }
  return out;
}

const std::vector<double> kProbs = {0.5, 0.3, 0.15, 0.05};

TEST(SamplerMasks, NoTruncationKeepsEverything) {
  EXPECT_EQ(survivors(logits_of(kProbs), 1.0f, 0, 1.0f, 0.0f), (std::set<int32_t>{0, 1, 2, 3}));
}

TEST(SamplerMasks, TopK) {
  std::vector<float> logits = {1, 5, 3, 4, 2};
  EXPECT_EQ(survivors(logits, 1.0f, 2, 1.0f, 0.0f), (std::set<int32_t>{1, 3}));
  EXPECT_EQ(survivors(logits, 1.0f, 1, 1.0f, 0.0f), (std::set<int32_t>{1}));
  EXPECT_EQ(survivors(logits, 1.0f, 5, 1.0f, 0.0f).size(), 5u);
  EXPECT_EQ(survivors(logits, 1.0f, 50, 1.0f, 0.0f).size(), 5u);  // k beyond V: off
}

TEST(SamplerMasks, TopPKeepsTheSmallestSetReachingP) {
  // Descending: a token stays while the mass before it is below top_p.
  auto logits = logits_of(kProbs);
  EXPECT_EQ(survivors(logits, 1.0f, 0, 0.4f, 0.0f), (std::set<int32_t>{0}));
  EXPECT_EQ(survivors(logits, 1.0f, 0, 0.75f, 0.0f), (std::set<int32_t>{0, 1}));
  EXPECT_EQ(survivors(logits, 1.0f, 0, 0.85f, 0.0f), (std::set<int32_t>{0, 1, 2}));
  EXPECT_EQ(survivors(logits, 1.0f, 0, 0.99f, 0.0f), (std::set<int32_t>{0, 1, 2, 3}));
  // The order of the logits does not matter.
  std::vector<float> shuffled = {logits[2], logits[0], logits[3], logits[1]};
  EXPECT_EQ(survivors(shuffled, 1.0f, 0, 0.75f, 0.0f), (std::set<int32_t>{1, 3}));
}

TEST(SamplerMasks, TopPAppliesToTheTopKRenormalisedDistribution) {
  // After top_k=2 the probabilities are 0.625 / 0.375; top_p 0.6 then keeps only the first
  // (without renormalising, 0.5 < 0.6 would have kept both).
  EXPECT_EQ(survivors(logits_of(kProbs), 1.0f, 2, 0.6f, 0.0f), (std::set<int32_t>{0}));
  EXPECT_EQ(survivors(logits_of(kProbs), 1.0f, 3, 0.9f, 0.0f), (std::set<int32_t>{0, 1, 2}));
}

TEST(SamplerMasks, TopPUsesTheTemperatureScaledDistribution) {
  // T=0.5 squares the probabilities: 0.25, 0.09, ... renormalised 0.685, 0.247: top_p 0.65 then
  // keeps one token, where at T=1 (0.5 before the second) it keeps two.
  EXPECT_EQ(survivors(logits_of(kProbs), 0.5f, 0, 0.65f, 0.0f), (std::set<int32_t>{0}));
  EXPECT_EQ(survivors(logits_of(kProbs), 1.0f, 0, 0.65f, 0.0f), (std::set<int32_t>{0, 1}));
}

TEST(SamplerMasks, MinPIsRelativeToTheMostLikelyToken) {
  auto logits = logits_of(kProbs);
  EXPECT_EQ(survivors(logits, 1.0f, 0, 1.0f, 0.25f), (std::set<int32_t>{0, 1, 2}));  // >= 0.125
  EXPECT_EQ(survivors(logits, 1.0f, 0, 1.0f, 0.7f), (std::set<int32_t>{0}));         // >= 0.35
  EXPECT_EQ(survivors(logits, 1.0f, 0, 1.0f, 0.09f).size(), 4u);                     // >= 0.045
  // Combined with top-p: top_p 0.99 keeps all four, min_p then drops the last.
  EXPECT_EQ(survivors(logits, 1.0f, 0, 0.99f, 0.2f), (std::set<int32_t>{0, 1, 2}));
}

TEST(SamplerMasks, TopPOnALargeVocabularyMatchesAFullSort) {
  // 5000 tokens with a flat-ish distribution: the nucleus needs thousands of tokens, so the
  // incremental partial sort has to grow several times.
  const int64_t V = 5000;
  std::vector<float> logits(V);
  uint64_t x = 88172645463325252ull;
  for (auto& l : logits) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    l = static_cast<float>((x % 10000) / 10000.0 * 3.0);
  }
  for (float top_p : {0.1f, 0.5f, 0.9f, 0.999f}) {
    std::vector<int32_t> order(V);
    std::iota(order.begin(), order.end(), 0);
    std::vector<double> p(V);
    const float m = *std::max_element(logits.begin(), logits.end());
    double total = 0;
    for (int64_t i = 0; i < V; ++i) total += p[i] = std::exp(double(logits[i]) - m);
    std::sort(order.begin(), order.end(), [&](int a, int b) { return p[a] > p[b] || (p[a] == p[b] && a < b); });
    std::set<int32_t> expected;
    double before = 0;
    for (int32_t id : order) {
      if (!expected.empty() && before >= top_p * total) break;
      expected.insert(id);
      before += p[id];
    }
    std::set<int32_t> got = survivors(logits, 1.0f, 0, top_p, 0.0f);
    // Allow a difference of one token at the boundary (float vs double accumulation).
    EXPECT_LE(std::abs(static_cast<long>(got.size()) - static_cast<long>(expected.size())), 1) << top_p;
    size_t common = 0;
    for (int32_t id : got) common += expected.count(id);
    EXPECT_GE(common + 1, expected.size()) << top_p;
  }
}

TEST(SamplerPenalties, RepetitionPenaltyDividesPositiveAndMultipliesNegative) {
  std::vector<float> logits = {2.0f, -2.0f, 1.0f, 0.5f};
  std::vector<int32_t> seen = {0, 1};
  apply_repetition_penalty(logits.data(), 4, seen, 2.0f);
  EXPECT_EQ(logits, (std::vector<float>{1.0f, -4.0f, 1.0f, 0.5f}));
}

TEST(SamplerPenalties, PresenceAndFrequency) {
  std::vector<float> logits = {1.0f, 1.0f, 1.0f};
  std::unordered_map<int32_t, int32_t> counts = {{0, 3}, {2, 1}};
  apply_presence_frequency(logits.data(), 3, counts, 0.5f, 0.25f);
  EXPECT_FLOAT_EQ(logits[0], 1.0f - 3 * 0.25f - 0.5f);
  EXPECT_FLOAT_EQ(logits[1], 1.0f);
  EXPECT_FLOAT_EQ(logits[2], 1.0f - 0.25f - 0.5f);
}

TEST(SamplerPenalties, RepetitionCoversPromptAndGeneratedOnce) {
  SamplingParams p;
  p.repetition_penalty = 2.0f;
  std::vector<int32_t> prompt = {0, 0, 0};  // a repeated token is penalised once, not three times
  Sampler s(p, prompt);
  SamplerWorkspace ws;
  std::vector<float> logits = {3.0f, 2.0f, 1.0f};
  EXPECT_EQ(s.sample(logits.data(), 3, ws, nullptr), 1);  // 3/2 = 1.5 < 2
  EXPECT_FLOAT_EQ(logits[0], 1.5f);
  s.accept(1);
  logits = {3.0f, 2.0f, 1.9f};
  EXPECT_EQ(s.sample(logits.data(), 3, ws, nullptr), 2);  // 1.5, 1.0, 1.9
}

TEST(SamplerPenalties, PresencePenaltyCountsOnlyGeneratedTokens) {
  SamplingParams p;
  p.presence_penalty = 1.0f;
  std::vector<int32_t> prompt = {0};
  Sampler s(p, prompt);
  SamplerWorkspace ws;
  std::vector<float> logits = {2.0f, 1.5f};
  EXPECT_EQ(s.sample(logits.data(), 2, ws, nullptr), 0);  // the prompt's token 0 is not penalised
  s.accept(0);
  logits = {2.0f, 1.5f};
  EXPECT_EQ(s.sample(logits.data(), 2, ws, nullptr), 1);  // now 1.0 < 1.5
}

TEST(Sampler, GreedyTakesTheFirstMaximum) {
  SamplingParams p;
  Sampler s(p, {});
  SamplerWorkspace ws;
  std::vector<float> logits = {0.0f, 3.0f, 1.0f, 3.0f};
  EXPECT_TRUE(s.greedy());
  EXPECT_EQ(s.sample(logits.data(), 4, ws, nullptr), 1);
}

double frequency_of_token_one(float temperature, uint64_t seed, int draws) {
  SamplingParams p;
  p.temperature = temperature;
  p.seed = seed;
  Sampler s(p, {});
  SamplerWorkspace ws;
  int ones = 0;
  for (int i = 0; i < draws; ++i) {
    std::vector<float> logits = {0.0f, std::log(2.0f)};  // softmax 1/3, 2/3
    ones += s.sample(logits.data(), 2, ws, nullptr) == 1;
  }
  return double(ones) / draws;
}

TEST(Sampler, TemperatureShapesTheDistribution) {
  EXPECT_NEAR(frequency_of_token_one(1.0f, 7, 40000), 2.0 / 3.0, 0.01);
  EXPECT_NEAR(frequency_of_token_one(0.5f, 7, 40000), 0.8, 0.01);   // (1:4)
  EXPECT_NEAR(frequency_of_token_one(2.0f, 7, 40000), 0.586, 0.01);  // sqrt 2 / (1 + sqrt 2)
}

std::vector<int32_t> draw_sequence(std::optional<uint64_t> seed, int n) {
  SamplingParams p;
  p.temperature = 1.0f;
  p.top_p = 0.9f;
  p.seed = seed;
  Sampler s(p, {});
  SamplerWorkspace ws;
  std::vector<int32_t> out;
  for (int i = 0; i < n; ++i) {
    std::vector<float> logits(64);
    for (int j = 0; j < 64; ++j) logits[j] = static_cast<float>(std::sin(j * 1.3 + i));
    out.push_back(s.sample(logits.data(), 64, ws, nullptr));
    s.accept(out.back());
  }
  return out;
}

TEST(Sampler, SameSeedSameDraws) {
  EXPECT_EQ(draw_sequence(42, 50), draw_sequence(42, 50));
  EXPECT_NE(draw_sequence(42, 50), draw_sequence(43, 50));
  EXPECT_NE(draw_sequence(std::nullopt, 50), draw_sequence(std::nullopt, 50));  // unseeded: random
}

TEST(Sampler, SamplesOnlyFromTheSurvivors) {
  SamplingParams p;
  p.temperature = 1.5f;
  p.top_k = 2;
  p.seed = 1;
  Sampler s(p, {});
  SamplerWorkspace ws;
  std::set<int32_t> seen;
  for (int i = 0; i < 2000; ++i) {
    std::vector<float> logits = {1, 5, 3, 4.5, 2};
    seen.insert(s.sample(logits.data(), 5, ws, nullptr));
  }
  EXPECT_EQ(seen, (std::set<int32_t>{1, 3}));
}

TEST(Sampler, LogprobsOfTheSamplingDistributionBeforeTruncation) {
  const std::vector<float> base = {1.0f, 2.0f, 3.0f, 0.5f};
  auto log_softmax = [&](int id, float t) {
    double z = 0;
    for (float l : base) z += std::exp(l / t);
    return std::log(std::exp(base[id] / t) / z);
  };
  {
    SamplingParams p;  // greedy: the model's distribution (T = 1)
    p.top_logprobs = 2;
    Sampler s(p, {});
    SamplerWorkspace ws;
    TokenEvent ev;
    std::vector<float> logits = base;
    EXPECT_EQ(s.sample(logits.data(), 4, ws, &ev), 2);
    EXPECT_NEAR(ev.logprob, log_softmax(2, 1.0f), 1e-5);
    ASSERT_EQ(ev.top_logprobs.size(), 2u);
    EXPECT_EQ(ev.top_logprobs[0].first, 2);
    EXPECT_EQ(ev.top_logprobs[1].first, 1);
    EXPECT_NEAR(ev.top_logprobs[1].second, log_softmax(1, 1.0f), 1e-5);
  }
  {
    SamplingParams p;  // temperature 2 with top_k 1: logprob of softmax(logits / 2), untruncated
    p.temperature = 2.0f;
    p.top_k = 1;
    p.top_logprobs = 0;
    p.seed = 3;
    Sampler s(p, {});
    SamplerWorkspace ws;
    TokenEvent ev;
    std::vector<float> logits = base;
    EXPECT_EQ(s.sample(logits.data(), 4, ws, &ev), 2);
    EXPECT_NEAR(ev.logprob, log_softmax(2, 2.0f), 1e-5);
    EXPECT_TRUE(ev.top_logprobs.empty());
  }
}

TEST(Sampler, TopNIsSortedBestFirstWithLowerIdsOnTies) {
  std::vector<float> v = {1, 7, 3, 7, 5};
  std::vector<std::pair<int32_t, float>> out;
  top_n(v.data(), 5, 3, out);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0], (std::pair<int32_t, float>{1, 7}));
  EXPECT_EQ(out[1], (std::pair<int32_t, float>{3, 7}));
  EXPECT_EQ(out[2], (std::pair<int32_t, float>{4, 5}));
}

TEST(Sampler, ValidationNamesTheBadValue) {
  auto message = [](auto mutate) {
    SamplingParams p;
    mutate(p);
    try {
      validate_sampling(p);
    } catch (const InputError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(message([](SamplingParams& p) { p.temperature = -1; }).find("temperature"), std::string::npos);
  EXPECT_NE(message([](SamplingParams& p) { p.top_p = 0; }).find("top_p must be in (0, 1] (got 0)"), std::string::npos);
  EXPECT_NE(message([](SamplingParams& p) { p.top_p = 1.5; }).find("1.5"), std::string::npos);
  EXPECT_NE(message([](SamplingParams& p) { p.top_k = -3; }).find("-3"), std::string::npos);
  EXPECT_NE(message([](SamplingParams& p) { p.min_p = 2; }).find("min_p"), std::string::npos);
  EXPECT_NE(message([](SamplingParams& p) { p.repetition_penalty = 0; }).find("repetition_penalty"), std::string::npos);
  EXPECT_NE(message([](SamplingParams& p) { p.top_logprobs = 21; }).find("21"), std::string::npos);
  EXPECT_EQ(message([](SamplingParams& p) {}), "");
}

}  // namespace
}  // namespace hwledger
