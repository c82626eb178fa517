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
