// Parity against reference outputs made by PyTorch/transformers (SPEC: reference files).
#pragma once
#include <string>
#include <vector>

#include "engine/engine.h"

namespace hwledger {

struct VerifyCase {
  std::string name;       // "logits_<case>", "hidden_short_L<i>" or "gen_greedy"
  double error = 0;       // max |ours - ref| / max |ref|; for gen_greedy, mismatching tokens
  double tolerance = 0;
  bool passed = false;
  std::string detail;
};

// Runs every case of `reference_file` (reference.safetensors) on the engine's model.
std::vector<VerifyCase> verify_reference(Engine& engine, const std::string& reference_file,
                                         double tolerance = 1e-3);

}  // namespace hwledger
