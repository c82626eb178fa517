// hwledger plan --model PATH|config.json [--ctx N] [--users N] [--weights T] [--kv-dtype T]
//               [--device-memory SIZE|gpu[:N]] [--json] [--export vllm|llama.cpp|hwledger]
// The memory ledger: see docs/planner.md.
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "ledger/measure.h"
#include "planner/device_memory.h"
#include "planner/export.h"
#include "planner/memory_plan.h"
#include "planner/model_source.h"
#include "planner/report.h"

namespace hwledger::cli {

namespace {

struct PlanArgs {
  std::string model;
  int64_t ctx = 0;  // 0: 4096, or the model's max_position_embeddings when smaller
  int64_t users = 1;
  std::string weights;  // empty: the checkpoint's own dtype (bf16 when the config does not say)
  std::string kv_dtype = "f16";
  std::string device_memory;  // empty: the local RAM
  bool json = false;
  std::string export_target;
  bool measure = false;
  int threads = 1;
};

// --measure: the engine's real allocations beside the prediction (src/ledger).
void print_measurement(const ledger::Measurement& m, bool json) {
  if (json) {
    nlohmann::json rows = nlohmann::json::array();
    for (const auto& r : m.rows)
      rows.push_back({{"what", r.what}, {"predicted", r.predicted}, {"measured", r.measured}, {"within", r.within}});
    std::printf("%s\n", nlohmann::json{{"measured", m.report}, {"comparison", rows}, {"all_within", m.all_within()}}
                             .dump(2).c_str());
    return;
  }
  std::printf("\npredicted vs measured (tolerance: 1%% or 16 MiB, whichever is larger)\n");
  std::printf("%-22s %16s %16s %9s\n", "", "predicted", "measured", "diff");
  for (const auto& r : m.rows) {
    double diff = r.predicted ? 100.0 * (double(r.measured) - double(r.predicted)) / double(r.predicted) : 0.0;
    std::printf("%-22s %16llu %16llu %+8.2f%% %s\n", r.what.c_str(), static_cast<unsigned long long>(r.predicted),
                static_cast<unsigned long long>(r.measured), diff, r.within ? "ok" : "OUT OF TOLERANCE");
  }
  std::printf("%s\n", m.all_within() ? "all within tolerance" : "some rows are out of tolerance");
}

void run_plan(const PlanArgs& args) {
  using namespace hwledger::planner;
  LoadedModel loaded = load_plan_model(args.model);
  PlanOptions options;
  options.users = args.users;
  options.context_tokens = args.ctx;
  if (args.ctx == 0) {
    options.context_tokens = 4096;
    if (loaded.model.max_position_embeddings > 0)
      options.context_tokens = std::min<int64_t>(4096, loaded.model.max_position_embeddings);
  }
  options.weights = args.weights.empty() ? loaded.model.native_format.value_or(WeightFormat::kBF16)
                                         : parse_weight_format(args.weights);
  options.kv_dtype = parse_kv_dtype(args.kv_dtype);
  // Parse the export target before planning so that a typo fails fast.
  std::optional<ExportTarget> target;
  if (!args.export_target.empty()) target = parse_export_target(args.export_target);
  // The engine's own KV layout where the plan is for hwledger (fp8 carries group scales).
  options.hwledger_kv = args.measure || target == ExportTarget::kHwledger;

  const MemoryPlan plan = plan_memory(loaded.model, options);
  const DeviceMemory device = resolve_device_memory(args.device_memory);
  const DeviceFit fit = assess_fit(plan, device.bytes, device.source);

  std::optional<ExportCommand> command;
  if (target) {
    ExportContext context;
    context.model_path = loaded.model_dir.string();
    context.device_bytes = device.explicit_device ? device.bytes : 0;
    command = export_command(*target, plan, context);
  }

  if (args.measure) {
    if (!args.json) std::fputs(render_report(plan, fit, detect_style(stdout)).c_str(), stdout);
    ledger::Measurement m = ledger::measure(loaded.model_dir.string(), plan, args.threads);
    print_measurement(m, args.json);
    exit_code() = m.all_within() ? 0 : 1;
    return;
  }
  if (args.json) {
    nlohmann::json out = plan_to_json(plan, fit);
    if (command)
      out["export"] = {{"program", to_string(command->target)},
                       {"argv", command->argv},
                       {"command", command->command_line()},
                       {"notes", command->notes}};
    std::printf("%s\n", out.dump(2).c_str());
  } else if (command) {
    // Only the command on stdout, so that $(hwledger plan ... --export vllm) runs it.
    std::printf("%s\n", command->command_line().c_str());
    for (const std::string& note : command->notes) std::fprintf(stderr, "# %s\n", note.c_str());
    std::fprintf(stderr, "# plan: %s\n", std::string(to_string(fit.verdict)).c_str());
  } else {
    std::fputs(render_report(plan, fit, detect_style(stdout)).c_str(), stdout);
  }
}

}  // namespace

void add_plan_command(CLI::App& app) {
  auto args = std::make_shared<PlanArgs>();
  CLI::App* cmd = app.add_subcommand(
      "plan",
      "the memory ledger: per-layer weights, KV cache, runtime and prefill memory of a "
      "model, whether it fits a device, and launch flags for other runtimes");
  cmd->add_option("--model", args->model, "model folder or its config.json")
      ->required()
      ->envname("HWLEDGER_MODEL");
  cmd->add_option("--ctx", args->ctx,
                  "context tokens per user (default 4096, or the model's maximum if smaller)")
      ->envname("HWLEDGER_CTX");
  cmd->add_option("--users", args->users, "concurrent users, each with its own cache (default 1)")
      ->envname("HWLEDGER_USERS");
  cmd->add_option("--weights", args->weights,
                  "weight format: bf16, f16, f32, q8_0, q4_0, q4_k, q6_k, fp8 (also q5_0); "
                  "default: the checkpoint's dtype")
      ->envname("HWLEDGER_WEIGHTS");
  cmd->add_option("--kv-dtype", args->kv_dtype,
                  "KV cache type: f16 (default), bf16, fp8, q8_0, q4_0, f32")
      ->envname("HWLEDGER_KV_DTYPE");
  cmd->add_option("--device-memory", args->device_memory,
                  "memory to fit in: a size (24G, 512M), or gpu / gpu:N for a GPU's memory "
                  "(nvidia-smi); default: this machine's RAM")
      ->envname("HWLEDGER_DEVICE_MEMORY");
  cmd->add_flag("--json", args->json, "print the plan as JSON for programs");
  cmd->add_option("--export", args->export_target,
                  "print launch flags for vllm, llama.cpp or hwledger that match the plan");
  cmd->add_flag("--measure", args->measure,
                "load the model, allocate the KV cache for --ctx x --users, and compare with the plan");
  cmd->add_option("--threads", args->threads, "threads for --measure (default 1)");
  cmd->callback([args] { run_plan(*args); });
}

}  // namespace hwledger::cli
