// The CUDA backend's interface in a build without CUDA (HWLEDGER_CUDA=OFF): no devices, and
// every call that would need one says how to get it.
#include "ops/cuda/cuda.h"
#include "util/error.h"

namespace hwledger::cuda {

namespace {
[[noreturn]] void no_cuda() {
  fail_input(
      "this hwledger was built without CUDA (configure with -DHWLEDGER_CUDA=ON where nvcc is "
      "installed)");
}
}  // namespace

bool built_with_cuda() {
  return false;
}
int device_count() {
  return 0;
}
DeviceInfo device_info(int) {
  no_cuda();
}
Context::Context(int) {
  no_cuda();
}
Context::~Context() = default;
void Context::synchronize() {
  no_cuda();
}
void* Context::scratch(size_t) {
  no_cuda();
}
void Context::begin_capture() {
  no_cuda();
}
void* Context::end_capture() {
  no_cuda();
}
void Context::launch_graph(void*) {
  no_cuda();
}
void Context::destroy_graph(void*) {}
void* device_alloc(int, size_t) {
  no_cuda();
}
void device_free(void*) {}
void* host_alloc_pinned(size_t) {
  no_cuda();
}
void host_free_pinned(void*) {}
CopyStream::CopyStream(int) {
  no_cuda();
}
CopyStream::~CopyStream() = default;
void CopyStream::h2d(void*, const void*, size_t) {
  no_cuda();
}
void CopyStream::d2h(void*, const void*, size_t) {
  no_cuda();
}
void CopyStream::synchronize() {
  no_cuda();
}
void copy_h2d(void*, const void*, size_t, Context&) {
  no_cuda();
}
void copy_d2h(void*, const void*, size_t, Context&) {
  no_cuda();
}
void copy_d2d(void*, const void*, size_t, Context&) {
  no_cuda();
}
void memset_async(void*, int, size_t, Context&) {
  no_cuda();
}
double measure_copy_gbps(Context&) {
  no_cuda();
}
double measure_bf16_tflops(Context&) {
  no_cuda();
}
Timer::Timer(Context& ctx) : ctx_(ctx) {
  no_cuda();
}
Timer::~Timer() = default;
void Timer::start() {
  no_cuda();
}
double Timer::stop() {
  no_cuda();
}
struct StageProfile::Impl {};
StageProfile::StageProfile(Context&) {
  no_cuda();
}
StageProfile::~StageProfile() = default;
void StageProfile::start() {}
void StageProfile::mark(const char*) {}
void StageProfile::collect() {}
std::string StageProfile::report() const {
  return {};
}
void gemm(const void*, const void*, DType, void*, DType, int64_t, int64_t, int64_t, int64_t, bool,
          Context&) {
  no_cuda();
}
bool gemv_swiglu(const void*, const void*, DType, void*, int64_t, int64_t, int64_t, Context&) {
  no_cuda();
}
bool gemv_f32(const float*, const float*, float, const void*, DType, float*, int64_t, int64_t,
              int64_t, int64_t, bool, Context&) {
  no_cuda();
}
bool gemv_swiglu_f32(const float*, const float*, float, const void*, DType, void*, DType, int64_t,
                     int64_t, int64_t, Context&) {
  no_cuda();
}
void split_hi_lo(const float*, void*, void*, DType, int64_t, Context&) {
  no_cuda();
}
void sum_pair(const float*, const float*, int64_t, int64_t, float*, int64_t, bool, Context&) {
  no_cuda();
}
void add_bias(float*, const float*, int64_t, int64_t, int64_t, Context&) {
  no_cuda();
}
void rms_norm(const float*, const float*, float, void*, DType, int64_t, int64_t, Context&,
              const int32_t*) {
  no_cuda();
}
void embedding(const void*, DType, const int32_t*, float*, int64_t, int64_t, int64_t, Context&) {
  no_cuda();
}
void rope(float*, int64_t, int64_t, int64_t, int64_t, const float*, const float*, Context&) {
  no_cuda();
}
void swiglu(const float*, const float*, int64_t, void*, DType, int64_t, int64_t, Context&) {
  no_cuda();
}
void swiglu_scaled(const float*, const float*, int64_t, void*, DType, float*, int64_t, int64_t,
                   Context&) {
  no_cuda();
}
void add_scaled_rms_norm(float*, const float*, const float*, const float*, const float*, float,
                         void*, DType, int64_t, int64_t, Context&) {
  no_cuda();
}
bool convert_fits(const void*, DType, void*, DType, int64_t, Context&) {
  no_cuda();
}
void argmax_rows(const float*, int64_t, int64_t, int32_t*, Context&) {
  no_cuda();
}
void convert(const void*, DType, void*, DType, int64_t, Context&) {
  no_cuda();
}
void kv_store(const float*, int64_t, const float*, int64_t, const PagedBatch&, Context&) {
  no_cuda();
}
void qkv_finish(const float*, int64_t, const float*, const float*, const float*, float,
                const float*, const float*, int64_t, float*, const PagedBatch&, Context&) {
  no_cuda();
}
void attention(const float*, const PagedBatch&, int64_t, float, int64_t, void*, DType, Context&,
               int) {
  no_cuda();
}

}  // namespace hwledger::cuda
