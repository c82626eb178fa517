#include "engine/rope.h"

#include <algorithm>
#include <cmath>
#include <cstring>

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
  int64_t top = 0;
  for (int64_t p : positions) top = std::max(top, p + 1);
  std::lock_guard<std::mutex> lock(mu_);
  if (top > cached_) {
    // Rows are computed once per position and kept: double-precision cos/sin of 8192 x 64
    // angles took ~26 ms, on the host, ahead of every 8192-token prefill.
    const int64_t rows = std::max<int64_t>(top, std::min<int64_t>(2 * cached_, top + 65536));
    cos_.resize(static_cast<size_t>(rows) * half);
    sin_.resize(static_cast<size_t>(rows) * half);
    for (int64_t t = cached_; t < rows; ++t) {
      const float p = static_cast<float>(t);
      for (size_t i = 0; i < half; ++i) {
        const float angle = p * inv_freq_[i];  // fp32 product, as transformers computes it
        cos_[t * half + i] = static_cast<float>(std::cos(static_cast<double>(angle)));
        sin_[t * half + i] = static_cast<float>(std::sin(static_cast<double>(angle)));
      }
    }
    cached_ = rows;
  }
  for (size_t t = 0; t < positions.size(); ++t) {
    std::memcpy(cos + t * half, cos_.data() + positions[t] * half, half * sizeof(float));
    std::memcpy(sin + t * half, sin_.data() + positions[t] * half, half * sizeof(float));
  }
}

}  // namespace hwledger
