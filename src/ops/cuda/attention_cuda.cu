// Paged KV cache kernels: storing k/v (alone or fused with bias, q/k-norm and RoPE), the
// split-key attention kernel (decode, and any head_dim/KV type), and a flash-style prefill
// kernel on the tensor cores (mma.sync m16n8k16 on f16: bf16 KV converted in registers; f16/fp8 KV,
// head_dim 32/64/128).
// The cache layout is ops/paged_kv.h's: per block, layer, KV head: K [hd][bt], V [bt][hd]; fp8
// (e4m3) keeps one byte per value there, followed by f16 scales per 32 dims: K [hd/32][bt],
// V [bt][hd/32].
#include <cfloat>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <type_traits>

#include "ops/cuda/common.cuh"

namespace hwledger::cuda {

namespace {

// The batch as kernels take it (by value).
struct Geo {
  int64_t bt, hd, nkv;
  int64_t k_off, v_off, head_bytes;  // bytes: layer's K/V slab in a block; one head's region
  const int32_t* q_start;
  const int32_t* pos0;
  const int32_t* row_seq;
  uint8_t* const* blocks;
  int width;
};

std::string str(int64_t v) {
  return std::to_string(v);
}

Geo make_geo(const PagedBatch& b) {
  return Geo{b.block_tokens, b.head_dim, b.n_kv_heads, b.k_off,  b.v_off,      b.head_bytes,
             b.q_start,      b.pos0,     b.row_seq,    b.blocks, b.table_width};
}

template <typename KT>
__device__ __forceinline__ KT* k_head(const Geo& g, int s, int64_t pos, int64_t h) {
  uint8_t* base = g.blocks[static_cast<int64_t>(s) * g.width + pos / g.bt];
  return reinterpret_cast<KT*>(base + g.k_off + h * g.head_bytes);
}
template <typename KT>
__device__ __forceinline__ KT* v_head(const Geo& g, int s, int64_t pos, int64_t h) {
  uint8_t* base = g.blocks[static_cast<int64_t>(s) * g.width + pos / g.bt];
  return reinterpret_cast<KT*>(base + g.v_off + h * g.head_bytes);
}

__device__ __forceinline__ void row_pos(const Geo& g, int64_t row, int& s, int64_t& pos) {
  s = g.row_seq[row];
  pos = g.pos0[s] + (row - g.q_start[s]);
}

// ---- fp8 (e4m3) KV --------------------------------------------------------------------------

// The KV element type of the fp8 cache in the kernels' templates (beside float, __half and
// __nv_bfloat16): an e4m3 code. Its f16 scales follow a head's values (head_scales).
struct Fp8 {
  uint8_t bits;
};
template <typename KT>
inline constexpr bool kIsFp8 = std::is_same_v<KT, Fp8>;
// The flash kernel's shared-memory tile type: fp8 tiles are dequantized to f16 as they are loaded
// (f16's 11 significant bits hold e4m3 x scale to 2^-11; K and V never reach 65504); 16-bit
// tiles are the cache's. The MMAs run on f16 for every KV type (bf16 fragments are converted
// in registers): Q and P rounded to 11 bits instead of 8.
template <typename KT>
using MmaT = std::conditional_t<kIsFp8<KT>, __half, KT>;

// A head region's f16 scales: after its hd x bt one-byte values.
__device__ __forceinline__ const __half* head_scales(const Geo& g, const void* head) {
  return reinterpret_cast<const __half*>(static_cast<const uint8_t*>(head) + g.hd * g.bt);
}

// Codes bytes (2 pair, 2 pair + 1) of w times 2^-8, exactly (e4m3_to_f16_bits_div256 on both).
// Times 256 d this is the CPU's e4m3_to_f32(code) * d to the bit.
__device__ __forceinline__ float2 fp8x2_div256(uint32_t w, int pair) {
  const uint32_t t = __byte_perm(w, 0, pair ? 0x4342 : 0x4140);  // bytes -> low bytes of halves
  const uint32_t h = ((t & 0x00800080u) << 8) | ((t & 0x007f007fu) << 7);
  __half2 v;
  memcpy(&v, &h, 4);
  return __half22float2(v);
}
// Eight codes (8 bytes) with one scale each (8 f16, times 256 in scale256) as f32.
__device__ __forceinline__ void fp8x8(uint2 codes, uint4 scales, float (&out)[8]) {
  const uint32_t sw[4] = {scales.x, scales.y, scales.z, scales.w};
#pragma unroll
  for (int p = 0; p < 4; ++p) {
    const float2 c = fp8x2_div256(p < 2 ? codes.x : codes.y, p & 1);
    __half2 sh;
    memcpy(&sh, &sw[p], 4);
    const float2 sc = __half22float2(sh);
    out[2 * p] = c.x * (sc.x * 256.0f);
    out[2 * p + 1] = c.y * (sc.y * 256.0f);
  }
}
// Eight codes sharing one scale (already times 256) as f32.
__device__ __forceinline__ void fp8x8(uint2 codes, float scale256, float (&out)[8]) {
#pragma unroll
  for (int p = 0; p < 4; ++p) {
    const float2 c = fp8x2_div256(p < 2 ? codes.x : codes.y, p & 1);
    out[2 * p] = c.x * scale256;
    out[2 * p + 1] = c.y * scale256;
  }
}
__device__ __forceinline__ float fp8_value(uint8_t code, float scale256) {
  return __half2float(__ushort_as_half(e4m3_to_f16_bits_div256(code))) * scale256;
}

// Quantizes this thread's element x of a head vector (dim d) into token slot `off` of a K
// (transposed) or V head region. The 32 lanes of the warp must hold the 32 dims of one group
// (d = 32 i + lane): the group's amax is a warp reduction. Bit for bit the CPU's
// quantize_group_fp8: max |x| (NaN ignored), d = f16(clamp(amax / 448, 2^-14, 65504)),
// code = e4m3(x / d) (IEEE division: nvcc's default -prec-div=true).
__device__ __forceinline__ void store_fp8(float x, int64_t d, int64_t off, uint8_t* head, bool is_k,
                                          const Geo& g) {
  float amax = fabsf(x);
#pragma unroll
  amax = warp_max(amax);
  float sd = amax / kE4M3Max;
  sd = sd > 6.103515625e-05f ? sd : 6.103515625e-05f;
  const __half dh = __float2half_rn(sd < 65504.0f ? sd : 65504.0f);
  const uint8_t code = e4m3_from_f32_bits(__float_as_uint(x / __half2float(dh)));
  __half* scales = reinterpret_cast<__half*>(head + g.hd * g.bt);
  if (is_k) {
    head[d * g.bt + off] = code;
    if (d % 32 == 0) scales[(d / 32) * g.bt + off] = dh;
  } else {
    head[off * g.hd + d] = code;
    if (d % 32 == 0) scales[off * (g.hd / 32) + d / 32] = dh;
  }
}

// ---- kv_store and the fused qkv epilogue ---------------------------------------------------

template <typename KT>
__global__ void kv_store_kernel(const float* __restrict__ k, int64_t ldk,
                                const float* __restrict__ v, int64_t ldv, Geo g) {
  const int64_t row = blockIdx.x, h = blockIdx.y;
  int s;
  int64_t pos;
  row_pos(g, row, s, pos);
  const int64_t off = pos % g.bt;
  KT* K = k_head<KT>(g, s, pos, h);
  KT* V = v_head<KT>(g, s, pos, h);
  for (int64_t d = threadIdx.x; d < g.hd; d += blockDim.x) {  // fp8: a warp per group of 32
    if constexpr (kIsFp8<KT>) {
      store_fp8(k[row * ldk + h * g.hd + d], d, off, reinterpret_cast<uint8_t*>(K), true, g);
      store_fp8(v[row * ldv + h * g.hd + d], d, off, reinterpret_cast<uint8_t*>(V), false, g);
    } else {
      K[d * g.bt + off] = from_f32<KT>(k[row * ldk + h * g.hd + d]);
      V[off * g.hd + d] = from_f32<KT>(v[row * ldv + h * g.hd + d]);
    }
  }
}

// One block per (row, head of q | k | v), hd <= 256: the fp8 path (a warp holds one group of 32).
template <typename KT>
__global__ void qkv_finish_kernel(const float* __restrict__ qkv, int64_t ld,
                                  const float* __restrict__ bias, const float* __restrict__ q_norm,
                                  const float* __restrict__ k_norm, float eps,
                                  const float* __restrict__ cos, const float* __restrict__ sin,
                                  int64_t nh, float* __restrict__ q_out, Geo g) {
  __shared__ float buf[256];
  __shared__ float red[32];
  const int64_t row = blockIdx.x, j = blockIdx.y, hd = g.hd, half = hd / 2;
  const int64_t col = j * hd;  // q heads, then k heads, then v heads: contiguous in a qkv row
  const bool is_q = j < nh, is_k = !is_q && j < nh + g.nkv;
  for (int64_t d = threadIdx.x; d < hd; d += blockDim.x)
    buf[d] = qkv[row * ld + col + d] + (bias ? bias[col + d] : 0.0f);
  __syncthreads();
  const float* nw = is_q ? q_norm : is_k ? k_norm : nullptr;
  if (nw) {
    float ss = 0;
    for (int64_t d = threadIdx.x; d < hd; d += blockDim.x) ss += buf[d] * buf[d];
    ss = warp_sum(ss);
    if (threadIdx.x % 32 == 0) red[threadIdx.x / 32] = ss;
    __syncthreads();
    float tot = 0;
    for (int w = 0; w < static_cast<int>(blockDim.x / 32); ++w) tot += red[w];
    const float r = rsqrtf(tot / static_cast<float>(hd) + eps);
    __syncthreads();
    for (int64_t d = threadIdx.x; d < hd; d += blockDim.x) buf[d] = buf[d] * r * nw[d];
    __syncthreads();
  }
  if (is_q || is_k) {  // rotate-half RoPE
    for (int64_t i = threadIdx.x; i < half; i += blockDim.x) {
      const float c = cos[row * half + i], s = sin[row * half + i];
      const float a = buf[i], b = buf[i + half];
      buf[i] = a * c - b * s;
      buf[i + half] = b * c + a * s;
    }
    __syncthreads();
  }
  if (is_q) {
    for (int64_t d = threadIdx.x; d < hd; d += blockDim.x) q_out[row * nh * hd + col + d] = buf[d];
    return;
  }
  int s;
  int64_t pos;
  row_pos(g, row, s, pos);
  const int64_t off = pos % g.bt;
  if constexpr (kIsFp8<KT>) {  // blockDim 128, hd % 32 == 0: each warp holds whole groups
    uint8_t* head =
        is_k ? k_head<uint8_t>(g, s, pos, j - nh) : v_head<uint8_t>(g, s, pos, j - nh - g.nkv);
    for (int64_t d = threadIdx.x; d < hd; d += blockDim.x) store_fp8(buf[d], d, off, head, is_k, g);
  } else if (is_k) {
    KT* K = k_head<KT>(g, s, pos, j - nh);
    for (int64_t d = threadIdx.x; d < hd; d += blockDim.x) K[d * g.bt + off] = from_f32<KT>(buf[d]);
  } else {
    KT* V = v_head<KT>(g, s, pos, j - nh - g.nkv);
    for (int64_t d = threadIdx.x; d < hd; d += blockDim.x) V[off * hd + d] = from_f32<KT>(buf[d]);
  }
}

// The same for 16-bit and f32 KV, a warp per (row, head) and 8 rows of one head per block: no
// shared memory or block barriers (the per-head norm is a warp sum), lane l holds the RoPE pairs
// (i, i + hd/2) for i = l + 32p, and neighbouring tokens' transposed K stores land in the same
// cache lines. One block per (row, head) spent most of its time in launch and barriers: 0.68 ms
// a layer at 8192 rows on an H100, for ~0.4 GB of traffic.
constexpr int kQkvRowsPerBlock = 8;
template <typename KT>
__global__ __launch_bounds__(32 * kQkvRowsPerBlock) void qkv_finish_warp_kernel(
    const float* __restrict__ qkv, int64_t ld, const float* __restrict__ bias,
    const float* __restrict__ q_norm, const float* __restrict__ k_norm, float eps,
    const float* __restrict__ cos, const float* __restrict__ sin, int64_t nh,
    float* __restrict__ q_out, Geo g, int64_t n_rows) {
  const int lane = threadIdx.x % 32;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kQkvRowsPerBlock + threadIdx.x / 32;
  if (row >= n_rows) return;  // the whole warp
  const int64_t j = blockIdx.y, hd = g.hd, half = hd / 2, col = j * hd;
  const bool is_q = j < nh, is_k = !is_q && j < nh + g.nkv;
  const float* x = qkv + row * ld + col;
  float a[4], b[4];  // hd <= 256: at most 4 pairs a lane
  float ss = 0;
#pragma unroll
  for (int p = 0; p < 4; ++p) {
    const int64_t i = lane + 32 * p;
    a[p] = b[p] = 0;
    if (i < half) {
      a[p] = x[i] + (bias ? bias[col + i] : 0.0f);
      b[p] = x[i + half] + (bias ? bias[col + i + half] : 0.0f);
      ss += a[p] * a[p] + b[p] * b[p];
    }
  }
  const float* nw = is_q ? q_norm : is_k ? k_norm : nullptr;
  if (nw) {
    const float r = rsqrtf(warp_sum(ss) / static_cast<float>(hd) + eps);
#pragma unroll
    for (int p = 0; p < 4; ++p) {
      const int64_t i = lane + 32 * p;
      if (i < half) {
        a[p] *= r * nw[i];
        b[p] *= r * nw[i + half];
      }
    }
  }
  if (is_q || is_k) {  // rotate-half RoPE
#pragma unroll
    for (int p = 0; p < 4; ++p) {
      const int64_t i = lane + 32 * p;
      if (i < half) {
        const float c = cos[row * half + i], sn = sin[row * half + i], u = a[p], w = b[p];
        a[p] = u * c - w * sn;
        b[p] = w * c + u * sn;
      }
    }
  }
  if (is_q) {
    float* out = q_out + row * nh * hd + col;
#pragma unroll
    for (int p = 0; p < 4; ++p) {
      const int64_t i = lane + 32 * p;
      if (i < half) {
        out[i] = a[p];
        out[i + half] = b[p];
      }
    }
    return;
  }
  int s;
  int64_t pos;
  row_pos(g, row, s, pos);
  const int64_t off = pos % g.bt;
  if (is_k) {
    KT* K = k_head<KT>(g, s, pos, j - nh);
#pragma unroll
    for (int p = 0; p < 4; ++p) {
      const int64_t i = lane + 32 * p;
      if (i < half) {
        K[i * g.bt + off] = from_f32<KT>(a[p]);
        K[(i + half) * g.bt + off] = from_f32<KT>(b[p]);
      }
    }
  } else {
    KT* V = v_head<KT>(g, s, pos, j - nh - g.nkv);
#pragma unroll
    for (int p = 0; p < 4; ++p) {
      const int64_t i = lane + 32 * p;
      if (i < half) {
        V[off * hd + i] = from_f32<KT>(a[p]);
        V[off * hd + i + half] = from_f32<KT>(b[p]);
      }
    }
  }
}

// ---- split-key attention ------------------------------------------------------------------

constexpr int kSplit = 256;  // keys per block = threads per block

// Value row `off`, dim d of a V head region, as f32.
template <typename KT>
__device__ __forceinline__ float value_at(const Geo& g, const KT* vh, int64_t off, int64_t d) {
  if constexpr (kIsFp8<KT>)
    return fp8_value(vh[off * g.hd + d].bits,
                     256.0f * __half2float(head_scales(g, vh)[off * (g.hd / 32) + d / 32]));
  else
    return to_f32(vh[off * g.hd + d]);
}

// Block (row, kv head, split): the G query heads of one KV head over one range of keys.
// Writes unnormalised partial outputs and (max, sum) per head, merged by combine_kernel.
template <typename KT, int G>
__global__ __launch_bounds__(kSplit) void split_attn_kernel(const float* __restrict__ q, Geo g,
                                                            int64_t nh, float scale, int64_t window,
                                                            int64_t row0, int n_splits,
                                                            float* __restrict__ part_o,
                                                            float* __restrict__ part_ml) {
  __shared__ float qs[G][256];
  __shared__ float sc[G][kSplit];
  __shared__ float red[kSplit / 32][G];
  const int64_t row = row0 + blockIdx.x, kvh = blockIdx.y, split = blockIdx.z, hd = g.hd;
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  int s;
  int64_t pos;
  row_pos(g, row, s, pos);
  const int64_t n_keys = pos + 1;
  const int64_t lo = window > 0 && n_keys > window ? n_keys - window : 0;
  const int64_t k_begin = max(lo, split * kSplit), k_end = min(n_keys, (split + 1) * kSplit);
  const int64_t part =
      ((blockIdx.x * nh + kvh * G) * n_splits + split);  // of head g: + g * n_splits
  if (k_begin >= k_end) {
    for (int64_t i = tid; i < G * hd; i += kSplit)
      part_o[(part + (i / hd) * n_splits) * hd + i % hd] = 0.0f;
    if (tid < G) {
      part_ml[(part + tid * n_splits) * 2] = -FLT_MAX;
      part_ml[(part + tid * n_splits) * 2 + 1] = 0.0f;
    }
    return;
  }
  for (int64_t i = tid; i < G * hd; i += kSplit)
    qs[i / hd][i % hd] = q[row * nh * hd + (kvh * G + i / hd) * hd + i % hd] * scale;
  __syncthreads();

  // Scores: one key per thread.
  const int64_t key = k_begin + tid;
  float acc[G];
#pragma unroll
  for (int j = 0; j < G; ++j) acc[j] = -FLT_MAX;
  if (key < k_end) {
    const KT* K = k_head<KT>(g, s, key, kvh) + key % g.bt;
#pragma unroll
    for (int j = 0; j < G; ++j) acc[j] = 0.0f;
    int64_t d = 0;
    for (; d + 8 <= hd; d += 8) {  // eight loads in flight per thread
      float kv8[8];
      if constexpr (kIsFp8<KT>) {  // dims d .. d + 7 share a group (hd % 32 == 0)
        const float sc =
            256.0f * __half2float(head_scales(g, K - key % g.bt)[(d / 32) * g.bt + key % g.bt]);
#pragma unroll
        for (int e = 0; e < 8; ++e) kv8[e] = fp8_value(K[(d + e) * g.bt].bits, sc);
      } else {
#pragma unroll
        for (int e = 0; e < 8; ++e) kv8[e] = to_f32(K[(d + e) * g.bt]);
      }
#pragma unroll
      for (int j = 0; j < G; ++j)
#pragma unroll
        for (int e = 0; e < 8; ++e) acc[j] += qs[j][d + e] * kv8[e];
    }
    if constexpr (!kIsFp8<KT>)
      for (; d < hd; ++d) {
        const float kd = to_f32(K[d * g.bt]);
#pragma unroll
        for (int j = 0; j < G; ++j) acc[j] += qs[j][d] * kd;
      }
  }
  // Max and sum over the block's keys, per head.
  float m[G], l[G];
#pragma unroll
  for (int j = 0; j < G; ++j) {
    const float v = warp_max(acc[j]);
    if (lane == 0) red[warp][j] = v;
  }
  __syncthreads();
#pragma unroll
  for (int j = 0; j < G; ++j) {
    m[j] = red[0][j];
    for (int w = 1; w < kSplit / 32; ++w) m[j] = fmaxf(m[j], red[w][j]);
  }
  __syncthreads();
#pragma unroll
  for (int j = 0; j < G; ++j) {
    const float p = key < k_end ? __expf(acc[j] - m[j]) : 0.0f;
    sc[j][tid] = p;
    const float v = warp_sum(p);
    if (lane == 0) red[warp][j] = v;
  }
  __syncthreads();
#pragma unroll
  for (int j = 0; j < G; ++j) {
    l[j] = 0;
    for (int w = 0; w < kSplit / 32; ++w) l[j] += red[w][j];
  }
  // Weighted sum of values: thread (sub, d) takes keys sub, sub + nsub, ...
  const int64_t nsub = kSplit / hd, d = tid % hd, sub = tid / hd, n = k_end - k_begin;
  float o[G];
#pragma unroll
  for (int j = 0; j < G; ++j) o[j] = 0.0f;
  if (sub < nsub) {
    int64_t i = sub;
    for (; i + 7 * nsub < n; i += 8 * nsub) {  // eight loads in flight per thread
      float v8[8];
#pragma unroll
      for (int e = 0; e < 8; ++e) {
        const int64_t kk = k_begin + i + e * nsub;
        v8[e] = value_at<KT>(g, v_head<KT>(g, s, kk, kvh), kk % g.bt, d);
      }
#pragma unroll
      for (int e = 0; e < 8; ++e)
#pragma unroll
        for (int j = 0; j < G; ++j) o[j] += sc[j][i + e * nsub] * v8[e];
    }
    for (; i < n; i += nsub) {
      const int64_t kk = k_begin + i;
      const float vd = value_at<KT>(g, v_head<KT>(g, s, kk, kvh), kk % g.bt, d);
#pragma unroll
      for (int j = 0; j < G; ++j) o[j] += sc[j][i] * vd;
    }
  }
  __syncthreads();
  float* ored = &sc[0][0];  // reuse: [nsub][G][hd] <= G * kSplit floats
  if (sub < nsub)
#pragma unroll
    for (int j = 0; j < G; ++j) ored[(sub * G + j) * hd + d] = o[j];
  __syncthreads();
  for (int64_t i = tid; i < G * hd; i += kSplit) {
    const int64_t j = i / hd, dd = i % hd;
    float t = 0;
    for (int64_t u = 0; u < nsub; ++u) t += ored[(u * G + j) * hd + dd];
    part_o[(part + j * n_splits) * hd + dd] = t;
  }
  if (tid < G) {
    float mj = 0, lj = 0;
#pragma unroll
    for (int j = 0; j < G; ++j)
      if (j == tid) {
        mj = m[j];
        lj = l[j];
      }
    part_ml[(part + tid * n_splits) * 2] = mj;
    part_ml[(part + tid * n_splits) * 2 + 1] = lj;
  }
}

// The decode kernel for 16-bit KV and head_dim 64/128: block (row, kv head, 64 keys), 128
// threads, every cache read a 16-byte load with all of a thread's loads issued together (K:
// 8 tokens of one dim; V: 8 dims of one token). Same partial outputs as split_attn_kernel.
constexpr int kSplitV = 64;

// HWLEDGER_CUDA_VEC_ATTN=0 keeps decode on the scalar split kernel (comparisons).
bool vec_enabled() {
  static const bool on = [] {
    const char* v = std::getenv("HWLEDGER_CUDA_VEC_ATTN");
    return !(v && std::string(v) == "0");
  }();
  return on;
}

template <typename KT, int G, int HD>
__global__ __launch_bounds__(128) void split_attn_vec_kernel(
    const float* __restrict__ q, Geo g, int64_t nh, float scale, int64_t window, int64_t row0,
    int n_splits, float* __restrict__ part_o, float* __restrict__ part_ml) {
  constexpr int DG = 16;             // phase A: dim groups (a warp holds 2 token groups)
  constexpr int DPT = HD / DG;       // dims per thread
  constexpr int DC = HD / 8;         // phase C: 8-dim chunks per row
  constexpr int KG = 128 / DC;       // key groups
  constexpr int KPT = kSplitV / KG;  // keys per thread
  __shared__ float qs[G][HD];
  __shared__ float sc[G][kSplitV];
  __shared__ float red[KG][G][HD];
  const int64_t row = row0 + blockIdx.x, kvh = blockIdx.y, split = blockIdx.z;
  const int tid = threadIdx.x;
  int s;
  int64_t pos;
  row_pos(g, row, s, pos);
  const int64_t n_keys = pos + 1;
  const int64_t lo = window > 0 && n_keys > window ? n_keys - window : 0;
  const int64_t k0 = split * kSplitV;
  const int64_t k_begin = max(lo, k0), k_end = min(n_keys, k0 + kSplitV);
  const int64_t part = ((blockIdx.x * nh + kvh * G) * n_splits + split);
  if (k_begin >= k_end) {  // the combine skips splits with l = 0 without reading o
    if (tid < G) {
      part_ml[(part + tid * n_splits) * 2] = -FLT_MAX;
      part_ml[(part + tid * n_splits) * 2 + 1] = 0.0f;
    }
    return;
  }
  for (int i = tid; i < G * HD; i += 128)
    qs[i / HD][i % HD] = q[row * nh * HD + (kvh * G + i / HD) * HD + i % HD] * scale;
  __syncthreads();

  // Scores: thread (token group tg, dim group dg): 8 tokens x DPT dims.
  {
    const int tg = tid / DG, dg = tid % DG;
    const int64_t key = k0 + tg * 8;
    float acc[G][8];
#pragma unroll
    for (int j = 0; j < G; ++j)
#pragma unroll
      for (int e = 0; e < 8; ++e) acc[j][e] = 0.0f;
    if constexpr (kIsFp8<KT>) {
      if (key < k_end) {
        // 8 bytes per dim (8 tokens), and per group the 8 tokens' scales (16 bytes): thread dg's
        // dims dg + 16 i lie in group i / 2.
        const uint8_t* K = k_head<uint8_t>(g, s, key, kvh);
        const int64_t off = key % g.bt;
        uint2 kv[DPT];
        uint4 ks[HD / 32];
#pragma unroll
        for (int i = 0; i < DPT; ++i)
          kv[i] = *reinterpret_cast<const uint2*>(K + (dg + i * DG) * g.bt + off);
#pragma unroll
        for (int i = 0; i < HD / 32; ++i)
          ks[i] = *reinterpret_cast<const uint4*>(head_scales(g, K) + i * g.bt + off);
#pragma unroll
        for (int i = 0; i < DPT; ++i) {
          float kf[8];
          fp8x8(kv[i], ks[i / 2], kf);
#pragma unroll
          for (int j = 0; j < G; ++j) {
            const float qd = qs[j][dg + i * DG];
#pragma unroll
            for (int e = 0; e < 8; ++e) acc[j][e] += qd * kf[e];
          }
        }
      }
    } else {
      if (key < k_end) {
        const KT* K = k_head<KT>(g, s, key, kvh) + key % g.bt;
        uint4 kv[DPT];
#pragma unroll
        for (int i = 0; i < DPT; ++i)
          kv[i] = *reinterpret_cast<const uint4*>(K + (dg + i * DG) * g.bt);
#pragma unroll
        for (int i = 0; i < DPT; ++i) {
          const KT* kp = reinterpret_cast<const KT*>(&kv[i]);
#pragma unroll
          for (int j = 0; j < G; ++j) {
            const float qd = qs[j][dg + i * DG];
#pragma unroll
            for (int e = 0; e < 8; ++e) acc[j][e] += qd * to_f32(kp[e]);
          }
        }
      }
    }
#pragma unroll
    for (int j = 0; j < G; ++j)
#pragma unroll
      for (int e = 0; e < 8; ++e) {
        float v = acc[j][e];
#pragma unroll
        for (int o = 8; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
        acc[j][e] = v;
      }
    if (dg == 0)
#pragma unroll
      for (int e = 0; e < 8; ++e) {
        const int64_t kk = key + e;
        const bool ok = kk >= k_begin && kk < k_end;
#pragma unroll
        for (int j = 0; j < G; ++j) sc[j][tg * 8 + e] = ok ? acc[j][e] : -INFINITY;
      }
  }
  __syncthreads();
  // Softmax over the 64 keys: warp w handles heads w, w + 4, ...
  const int warp = tid / 32, lane = tid % 32;
  for (int j = warp; j < G; j += 4) {
    const float a = sc[j][lane], b = sc[j][lane + 32];
    const float m = warp_max(fmaxf(a, b));
    const float pa = __expf(a - m), pb = __expf(b - m);
    const float l = warp_sum(pa + pb);
    sc[j][lane] = pa;
    sc[j][lane + 32] = pb;
    if (lane == 0) {
      part_ml[(part + j * n_splits) * 2] = m;
      part_ml[(part + j * n_splits) * 2 + 1] = l;
    }
  }
  __syncthreads();
  // Values: thread (key group kg, dim chunk dc): keys kg, kg + KG, ... x 8 dims.
  {
    const int kg = tid / DC, dc = tid % DC;
    float o[G][8];
#pragma unroll
    for (int j = 0; j < G; ++j)
#pragma unroll
      for (int e = 0; e < 8; ++e) o[j][e] = 0.0f;
    if constexpr (kIsFp8<KT>) {  // 8 bytes per token (8 dims of one group) and its scale
      uint2 vv[KPT];
      float vs[KPT];
#pragma unroll
      for (int i = 0; i < KPT; ++i) {
        const int64_t kk = k0 + kg + i * KG;
        vv[i] = make_uint2(0, 0);
        vs[i] = 0.0f;
        if (kk < k_end) {
          const uint8_t* V = v_head<uint8_t>(g, s, kk, kvh);
          const int64_t off = kk % g.bt;
          vv[i] = *reinterpret_cast<const uint2*>(V + off * HD + dc * 8);
          vs[i] = 256.0f * __half2float(head_scales(g, V)[off * (HD / 32) + dc / 4]);
        }
      }
#pragma unroll
      for (int i = 0; i < KPT; ++i) {
        float vf[8];
        fp8x8(vv[i], vs[i], vf);
#pragma unroll
        for (int j = 0; j < G; ++j) {
          const float p = sc[j][kg + i * KG];
#pragma unroll
          for (int e = 0; e < 8; ++e) o[j][e] += p * vf[e];
        }
      }
    } else {
      uint4 vv[KPT];
#pragma unroll
      for (int i = 0; i < KPT; ++i) {
        const int64_t kk = k0 + kg + i * KG;
        vv[i] = kk < k_end ? *reinterpret_cast<const uint4*>(v_head<KT>(g, s, kk, kvh) +
                                                             (kk % g.bt) * HD + dc * 8)
                           : make_uint4(0, 0, 0, 0);
      }
#pragma unroll
      for (int i = 0; i < KPT; ++i) {
        const KT* vp = reinterpret_cast<const KT*>(&vv[i]);
#pragma unroll
        for (int j = 0; j < G; ++j) {
          const float p = sc[j][kg + i * KG];
#pragma unroll
          for (int e = 0; e < 8; ++e) o[j][e] += p * to_f32(vp[e]);
        }
      }
    }
#pragma unroll
    for (int j = 0; j < G; ++j)
#pragma unroll
      for (int e = 0; e < 8; ++e) red[kg][j][dc * 8 + e] = o[j][e];
  }
  __syncthreads();
  for (int i = tid; i < G * HD; i += 128) {
    const int j = i / HD, d = i % HD;
    float t = 0;
#pragma unroll
    for (int u = 0; u < KG; ++u) t += red[u][j][d];
    part_o[(part + j * n_splits) * HD + d] = t;
  }
}

template <typename O>
__global__ void combine_kernel(const float* __restrict__ part_o, const float* __restrict__ part_ml,
                               int n_splits, int64_t nh, int64_t hd, int64_t row0,
                               O* __restrict__ out) {
  const int64_t r = blockIdx.x, h = blockIdx.y;
  const int64_t base = (r * nh + h) * n_splits;
  float M = -FLT_MAX;
  for (int sp = 0; sp < n_splits; ++sp) M = fmaxf(M, part_ml[(base + sp) * 2]);
  float L = 0;
  for (int sp = 0; sp < n_splits; ++sp)
    L += part_ml[(base + sp) * 2 + 1] * __expf(part_ml[(base + sp) * 2] - M);
  const float inv = L > 0 ? 1.0f / L : 0.0f;
  for (int64_t d = threadIdx.x; d < hd; d += blockDim.x) {
    float t = 0;
    for (int sp = 0; sp < n_splits; ++sp) {
      if (part_ml[(base + sp) * 2 + 1] == 0.0f) continue;  // an empty split wrote no o
      t += part_o[(base + sp) * hd + d] * __expf(part_ml[(base + sp) * 2] - M);
    }
    out[(row0 + r) * nh * hd + h * hd + d] = from_f32<O>(t * inv);
  }
}

// ---- flash prefill on the tensor cores ----------------------------------------------------

__device__ __forceinline__ void cp_async16(void* smem, const void* gmem) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(s), "l"(gmem));
}
__device__ __forceinline__ void cp_async_commit() {
  asm volatile("cp.async.commit_group;\n" ::);
}
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], const void* p) {
  const unsigned a = static_cast<unsigned>(__cvta_generic_to_shared(p));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a));
}
__device__ __forceinline__ void ldsm_x4_t(uint32_t (&r)[4], const void* p) {
  const unsigned a = static_cast<unsigned>(__cvta_generic_to_shared(p));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a));
}

