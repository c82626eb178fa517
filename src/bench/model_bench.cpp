#include "bench/model_bench.h"

#include <algorithm>
#include <chrono>

#include "engine/cuda_runner.h"
#include "util/error.h"

namespace hwledger {

namespace {

std::vector<int32_t> random_ids(uint64_t seed, int64_t n, int64_t vocab) {
  std::vector<int32_t> ids(n);
  uint64_t s = seed * 0x9e3779b97f4a7c15ull + 12345;
  for (auto& id : ids) {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    id = static_cast<int32_t>(s % static_cast<uint64_t>(vocab));
  }
  return ids;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

nlohmann::json ModelBenchResult::to_json() const {
  return {{"machine", {{"read_gbps", peaks.read_gbps}, {"fp32_gflops", peaks.fp32_gflops}, {"simd", peaks.simd}}},
          {"threads", threads},
          {"prompt_tokens", prompt_tokens},
          {"gen_tokens", gen_tokens},
          {"prefill_tok_s", {{"best", prefill_tok_s_best}, {"median", prefill_tok_s_median}}},
          {"decode_tok_s", {{"best", decode_tok_s_best}, {"median", decode_tok_s_median}}},
          {"decode_bytes_per_token", {{"weights", weight_bytes_per_token}, {"kv", kv_bytes_per_token}}},
          {"decode_roofline_tok_s", decode_roofline_tok_s},
          {"decode_fraction_of_roofline", decode_roofline_tok_s > 0 ? decode_tok_s_best / decode_roofline_tok_s : 0},
          {"prefill_flops_per_token", prefill_flops_per_token},
          {"prefill_gflops", prefill_gflops},
          {"prefill_fraction_of_fp32_peak", peaks.fp32_gflops > 0 ? prefill_gflops / peaks.fp32_gflops : 0},
          {"batch", batch},
          {"end_to_end_s_best", end_to_end_s_best},
          {"gpu", gpu},
          {"gpu_bf16_tflops", gpu_bf16_tflops},
          {"prefill_mfu", gpu_bf16_tflops > 0 ? prefill_gflops / 1e3 / gpu_bf16_tflops : 0}};
}

ModelBenchResult bench_model(Engine& engine, const ModelBenchOptions& opts) {
  using clock = std::chrono::steady_clock;
  const ModelConfig& c = engine.config();
  const Model& m = engine.model();
  if (opts.prompt_tokens < 1 || opts.gen_tokens < 1 || opts.repeats < 1 || opts.batch < 1)
    fail_input("bench: prompt, generated tokens, repeats and batch must be positive");
  if (opts.prompt_tokens + opts.gen_tokens > engine.max_context())
    fail_input("bench: {} + {} tokens exceed the context of {}", opts.prompt_tokens, opts.gen_tokens,
               engine.max_context());
  ModelBenchResult r;
  r.threads = engine.threads().size();
  r.prompt_tokens = opts.prompt_tokens;
  r.gen_tokens = opts.gen_tokens;
  r.batch = opts.batch;
  if (CudaRunner* gpu = engine.runner().cuda()) {
    // The card's own ceilings: device-to-device copy bandwidth and the bf16 cuBLAS rate.
    cuda::Context& cx = gpu->context();
    r.gpu = cuda::device_info(cx.device()).name;
    r.peaks.read_gbps = cuda::measure_copy_gbps(cx);
    r.gpu_bf16_tflops = cuda::measure_bf16_tflops(cx);
    r.peaks.fp32_gflops = r.gpu_bf16_tflops * 1e3;
    r.peaks.simd = "cuda";
  } else {
    r.peaks = measure_machine(engine.threads());
  }

  // Bytes a decode step must read: every layer's matrices and the LM head, plus the KV cache
  // of the context so far (at its mean length over the generated tokens).
  for (const auto& l : m.layers) r.weight_bytes_per_token += l.bytes();
  r.weight_bytes_per_token += m.lm_head.nbytes();
  const KVLayout& kv = engine.pool().layout();
  r.kv_bytes_per_token = static_cast<uint64_t>(kv.bytes_per_token() * (opts.prompt_tokens + opts.gen_tokens / 2.0));
  // A batched step reads the weights once and every sequence's KV: the roofline is in tokens
  // per second over the whole batch.
  r.decode_roofline_tok_s = r.peaks.read_gbps * 1e9 * static_cast<double>(opts.batch) /
                            static_cast<double>(r.weight_bytes_per_token + opts.batch * r.kv_bytes_per_token);

  double matmul_params = 0;
  for (const auto& l : m.layers)
    for (const Tensor* t : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down})
      matmul_params += static_cast<double>(t->numel());
  const double mean_pos = (opts.prompt_tokens + 1) / 2.0;
  r.prefill_flops_per_token = 2 * matmul_params + c.num_layers * 4.0 * c.num_heads * c.head_dim * mean_pos +
                              2.0 * m.lm_head.numel() / static_cast<double>(opts.prompt_tokens);

  const int64_t B = opts.batch;
  std::vector<std::vector<int32_t>> prompts;
  for (int64_t b = 0; b < B; ++b) prompts.push_back(random_ids(opts.seed + static_cast<uint64_t>(b), opts.prompt_tokens, c.vocab_size));
  std::vector<double> prefill, decode, e2e;
  for (int rep = 0; rep < opts.repeats; ++rep) {
    std::vector<KVSequence> seqs(B);
    std::vector<int32_t> next(B);
    auto t0 = clock::now();
    for (int64_t b = 0; b < B; ++b) {
      BatchItem item{&seqs[b], prompts[b], BatchItem::Logits::Last};
      next[b] = engine.runner().forward_greedy(std::span<BatchItem>(&item, 1))[0];
    }
    auto t1 = clock::now();
    std::vector<BatchItem> step(B);
    for (int64_t i = 0; i < opts.gen_tokens; ++i) {
      for (int64_t b = 0; b < B; ++b)
        step[b] = BatchItem{&seqs[b], std::span<const int32_t>(&next[b], 1), BatchItem::Logits::Last};
      std::vector<int32_t> ids = engine.runner().forward_greedy(step);
      std::copy(ids.begin(), ids.end(), next.begin());
    }
    auto t2 = clock::now();
    for (auto& seq : seqs) release_sequence(engine.pool(), seq);
    prefill.push_back(B * opts.prompt_tokens / std::chrono::duration<double>(t1 - t0).count());
    decode.push_back(B * opts.gen_tokens / std::chrono::duration<double>(t2 - t1).count());
    e2e.push_back(std::chrono::duration<double>(t2 - t0).count());
  }
  r.end_to_end_s_best = *std::min_element(e2e.begin(), e2e.end());
  r.prefill_tok_s_best = *std::max_element(prefill.begin(), prefill.end());
  r.prefill_tok_s_median = median(prefill);
  r.decode_tok_s_best = *std::max_element(decode.begin(), decode.end());
  r.decode_tok_s_median = median(decode);
  r.prefill_gflops = r.prefill_tok_s_best * r.prefill_flops_per_token / 1e9;
  return r;
}

}  // namespace hwledger
