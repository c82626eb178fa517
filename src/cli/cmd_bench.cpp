// hwledger bench model: prefill/decode speed against the roofline. (agent-loop: see the KV issue.)
#include <cstdio>
#include <memory>

#include "bench/model_bench.h"
#include "cli/commands.h"
#include "cli/engine_options.h"
#include "util/size.h"

namespace hwledger::cli {

void add_bench_command(CLI::App& app) {
  auto* bench = app.add_subcommand("bench", "deterministic benchmarks");
  bench->require_subcommand(1);

  auto* cmd = bench->add_subcommand("model", "prefill and decode tokens/s next to the machine's roofline");
  auto flags = std::make_shared<EngineFlags>();
  auto opts = std::make_shared<ModelBenchOptions>();
  auto json = std::make_shared<bool>(false);
  flags->add_to(cmd, false);
  cmd->add_option("--prompt-tokens", opts->prompt_tokens, "prefill length (default 512)");
  cmd->add_option("--gen-tokens", opts->gen_tokens, "decode steps (default 128)");
  cmd->add_option("--repeats", opts->repeats, "runs; best and median are reported (default 3)");
  cmd->add_option("--seed", opts->seed, "seed of the prompt's token ids (default 0)");
  cmd->add_flag("--json", *json, "print the report as JSON");
  cmd->callback([=] {
    Engine engine(flags->model_dir(), flags->to_options());
    ModelBenchResult r = bench_model(engine, *opts);
    if (*json) {
      std::printf("%s\n", r.to_json().dump(2).c_str());
      return;
    }
    std::printf("model        %s (%s weights %s, KV %s)\n", engine.model().dir.c_str(),
                engine.config().architecture.c_str(), format_bytes(engine.model().weights_bytes()).c_str(),
                std::string(dtype_name(engine.pool().layout().dtype)).c_str());
    std::printf("machine      %d threads, SIMD %s, read %.1f GB/s, fp32 FMA peak %.0f GFLOP/s\n", r.threads,
                r.peaks.simd, r.peaks.read_gbps, r.peaks.fp32_gflops);
    std::printf("prefill      %lld tokens: %.1f tok/s best, %.1f median  (%.0f GFLOP/s = %.0f%% of fp32 peak)\n",
                static_cast<long long>(r.prompt_tokens), r.prefill_tok_s_best, r.prefill_tok_s_median,
                r.prefill_gflops, 100 * r.prefill_gflops / r.peaks.fp32_gflops);
    std::printf("decode       %lld tokens: %.1f tok/s best, %.1f median\n", static_cast<long long>(r.gen_tokens),
                r.decode_tok_s_best, r.decode_tok_s_median);
    std::printf("roofline     %.1f tok/s = %.1f GB/s / (%s weights + %s KV per token); reached %.0f%%\n",
                r.decode_roofline_tok_s, r.peaks.read_gbps, format_bytes(r.weight_bytes_per_token).c_str(),
                format_bytes(r.kv_bytes_per_token).c_str(), 100 * r.decode_tok_s_best / r.decode_roofline_tok_s);
  });
}

}  // namespace hwledger::cli