template <typename KT>
__device__ __forceinline__ void mma16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                         uint32_t b1);
template <>
__device__ __forceinline__ void mma16816<__nv_bfloat16>(float (&c)[4], const uint32_t (&a)[4],
                                                        uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
template <>
__device__ __forceinline__ void mma16816<__half>(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                                 uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Two bf16 (one ldmatrix register) as two f16, in place for the f16 MMA; f16 tiles as they are.
// Exact for |x| in [2^-14, 65504] (K and V: the f16 KV cache's range).
template <typename MT>
__device__ __forceinline__ void frag_to_f16(uint32_t (&r)[4]) {
  if constexpr (std::is_same_v<MT, __nv_bfloat16>) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const __half2 h =
          __floats2half2_rn(__uint_as_float(r[i] << 16), __uint_as_float(r[i] & 0xffff0000u));
      memcpy(&r[i], &h, 4);
    }
  }
}

constexpr int kBM = 128, kBN = 64;            // query rows and keys per tile
constexpr int kFlashThreads = kBM / 16 * 32;  // one warp per 16 query rows

template <int HD>
constexpr int flash_smem_bytes() {
  return (kBM * (HD + 8) + 2 * HD * (kBN + 8) + 2 * kBN * (HD + 8)) * 2;
}

// An fp8 K/V tile of keys [k0, k0 + kBN) into shared memory as f16 (Kd [HD][kBN + 8], Vd
// [kBN][HD + 8]), dequantized on the way: plain loads (all of a thread's issued before any
// conversion) instead of cp.async, which cannot convert. Same chunks as the 16-bit path: K 8 keys
// of one dim (8 bytes, 8 scales), V 8 dims of one key (8 bytes, one scale). Keys >= hi: zeros
// (a K chunk that starts below hi may read unwritten slots past it; their scores are masked).
template <int HD>
__device__ __forceinline__ void load_tile_fp8(const Geo& g, int s, int kvh, int64_t k0, int64_t hi,
                                              __half* Kd, __half* Vd) {
  constexpr int KS = kBN + 8, VS = HD + 8;
  constexpr int KC = HD * (kBN / 8) / kFlashThreads, VC = kBN * (HD / 8) / kFlashThreads;
  static_assert(KC >= 1 && VC >= 1 && HD * (kBN / 8) % kFlashThreads == 0);
  const int tid = threadIdx.x;
  uint2 kc[KC], vc[VC];
  uint4 ks[KC];
  float vs[VC];
#pragma unroll
  for (int i = 0; i < KC; ++i) {
    const int c = tid + i * kFlashThreads, d = c / (kBN / 8), k8 = (c % (kBN / 8)) * 8;
    const int64_t key = k0 + k8;
    kc[i] = make_uint2(0, 0);
    ks[i] = make_uint4(0, 0, 0, 0);
    if (key < hi) {
      const uint8_t* K = k_head<uint8_t>(g, s, key, kvh);
      const int64_t off = key % g.bt;
      kc[i] = *reinterpret_cast<const uint2*>(K + d * g.bt + off);
      ks[i] = *reinterpret_cast<const uint4*>(head_scales(g, K) + (d / 32) * g.bt + off);
    }
  }
#pragma unroll
  for (int i = 0; i < VC; ++i) {
    const int c = tid + i * kFlashThreads, kr = c / (HD / 8), d8 = (c % (HD / 8)) * 8;
    const int64_t key = k0 + kr;
    vc[i] = make_uint2(0, 0);
    vs[i] = 0.0f;
    if (key < hi) {
      const uint8_t* V = v_head<uint8_t>(g, s, key, kvh);
      const int64_t off = key % g.bt;
      vc[i] = *reinterpret_cast<const uint2*>(V + off * HD + d8);
      vs[i] = 256.0f * __half2float(head_scales(g, V)[off * (HD / 32) + d8 / 32]);
    }
  }
  auto put8 = [](__half* dst, const float(&f)[8]) {
    uint4 h;
    __half2 p[4];
#pragma unroll
    for (int e = 0; e < 4; ++e) p[e] = __floats2half2_rn(f[2 * e], f[2 * e + 1]);
    memcpy(&h, p, 16);
    *reinterpret_cast<uint4*>(dst) = h;
  };
#pragma unroll
  for (int i = 0; i < KC; ++i) {
    const int c = tid + i * kFlashThreads, d = c / (kBN / 8), k8 = (c % (kBN / 8)) * 8;
    float f[8];
    fp8x8(kc[i], ks[i], f);
    put8(Kd + d * KS + k8, f);
  }
#pragma unroll
  for (int i = 0; i < VC; ++i) {
    const int c = tid + i * kFlashThreads, kr = c / (HD / 8), d8 = (c % (HD / 8)) * 8;
    float f[8];
    fp8x8(vc[i], vs[i], f);
    put8(Vd + kr * VS + d8, f);
  }
}

