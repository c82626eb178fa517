#include "kv/block_pool.h"

#include "util/error.h"
#include "util/size.h"

namespace hwledger {

BlockPool::BlockPool(const KVLayout& layout, int64_t n_blocks, Device device, int device_index)
    : layout_(layout), refcount_(n_blocks, 0), device_(device), device_index_(device_index) {
  bytes_ = static_cast<uint64_t>(n_blocks) * layout.block_bytes();
  if (device == Device::CUDA) {
    device_storage_ = cuda::make_device(device_index, bytes_);
    base_ = static_cast<uint8_t*>(device_storage_.get());
  } else {
    storage_ = Buffer(bytes_);
    base_ = static_cast<uint8_t*>(storage_.data());
  }
  free_.reserve(n_blocks);
  for (int64_t i = n_blocks - 1; i >= 0; --i) free_.push_back(static_cast<int32_t>(i));
}

int32_t BlockPool::allocate() {
  if (free_.empty()) return -1;
  int32_t id = free_.back();
  free_.pop_back();
  refcount_[id] = 1;
  return id;
}

void BlockPool::retain(int32_t id) { ++refcount_[id]; }

bool BlockPool::release(int32_t id) {
  HW_CHECK(refcount_[id] > 0, "KV block {} released more often than retained", id);
  if (--refcount_[id] > 0) return false;
  free_.push_back(id);
  return true;
}

int32_t BlockPool::unref(int32_t id) {
  HW_CHECK(refcount_[id] > 0, "KV block {} released more often than retained", id);
  return --refcount_[id];
}

void BlockPool::free_block(int32_t id) {
  HW_CHECK(refcount_[id] == 0, "KV block {} freed while still referenced ({})", id, refcount_[id]);
  free_.push_back(id);
}

void reserve_tokens(BlockPool& pool, KVSequence& seq, int64_t n_tokens) {
  const int64_t bt = pool.layout().block_tokens;
  const int64_t need = (n_tokens + bt - 1) / bt;
  while (static_cast<int64_t>(seq.blocks.size()) < need) {
    int32_t id = pool.allocate();
    if (id < 0)
      fail("KV cache is full: {} tokens need {} blocks of {} tokens, the pool has {} ({}); "
           "raise --max-kv-size or shorten the context",
           n_tokens, need, bt, pool.capacity(), format_bytes(pool.bytes()));
    seq.blocks.push_back(id);
    seq.block_ptrs.push_back(pool.data(id));
  }
}

void release_sequence(BlockPool& pool, KVSequence& seq) {
  for (int32_t id : seq.blocks) pool.release(id);
  seq.blocks.clear();
  seq.block_ptrs.clear();
  seq.keys.clear();
  seq.n_tokens = 0;
}

}  // namespace hwledger
