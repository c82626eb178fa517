#include "ops/cpu/kernels_cpu.h"

#include "ops/cpu/simd.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

namespace hwledger::cpu {

bool has_avx512() { return simd_level() == SimdLevel::AVX512; }

void rms_norm(const float* x, const float* w, float eps, float* y, int64_t M, int64_t D, ThreadPool& pool) {
  auto rows = [&](size_t m0, size_t m1) {
    for (size_t m = m0; m < m1; ++m) {
      const float* xr = x + m * D;
      float* yr = y + m * D;
      double ss = 0;  // double: D can be large and the parity tests are strict
      for (int64_t i = 0; i < D; ++i) ss += static_cast<double>(xr[i]) * xr[i];
      float inv = 1.0f / std::sqrt(static_cast<float>(ss / D) + eps);
      for (int64_t i = 0; i < D; ++i) yr[i] = w[i] * (xr[i] * inv);
    }
  };
  if (M * D < 65536) rows(0, M);
  else pool.parallel_for(M, 1, rows);
}

namespace {
inline float load_elem(const uint8_t* p, DType t, size_t i) {
  uint16_t h;
  switch (t) {
    case DType::F32: { float f; std::memcpy(&f, p + 4 * i, 4); return f; }
    case DType::F16: std::memcpy(&h, p + 2 * i, 2); return f16_to_f32(h);
    case DType::BF16: std::memcpy(&h, p + 2 * i, 2); return bf16_to_f32(h);
    default: return 0.f;
  }
}
inline void store_elem(uint8_t* p, DType t, size_t i, float v) {
  uint16_t h;
  switch (t) {
    case DType::F32: std::memcpy(p + 4 * i, &v, 4); break;
    case DType::F16: h = f32_to_f16(v); std::memcpy(p + 2 * i, &h, 2); break;
    case DType::BF16: h = f32_to_bf16(v); std::memcpy(p + 2 * i, &h, 2); break;
    default: break;
  }
}
}  // namespace

void embedding(const void* table, DType dtype, int64_t H, const int32_t* ids, int64_t T, float* y) {
  const uint8_t* base = static_cast<const uint8_t*>(table);
  const size_t row_bytes = H * dtype_size(dtype);
  for (int64_t t = 0; t < T; ++t) {
    const uint8_t* row = base + static_cast<size_t>(ids[t]) * row_bytes;
    for (int64_t i = 0; i < H; ++i) y[t * H + i] = load_elem(row, dtype, i);
  }
}

void rope(float* x, int64_t T, int64_t n_heads, int64_t hd, const float* cos, const float* sin) {
  const int64_t half = hd / 2;
  for (int64_t t = 0; t < T; ++t) {
    const float* c = cos + t * half;
    const float* s = sin + t * half;
    for (int64_t h = 0; h < n_heads; ++h) {
      float* v = x + (t * n_heads + h) * hd;
      for (int64_t i = 0; i < half; ++i) {
        float a = v[i], b = v[i + half];
        v[i] = a * c[i] - b * s[i];
        v[i + half] = b * c[i] + a * s[i];
      }
    }
  }
}

void swiglu(const float* gate, const float* up, float* out, int64_t n, ThreadPool& pool) {
  pool.parallel_for(n, 1024, [&](size_t b, size_t e) {
    if (has_avx512()) {
      swiglu_avx512(gate + b, up + b, out + b, e - b);
      return;
    }
    for (size_t i = b; i < e; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
  });
}

void kv_store(const float* k, const float* v, int64_t T, int64_t pos0, const PagedKVView& kv) {
  const KVLayout& L = *kv.layout;
  const int64_t bt = L.block_tokens, hd = L.head_dim;
  for (int64_t t = 0; t < T; ++t) {
    int64_t pos = pos0 + t, b = pos / bt, j = pos % bt;
    uint8_t* kslab = kv.blocks[b] + L.k_offset(kv.layer);
    uint8_t* vslab = kv.blocks[b] + L.v_offset(kv.layer);
    for (int64_t g = 0; g < L.n_kv_heads; ++g) {
      const float* kr = k + (t * L.n_kv_heads + g) * hd;
      const float* vr = v + (t * L.n_kv_heads + g) * hd;
      uint8_t* kh = kslab + g * L.head_bytes();
      uint8_t* vh = vslab + g * L.head_bytes();
      for (int64_t d = 0; d < hd; ++d) {
        store_elem(kh, L.dtype, d * bt + j, kr[d]);  // K is stored transposed: [hd][bt]
        store_elem(vh, L.dtype, j * hd + d, vr[d]);  // V as rows: [bt][hd]
      }
    }
  }
}

namespace {
// One query row of one head: the plain version every SIMD path is tested against.
void attention_task_generic(const float* q, int64_t pos, const PagedKVView& kv, int64_t kv_head,
                            float scale, int64_t window, float* scores, float* out) {
  const KVLayout& L = *kv.layout;
  const int64_t bt = L.block_tokens, hd = L.head_dim;
  const int64_t n_keys = pos + 1;
  const int64_t lo = window > 0 && n_keys > window ? n_keys - window : 0;
  float mx = -std::numeric_limits<float>::infinity();
  for (int64_t j = lo; j < n_keys; ++j) {
    const uint8_t* kh = kv.blocks[j / bt] + L.k_offset(kv.layer) + kv_head * L.head_bytes();
    float s = 0;
    for (int64_t d = 0; d < hd; ++d) s += q[d] * load_elem(kh, L.dtype, d * bt + j % bt);
    scores[j] = s * scale;
    mx = std::max(mx, scores[j]);
  }
  double sum = 0;
  for (int64_t j = lo; j < n_keys; ++j) {
    scores[j] = std::exp(scores[j] - mx);
    sum += scores[j];
  }
  const float inv = static_cast<float>(1.0 / sum);
  for (int64_t d = 0; d < hd; ++d) out[d] = 0;
  for (int64_t j = lo; j < n_keys; ++j) {
    const uint8_t* vh = kv.blocks[j / bt] + L.v_offset(kv.layer) + kv_head * L.head_bytes();
    const float p = scores[j] * inv;
    for (int64_t d = 0; d < hd; ++d) out[d] += p * load_elem(vh, L.dtype, (j % bt) * hd + d);
  }
}
}  // namespace

void attention(const float* q, int64_t T, int64_t nh, int64_t pos0, const PagedKVView& kv,
               float scale, int64_t window, float* out, ThreadPool& pool) {
  const KVLayout& L = *kv.layout;
  const int64_t hd = L.head_dim, group = nh / L.n_kv_heads;
  const bool simd = has_avx512() && hd % 16 == 0 && L.block_tokens % 16 == 0;
  pool.parallel_for(static_cast<size_t>(T * nh), 1, [&](size_t b, size_t e) {
    thread_local std::vector<float> scores;
    if (scores.size() < static_cast<size_t>(pos0 + T + 16)) scores.resize(pos0 + T + 16);
    for (size_t task = b; task < e; ++task) {
      int64_t t = static_cast<int64_t>(task) / nh, h = static_cast<int64_t>(task) % nh;
      const float* qr = q + (t * nh + h) * hd;
      float* o = out + (t * nh + h) * hd;
      if (simd)
        attention_task_avx512(qr, pos0 + t, kv, h, h / group, scale, window, scores.data(), o);
      else
        attention_task_generic(qr, pos0 + t, kv, h / group, scale, window, scores.data(), o);
    }
  });
}

}  // namespace hwledger::cpu
