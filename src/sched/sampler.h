// Picks the next token from a row of logits: penalties, temperature, top-k, top-p, min-p and a
// seeded draw, plus the logprobs OpenAI clients ask for. docs/scheduler.md gives the semantics.
#pragma once
#include <cstdint>
#include <random>
#include <span>
#include <unordered_map>
#include <utility>
#include <vector>

#include "sched/scheduler.h"

namespace hwledger {

// Scratch shared by every sampler that runs on one thread (the scheduler's), so that a step
// allocates nothing vocabulary-sized.
struct SamplerWorkspace {
  std::vector<float> probs;    // [V] unnormalised probabilities exp((logit - max) / T)
  std::vector<int32_t> order;  // [V] candidate token ids
  std::vector<std::pair<float, int32_t>> heap;  // [top_k] (logit, id) during top-k selection
  std::vector<double> bucket_mass;              // [1017] top-p: weight mass per float-bits bucket
  void resize(int64_t vocab_size);
};

// The distribution a token is drawn from after truncation: `ids[0..n)` with the weights
// `probs[id]` (unnormalised; `total` is their sum). `all` means every token is a candidate
// (ids is then not filled).
struct Candidates {
  bool all = true;
  int64_t n = 0;
  const int32_t* ids = nullptr;
  double total = 0;
};

// Throws InputError naming the parameter and its value when a setting is out of range.
void validate_sampling(const SamplingParams& params);

// HF RepetitionPenaltyLogitsProcessor over `distinct_tokens` (each id once): positive logits are
// divided by `penalty`, negative ones multiplied.
void apply_repetition_penalty(float* logits, int64_t vocab_size, std::span<const int32_t> distinct_tokens,
                              float penalty);
// OpenAI: logit -= count * frequency_penalty + (count > 0) * presence_penalty, over generated tokens.
void apply_presence_frequency(float* logits, int64_t vocab_size,
                              const std::unordered_map<int32_t, int32_t>& generated_counts,
                              float presence_penalty, float frequency_penalty);
// The `n` largest values, best first (ties: lower id first), as (id, value).
void top_n(const float* values, int64_t count, int64_t n, std::vector<std::pair<int32_t, float>>& out);
// Given logits (already penalised), applies top-k, then top-p (on the top-k-renormalised
// distribution), then min-p (relative to the most likely token), as transformers' warpers do, to
// the weights exp((logit - max) / temperature), which it writes to ws.probs (for the candidates
// only, after top-k). Returns the surviving candidates, in no particular order. O(V).
Candidates truncate_distribution(const float* logits, int64_t vocab_size, float temperature, int32_t top_k,
                                 float top_p, float min_p, SamplerWorkspace& ws);

// One request's sampler: its parameters, its RNG and the token history the penalties need.
class Sampler {
 public:
  // `seed` unset: seeded from std::random_device.
  Sampler(const SamplingParams& params, std::span<const int32_t> prompt);

  // Chooses the next token from `logits` [vocab_size] (modified in place: penalties). Fills the
  // event's logprob / top_logprobs when the request asked for them. Does not record the token.
  int32_t sample(float* logits, int64_t vocab_size, SamplerWorkspace& ws, TokenEvent* event);
  // Records a generated token for the penalties.
  void accept(int32_t token);

  const SamplingParams& params() const { return params_; }
  bool greedy() const { return greedy_; }

 private:
  double uniform();  // [0, 1), 53 random bits

  SamplingParams params_;
  bool greedy_;
  std::mt19937_64 rng_;
  std::vector<int32_t> penalised_;                      // distinct prompt + generated ids (sorted)
  std::unordered_map<int32_t, int32_t> generated_counts_;  // id -> times generated
  std::vector<std::pair<int32_t, float>> top_scratch_;
};

}  // namespace hwledger
