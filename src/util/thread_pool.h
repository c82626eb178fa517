// A fork-join pool for the compute kernels. Decode issues hundreds of short parallel sections
// per token (tens of microseconds each), so idle workers spin briefly before sleeping: a
// condition-variable wake-up per section would cost more than the section itself.
//
// Work is split into tasks that any participant claims from a shared counter, the calling
// thread included. A worker that the OS has not scheduled yet (a busy machine) therefore does
// not hold the section up: the others take its tasks.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
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

  // Calls fn(task) once for each task in [0, n_tasks), spread over the threads, and returns
  // when all have finished. Not re-entrant: call from one thread at a time.
  void run_tasks(size_t n_tasks, const std::function<void(size_t)>& fn);

  // Calls fn(i) once for each i in [0, size()): one share of the work per thread.
  void run(const std::function<void(int)>& fn) {
    run_tasks(static_cast<size_t>(n_threads_), [&](size_t t) { fn(static_cast<int>(t)); });
  }

  // Splits [0, n) into contiguous ranges (multiples of `grain`, a few per thread for balance)
  // and calls fn(begin, end) for each.
  template <typename F>
  void parallel_for(size_t n, size_t grain, F&& fn) {
    if (n == 0) return;
    if (grain == 0) grain = 1;
    const size_t units = (n + grain - 1) / grain;
    const size_t tasks = units < kChunksPerThread * n_threads_ ? units : kChunksPerThread * n_threads_;
    if (tasks <= 1 || n_threads_ == 1) {
      fn(size_t{0}, n);
      return;
    }
    run_tasks(tasks, [&](size_t t) {
      const size_t per = units / tasks, extra = units % tasks;
      const size_t u0 = t * per + (t < extra ? t : extra);
      const size_t u1 = u0 + per + (t < extra ? 1 : 0);
      const size_t b = u0 * grain, e = u1 * grain < n ? u1 * grain : n;
      if (b < e) fn(b, e);
    });
  }

  // The number of threads to use when the user did not say: the machine's cores.
  static int default_threads();

 private:
  static constexpr size_t kChunksPerThread = 4;
  static constexpr int kGenBits = 24, kCountBits = 20;  // state_ = gen | n_tasks | next task
  static constexpr uint64_t kCountMask = (uint64_t{1} << kCountBits) - 1;

  void worker(int index);
  // Claims and runs tasks of generation `gen` until none is left.
  void participate(uint64_t gen);

  int n_threads_;
  std::vector<std::thread> workers_;
  const std::function<void(size_t)>* job_ = nullptr;
  alignas(64) std::atomic<uint64_t> state_{0};
  alignas(64) std::atomic<uint32_t> wake_{0};  // futex word workers sleep on
  alignas(64) std::atomic<size_t> done_{0};
  std::atomic<int> sleepers_{0};
  std::atomic<bool> stop_{false};
  uint64_t gen_ = 0;
};

}  // namespace hwledger
