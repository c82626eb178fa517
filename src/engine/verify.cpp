#include "engine/verify.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "model/safetensors.h"
#include "util/error.h"

namespace hwledger {

namespace {

std::vector<int32_t> read_ids(const SafetensorsFile& f, const std::string& name) {
  Tensor t = f.tensor(name);
  if (t.dtype != DType::I32 || t.ndim != 1) fail_input("reference tensor '{}' must be int32 [T]", name);
  std::vector<int32_t> v(t.numel());
  std::memcpy(v.data(), t.data, v.size() * 4);
  return v;
}

const float* read_f32(const SafetensorsFile& f, const std::string& name, int64_t numel) {
  Tensor t = f.tensor(name);
  if (t.dtype != DType::F32 || t.numel() != numel)
    fail_input("reference tensor '{}' is {} {}, expected f32 with {} elements", name, dtype_name(t.dtype),
               t.shape_str(), numel);
  return t.as<float>();
}

double rel_max_error(const float* ours, const float* ref, int64_t n) {
  double max_diff = 0, max_ref = 0;
  for (int64_t i = 0; i < n; ++i) {
    max_diff = std::max(max_diff, std::fabs(static_cast<double>(ours[i]) - ref[i]));
    max_ref = std::max(max_ref, std::fabs(static_cast<double>(ref[i])));
  }
  if (!std::isfinite(max_diff)) return INFINITY;
  return max_diff / std::max(max_ref, 1e-30);
}

double rel_l2_error(const float* ours, const float* ref, int64_t n) {
  double diff = 0, norm = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double d = static_cast<double>(ours[i]) - ref[i];
    diff += d * d;
    norm += static_cast<double>(ref[i]) * ref[i];
  }
  if (!std::isfinite(diff)) return INFINITY;
  return std::sqrt(diff) / std::max(std::sqrt(norm), 1e-30);
}

// Rows whose argmax differs from the reference's where the reference's top-2 margin > 1e-2.
int64_t clear_argmax_mismatches(const float* ours, const float* ref, int64_t rows, int64_t V) {
  int64_t bad = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const float* o = ours + r * V;
    const float* f = ref + r * V;
    int64_t best = 0, second = -1;
    for (int64_t i = 1; i < V; ++i) {
      if (f[i] > f[best]) {
        second = best;
        best = i;
      } else if (second < 0 || f[i] > f[second]) {
        second = i;
      }
    }
    const double margin = second < 0 ? INFINITY : static_cast<double>(f[best]) - f[second];
    if (margin > 1e-2 && argmax(o, V) != best) ++bad;
  }
  return bad;
}

}  // namespace

std::vector<VerifyCase> verify_reference(Engine& engine, const std::string& reference_file, double tolerance,
                                         bool bf16) {
  SafetensorsFile ref(reference_file);
  const ModelConfig& c = engine.config();
  const int64_t V = c.vocab_size, H = c.hidden_size;
  std::vector<VerifyCase> results;

  for (const auto& [name, entry] : ref.header().tensors) {
    if (name.rfind("ids_", 0) != 0) continue;
    const std::string cs = name.substr(4);
    std::vector<int32_t> ids = read_ids(ref, name);
    const int64_t T = static_cast<int64_t>(ids.size());
    if (T == 0 || T > engine.max_context()) fail_input("case '{}' has {} tokens", cs, T);

    std::vector<std::vector<float>> hidden(c.num_layers);
    bool want_hidden = ref.contains("hidden_" + cs + "_L0");
    LayerHook hook;
    if (want_hidden)
      hook = [&](int64_t layer, const float* x, int64_t rows, int64_t width) {
        hidden[layer].assign(x, x + rows * width);
      };
    KVSequence seq;
    BatchItem item{&seq, ids, BatchItem::Logits::All};
    std::vector<float> logits = engine.runner().forward(std::span<BatchItem>(&item, 1), hook);
    release_sequence(engine.pool(), seq);

    VerifyCase vc{"logits_" + cs};
    const float* ref_logits = read_f32(ref, "logits_" + cs, T * V);
    vc.error = bf16 ? rel_l2_error(logits.data(), ref_logits, T * V) : rel_max_error(logits.data(), ref_logits, T * V);
    vc.tolerance = tolerance;
    vc.passed = vc.error < tolerance;
    vc.detail = std::to_string(T) + " tokens";
    if (bf16) {
      const int64_t bad = clear_argmax_mismatches(logits.data(), ref_logits, T, V);
      vc.passed = vc.passed && bad == 0;
      vc.detail += bad ? ", " + std::to_string(bad) + " argmax differ at margin > 1e-2" : ", argmax equal";
    }
    results.push_back(vc);
    if (want_hidden) {
      for (int64_t l = 0; l < c.num_layers; ++l) {
        std::string hn = "hidden_" + cs + "_L" + std::to_string(l);
        if (!ref.contains(hn)) continue;
        VerifyCase hc{hn};
        hc.error = bf16 ? rel_l2_error(hidden[l].data(), read_f32(ref, hn, T * H), T * H)
                        : rel_max_error(hidden[l].data(), read_f32(ref, hn, T * H), T * H);
        hc.tolerance = tolerance;
        hc.passed = hc.error < tolerance;
        results.push_back(hc);
      }
    }
  }

  if (ref.contains("gen_prompt") && ref.contains("gen_greedy")) {
    std::vector<int32_t> prompt = read_ids(ref, "gen_prompt");
    std::vector<int32_t> expected = read_ids(ref, "gen_greedy");
    // make_reference.py generates with min_new_tokens = N, which masks EOS at every step.
    std::vector<int32_t> got = engine.generate_greedy(prompt, static_cast<int64_t>(expected.size()), {},
                                                      c.eos_token_ids);
    VerifyCase g{"gen_greedy"};
    size_t first_diff = expected.size();
    for (size_t i = 0; i < expected.size(); ++i)
      if (got[i] != expected[i]) {
        first_diff = std::min(first_diff, i);
        g.error += 1;
      }
    g.passed = g.error == 0;
    g.detail = g.passed ? std::to_string(expected.size()) + " tokens identical"
                        : "first difference at token " + std::to_string(first_diff);
    if (bf16 && !g.passed) {
      // Teacher-forced on the reference's tokens: a difference counts only where our logits
      // prefer our token over the reference's by more than 1e-2 (not a near tie).
      std::vector<int32_t> seq_ids(prompt);
      seq_ids.insert(seq_ids.end(), expected.begin(), expected.end() - 1);
      KVSequence seq;
      BatchItem item{&seq, seq_ids, BatchItem::Logits::All};
      std::vector<float> logits = engine.runner().forward(std::span<BatchItem>(&item, 1));
      release_sequence(engine.pool(), seq);
      int64_t clear = 0;
      for (size_t i = 0; i < expected.size(); ++i) {
        const float* row = logits.data() + (prompt.size() - 1 + i) * V;
        std::vector<float> masked(row, row + V);
        for (int32_t id : c.eos_token_ids)
          if (id >= 0 && id < V) masked[id] = -INFINITY;
        const int32_t top = argmax(masked.data(), V);
        if (top != expected[i] && masked[top] - masked[expected[i]] > 1e-2) ++clear;
      }
      g.passed = clear == 0;
      g.detail += ", teacher-forced: " + std::to_string(clear) + " clear differences (margin > 1e-2)";
    }
    results.push_back(g);
  }
  if (results.empty()) fail_input("'{}' has no ids_<case> or gen_prompt tensors", reference_file);
  return results;
}

}  // namespace hwledger
