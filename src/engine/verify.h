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
// bf16: the criteria for bf16 arithmetic (the GPU): relative L2 error (‖ours − ref‖₂ / ‖ref‖₂)
// under `tolerance` (2e-2), and the greedy token equal wherever the reference's top-2 margin
// exceeds 1e-2 (logits cases: per position; gen_greedy: teacher-forced on the reference
// tokens, a difference counts where our logits separate the two tokens by more than 1e-2).
std::vector<VerifyCase> verify_reference(Engine& engine, const std::string& reference_file,
                                         double tolerance = 1e-3, bool bf16 = false);

}  // namespace hwledger
