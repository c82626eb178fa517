#include "cli/engine_options.h"

#include "util/size.h"

namespace hwledger::cli {

std::string demo_model_dir();  // cmd_model.cpp

void EngineFlags::add_to(CLI::App* cmd, bool model_required) {
  auto* m = cmd->add_option("--model", model, "model folder (Hugging Face layout), or 'demo'")
                ->envname("HWLEDGER_MODEL");
  if (model_required) m->required();
  cmd->add_option("--threads", threads, "compute threads (default: one per core)")->envname("HWLEDGER_THREADS");
  cmd->add_option("--kv-dtype", kv_dtype, "KV cache element type: f16, bf16, f32")->envname("HWLEDGER_KV_DTYPE");
  cmd->add_option("--max-kv-size", max_kv_size, "working-memory KV budget, e.g. 2G")->envname("HWLEDGER_MAX_KV_SIZE");
  cmd->add_option("--max-context", max_context, "longest sequence in tokens")->envname("HWLEDGER_MAX_CONTEXT");
}

EngineOptions EngineFlags::to_options() const {
  EngineOptions o;
  o.threads = threads;
  o.kv_dtype = parse_kv_dtype(kv_dtype);
  if (!max_kv_size.empty()) o.max_kv_bytes = parse_size(max_kv_size);
  o.max_context = max_context;
  return o;
}

std::string EngineFlags::model_dir() const { return model == "demo" ? demo_model_dir() : model; }

}  // namespace hwledger::cli
