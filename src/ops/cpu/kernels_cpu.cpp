#include "ops/cpu/kernels_cpu.h"

#include "ops/cpu/simd.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

namespace hwledger::cpu {

bool has_avx512() { return simd_level() == SimdLevel::AVX512; }

float max_value(const float* v, int64_t n) {
  // 8 independent lanes that the compiler vectorises (a loop that tracks an index, like
  // std::max_element, runs ~20x slower over a 150k vocabulary).
  float lane[8];
  std::fill(lane, lane + 8, v[0]);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) lane[k] = v[i + k] > lane[k] ? v[i + k] : lane[k];
  float best = lane[0];
  for (int k = 1; k < 8; ++k) best = lane[k] > best ? lane[k] : best;
  for (; i < n; ++i) best = v[i] > best ? v[i] : best;
  return best;
}

int32_t argmax(const float* v, int64_t n) {
  // The largest value first, then its first position.
  const float best = max_value(v, n);
  int64_t i = 0;
  for (; i < n; ++i)
    if (v[i] == best) return static_cast<int32_t>(i);
  // best is NaN (v[0] was, and nothing compared greater): the first number's maximum, if any.
  int64_t arg = -1;
  for (i = 0; i < n; ++i)
    if (!std::isnan(v[i]) && (arg < 0 || v[i] > v[arg])) arg = i;
  return static_cast<int32_t>(arg < 0 ? 0 : arg);
}

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

namespace {

// ggml's q8_0 for one group of 32 values: d = amax / 127, q = round(x / d). Returns d as f16.
// Non-finite inputs give garbage values but no undefined conversions.
uint16_t quantize_group_q8_0(const float* x, int8_t* q) {
  float amax = 0;
  for (int64_t i = 0; i < kKVQuantGroup; ++i) amax = std::max(amax, std::fabs(x[i]));
  const float d = amax / 127;
  const float id = d > 0 ? 1 / d : 0;
  for (int64_t i = 0; i < kKVQuantGroup; ++i)
    q[i] = static_cast<int8_t>(std::round(std::fmin(std::fmax(x[i] * id, -127.f), 127.f)));
  return f32_to_f16(std::fmin(d, 65504.f));  // clamped: an infinite scale would make 0 * d NaN
}

// ggml's q4_0 for one group of 32 values: d = (the value of largest magnitude) / -8,
// q = min(15, (int)(x / d + 8.5)) in [0, 15], dequantized as (q - 8) * d. Returns d as f16.
uint16_t quantize_group_q4_0(const float* x, uint8_t* q) {
  float amax = 0, max = 0;
  for (int64_t i = 0; i < kKVQuantGroup; ++i) {
    const float v = x[i];
    if (std::fabs(v) > amax) {
      amax = std::fabs(v);
      max = v;
    }
  }
  const float d = max / -8;
  const float id = d != 0 ? 1 / d : 0;
  for (int64_t i = 0; i < kKVQuantGroup; ++i)
    q[i] = static_cast<uint8_t>(std::fmin(std::fmax(x[i] * id + 8.5f, 0.f), 15.f));
  return f32_to_f16(std::fmin(std::fmax(d, -65504.f), 65504.f));
}

// fp8 for one group of 32 values: the f16 scale d = max(amax / 448, 2^-14) (fp8_group_scale),
// q = e4m3(x / d) rounded to nearest even and saturated to +-448. Dividing by the rounded d makes
// e4m3(q) * d the nearest fp8 value to x. Returns d as f16; the CUDA store computes the same bits.
uint16_t quantize_group_fp8(const float* x, uint8_t* q) {
  float amax = 0;
  for (int64_t i = 0; i < kKVQuantGroup; ++i) amax = std::max(amax, std::fabs(x[i]));
  const uint16_t dh = fp8_group_scale(amax);
  const float d = f16_to_f32(dh);
  for (int64_t i = 0; i < kKVQuantGroup; ++i) q[i] = f32_to_e4m3(x[i] / d);
  return dh;
}

// e4m3 code -> value, for the generic kernel's per-element loads.
struct E4M3Table {
  float v[256] = {};
  constexpr E4M3Table() {
    for (int b = 0; b < 256; ++b) v[b] = e4m3_to_f32(static_cast<uint8_t>(b));
  }
};
constexpr E4M3Table kE4M3;

void put_f16(uint8_t* p, uint16_t h) { std::memcpy(p, &h, 2); }
float get_f16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return f16_to_f32(h);
}

