// `hwledger plan --measure`: load the model, allocate the KV cache for the asked context and
// users, and compare what the engine really allocated with the planner's prediction, per layer
// and in total.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "planner/memory_plan.h"

namespace hwledger::ledger {

struct Comparison {
  std::string what;  // "layer 3 weights", "total kv", ...
  uint64_t predicted = 0, measured = 0;
  bool within = false;  // |measured - predicted| <= max(1% of predicted, 16 MiB)
};

struct Measurement {
  nlohmann::json report;  // the engine's memory_report
  std::vector<Comparison> rows;
  bool all_within() const;
};

// The tolerance of the issue: 1% or 16 MiB, whichever is larger.
bool within_tolerance(uint64_t predicted, uint64_t measured);

// Loads `model_dir` into an engine sized for `plan.options` (context x users, KV dtype),
// reserves that KV for `users` sequences, and compares.
Measurement measure(const std::string& model_dir, const planner::MemoryPlan& plan, int threads = 1);

// Compares an engine memory_report with a plan (exposed for tests).
std::vector<Comparison> compare(const planner::MemoryPlan& plan, const nlohmann::json& report);

}  // namespace hwledger::ledger
