// `hwledger bench model`: prefill and decode speed of a model, next to the machine's roofline.
#pragma once
#include <cstdint>
#include <string>
#include <nlohmann/json.hpp>

#include "bench/machine_probe.h"
#include "engine/engine.h"

namespace hwledger {

struct ModelBenchOptions {
  int64_t prompt_tokens = 512;  // prefill length
  int64_t gen_tokens = 128;     // decode steps after the prefill
  int repeats = 3;              // best and median over this many runs
  uint64_t seed = 0;            // token ids are drawn from this seed
  int64_t batch = 1;            // sequences decoded together (each prefilled first)
};

struct ModelBenchResult {
  MachinePeaks peaks;
  int threads = 0;
  int64_t prompt_tokens = 0, gen_tokens = 0;
  double prefill_tok_s_best = 0, prefill_tok_s_median = 0;
  double decode_tok_s_best = 0, decode_tok_s_median = 0;
  uint64_t weight_bytes_per_token = 0;  // matrices read once per decode step
  uint64_t kv_bytes_per_token = 0;      // KV read per decode step at the mean context
  double decode_roofline_tok_s = 0;     // peaks.read_gbps / bytes per token
  double prefill_flops_per_token = 0;   // matmuls + attention at the mean position
  double prefill_gflops = 0;            // achieved, best run
  int64_t batch = 1;
  double end_to_end_s_best = 0;         // prefill of every sequence + all decode steps, best run
  // On a GPU (--device cuda): the card and its measured ceilings, against which the rooflines
  // are drawn (peaks.read_gbps is then the device-to-device copy bandwidth).
  std::string gpu;
  double gpu_bf16_tflops = 0;
  nlohmann::json to_json() const;
};

ModelBenchResult bench_model(Engine& engine, const ModelBenchOptions& opts);

}  // namespace hwledger