// Token j's head vectors kr[hd], vr[hd] into one KV head's K region kh and V region vh.
void store_token(const KVLayout& L, const float* kr, const float* vr, int64_t j, uint8_t* kh,
                 uint8_t* vh) {
  const int64_t bt = L.block_tokens, hd = L.head_dim, groups = hd / kKVQuantGroup;
  uint8_t* kscale = kh + L.head_value_bytes();  // [groups][bt]
  uint8_t* vscale = vh + L.head_value_bytes();  // [bt][groups]
  switch (L.dtype) {
    case DType::Q8_0: {
      int8_t q[kKVQuantGroup];
      for (int64_t g = 0; g < groups; ++g) {
        const int64_t d0 = g * kKVQuantGroup;
        put_f16(kscale + 2 * (g * bt + j), quantize_group_q8_0(kr + d0, q));
        for (int64_t i = 0; i < kKVQuantGroup; ++i)
          kh[(d0 + i) * bt + j] = static_cast<uint8_t>(q[i]);
        put_f16(vscale + 2 * (j * groups + g), quantize_group_q8_0(vr + d0, q));
        std::memcpy(vh + j * hd + d0, q, kKVQuantGroup);
      }
      break;
    }
    case DType::F8_E4M3: {  // q8_0's layout with e4m3 codes for the int8s
      uint8_t q[kKVQuantGroup];
      for (int64_t g = 0; g < groups; ++g) {
        const int64_t d0 = g * kKVQuantGroup;
        put_f16(kscale + 2 * (g * bt + j), quantize_group_fp8(kr + d0, q));
        for (int64_t i = 0; i < kKVQuantGroup; ++i) kh[(d0 + i) * bt + j] = q[i];
        put_f16(vscale + 2 * (j * groups + g), quantize_group_fp8(vr + d0, q));
        std::memcpy(vh + j * hd + d0, q, kKVQuantGroup);
      }
      break;
    }
    case DType::Q4_0: {
      uint8_t q[kKVQuantGroup];
      const int shift = (j & 1) ? 4 : 0;  // K: token j's nibble in byte [d][j/2]
      for (int64_t g = 0; g < groups; ++g) {
        const int64_t d0 = g * kKVQuantGroup;
        put_f16(kscale + 2 * (g * bt + j), quantize_group_q4_0(kr + d0, q));
        for (int64_t i = 0; i < kKVQuantGroup; ++i) {
          uint8_t& byte = kh[(d0 + i) * (bt / 2) + j / 2];
          byte = static_cast<uint8_t>((byte & (0xf0 >> shift)) | (q[i] << shift));
        }
        put_f16(vscale + 2 * (j * groups + g), quantize_group_q4_0(vr + d0, q));
        uint8_t* row = vh + j * (hd / 2) + d0 / 2;  // V: dims 2i, 2i+1 in byte i
        for (int64_t i = 0; i < kKVQuantGroup / 2; ++i)
          row[i] = static_cast<uint8_t>(q[2 * i] | (q[2 * i + 1] << 4));
      }
      break;
    }
    default:
      for (int64_t d = 0; d < hd; ++d) {
        store_elem(kh, L.dtype, d * bt + j, kr[d]);  // K is stored transposed: [hd][bt]
        store_elem(vh, L.dtype, j * hd + d, vr[d]);  // V as rows: [bt][hd]
      }
  }
}

