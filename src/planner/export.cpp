#include "planner/export.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "util/error.h"

namespace hwledger::planner {

namespace {

std::string shell_quote(const std::string& arg) {
  if (!arg.empty() && arg.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                            "0123456789-_./=:,+@%") == std::string::npos)
    return arg;
  std::string out = "'";
  for (char c : arg) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

int64_t step_tokens(const PlanOptions& o) {
  const int64_t sequences =
      o.prefill_sequences > 0 ? std::min(o.prefill_sequences, o.users) : o.users;
  return sequences * std::min(o.prefill_chunk, o.context_tokens);
}

ExportCommand export_vllm(const MemoryPlan& plan, const ExportContext& context) {
  const PlanOptions& o = plan.options;
  ExportCommand command;
  command.target = ExportTarget::kVllm;
  command.argv = {"vllm", "serve", context.model_path};
  std::string dtype;
  switch (o.weights) {
    case WeightFormat::kBF16:
      dtype = "bfloat16";
      break;
    case WeightFormat::kF16:
      dtype = "float16";
      break;
    case WeightFormat::kF32:
      dtype = "float32";
      break;
    case WeightFormat::kFp8:
      dtype = "bfloat16";
      break;  // activations; weights via --quantization
    default:
      fail_input(
          "--export vllm: vLLM cannot quantize weights to {} when it loads a model (GGUF "
          "files carry their own quantization); plan with --weights bf16, f16, f32 or fp8",
          to_string(o.weights));
  }
  command.argv.insert(command.argv.end(), {"--dtype", dtype});
  if (o.weights == WeightFormat::kFp8)
    command.argv.insert(command.argv.end(), {"--quantization", "fp8"});
  switch (o.kv_dtype) {
    case KvDtype::kFp8:
      command.argv.insert(command.argv.end(), {"--kv-cache-dtype", "fp8"});
      break;
    case KvDtype::kF16:
    case KvDtype::kBF16:
    case KvDtype::kF32:
      // "auto" is the model dtype: the same bytes per value for f16 and bf16.
      command.argv.insert(command.argv.end(), {"--kv-cache-dtype", "auto"});
      if ((o.kv_dtype == KvDtype::kF32) != (o.weights == WeightFormat::kF32))
        command.notes.push_back(
            fmt::format("vLLM keeps the KV cache in the model dtype ({}); the plan assumed {}",
                        dtype, to_string(o.kv_dtype)));
      break;
    default:
      fail_input(
          "--export vllm: vLLM has no {} KV cache (its --kv-cache-dtype takes auto or "
          "fp8); plan with --kv-dtype f16, bf16 or fp8",
          to_string(o.kv_dtype));
  }
  // Chunked prefill bounds a step to the tokens the plan's prefill term assumed (and lets that
  // bound be below --max-model-len on versions where chunking is optional).
  command.argv.insert(command.argv.end(), {"--max-model-len", std::to_string(o.context_tokens),
                                           "--max-num-seqs", std::to_string(o.users),
                                           "--enable-chunked-prefill", "--max-num-batched-tokens",
                                           std::to_string(std::max(step_tokens(o), o.users))});
  if (context.device_bytes > 0) {
    // vLLM takes this fraction of the GPU for weights, activations and KV blocks (and fills what
    // the plan leaves over with more KV blocks).
    const double fraction = double(plan.total_bytes) / double(context.device_bytes);
    const double rounded = std::ceil(fraction * 100.0) / 100.0;
    if (rounded <= 0.95) {
      command.argv.insert(command.argv.end(), {"--gpu-memory-utilization",
                                               fmt::format("{:.2f}", std::max(0.05, rounded))});
    } else {
      command.notes.push_back(fmt::format(
          "the plan needs {:.0f}% of the device; vLLM's --gpu-memory-utilization is left at its "
          "default (0.9), which will not hold it",
          fraction * 100));
    }
  }
  return command;
}

ExportCommand export_llama_cpp(const MemoryPlan& plan, const ExportContext& context) {
  const PlanOptions& o = plan.options;
  ExportCommand command;
  command.target = ExportTarget::kLlamaCpp;
  std::string quant_type;
  switch (o.weights) {
    case WeightFormat::kBF16:
      quant_type = "BF16";
      break;
    case WeightFormat::kF16:
      quant_type = "F16";
      break;
    case WeightFormat::kF32:
      quant_type = "F32";
      break;
    case WeightFormat::kQ8_0:
      quant_type = "Q8_0";
      break;
    case WeightFormat::kQ5_0:
      quant_type = "Q5_0";
      break;
    case WeightFormat::kQ4_0:
      quant_type = "Q4_0";
      break;
    case WeightFormat::kQ4_K:
      quant_type = "Q4_K";
      break;
    case WeightFormat::kQ6_K:
      quant_type = "Q6_K";
      break;
    case WeightFormat::kFp8:
      fail_input(
          "--export llama.cpp: llama.cpp has no fp8 weight type; plan with --weights "
          "q8_0, q6_k, q4_k, q4_0, bf16, f16 or f32");
  }
  std::string cache_type;
  switch (o.kv_dtype) {
    case KvDtype::kF16:
      cache_type = "f16";
      break;
    case KvDtype::kBF16:
      cache_type = "bf16";
      break;
    case KvDtype::kF32:
      cache_type = "f32";
      break;
    case KvDtype::kQ8_0:
      cache_type = "q8_0";
      break;
    case KvDtype::kQ4_0:
      cache_type = "q4_0";
      break;
    case KvDtype::kFp8:
      fail_input(
          "--export llama.cpp: llama.cpp has no fp8 KV cache (-ctk/-ctv take f32, f16, "
          "bf16, q8_0, q4_0, ...); plan with --kv-dtype q8_0 or f16");
  }
  std::string stem =
      std::filesystem::path(context.model_path).lexically_normal().filename().string();
  if (stem.empty() || stem == ".") stem = "model";
  const std::string gguf = fmt::format("{}-{}.gguf", stem, quant_type);
  // llama-server's -c is the total over its -np slots: each slot gets c / np tokens.
  command.argv = {"llama-server",
                  "-m",
                  gguf,
                  "-c",
                  std::to_string(o.context_tokens * o.users),
                  "-np",
                  std::to_string(o.users),
                  "-ctk",
                  cache_type,
                  "-ctv",
                  cache_type};
  // A quantized V cache needs flash attention.
  if (o.kv_dtype == KvDtype::kQ8_0 || o.kv_dtype == KvDtype::kQ4_0)
    command.argv.insert(command.argv.end(), {"-fa", "on"});
  const int64_t ubatch = step_tokens(o);
  command.argv.insert(command.argv.end(), {"-ub", std::to_string(ubatch)});
  if (ubatch > 2048) command.argv.insert(command.argv.end(), {"-b", std::to_string(ubatch)});
  const bool is_float = o.weights == WeightFormat::kBF16 || o.weights == WeightFormat::kF16 ||
                        o.weights == WeightFormat::kF32;
  if (is_float)
    command.notes.push_back(
        fmt::format("make {} with: python convert_hf_to_gguf.py {} --outtype {} "
                    "--outfile {}",
                    gguf, context.model_path, to_string(o.weights), gguf));
  else
    command.notes.push_back(fmt::format(
        "make {} with: python convert_hf_to_gguf.py {} --outtype bf16 --outfile {}-BF16.gguf, "
        "then llama-quantize --pure {}-BF16.gguf {} {} (--pure: every matrix {}, as planned; "
        "the usual _M mixes are slightly larger)",
        gguf, context.model_path, stem, stem, gguf, quant_type, quant_type));
  if (o.kv_dtype == KvDtype::kQ8_0 || o.kv_dtype == KvDtype::kQ4_0)
    command.notes.push_back(
        "-fa on is the spelling of current llama.cpp; builds before mid-2025 "
        "take a bare -fa");
  return command;
}

ExportCommand export_hwledger(const MemoryPlan& plan, const ExportContext& context) {
  const PlanOptions& o = plan.options;
  if (!is_float(o.weights))
    fail_input(
        "--export hwledger: hwledger runs bf16, f16 or f32 safetensors weights; plan with "
        "--weights bf16, f16 or f32 (not {})",
        to_string(o.weights));
  // Every planner KV dtype is an engine --kv-dtype (q8_0/q4_0 blocks are ggml's sizes, as the
  // planner prices them); fp8 must have been priced with the engine's scales.
  if (o.kv_dtype == KvDtype::kFp8 && !o.hwledger_kv)
    fail("--export hwledger: the plan priced fp8 KV as vLLM's (PlanOptions::hwledger_kv unset)");
  ExportCommand command;
  command.target = ExportTarget::kHwledger;
  // The engine's flags (src/cli/engine_options.cpp): the KV budget covers every user's cache.
  const uint64_t kv_mib = (plan.kv_bytes + (1u << 20) - 1) >> 20;
  command.argv = {"hwledger",      "serve",
                  "--model",       context.model_path,
                  "--kv-dtype",    std::string(to_string(o.kv_dtype)),
                  "--max-context", std::to_string(o.context_tokens),
                  "--max-kv-size", fmt::format("{}M", std::max<uint64_t>(kv_mib, 1))};
  if (plan.options.weights != WeightFormat::kBF16)
    command.notes.push_back(
        fmt::format("hwledger loads the checkpoint's own dtype; the plan "
                    "assumed {} weights",
                    to_string(o.weights)));
  return command;
}

}  // namespace

ExportTarget parse_export_target(std::string_view text) {
  if (text == "vllm") return ExportTarget::kVllm;
  if (text == "llama.cpp" || text == "llamacpp" || text == "llama-cpp")
    return ExportTarget::kLlamaCpp;
  if (text == "hwledger") return ExportTarget::kHwledger;
  fail_input("unknown --export target '{}': use vllm, llama.cpp or hwledger", text);
}

std::string_view to_string(ExportTarget target) {
  switch (target) {
    case ExportTarget::kVllm:
      return "vllm";
    case ExportTarget::kLlamaCpp:
      return "llama.cpp";
    case ExportTarget::kHwledger:
      return "hwledger";
  }
  return "?";
}

std::string ExportCommand::command_line() const {
  std::string out;
  for (const std::string& arg : argv) out += (out.empty() ? "" : " ") + shell_quote(arg);
  return out;
}

ExportCommand export_command(ExportTarget target, const MemoryPlan& plan,
                             const ExportContext& context) {
  switch (target) {
    case ExportTarget::kVllm:
      return export_vllm(plan, context);
    case ExportTarget::kLlamaCpp:
      return export_llama_cpp(plan, context);
    case ExportTarget::kHwledger:
      return export_hwledger(plan, context);
  }
  fail("unknown export target");
}

}  // namespace hwledger::planner
