// The working-memory tier of the KV cache: a pool of fixed-size blocks (KVLayout::block_bytes
// each) in one allocation, handed out by id with a reference count, so that sequences sharing
// a prefix can share its blocks.
#pragma once
#include <cstdint>
#include <vector>

#include "ops/cuda/cuda.h"
#include "ops/paged_kv.h"
#include "ops/tensor.h"
#include "util/sha256.h"

namespace hwledger {

class BlockPool {
 public:
  // device CUDA: the blocks are device memory (cudaMalloc) on GPU `device_index`; the kernels
  // read them there and the cache manager moves them to and from the tiers by DMA.
  BlockPool(const KVLayout& layout, int64_t n_blocks, Device device = Device::CPU, int device_index = 0);

  const KVLayout& layout() const { return layout_; }
  int64_t capacity() const { return static_cast<int64_t>(refcount_.size()); }
  int64_t free_blocks() const { return static_cast<int64_t>(free_.size()); }
  uint64_t bytes() const { return bytes_; }
  Device device() const { return device_; }
  int device_index() const { return device_index_; }

  int32_t allocate();  // a block with refcount 1, or -1 when none is free
  void retain(int32_t id);
  // Drops one reference; returns true when the block became free.
  bool release(int32_t id);
  // Drops one reference without freeing the block at zero (the prefix cache keeps idle
  // blocks until it evicts them); returns the new count.
  int32_t unref(int32_t id);
  // Returns a block with no references to the free list.
  void free_block(int32_t id);
  int32_t refcount(int32_t id) const { return refcount_[id]; }
  uint8_t* data(int32_t id) const { return base_ + static_cast<size_t>(id) * layout_.block_bytes(); }

 private:
  KVLayout layout_;
  Buffer storage_;  // [n_blocks][block_bytes]; pages are touched only when a block is written
  cuda::DevicePtr device_storage_;  // the same, in device memory
  uint8_t* base_ = nullptr;
  uint64_t bytes_ = 0;
  Device device_ = Device::CPU;
  int device_index_ = 0;
  std::vector<int32_t> refcount_;
  std::vector<int32_t> free_;
};

// One sequence's cache: its blocks in token order and how many tokens they hold.
struct KVSequence {
  std::vector<int32_t> blocks;
  std::vector<uint8_t*> block_ptrs;  // pool.data(blocks[i]), cached for the kernels
  int64_t n_tokens = 0;
  // Prefix-cache keys of the leading full blocks already entered in the index
  // (KVCacheManager::commit); keys.back() is the parent of the next full block.
  std::vector<Digest256> keys;

  PagedKVView view(const BlockPool& pool, int64_t layer) const {
    return PagedKVView{&pool.layout(), block_ptrs.data(), static_cast<int64_t>(blocks.size()), layer};
  }
};

// Grows `seq` to hold `n_tokens` tokens; throws Error when the pool is out of blocks.
void reserve_tokens(BlockPool& pool, KVSequence& seq, int64_t n_tokens);
// Releases every block of `seq` and empties it.
void release_sequence(BlockPool& pool, KVSequence& seq);

}  // namespace hwledger
