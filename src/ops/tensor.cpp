#include "ops/tensor.h"

#include <cstdlib>
#include <cstring>

#include "util/error.h"

namespace hwledger {

std::string Tensor::shape_str() const {
  std::string s = "[";
  for (int i = 0; i < ndim; ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

Buffer::Buffer(size_t bytes) : size_(bytes) {
  if (bytes == 0) return;
  size_t rounded = (bytes + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, rounded);
  if (!p) fail("out of memory allocating {} bytes", bytes);
  ptr_.reset(p);
}

void Buffer::Free::operator()(void* p) const { std::free(p); }

}  // namespace hwledger
