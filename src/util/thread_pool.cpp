#include "util/thread_pool.h"

#include "util/error.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define HW_PAUSE() _mm_pause()
#else
#define HW_PAUSE() std::this_thread::yield()
#endif

namespace hwledger {

namespace {
// About 50 microseconds of spinning before a worker sleeps.
constexpr int kSpinIterations = 10000;
}  // namespace

ThreadPool::ThreadPool(int n_threads) : n_threads_(n_threads < 1 ? 1 : n_threads) {
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { worker(i); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true, std::memory_order_release);
  wake_.fetch_add(1, std::memory_order_acq_rel);
  wake_.notify_all();
  for (auto& w : workers_) w.join();
}

int ThreadPool::default_threads() {
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

void ThreadPool::participate(uint64_t gen) {
  for (;;) {
    uint64_t s = state_.load(std::memory_order_acquire);
    if ((s >> (2 * kCountBits)) != gen) return;  // a later section: not ours
    const uint64_t n = (s >> kCountBits) & kCountMask, next = s & kCountMask;
    if (next >= n) return;
    if (!state_.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel)) continue;
    // The claim succeeded, so this section cannot end before our task is done: job_ is live.
    (*job_)(next);
    done_.fetch_add(1, std::memory_order_acq_rel);
  }
}

void ThreadPool::run_tasks(size_t n_tasks, const std::function<void(size_t)>& fn) {
  if (n_tasks == 0) return;
  if (n_threads_ == 1 || n_tasks == 1) {
    for (size_t t = 0; t < n_tasks; ++t) fn(t);
    return;
  }
  HW_CHECK(n_tasks <= kCountMask, "ThreadPool: {} tasks is over the limit of {}", n_tasks, kCountMask);
  gen_ = (gen_ + 1) & ((uint64_t{1} << kGenBits) - 1);
  job_ = &fn;
  done_.store(0, std::memory_order_relaxed);
  state_.store((gen_ << (2 * kCountBits)) | (static_cast<uint64_t>(n_tasks) << kCountBits),
               std::memory_order_release);
  // seq_cst on both sides (here and around the worker's wait) so that either the worker sees
  // the new wake_ value or we see it counted in sleepers_: no lost wake-up.
  wake_.fetch_add(1);
  if (sleepers_.load() > 0) wake_.notify_all();
  participate(gen_);
  int spins = 0;
  while (done_.load(std::memory_order_acquire) != n_tasks) {
    if (++spins < kSpinIterations) {
      HW_PAUSE();
    } else {
      std::this_thread::yield();
    }
  }
}

void ThreadPool::worker(int index) {
  (void)index;
  uint32_t seen = 0;  // wake_ at construction; run_tasks() may bump it before we get here
  for (;;) {
    uint32_t w;
    int spins = 0;
    while ((w = wake_.load(std::memory_order_acquire)) == seen) {
      if (++spins < kSpinIterations) {
        HW_PAUSE();
      } else {
        sleepers_.fetch_add(1);
        wake_.wait(seen);
        sleepers_.fetch_sub(1);
      }
    }
    seen = w;
    if (stop_.load(std::memory_order_acquire)) return;
    participate(state_.load(std::memory_order_acquire) >> (2 * kCountBits));
  }
}

}  // namespace hwledger
