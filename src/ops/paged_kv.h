// How the attention kernels see one sequence's KV cache for one layer: a list of fixed-size
// blocks (pages). Within a block, layer l's keys and values for each KV head are stored as
//   K slab: [n_kv_heads][head_dim][block_tokens]   (transposed: 16 keys' scores per vector op)
//   V slab: [n_kv_heads][block_tokens][head_dim]   (rows: one vector op per value row)
// and all layers of a block are contiguous, so a block moves between tiers as one piece.
#pragma once
#include <cstddef>
#include <cstdint>

#include "ops/dtype.h"

namespace hwledger {

struct KVLayout {
  int64_t n_layers = 0;
  int64_t n_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t block_tokens = 32;
  DType dtype = DType::F16;

  size_t elem_bytes() const { return dtype_size(dtype); }
  size_t head_bytes() const { return static_cast<size_t>(head_dim * block_tokens) * elem_bytes(); }
  size_t slab_bytes() const { return static_cast<size_t>(n_kv_heads) * head_bytes(); }
  size_t block_bytes() const { return static_cast<size_t>(n_layers) * 2 * slab_bytes(); }
  size_t k_offset(int64_t layer) const { return static_cast<size_t>(2 * layer) * slab_bytes(); }
  size_t v_offset(int64_t layer) const { return k_offset(layer) + slab_bytes(); }
  size_t bytes_per_token() const { return block_bytes() / static_cast<size_t>(block_tokens); }
};

// One sequence, one layer: `blocks[i]` holds tokens [i*block_tokens, (i+1)*block_tokens).
struct PagedKVView {
  const KVLayout* layout = nullptr;
  uint8_t* const* blocks = nullptr;  // base address of each block, in token order
  int64_t n_blocks = 0;
  int64_t layer = 0;
};

}  // namespace hwledger