// Block (query tile, q head, sequence); 8 warps of 16 query rows each. K/V tiles of 64 keys
// stream through shared memory two stages deep (cp.async; fp8 with plain loads, converted to
// f16); S and P stay in registers.
template <typename KT, typename O, int HD>
__global__ __launch_bounds__(kFlashThreads) void flash_prefill_kernel(const float* __restrict__ q,
                                                                      Geo g, int nh, int group,
                                                                      float scale_log2,
                                                                      int64_t window,
                                                                      O* __restrict__ out) {
  using MT = MmaT<KT>;  // the K/V tiles' type: KT, or f16 for fp8; Q, P and the MMAs: f16
  extern __shared__ __align__(16) unsigned char smem_raw[];
  __half* Qs = reinterpret_cast<__half*>(smem_raw);  // [kBM][HD + 8]
  MT* Ks =
      reinterpret_cast<MT*>(Qs + kBM * (HD + 8));  // [2][HD][kBN + 8]  (K transposed, as cached)
  MT* Vs = Ks + 2 * HD * (kBN + 8);                // [2][kBN][HD + 8]
  constexpr int QS = HD + 8, KS = kBN + 8, VS = HD + 8;

  const int s = blockIdx.z, h = blockIdx.y, kvh = h / group;
  const int qs0 = g.q_start[s], n_new = g.q_start[s + 1] - qs0;
  const int r0 = (gridDim.x - 1 - blockIdx.x) * kBM;  // heavy tiles first
  if (r0 >= n_new) return;
  const int64_t p0 = g.pos0[s];
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, gq = lane / 4, tq = lane % 4;
  const int64_t hi = p0 + min(r0 + kBM, n_new);  // keys this tile needs: [lo, hi)
  const int64_t lo = window > 0 && p0 + r0 + 1 > window ? p0 + r0 + 1 - window : 0;
  const int64_t t_first = lo / kBN, t_last = (hi - 1) / kBN;

  // Q tile, scaled by 1/sqrt(hd) * log2(e) so that the softmax uses exp2.
  for (int i = tid; i < kBM * HD; i += kFlashThreads) {
    const int r = i / HD, d = i % HD;
    const float v = r0 + r < n_new
                        ? q[(static_cast<int64_t>(qs0 + r0 + r) * nh + h) * HD + d] * scale_log2
                        : 0.0f;
    Qs[r * QS + d] = from_f32<__half>(v);
  }

  auto load_tile = [&](int64_t t, int st) {
    const int64_t k0 = t * kBN;
    MT* Kd = Ks + st * HD * KS;
    MT* Vd = Vs + st * kBN * VS;
    if constexpr (kIsFp8<KT>) {
      load_tile_fp8<HD>(g, s, kvh, k0, hi, Kd, Vd);
    } else {
      // K: rows d, 8 keys per 16 bytes
      for (int c = tid; c < HD * (kBN / 8); c += kFlashThreads) {
        const int d = c / (kBN / 8), k8 = (c % (kBN / 8)) * 8;
        const int64_t key = k0 + k8;
        KT* dst = Kd + d * KS + k8;
        if (key < hi)
          cp_async16(dst, k_head<KT>(g, s, key, kvh) + d * g.bt + key % g.bt);
        else
          *reinterpret_cast<uint4*>(dst) = make_uint4(0, 0, 0, 0);
      }
      // V: rows key, 8 dims per 16 bytes
      for (int c = tid; c < kBN * (HD / 8); c += kFlashThreads) {
        const int kr = c / (HD / 8), d8 = (c % (HD / 8)) * 8;
        const int64_t key = k0 + kr;
        KT* dst = Vd + kr * VS + d8;
        if (key < hi)
          cp_async16(dst, v_head<KT>(g, s, key, kvh) + (key % g.bt) * HD + d8);
        else
          *reinterpret_cast<uint4*>(dst) = make_uint4(0, 0, 0, 0);
      }
    }
  };

  load_tile(t_first, 0);
  cp_async_commit();
  __syncthreads();  // Qs written
  uint32_t qa[HD / 16][4];
#pragma unroll
  for (int kc = 0; kc < HD / 16; ++kc)
    ldsm_x4(qa[kc],
            Qs + (warp * 16 + (lane % 8) + ((lane / 8) % 2) * 8) * QS + kc * 16 + (lane / 16) * 8);

  float o[HD / 8][4];
#pragma unroll
  for (int i = 0; i < HD / 8; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
  float m_run[2] = {-INFINITY, -INFINITY}, l_run[2] = {0.0f, 0.0f};
  const int64_t qpos[2] = {p0 + r0 + warp * 16 + gq, p0 + r0 + warp * 16 + gq + 8};
  const bool qvalid[2] = {r0 + warp * 16 + gq < n_new, r0 + warp * 16 + gq + 8 < n_new};

  for (int64_t t = t_first; t <= t_last; ++t) {
    const int st = static_cast<int>((t - t_first) & 1);
    if (t < t_last) load_tile(t + 1, st ^ 1);
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();
    const MT* Kt = Ks + st * HD * KS;
    const MT* Vt = Vs + st * kBN * VS;

    float sacc[kBN / 8][4];
#pragma unroll
    for (int i = 0; i < kBN / 8; ++i) sacc[i][0] = sacc[i][1] = sacc[i][2] = sacc[i][3] = 0.0f;
#pragma unroll
    for (int kc = 0; kc < HD / 16; ++kc)
#pragma unroll
      for (int np = 0; np < kBN / 16; ++np) {
        uint32_t b[4];
        ldsm_x4_t(b,
                  Kt + (kc * 16 + ((lane / 8) % 2) * 8 + lane % 8) * KS + (np * 2 + lane / 16) * 8);
        frag_to_f16<MT>(b);
        mma16816<__half>(sacc[2 * np], qa[kc], b[0], b[1]);
        mma16816<__half>(sacc[2 * np + 1], qa[kc], b[2], b[3]);
      }
    // Mask (causal, window, padding rows) and the online softmax, per row half.
    const int64_t k0 = t * kBN;
    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int nt = 0; nt < kBN / 8; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int rh = e / 2;
        const int64_t key = k0 + nt * 8 + 2 * tq + (e & 1);
        const bool ok = qvalid[rh] && key <= qpos[rh] && (window <= 0 || key > qpos[rh] - window);
        if (!ok) sacc[nt][e] = -INFINITY;
        mx[rh] = fmaxf(mx[rh], sacc[nt][e]);
      }
    float alpha[2], mu[2];
#pragma unroll
    for (int rh = 0; rh < 2; ++rh) {
      mx[rh] = fmaxf(mx[rh], __shfl_xor_sync(0xffffffffu, mx[rh], 1));
      mx[rh] = fmaxf(mx[rh], __shfl_xor_sync(0xffffffffu, mx[rh], 2));
      const float m_new = fmaxf(m_run[rh], mx[rh]);
      mu[rh] = m_new == -INFINITY ? 0.0f : m_new;
      alpha[rh] = exp2f(m_run[rh] - mu[rh]);
      m_run[rh] = m_new;
      l_run[rh] *= alpha[rh];
    }
    uint32_t pa[kBN / 16][4];
#pragma unroll
    for (int nt = 0; nt < kBN / 8; ++nt) {
      // P rounded to f16 for the MMA; the normaliser sums the same rounded values.
      const __half2 p01 = __floats2half2_rn(exp2f(sacc[nt][0] - mu[0]), exp2f(sacc[nt][1] - mu[0]));
      const __half2 p23 = __floats2half2_rn(exp2f(sacc[nt][2] - mu[1]), exp2f(sacc[nt][3] - mu[1]));
      const float2 r01 = __half22float2(p01), r23 = __half22float2(p23);
      l_run[0] += r01.x + r01.y;
      l_run[1] += r23.x + r23.y;
      memcpy(&pa[nt / 2][(nt % 2) * 2], &p01, 4);
      memcpy(&pa[nt / 2][(nt % 2) * 2 + 1], &p23, 4);
    }
#pragma unroll
    for (int i = 0; i < HD / 8; ++i) {
      o[i][0] *= alpha[0];
      o[i][1] *= alpha[0];
      o[i][2] *= alpha[1];
      o[i][3] *= alpha[1];
    }
#pragma unroll
    for (int kc = 0; kc < kBN / 16; ++kc)
#pragma unroll
      for (int dp = 0; dp < HD / 16; ++dp) {
        uint32_t b[4];
        ldsm_x4_t(b,
                  Vt + (kc * 16 + ((lane / 8) % 2) * 8 + lane % 8) * VS + (dp * 2 + lane / 16) * 8);
        frag_to_f16<MT>(b);
        mma16816<__half>(o[2 * dp], pa[kc], b[0], b[1]);
        mma16816<__half>(o[2 * dp + 1], pa[kc], b[2], b[3]);
      }
    __syncthreads();  // the next iteration loads into this stage
  }
#pragma unroll
  for (int rh = 0; rh < 2; ++rh) {
    l_run[rh] += __shfl_xor_sync(0xffffffffu, l_run[rh], 1);
    l_run[rh] += __shfl_xor_sync(0xffffffffu, l_run[rh], 2);
  }
#pragma unroll
  for (int rh = 0; rh < 2; ++rh) {
    if (!qvalid[rh]) continue;
    const float inv = l_run[rh] > 0 ? 1.0f / l_run[rh] : 0.0f;
    O* orow = out + (static_cast<int64_t>(qs0 + r0 + warp * 16 + gq + rh * 8) * nh + h) * HD;
#pragma unroll
    for (int i = 0; i < HD / 8; ++i) {
      orow[i * 8 + 2 * tq] = from_f32<O>(o[i][rh * 2] * inv);
      orow[i * 8 + 2 * tq + 1] = from_f32<O>(o[i][rh * 2 + 1] * inv);
    }
  }
}