// Key j of one KV head's K region kh, dequantized: key[hd].
void load_key(const KVLayout& L, const uint8_t* kh, int64_t j, float* key) {
  const int64_t bt = L.block_tokens, hd = L.head_dim;
  const uint8_t* kscale = kh + L.head_value_bytes();
  switch (L.dtype) {
    case DType::Q8_0:
      for (int64_t d = 0; d < hd; ++d)
        key[d] = static_cast<float>(static_cast<int8_t>(kh[d * bt + j])) *
                 get_f16(kscale + 2 * ((d / kKVQuantGroup) * bt + j));
      break;
    case DType::F8_E4M3:
      for (int64_t d = 0; d < hd; ++d)
        key[d] = kE4M3.v[kh[d * bt + j]] * get_f16(kscale + 2 * ((d / kKVQuantGroup) * bt + j));
      break;
    case DType::Q4_0:
      for (int64_t d = 0; d < hd; ++d) {
        const int q = (kh[d * (bt / 2) + j / 2] >> ((j & 1) * 4)) & 0xf;
        key[d] = static_cast<float>(q - 8) * get_f16(kscale + 2 * ((d / kKVQuantGroup) * bt + j));
      }
      break;
    default:
      for (int64_t d = 0; d < hd; ++d) key[d] = load_elem(kh, L.dtype, d * bt + j);
  }
}

// Value row j of one KV head's V region vh, dequantized: value[hd].
void load_value(const KVLayout& L, const uint8_t* vh, int64_t j, float* value) {
  const int64_t hd = L.head_dim, groups = hd / kKVQuantGroup;
  const uint8_t* vscale = vh + L.head_value_bytes() + 2 * j * groups;
  switch (L.dtype) {
    case DType::Q8_0:
      for (int64_t d = 0; d < hd; ++d)
        value[d] = static_cast<float>(static_cast<int8_t>(vh[j * hd + d])) *
                   get_f16(vscale + 2 * (d / kKVQuantGroup));
      break;
    case DType::F8_E4M3:
      for (int64_t d = 0; d < hd; ++d)
        value[d] = kE4M3.v[vh[j * hd + d]] * get_f16(vscale + 2 * (d / kKVQuantGroup));
      break;
    case DType::Q4_0:
      for (int64_t d = 0; d < hd; ++d) {
        const int q = (vh[j * (hd / 2) + d / 2] >> ((d & 1) * 4)) & 0xf;
        value[d] = static_cast<float>(q - 8) * get_f16(vscale + 2 * (d / kKVQuantGroup));
      }
      break;
    default:
      for (int64_t d = 0; d < hd; ++d) value[d] = load_elem(vh, L.dtype, j * hd + d);
  }
}

}  // namespace

void kv_store(const float* k, const float* v, int64_t T, int64_t pos0, const PagedKVView& kv) {
  const KVLayout& L = *kv.layout;
  const int64_t bt = L.block_tokens, hd = L.head_dim;
  for (int64_t t = 0; t < T; ++t) {
    int64_t pos = pos0 + t, b = pos / bt, j = pos % bt;
    uint8_t* kslab = kv.blocks[b] + L.k_offset(kv.layer);
    uint8_t* vslab = kv.blocks[b] + L.v_offset(kv.layer);
    for (int64_t g = 0; g < L.n_kv_heads; ++g)
      store_token(L, k + (t * L.n_kv_heads + g) * hd, v + (t * L.n_kv_heads + g) * hd, j,
                  kslab + g * L.head_bytes(), vslab + g * L.head_bytes());
  }
}

