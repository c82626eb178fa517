// hwledger verify --model DIR --reference FILE: parity against transformers' outputs.
#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "cli/engine_options.h"
#include "engine/verify.h"

namespace hwledger::cli {

void add_verify_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("verify", "compare logits, hidden states and greedy tokens with a reference file");
  auto flags = std::make_shared<EngineFlags>();
  auto reference = std::make_shared<std::string>();
  auto tolerance = std::make_shared<double>(1e-3);
  flags->kv_dtype = "f32";  // the references are fp32 arithmetic; f16/bf16 KV is a choice to measure
  flags->add_to(cmd, true);
  cmd->add_option("--reference", *reference, "reference.safetensors made by make_reference.py")->required();
  auto* tolerance_opt = cmd->add_option("--tolerance", *tolerance,
                  "max |ours-ref|/max|ref| allowed (default 1e-3); on CUDA the relative L2 error (default 2e-2)");
  cmd->callback([=] {
    EngineOptions opts = flags->to_options();
    opts.load.show_progress = false;
    Engine engine(flags->model_dir(), opts);
    // The GPU computes in bf16 (SPEC's bf16 tolerance), the CPU in fp32.
    const bool bf16 = opts.device == Device::CUDA;
    // The default depends on the device; a --tolerance that was given is used as it is.
    const double tol = bf16 && tolerance_opt->count() == 0 ? 2e-2 : *tolerance;
    auto results = verify_reference(engine, *reference, tol, bf16);
    int failed = 0;
    for (const auto& r : results) {
      if (r.name == "gen_greedy")
        std::printf("%-4s %-22s %s\n", r.passed ? "ok" : "FAIL", r.name.c_str(), r.detail.c_str());
      else
        std::printf("%-4s %-22s %s %.3e (tol %.0e) %s\n", r.passed ? "ok" : "FAIL", r.name.c_str(),
                    bf16 ? "rel_l2" : "rel_err", r.error, r.tolerance, r.detail.c_str());
      failed += !r.passed;
    }
    std::printf("%zu passed, %d failed\n", results.size() - failed, failed);
    exit_code() = failed ? 1 : 0;
  });
}

}  // namespace hwledger::cli