template <typename KT, typename O, int HD>
void launch_flash(const float* q, const Geo& g, const PagedBatch& b, int64_t nh, float scale,
                  int64_t window, O* out, Context& ctx) {
  constexpr int smem = flash_smem_bytes<HD>();
  static bool configured = false;  // per instantiation; set once per process (one device type)
  if (!configured) {
    CUDA_CHECK(cudaFuncSetAttribute(flash_prefill_kernel<KT, O, HD>,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    configured = true;
  }
  const dim3 grid((b.max_new + kBM - 1) / kBM, static_cast<unsigned>(nh),
                  static_cast<unsigned>(b.n_seqs));
  flash_prefill_kernel<KT, O, HD><<<grid, kFlashThreads, smem, stream_of(ctx)>>>(
      q, g, static_cast<int>(nh), static_cast<int>(nh / g.nkv), scale * 1.4426950408889634f, window,
      out);
  CUDA_LAUNCH_CHECK();
}

template <typename KT, typename O, int G>
void launch_split(const float* q, const Geo& g, const PagedBatch& b, int64_t nh, float scale,
                  int64_t window, O* out, Context& ctx) {
  // 16-bit or fp8 KV with head_dim 64/128: the vectorised kernel on 64-key splits.
  constexpr bool vec_type = !std::is_same_v<KT, float>;
  const bool vec = vec_type && (g.hd == 64 || g.hd == 128) && vec_enabled();
  const int split_keys = vec ? kSplitV : kSplit;
  const int n_splits = (b.max_ctx + split_keys - 1) / split_keys;
  // Partials for a chunk of rows at a time, within 256 MiB of scratch.
  const int64_t per_row = nh * n_splits * (g.hd + 2) * 4;
  const int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(b.n_rows, (256ll << 20) / per_row));
  float* part_o = static_cast<float*>(ctx.scratch(static_cast<size_t>(chunk * per_row)));
  float* part_ml = part_o + chunk * nh * n_splits * g.hd;
  for (int64_t row0 = 0; row0 < b.n_rows; row0 += chunk) {
    const int64_t rows = std::min(chunk, b.n_rows - row0);
    const dim3 grid(static_cast<unsigned>(rows), static_cast<unsigned>(g.nkv), n_splits);
    if constexpr (vec_type) {
      if (vec && g.hd == 128)
        split_attn_vec_kernel<KT, G, 128><<<grid, 128, 0, stream_of(ctx)>>>(
            q, g, nh, scale, window, row0, n_splits, part_o, part_ml);
      else if (vec)
        split_attn_vec_kernel<KT, G, 64><<<grid, 128, 0, stream_of(ctx)>>>(
            q, g, nh, scale, window, row0, n_splits, part_o, part_ml);
    }
    if (!vec)
      split_attn_kernel<KT, G><<<grid, kSplit, 0, stream_of(ctx)>>>(q, g, nh, scale, window, row0,
                                                                    n_splits, part_o, part_ml);
    CUDA_LAUNCH_CHECK();
    combine_kernel<O>
        <<<dim3(static_cast<unsigned>(rows), static_cast<unsigned>(nh)), 128, 0, stream_of(ctx)>>>(
            part_o, part_ml, n_splits, nh, g.hd, row0, out);
    CUDA_LAUNCH_CHECK();
  }
}

template <typename KT, typename O>
void launch_split_g(const float* q, const Geo& g, const PagedBatch& b, int64_t nh, float scale,
                    int64_t window, O* out, Context& ctx) {
  switch (nh / g.nkv) {
    case 1:
      return launch_split<KT, O, 1>(q, g, b, nh, scale, window, out, ctx);
    case 2:
      return launch_split<KT, O, 2>(q, g, b, nh, scale, window, out, ctx);
    case 3:
      return launch_split<KT, O, 3>(q, g, b, nh, scale, window, out, ctx);
    case 4:
      return launch_split<KT, O, 4>(q, g, b, nh, scale, window, out, ctx);
    case 5:
      return launch_split<KT, O, 5>(q, g, b, nh, scale, window, out, ctx);
    case 6:
      return launch_split<KT, O, 6>(q, g, b, nh, scale, window, out, ctx);
    case 7:
      return launch_split<KT, O, 7>(q, g, b, nh, scale, window, out, ctx);
    case 8:
      return launch_split<KT, O, 8>(q, g, b, nh, scale, window, out, ctx);
    default:
      raise_input_error("CUDA attention: " + str(nh / g.nkv) +
                        " query heads per KV head (at most 8 supported)");
  }
}

// Calls f.template operator()<KT>() with KT the kernels' KV element type (Fp8 for fp8).
template <typename F>
void dispatch_kv(DType t, F&& f) {
  if (t == DType::F8_E4M3) return f.template operator()<Fp8>();
  dispatch_float(t, "KV cache", std::forward<F>(f));
}

}  // namespace

