#include "ledger/measure.h"

#include <algorithm>
#include <cmath>

#include "engine/engine.h"
#include "util/error.h"

namespace hwledger::ledger {

bool within_tolerance(uint64_t predicted, uint64_t measured) {
  const double diff = std::fabs(static_cast<double>(measured) - static_cast<double>(predicted));
  return diff <= std::max(0.01 * static_cast<double>(predicted), 16.0 * 1024 * 1024);
}

bool Measurement::all_within() const {
  return std::all_of(rows.begin(), rows.end(), [](const Comparison& c) { return c.within; });
}

std::vector<Comparison> compare(const planner::MemoryPlan& plan, const nlohmann::json& report) {
  std::vector<Comparison> rows;
  auto add = [&](std::string what, uint64_t p, uint64_t m) {
    rows.push_back({std::move(what), p, m, within_tolerance(p, m)});
  };
  const auto& layers = report.at("layers");
  if (layers.size() != plan.layers.size())
    fail("the engine reports {} layers, the plan {}", layers.size(), plan.layers.size());
  for (size_t i = 0; i < plan.layers.size(); ++i) {
    add(fmt::format("layer {} weights", i), plan.layers[i].weights_bytes, layers[i].at("weights_bytes").get<uint64_t>());
    add(fmt::format("layer {} kv", i), plan.layers[i].kv_bytes, layers[i].at("kv_bytes").get<uint64_t>());
  }
  add("embedding + head", plan.embedding_bytes + plan.lm_head_bytes, report.at("embedding_bytes").get<uint64_t>());
  add("total weights", plan.weights_bytes, report.at("weights_bytes").get<uint64_t>());
  add("total kv", plan.kv_bytes, report.at("kv_bytes").get<uint64_t>());
  return rows;
}

Measurement measure(const std::string& model_dir, const planner::MemoryPlan& plan, int threads) {
  const auto& o = plan.options;
  if (o.kv_dtype == planner::KvDtype::kFp8 && !o.hwledger_kv)
    fail(
        "plan --measure: the plan priced fp8 KV as vLLM's, not as the engine stores it (set "
        "PlanOptions::hwledger_kv)");
  EngineOptions eo;
  eo.threads = threads;
  eo.load.show_progress = false;
  eo.kv_dtype = parse_kv_dtype(std::string(planner::to_string(o.kv_dtype)));
  eo.max_context = o.context_tokens;
  // One block table per user, each holding the whole context.
  const ModelConfig c = ModelConfig::from_file(model_dir + "/config.json");
  const KVLayout layout = c.kv_layout(eo.block_tokens, eo.kv_dtype);
  const int64_t blocks_per_user = (o.context_tokens + layout.block_tokens - 1) / layout.block_tokens;
  eo.max_kv_bytes = static_cast<uint64_t>(o.users * blocks_per_user) * layout.block_bytes();
  Engine engine(model_dir, eo);
  // Allocate it for real: every user's sequence reserves the full context.
  std::vector<KVSequence> users(static_cast<size_t>(o.users));
  for (auto& s : users) engine.kv_cache().reserve(s, o.context_tokens);
  Measurement m;
  m.report = engine.memory_report();
  for (auto& s : users) engine.kv_cache().release(s);
  m.rows = compare(plan, m.report);
  return m;
}

}  // namespace hwledger::ledger
