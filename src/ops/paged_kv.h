// How the attention kernels see one sequence's KV cache for one layer: a list of fixed-size
// blocks (pages). Within a block, layer l's keys and values for each KV head are stored as
//   K slab: [n_kv_heads][head_dim][block_tokens]   (transposed: 16 keys' scores per vector op)
//   V slab: [n_kv_heads][block_tokens][head_dim]   (rows: one vector op per value row)
// and all layers of a block are contiguous, so a block moves between tiers as one piece.
//
// Quantized types (q8_0, q4_0, fp8) quantize each token's head vector in groups of 32 dims along
// head_dim, each group with one f16 scale, so a new token never requantizes earlier ones. One
// head's K or V region is its packed values followed by its scales:
//   K: values [head_dim][block_tokens], then scales [head_dim/32][block_tokens] (f16)
//   V: values [block_tokens][head_dim], then scales [block_tokens][head_dim/32] (f16)
// q8_0 values are int8 (x ~ q * d, d = amax/127); q4_0 values are 4-bit (x ~ (q - 8) * d, ggml's
// d = signed max / -8), two per byte with the lower index in the low nibble: two consecutive
// tokens per byte for K, two consecutive dims per byte for V. fp8 values are e4m3 codes, one
// byte each exactly where q8_0 keeps its int8 (x ~ e4m3(q) * d, d = max(amax/448, 2^-14), codes
// rounded to nearest even and saturated to +-448; ops/dtype.h has the scalar encoder/decoder).
#pragma once
#include <cstddef>
#include <cstdint>

#include "ops/dtype.h"
#include "util/error.h"

namespace hwledger {

// Values per quantization group (q8_0, q4_0, fp8) along head_dim.
inline constexpr int64_t kKVQuantGroup = 32;

struct KVLayout {
  int64_t n_layers = 0;
  int64_t n_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t block_tokens = 32;
  DType dtype = DType::F16;

  // Bytes of one KV head's packed values in a block: head_dim x block_tokens elements.
  size_t head_value_bytes() const {
    const size_t n = static_cast<size_t>(head_dim * block_tokens);
    switch (dtype) {
      case DType::Q8_0: return n;
      case DType::F8_E4M3: return n;
      case DType::Q4_0: return n / 2;
      default: return n * dtype_size(dtype);
    }
  }
  // Bytes of one KV head's K (or V) in a block: the values plus, if quantized, the f16 scales.
  size_t head_bytes() const {
    const size_t scales =
        is_quantized(dtype) ? static_cast<size_t>(head_dim / kKVQuantGroup * block_tokens) * 2 : 0;
    return head_value_bytes() + scales;
  }
  size_t slab_bytes() const { return static_cast<size_t>(n_kv_heads) * head_bytes(); }
  size_t block_bytes() const { return static_cast<size_t>(n_layers) * 2 * slab_bytes(); }
  size_t k_offset(int64_t layer) const { return static_cast<size_t>(2 * layer) * slab_bytes(); }
  size_t v_offset(int64_t layer) const { return k_offset(layer) + slab_bytes(); }
  size_t bytes_per_token() const { return block_bytes() / static_cast<size_t>(block_tokens); }
};

// Throws InputError naming the values if the kernels cannot use this layout: block_tokens a
// positive multiple of 16; for q8_0/q4_0/fp8, head_dim and block_tokens multiples of 32.
inline void validate_kv_layout(const KVLayout& L) {
  if (L.block_tokens <= 0 || L.block_tokens % 16 != 0)
    fail_input("block size {} must be a positive multiple of 16 tokens", L.block_tokens);
  if (L.dtype == DType::I32) fail_input("KV dtype {} is not a KV cache type", dtype_name(L.dtype));
  if (is_quantized(L.dtype) &&
      (L.head_dim % kKVQuantGroup != 0 || L.block_tokens % kKVQuantGroup != 0))
    fail_input(
        "--kv-dtype {} quantizes groups of {} values: head_dim ({}) and the block size ({} tokens) "
        "must be multiples of {}",
        dtype_name(L.dtype), kKVQuantGroup, L.head_dim, L.block_tokens, kKVQuantGroup);
}

// One sequence, one layer: `blocks[i]` holds tokens [i*block_tokens, (i+1)*block_tokens).
struct PagedKVView {
  const KVLayout* layout = nullptr;
  uint8_t* const* blocks = nullptr;  // base address of each block, in token order
  int64_t n_blocks = 0;
  int64_t layer = 0;
};

}  // namespace hwledger
