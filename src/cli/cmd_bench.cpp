// hwledger bench model | agent-loop: deterministic benchmarks (docs/benchmarks.md).
#include <cstdio>
#include <fstream>
#include <sstream>
#include <memory>

#include "bench/agent_loop.h"
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
  cmd->add_option("--batch", opts->batch, "sequences decoded together, each prefilled first (default 1)");
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
    if (!r.gpu.empty()) {
      std::printf("device       %s: d2d copy %.1f GB/s, bf16 cuBLAS %.0f TFLOP/s (measured)\n", r.gpu.c_str(),
                  r.peaks.read_gbps, r.gpu_bf16_tflops);
      std::printf("prefill      %lld tokens x %lld: %.1f tok/s best, %.1f median  (%.0f TFLOP/s = %.0f%% MFU)\n",
                  static_cast<long long>(r.prompt_tokens), static_cast<long long>(r.batch), r.prefill_tok_s_best,
                  r.prefill_tok_s_median, r.prefill_gflops / 1e3, 100 * r.prefill_gflops / 1e3 / r.gpu_bf16_tflops);
    } else {
      std::printf("machine      %d threads, SIMD %s, read %.1f GB/s, fp32 FMA peak %.0f GFLOP/s\n", r.threads,
                  r.peaks.simd, r.peaks.read_gbps, r.peaks.fp32_gflops);
      std::printf("prefill      %lld tokens: %.1f tok/s best, %.1f median  (%.0f GFLOP/s = %.0f%% of fp32 peak)\n",
                  static_cast<long long>(r.prompt_tokens), r.prefill_tok_s_best, r.prefill_tok_s_median,
                  r.prefill_gflops, 100 * r.prefill_gflops / r.peaks.fp32_gflops);
    }
    std::printf("decode       %lld tokens x %lld seqs: %.1f tok/s best, %.1f median (all sequences)\n",
                static_cast<long long>(r.gen_tokens), static_cast<long long>(r.batch), r.decode_tok_s_best,
                r.decode_tok_s_median);
    std::printf("end to end   %.3f s (prefill of every sequence + decode), best\n", r.end_to_end_s_best);
    std::printf("roofline     %.1f tok/s = %.1f GB/s / (%s weights + %s KV per token); reached %.0f%%\n",
                r.decode_roofline_tok_s, r.peaks.read_gbps, format_bytes(r.weight_bytes_per_token).c_str(),
                format_bytes(r.kv_bytes_per_token).c_str(), 100 * r.decode_tok_s_best / r.decode_roofline_tok_s);
  });

  auto* loop = bench->add_subcommand("agent-loop", "replay a seeded agent loop under each cache mode");
  auto lflags = std::make_shared<EngineFlags>();
  auto lopts = std::make_shared<AgentLoopOptions>();
  auto modes = std::make_shared<std::string>("off,ram,ram+ssd,ssd-cold");
  auto ljson = std::make_shared<bool>(false);
  auto svg = std::make_shared<std::string>();
  auto ram = std::make_shared<std::string>();
  lflags->add_to(loop, false);
  loop->add_option("--prefix-tokens", lopts->prefix_tokens, "shared prefix length (default 8192)");
  loop->add_option("--sessions", lopts->sessions, "interleaved sessions (default 4)");
  loop->add_option("--turns", lopts->turns, "turns per session (default 8)");
  loop->add_option("--append-tokens", lopts->append_tokens, "tokens each turn appends (default 256)");
  loop->add_option("--gen-tokens", lopts->gen_tokens, "tokens generated per turn, greedily (default 32)");
  loop->add_option("--prefill-chunk", lopts->prefill_chunk, "tokens per prefill forward (default 512 on CPU, 8192 on GPU)");
  loop->add_option("--seed", lopts->seed, "seed of all token ids (default 0)");
  loop->add_option("--modes", *modes, "comma-separated: off, ram, ram+ssd, ssd-cold, ram-cold (default: the first four)");
  loop->add_option("--ram-tier", *ram, "RAM tier size in ram+ssd mode (default: a quarter of one session)");
  loop->add_flag("--json", *ljson, "print the report as JSON");
  loop->add_option("--svg", *svg, "write a plot of TTFT per turn to this file");
  loop->callback([=] {
    AgentLoopOptions o = *lopts;
    o.model_dir = lflags->model_dir();
    o.engine = lflags->to_options();
    o.cache_dir = lflags->cache_dir;
    if (!lflags->ssd_cache.empty()) o.ssd_cache_bytes = parse_size(lflags->ssd_cache);
    if (!ram->empty()) o.ram_cache_bytes = parse_size(*ram);
    o.modes.clear();
    std::stringstream ss(*modes);
    for (std::string m; std::getline(ss, m, ',');) o.modes.push_back(parse_agent_loop_mode(m));
    AgentLoopReport r = run_agent_loop(o);
    std::printf("%s", *ljson ? (r.to_json().dump(2) + "\n").c_str() : r.to_text().c_str());
    if (!svg->empty()) std::ofstream(*svg) << r.to_svg();
  });
}

}  // namespace hwledger::cli