namespace {
// One query row of one head: the plain version every SIMD path is tested against.
// row: scratch of head_dim floats.
void attention_task_generic(const float* q, int64_t pos, const PagedKVView& kv, int64_t kv_head,
                            float scale, int64_t window, float* scores, float* row, float* out) {
  const KVLayout& L = *kv.layout;
  const int64_t bt = L.block_tokens, hd = L.head_dim;
  const int64_t n_keys = pos + 1;
  const int64_t lo = window > 0 && n_keys > window ? n_keys - window : 0;
  float mx = -std::numeric_limits<float>::infinity();
  for (int64_t j = lo; j < n_keys; ++j) {
    const uint8_t* kh = kv.blocks[j / bt] + L.k_offset(kv.layer) + kv_head * L.head_bytes();
    load_key(L, kh, j % bt, row);
    float s = 0;
    for (int64_t d = 0; d < hd; ++d) s += q[d] * row[d];
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
    load_value(L, vh, j % bt, row);
    const float p = scores[j] * inv;
    for (int64_t d = 0; d < hd; ++d) out[d] += p * row[d];
  }
}
}  // namespace

void attention(const float* q, int64_t T, int64_t nh, int64_t pos0, const PagedKVView& kv,
               float scale, int64_t window, float* out, ThreadPool& pool) {
  const KVLayout& L = *kv.layout;
  const int64_t hd = L.head_dim, group = nh / L.n_kv_heads;
  // Keys [lo, hi) of the query at token t: causal, and the last `window` keys if window > 0.
  auto key_range = [&](int64_t t, int64_t& lo, int64_t& hi) {
    hi = pos0 + t + 1;
    lo = window > 0 && hi > window ? hi - window : 0;
  };
  if (has_avx512() && hd % 16 == 0 && L.block_tokens % 16 == 0) {
    // Tiles of up to kAttentionTileRows rows that share a KV head: `heads` heads of its group
    // for `tokens` consecutive tokens. Tiles of later tokens (more keys) are handed out first.
    const int64_t heads = std::min<int64_t>(group, kAttentionTileRows);
    const int64_t tokens = std::max<int64_t>(1, kAttentionTileRows / heads);
    const int64_t head_tiles = (group + heads - 1) / heads, token_tiles = (T + tokens - 1) / tokens;
    const int64_t per_token_tile = L.n_kv_heads * head_tiles;
    pool.parallel_for(static_cast<size_t>(token_tiles * per_token_tile), 1, [&](size_t b, size_t e) {
      AttentionRow rows[kAttentionTileRows];
      for (size_t task = b; task < e; ++task) {
        const int64_t tt = token_tiles - 1 - static_cast<int64_t>(task) / per_token_tile;
        const int64_t rest = static_cast<int64_t>(task) % per_token_tile;
        const int64_t g = rest / head_tiles, h0 = g * group + (rest % head_tiles) * heads;
        const int64_t h1 = std::min(h0 + heads, (g + 1) * group);
        int n = 0;
        for (int64_t t = tt * tokens; t < std::min(T, (tt + 1) * tokens); ++t)
          for (int64_t h = h0; h < h1; ++h, ++n) {
            rows[n].q = q + (t * nh + h) * hd;
            rows[n].out = out + (t * nh + h) * hd;
            key_range(t, rows[n].lo, rows[n].hi);
          }
        attention_tile_avx512(rows, n, kv, g, scale);
      }
    });
    return;
  }
  pool.parallel_for(static_cast<size_t>(T * nh), 1, [&](size_t b, size_t e) {
    thread_local std::vector<float> scores, row;
    if (scores.size() < static_cast<size_t>(pos0 + T + 32)) scores.resize(pos0 + T + 32);
    if (row.size() < static_cast<size_t>(hd)) row.resize(hd);
    for (size_t task = b; task < e; ++task) {
      int64_t t = static_cast<int64_t>(task) / nh, h = static_cast<int64_t>(task) % nh;
      attention_task_generic(q + (t * nh + h) * hd, pos0 + t, kv, h / group, scale, window,
                             scores.data(), row.data(), out + (t * nh + h) * hd);
    }
  });
}

}  // namespace hwledger::cpu
