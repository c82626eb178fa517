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

}  // namespace

std::vector<VerifyCase> verify_reference(Engine& engine, const std::string& reference_file, double tolerance) {
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
    vc.error = rel_max_error(logits.data(), read_f32(ref, "logits_" + cs, T * V), T * V);
    vc.tolerance = tolerance;
    vc.passed = vc.error < tolerance;
    vc.detail = std::to_string(T) + " tokens";
    results.push_back(vc);
    if (want_hidden) {
      for (int64_t l = 0; l < c.num_layers; ++l) {
        std::string hn = "hidden_" + cs + "_L" + std::to_string(l);
        if (!ref.contains(hn)) continue;
        VerifyCase hc{hn};
        hc.error = rel_max_error(hidden[l].data(), read_f32(ref, hn, T * H), T * H);
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
    results.push_back(g);
  }
  if (results.empty()) fail_input("'{}' has no ids_<case> or gen_prompt tensors", reference_file);
  return results;
}

}  // namespace hwledger
