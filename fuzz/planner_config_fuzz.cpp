// libFuzzer target: arbitrary bytes as a config.json, through the planner. Anything may be
// refused with an InputError; nothing may crash, overflow or hang.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>

#include "planner/memory_plan.h"
#include "planner/plan_model.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace hwledger::planner;
  nlohmann::json config = nlohmann::json::parse(data, data + size, nullptr, false);
  if (config.is_discarded()) return 0;
  try {
    PlanModel model = parse_plan_model(config);
    // Keep the work bounded: huge layer or expert counts are valid but slow to enumerate.
    PlanOptions options;
    options.context_tokens = 1 + int64_t(size % 100000);
    options.users = 1 + int64_t(size % 7);
    options.kv_dtype = KvDtype(size % 6);
    options.weights = WeightFormat(size % 9);
    MemoryPlan plan = plan_memory(model, options);
    assess_fit(plan, 1ull << 40, "fuzz");
  } catch (const hwledger::InputError&) {
  }
  return 0;
}
