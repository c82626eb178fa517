// Rotary-embedding frequencies for a model, computed in fp32 exactly as transformers does
// (including Llama 3's frequency-dependent scaling), and the cos/sin tables for positions.
#pragma once
#include <cstdint>
#include <mutex>
#include <span>
#include <vector>

#include "model/config.h"

namespace hwledger {

class RopeTable {
 public:
  RopeTable(const RopeConfig& rope, int64_t head_dim);
  const std::vector<float>& inv_freq() const { return inv_freq_; }  // [hd/2]
  // cos, sin: [positions.size(), hd/2], from rows kept per position (computed on first use).
  void fill(std::span<const int64_t> positions, float* cos, float* sin) const;

 private:
  std::vector<float> inv_freq_;
  mutable std::mutex mu_;
  mutable std::vector<float> cos_, sin_;  // [cached_, hd/2]
  mutable int64_t cached_ = 0;
};

}  // namespace hwledger
