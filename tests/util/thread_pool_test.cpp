#include "util/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <vector>

namespace hwledger {

TEST(ThreadPool, ParallelForCoversEveryIndexExactlyOnce) {
  for (int threads : {1, 2, 3, 5}) {
    ThreadPool pool(threads);
    for (size_t n : {0u, 1u, 7u, 64u, 1000u}) {
      for (size_t grain : {1u, 4u, 16u}) {
        std::vector<std::atomic<int>> hits(n);
        pool.parallel_for(n, grain, [&](size_t b, size_t e) {
          EXPECT_EQ(b % grain, 0u);
          for (size_t i = b; i < e; ++i) hits[i]++;
        });
        for (size_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << n << " " << grain;
      }
    }
  }
}

TEST(ThreadPool, ManyShortRunsAllComplete) {
  ThreadPool pool(3);
  std::atomic<long> total{0};
  for (int r = 0; r < 2000; ++r) pool.run([&](int t) { total += t + 1; });
  EXPECT_EQ(total.load(), 2000L * (1 + 2 + 3));
}

}  // namespace hwledger

namespace hwledger {

TEST(ThreadPool, RunTasksCallsEachTaskOnceWhateverTheCount) {
  ThreadPool pool(3);
  for (size_t n : {1u, 2u, 3u, 17u, 1000u}) {
    std::vector<std::atomic<int>> hits(n);
    for (int rep = 0; rep < 50; ++rep) pool.run_tasks(n, [&](size_t t) { hits[t]++; });
    for (size_t t = 0; t < n; ++t) ASSERT_EQ(hits[t].load(), 50) << n;
  }
}

TEST(ThreadPool, FinishesWhileAWorkerIsBusyElsewhere) {
  // More threads than cores: sections must complete even when workers are not scheduled
  // promptly, because the caller takes the tasks nobody has claimed.
  ThreadPool pool(8);
  std::atomic<long> sum{0};
  for (int r = 0; r < 300; ++r) pool.parallel_for(4096, 16, [&](size_t b, size_t e) { sum += long(e - b); });
  EXPECT_EQ(sum.load(), 300L * 4096);
}

}  // namespace hwledger
