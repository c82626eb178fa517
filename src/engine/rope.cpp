#include "engine/rope.h"

#include <cmath>

namespace hwledger {

RopeTable::RopeTable(const RopeConfig& rope, int64_t head_dim) {
  const int64_t half = head_dim / 2;
  inv_freq_.resize(half);
  const float base = static_cast<float>(rope.theta);
  for (int64_t i = 0; i < half; ++i) {
    float expo = static_cast<float>(2 * i) / static_cast<float>(head_dim);
    inv_freq_[i] = 1.0f / std::pow(base, expo);
  }
  if (rope.type == RopeType::Linear) {
    for (auto& f : inv_freq_) f /= static_cast<float>(rope.factor);
  } else if (rope.type == RopeType::Llama3) {
    const float factor = static_cast<float>(rope.factor);
    const float low = static_cast<float>(rope.low_freq_factor);
    const float high = static_cast<float>(rope.high_freq_factor);
    const float old_ctx = static_cast<float>(rope.original_max_position);
    const float low_freq_wavelen = old_ctx / low, high_freq_wavelen = old_ctx / high;
    for (auto& f : inv_freq_) {
      const float wavelen = 2.0f * static_cast<float>(M_PI) / f;
      float scaled = wavelen > low_freq_wavelen ? f / factor : f;
      if (!(wavelen < high_freq_wavelen) && !(wavelen > low_freq_wavelen)) {
        float smooth = (old_ctx / wavelen - low) / (high - low);
        scaled = (1 - smooth) * scaled / factor + smooth * scaled;
      }
      f = scaled;
    }
  }
}

void RopeTable::fill(std::span<const int64_t> positions, float* cos, float* sin) const {
  const size_t half = inv_freq_.size();
  for (size_t t = 0; t < positions.size(); ++t) {
    const float p = static_cast<float>(positions[t]);
    for (size_t i = 0; i < half; ++i) {
      const float angle = p * inv_freq_[i];  // fp32 product, as transformers computes it
      cos[t * half + i] = static_cast<float>(std::cos(static_cast<double>(angle)));
      sin[t * half + i] = static_cast<float>(std::sin(static_cast<double>(angle)));
    }
  }
}

}  // namespace hwledger
