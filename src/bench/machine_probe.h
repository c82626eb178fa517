// Measures the two numbers every roofline here is drawn against: how fast this machine reads
// memory and how fast it multiplies, with the same threads the engine uses.
#pragma once
#include "util/thread_pool.h"

namespace hwledger {

struct MachinePeaks {
  double read_gbps = 0;     // streaming read bandwidth, GB/s (1e9 bytes), best of several runs
  double fp32_gflops = 0;   // fp32 FMA peak, GFLOP/s, all threads
  const char* simd = "";    // the SIMD level the kernels use
};

MachinePeaks measure_machine(ThreadPool& pool);

// Per-thread FMA loop (machine_probe_avx512.cpp); returns FLOPs done.
double fma_loop_avx512(long iterations);
double fma_loop_generic(long iterations);

}  // namespace hwledger
