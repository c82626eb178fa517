#include "kv/host_blocks.h"

#include <algorithm>

#include "ops/cuda/cuda.h"
#include "ops/tensor.h"

namespace hwledger {

std::shared_ptr<HostBlockStore> HostBlockStore::create(size_t block_bytes, bool pinned,
                                                       size_t slab_bytes) {
  return std::shared_ptr<HostBlockStore>(new HostBlockStore(block_bytes, pinned, slab_bytes));
}

HostBlockStore::HostBlockStore(size_t block_bytes, bool pinned, size_t slab_bytes)
    : block_bytes_(block_bytes),
      blocks_per_slab_(std::max<size_t>(1, slab_bytes / std::max<size_t>(1, block_bytes))),
      pinned_(pinned) {}

HostBlockStore::~HostBlockStore() {
  for (void* s : slabs_) cuda::host_free_pinned(s);
}

uint64_t HostBlockStore::reserved_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<uint64_t>(slabs_.size()) * blocks_per_slab_ * block_bytes_;
}

std::shared_ptr<uint8_t> HostBlockStore::allocate() {
  if (!pinned_) {
    auto buf = std::make_shared<Buffer>(block_bytes_);
    return std::shared_ptr<uint8_t>(buf, static_cast<uint8_t*>(buf->data()));
  }
  uint8_t* p;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (free_.empty()) {
      auto* slab = static_cast<uint8_t*>(cuda::host_alloc_pinned(blocks_per_slab_ * block_bytes_));
      slabs_.push_back(slab);
      for (size_t i = blocks_per_slab_; i-- > 0;) free_.push_back(slab + i * block_bytes_);
    }
    p = free_.back();
    free_.pop_back();
  }
  // The deleter holds the store, so a block kept by a queued SSD write outlives the cache.
  return std::shared_ptr<uint8_t>(p,
                                  [self = shared_from_this()](uint8_t* q) { self->give_back(q); });
}

void HostBlockStore::give_back(uint8_t* p) {
  std::lock_guard<std::mutex> lock(mu_);
  free_.push_back(p);
}

}  // namespace hwledger
