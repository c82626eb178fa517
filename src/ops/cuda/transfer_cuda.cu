// Copies between host and device on a stream of their own (the KV cache tiers).
#include "ops/cuda/common.cuh"

namespace hwledger::cuda {

CopyStream::CopyStream(int device) : device_(device) {
  CUDA_CHECK(cudaSetDevice(device));
  cudaStream_t s;
  CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  stream_ = s;
}

CopyStream::~CopyStream() {
  if (stream_) {
    cudaStreamSynchronize(static_cast<cudaStream_t>(stream_));
    cudaStreamDestroy(static_cast<cudaStream_t>(stream_));
  }
}

void CopyStream::h2d(void* dst, const void* src, size_t bytes) {
  CUDA_CHECK(cudaSetDevice(device_));
  CUDA_CHECK(
      cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, static_cast<cudaStream_t>(stream_)));
}

void CopyStream::d2h(void* dst, const void* src, size_t bytes) {
  CUDA_CHECK(cudaSetDevice(device_));
  CUDA_CHECK(
      cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, static_cast<cudaStream_t>(stream_)));
}

void CopyStream::synchronize() {
  CUDA_CHECK(cudaStreamSynchronize(static_cast<cudaStream_t>(stream_)));
}

}  // namespace hwledger::cuda
