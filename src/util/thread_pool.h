// A fork-join pool for the compute kernels. Decode issues hundreds of short parallel
// sections per token (tens of microseconds each), so workers spin briefly before sleeping:
// a condition-variable wake-up per section would cost more than the section itself.
#pragma once
#include <atomic>
#include <cstdint>
#include <cstddef>
#include <functional>
#include <thread>
#include <vector>

namespace hwledger {

class ThreadPool {
 public:
  // n_threads counts the calling thread: ThreadPool(1) runs everything inline.
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Runs fn(thread_index) once on each of size() threads (the caller is index 0) and
  // returns when all have finished. Not re-entrant: call from one thread at a time.
  void run(const std::function<void(int)>& fn);

  // Splits [0, n) into size() contiguous ranges, rounded to multiples of `grain`,
  // and calls fn(begin, end) for each non-empty one.
  template <typename F>
  void parallel_for(size_t n, size_t grain, F&& fn) {
    if (n == 0) return;
    if (grain == 0) grain = 1;
    size_t chunks = (n + grain - 1) / grain;
    int used = static_cast<int>(chunks < static_cast<size_t>(n_threads_) ? chunks : n_threads_);
    if (used <= 1) {
      fn(size_t{0}, n);
      return;
    }
    run([&](int t) {
      if (t >= used) return;
      size_t per = chunks / used, extra = chunks % used;
      size_t c0 = t * per + (static_cast<size_t>(t) < extra ? t : extra);
      size_t c1 = c0 + per + (static_cast<size_t>(t) < extra ? 1 : 0);
      size_t b = c0 * grain, e = c1 * grain < n ? c1 * grain : n;
      if (b < e) fn(b, e);
    });
  }

  // The number of threads to use when the user did not say: the machine's cores.
  static int default_threads();

 private:
  void worker(int index);

  int n_threads_;
  std::vector<std::thread> workers_;
  const std::function<void(int)>* job_ = nullptr;
  alignas(64) std::atomic<uint32_t> generation_{0};
  alignas(64) std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
};

}  // namespace hwledger