void kv_store(const float* k, int64_t ldk, const float* v, int64_t ldv, const PagedBatch& b,
              Context& ctx) {
  if (b.n_rows == 0) return;
  const Geo g = make_geo(b);
  dispatch_kv(b.kv_dtype, [&]<typename KT>() {
    kv_store_kernel<KT><<<dim3(static_cast<unsigned>(b.n_rows), static_cast<unsigned>(g.nkv)), 128,
                          0, stream_of(ctx)>>>(k, ldk, v, ldv, g);
  });
  CUDA_LAUNCH_CHECK();
}

void qkv_finish(const float* qkv, int64_t ld, const float* bias, const float* q_norm,
                const float* k_norm, float eps, const float* cos, const float* sin, int64_t nh,
                float* q_out, const PagedBatch& b, Context& ctx) {
  if (b.n_rows == 0) return;
  const Geo g = make_geo(b);
  if (g.hd > 256 || g.hd % 2)
    raise_input_error("CUDA: head_dim " + str(g.hd) + " is not supported (even, at most 256)");
  dispatch_kv(b.kv_dtype, [&]<typename KT>() {
    if constexpr (kIsFp8<KT>) {  // a group's scale is a reduction over 32 dims: a block per head
      qkv_finish_kernel<KT>
          <<<dim3(static_cast<unsigned>(b.n_rows), static_cast<unsigned>(nh + 2 * g.nkv)), 128, 0,
             stream_of(ctx)>>>(qkv, ld, bias, q_norm, k_norm, eps, cos, sin, nh, q_out, g);
    } else {
      const unsigned blocks =
          static_cast<unsigned>((b.n_rows + kQkvRowsPerBlock - 1) / kQkvRowsPerBlock);
      qkv_finish_warp_kernel<KT><<<dim3(blocks, static_cast<unsigned>(nh + 2 * g.nkv)),
                                   32 * kQkvRowsPerBlock, 0, stream_of(ctx)>>>(
          qkv, ld, bias, q_norm, k_norm, eps, cos, sin, nh, q_out, g, b.n_rows);
    }
  });
  CUDA_LAUNCH_CHECK();
}

