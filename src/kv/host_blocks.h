// Host memory for KV blocks outside working memory (the RAM tier, SSD staging). Beside a CPU
// pool a block is plain heap memory; beside a GPU pool it is a slot of a page-locked slab, so
// blocks move to and from the device by DMA at full bus speed (pageable memory goes through a
// driver bounce buffer at a fraction of it), and page-locking is paid once per slab, not per
// block.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

namespace hwledger {

class HostBlockStore : public std::enable_shared_from_this<HostBlockStore> {
 public:
  // pinned: page-locked slabs of about `slab_bytes` (whole blocks); else heap blocks.
  static std::shared_ptr<HostBlockStore> create(size_t block_bytes, bool pinned,
                                                size_t slab_bytes = size_t{256} << 20);
  ~HostBlockStore();
  HostBlockStore(const HostBlockStore&) = delete;
  HostBlockStore& operator=(const HostBlockStore&) = delete;

  // One block's bytes; the slot returns to the store when the last owner lets go (the store
  // lives at least as long as its blocks).
  std::shared_ptr<uint8_t> allocate();

  size_t block_bytes() const { return block_bytes_; }
  bool pinned() const { return pinned_; }
  uint64_t reserved_bytes() const;  // pinned slabs allocated so far (heap blocks: 0)

 private:
  HostBlockStore(size_t block_bytes, bool pinned, size_t slab_bytes);
  void give_back(uint8_t* p);

  size_t block_bytes_, blocks_per_slab_;
  bool pinned_;
  mutable std::mutex mu_;
  std::vector<void*> slabs_;
  std::vector<uint8_t*> free_;
};

}  // namespace hwledger
