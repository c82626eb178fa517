#include "sched/sampler.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "ops/ops.h"
#include "util/error.h"

namespace hwledger {

namespace {

// Below this temperature sampling is argmax (as vLLM does), avoiding overflow in 1/T.
constexpr float kGreedyTemperature = 1e-5f;

// The top-p bucket of a weight in [0, 1]: its float bits' exponent and 3 leading mantissa bits,
// so buckets are ordered like the weights and each spans a factor of 2^(1/8).
uint32_t weight_bucket(float w) {
  uint32_t bits;
  std::memcpy(&bits, &w, sizeof bits);
  return bits >> 20;
}
constexpr uint32_t kWeightBuckets = (0x3F800000u >> 20) + 1;  // 1.0f is the largest weight

// Best first; ties broken by the lower id so that results never depend on sort internals.
struct ByProbDesc {
  const float* probs;
  bool operator()(int32_t a, int32_t b) const {
    return probs[a] > probs[b] || (probs[a] == probs[b] && a < b);
  }
};

}  // namespace

void SamplerWorkspace::resize(int64_t vocab_size) {
  if (static_cast<int64_t>(probs.size()) != vocab_size) {
    probs.assign(static_cast<size_t>(vocab_size), 0.0f);
    order.assign(static_cast<size_t>(vocab_size), 0);
  }
  bucket_mass.resize(kWeightBuckets);
}

void validate_sampling(const SamplingParams& p) {
  if (!(p.temperature >= 0.0f) || !std::isfinite(p.temperature))
    fail_input("temperature must be a finite number >= 0 (got {})", p.temperature);
  if (p.top_k < 0) fail_input("top_k must be >= 0, 0 meaning off (got {})", p.top_k);
  if (!(p.top_p > 0.0f && p.top_p <= 1.0f)) fail_input("top_p must be in (0, 1] (got {})", p.top_p);
  if (!(p.min_p >= 0.0f && p.min_p <= 1.0f)) fail_input("min_p must be in [0, 1] (got {})", p.min_p);
  if (!(p.repetition_penalty > 0.0f) || !std::isfinite(p.repetition_penalty))
    fail_input("repetition_penalty must be a finite number > 0 (got {})", p.repetition_penalty);
  if (!std::isfinite(p.presence_penalty))
    fail_input("presence_penalty must be a finite number (got {})", p.presence_penalty);
  if (!std::isfinite(p.frequency_penalty))
    fail_input("frequency_penalty must be a finite number (got {})", p.frequency_penalty);
  if (p.top_logprobs < -1 || p.top_logprobs > 20)
    fail_input("top_logprobs must be between 0 and 20 (got {})", p.top_logprobs);
}

void apply_repetition_penalty(float* logits, int64_t vocab_size, std::span<const int32_t> distinct_tokens,
                              float penalty) {
  if (penalty == 1.0f) return;
  for (int32_t id : distinct_tokens) {
    if (id < 0 || id >= vocab_size) continue;
    float& l = logits[id];
    l = l < 0 ? l * penalty : l / penalty;
  }
}

void apply_presence_frequency(float* logits, int64_t vocab_size,
                              const std::unordered_map<int32_t, int32_t>& generated_counts,
                              float presence_penalty, float frequency_penalty) {
  if (presence_penalty == 0.0f && frequency_penalty == 0.0f) return;
  for (const auto& [id, count] : generated_counts) {
    if (id < 0 || id >= vocab_size || count <= 0) continue;
    logits[id] -= static_cast<float>(count) * frequency_penalty + presence_penalty;
  }
}

void top_n(const float* values, int64_t count, int64_t n, std::vector<std::pair<int32_t, float>>& out) {
  out.clear();
  n = std::min(n, count);
  if (n <= 0) return;
  // One pass keeping a sorted list of the n best: almost every value fails the first compare.
  for (int64_t i = 0; i < count; ++i) {
    const float v = values[i];
    if (static_cast<int64_t>(out.size()) == n && !(v > out.back().second)) continue;
    auto at = std::upper_bound(out.begin(), out.end(), v,
                               [](float x, const std::pair<int32_t, float>& e) { return x > e.second; });
    if (static_cast<int64_t>(out.size()) == n) out.pop_back();
    out.insert(at, {static_cast<int32_t>(i), v});
  }
}

Candidates truncate_distribution(const float* logits, int64_t V, float temperature, int32_t top_k, float top_p,
                                 float min_p, SamplerWorkspace& ws) {
  ws.resize(V);
  float* probs = ws.probs.data();
  int32_t* order = ws.order.data();
  const float max_logit = ops::max_value(logits, V);
  const float inv_t = 1.0f / temperature;
  auto weight = [&](float logit) { return std::exp((logit - max_logit) * inv_t); };  // best: 1
  const ByProbDesc better{probs};
  Candidates c;
  c.ids = order;

  if (top_k > 0 && top_k < V) {
    // The k best logits in one pass over a min-heap (most values lose the first compare);
    // only they need weights. Ties keep the lower id.
    auto& heap = ws.heap;
    heap.clear();
    auto heap_order = [](const std::pair<float, int32_t>& a, const std::pair<float, int32_t>& b) {
      return a.first > b.first || (a.first == b.first && a.second < b.second);
    };
    for (int64_t i = 0; i < V; ++i) {
      if (static_cast<int64_t>(heap.size()) < top_k) {
        heap.emplace_back(logits[i], static_cast<int32_t>(i));
        std::push_heap(heap.begin(), heap.end(), heap_order);
      } else if (logits[i] > heap.front().first) {
        std::pop_heap(heap.begin(), heap.end(), heap_order);
        heap.back() = {logits[i], static_cast<int32_t>(i)};
        std::push_heap(heap.begin(), heap.end(), heap_order);
      }
    }
    c.all = false;
    c.n = top_k;
    for (int64_t j = 0; j < c.n; ++j) {
      order[j] = heap[j].second;
      c.total += probs[order[j]] = weight(heap[j].first);
    }
  } else {
    c.n = V;
    for (int64_t i = 0; i < V; ++i) c.total += probs[i] = weight(logits[i]);
  }

  if (top_p < 1.0f) {
    // Keep a token while the mass of the tokens more likely than it is below top_p (at least
    // one token). The kept set need not be sorted: only its boundary has to be found.
    const double target = static_cast<double>(top_p) * c.total;
    if (!c.all) {
      std::sort(order, order + c.n, better);  // top-k candidates: few
      double mass = 0;
      int64_t keep = 0;
      while (keep < c.n && (keep == 0 || mass < target)) mass += probs[order[keep++]];
      c.n = keep;
      c.total = mass;
    } else {
      // Whole vocabulary: bucket the weights by their float bits (ordered like the weights),
      // find the bucket where the mass crosses top_p, and sort only that bucket.
      std::fill(ws.bucket_mass.begin(), ws.bucket_mass.end(), 0.0);
      for (int64_t i = 0; i < V; ++i) ws.bucket_mass[weight_bucket(probs[i])] += probs[i];
      uint32_t boundary = 0;
      double above = 0;
      for (uint32_t b = kWeightBuckets; b-- > 0;) {
        if (above + ws.bucket_mass[b] >= target) {
          boundary = b;
          break;
        }
        above += ws.bucket_mass[b];
      }
      int64_t n = 0, back = V;
      double mass = 0;
      for (int64_t i = 0; i < V; ++i) {
        const uint32_t b = weight_bucket(probs[i]);
        if (b > boundary) {
          order[n++] = static_cast<int32_t>(i);
          mass += probs[i];
        } else if (b == boundary) {
          order[--back] = static_cast<int32_t>(i);
        }
      }
      std::sort(order + back, order + V, better);
      for (int64_t j = back; j < V && (n == 0 || mass < target); ++j) {
        mass += probs[order[j]];
        order[n++] = order[j];
      }
      c.all = false;
      c.n = n;
      c.total = mass;
    }
  }

  if (min_p > 0.0f) {
    // The most likely token has weight 1, so the threshold min_p * p_max is min_p itself.
    const float threshold = min_p;
    int64_t n = 0;
    double mass = 0;
    if (c.all) {
      for (int64_t i = 0; i < V; ++i)
        if (probs[i] >= threshold) {
          order[n++] = static_cast<int32_t>(i);
          mass += probs[i];
        }
      c.all = false;
    } else {
      for (int64_t i = 0; i < c.n; ++i)
        if (probs[order[i]] >= threshold) {
          mass += probs[order[i]];
          order[n++] = order[i];
        }
    }
    c.n = n;
    c.total = mass;
  }
  return c;
}

Sampler::Sampler(const SamplingParams& params, std::span<const int32_t> prompt)
    : params_(params), greedy_(params.temperature < kGreedyTemperature) {
  rng_.seed(params.seed ? *params.seed : (static_cast<uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}());
  if (params.repetition_penalty != 1.0f) {
    penalised_.assign(prompt.begin(), prompt.end());
    std::sort(penalised_.begin(), penalised_.end());
    penalised_.erase(std::unique(penalised_.begin(), penalised_.end()), penalised_.end());
  }
}

double Sampler::uniform() { return static_cast<double>(rng_() >> 11) * 0x1.0p-53; }

void Sampler::accept(int32_t token) {
  if (params_.presence_penalty != 0.0f || params_.frequency_penalty != 0.0f) ++generated_counts_[token];
  if (params_.repetition_penalty != 1.0f) {
    auto at = std::lower_bound(penalised_.begin(), penalised_.end(), token);
    if (at == penalised_.end() || *at != token) penalised_.insert(at, token);
  }
}

int32_t Sampler::sample(float* logits, int64_t V, SamplerWorkspace& ws, TokenEvent* event) {
  apply_repetition_penalty(logits, V, penalised_, params_.repetition_penalty);
  apply_presence_frequency(logits, V, generated_counts_, params_.presence_penalty, params_.frequency_penalty);
  const bool want_logprobs = event && params_.top_logprobs >= 0;

  int32_t chosen;
  // log of the softmax normaliser of the reported distribution: logits / T (T = 1 when greedy).
  double log_z = 0;
  float max_logit = 0, inv_t = 1;
  if (greedy_) {
    chosen = ops::argmax(logits, V);
    if (want_logprobs) {
      max_logit = logits[chosen];
      double z = 0;
      for (int64_t i = 0; i < V; ++i) z += std::exp(logits[i] - max_logit);
      log_z = std::log(z);
    }
  } else {
    Candidates c = truncate_distribution(logits, V, params_.temperature, params_.top_k, params_.top_p,
                                         params_.min_p, ws);
    const float* probs = ws.probs.data();
    const double u = uniform() * c.total;
    double acc = 0;
    chosen = -1;
    if (c.all) {
      for (int64_t i = 0; i < V && chosen < 0; ++i)
        if ((acc += probs[i]) > u) chosen = static_cast<int32_t>(i);
      if (chosen < 0) chosen = static_cast<int32_t>(std::max_element(probs, probs + V) - probs);
    } else {
      for (int64_t i = 0; i < c.n && chosen < 0; ++i)
        if ((acc += probs[c.ids[i]]) > u) chosen = c.ids[i];
      if (chosen < 0) chosen = c.ids[c.n - 1];  // rounding at the very top of the range
    }
    if (want_logprobs) {  // the untruncated distribution of logits / T
      max_logit = ops::max_value(logits, V);
      inv_t = 1.0f / params_.temperature;
      double z = 0;
      for (int64_t i = 0; i < V; ++i) z += std::exp((logits[i] - max_logit) * inv_t);
      log_z = std::log(z);
    }
  }

  if (want_logprobs) {
    auto logprob = [&](float logit) {
      return static_cast<float>(static_cast<double>((logit - max_logit) * inv_t) - log_z);
    };
    event->logprob = logprob(logits[chosen]);
    event->top_logprobs.clear();
    if (params_.top_logprobs > 0) {
      top_n(logits, V, params_.top_logprobs, top_scratch_);
      for (const auto& [id, logit] : top_scratch_) event->top_logprobs.emplace_back(id, logprob(logit));
    }
  }
  return chosen;
}

}  // namespace hwledger