void attention(const float* q, const PagedBatch& b, int64_t nh, float scale, int64_t window,
               void* out, DType ot, Context& ctx, int force) {
  if (b.n_rows == 0) return;
  const Geo g = make_geo(b);
  if (g.hd > 256)
    raise_input_error("CUDA attention: head_dim " + str(g.hd) + " is not supported (at most 256)");
  if (nh % g.nkv)
    raise_error("CUDA attention: " + str(nh) + " heads over " + str(g.nkv) + " KV heads");
  const DType kt = b.kv_dtype;
  const bool flash_ok = (kt == DType::BF16 || kt == DType::F16 || kt == DType::F8_E4M3) &&
                        (g.hd == 32 || g.hd == 64 || g.hd == 128);
  const bool flash = force == 2 ? true : force == 1 ? false : flash_ok && b.max_new > 1;
  if (flash && !flash_ok)
    raise_error(
        "CUDA attention: the flash kernel needs bf16/f16/fp8 KV and head_dim 32/64/128, not " +
        std::string(dtype_name(kt)) + " and " + str(g.hd));
  dispatch_float(ot, "attention output", [&]<typename O>() {
    dispatch_kv(kt, [&]<typename KT>() {
      if constexpr (std::is_same_v<KT, float>) {
        launch_split_g<KT, O>(q, g, b, nh, scale, window, static_cast<O*>(out), ctx);
      } else {
        if (!flash)
          return launch_split_g<KT, O>(q, g, b, nh, scale, window, static_cast<O*>(out), ctx);
        switch (g.hd) {
          case 32:
            return launch_flash<KT, O, 32>(q, g, b, nh, scale, window, static_cast<O*>(out), ctx);
          case 64:
            return launch_flash<KT, O, 64>(q, g, b, nh, scale, window, static_cast<O*>(out), ctx);
          default:
            return launch_flash<KT, O, 128>(q, g, b, nh, scale, window, static_cast<O*>(out), ctx);
        }
      }
    });
  });
}

}  // namespace hwledger::cuda
