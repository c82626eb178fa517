// What people and programs read: the heatmap, the stacked bar, the verdict, the export flags
// and the device size.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "planner/device_memory.h"
#include "planner/export.h"
#include "planner/memory_plan.h"
#include "planner/report.h"
#include "util/error.h"

namespace hwledger::planner {
namespace {

PlanModel llama_with_layers(int layers) {
  return parse_plan_model(nlohmann::json::parse(
      R"({"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 512,
          "intermediate_size": 1024, "num_attention_heads": 8, "num_key_value_heads": 2,
          "vocab_size": 1000, "num_hidden_layers": )" +
      std::to_string(layers) + "}"));
}

MemoryPlan plan_of(const PlanModel& model, int64_t ctx = 1024, int64_t users = 1,
                   KvDtype kv = KvDtype::kF16, WeightFormat weights = WeightFormat::kBF16) {
  PlanOptions options;
  options.context_tokens = ctx;
  options.users = users;
  options.kv_dtype = kv;
  options.weights = weights;
  return plan_memory(model, options);
}

size_t count_lines(const std::string& text) {
  return size_t(std::count(text.begin(), text.end(), '\n'));
}

RenderStyle plain() {
  RenderStyle style;
  style.color = false;
  style.unicode = false;
  return style;
}

TEST(Report, HeatmapHasOneRowPerLayer) {
  std::string map = render_heatmap(plan_of(llama_with_layers(32)), plain());
  EXPECT_EQ(count_lines(map), 1u + 32);  // header + one row per layer
  EXPECT_NE(map.find("     31 attention"), std::string::npos) << map;
  // Equal layers get equal, full-width bars.
  EXPECT_NE(map.find(std::string(30, '#')), std::string::npos) << map;
}

TEST(Report, HeatmapBucketsHundredsOfLayers) {
  RenderStyle style = plain();
  std::string map = render_heatmap(plan_of(llama_with_layers(128)), style);
  // 128 layers in rows of 2: 64 rows and a header.
  EXPECT_EQ(count_lines(map), 1u + 64);
  EXPECT_NE(map.find("126-127"), std::string::npos) << map;
  EXPECT_EQ(count_lines(render_heatmap(plan_of(llama_with_layers(99)), style)), 1u + 99);
}

TEST(Report, ColourOnlyWhenAsked) {
  MemoryPlan plan = plan_of(llama_with_layers(4));
  DeviceFit fit = assess_fit(plan, 1ull << 30, "test");
  RenderStyle style = plain();
  EXPECT_EQ(render_report(plan, fit, style).find('\033'), std::string::npos);
  style.color = true;
  EXPECT_NE(render_report(plan, fit, style).find("\033["), std::string::npos);
}

TEST(Report, StackedBarSegmentsAreProportional) {
  MemoryPlan plan;
  plan.weights_bytes = 500;
  plan.kv_bytes = 200;
  plan.runtime_bytes = 100;
  plan.prefill_bytes = 0;
  plan.total_bytes = 800;
  DeviceFit fit = assess_fit(plan, 1000, "test");
  RenderStyle style = plain();
  style.bar_width = 50;
  std::string bar = render_stacked_bar(plan, fit, style);
  // Of 50 cells: weights 25, KV 10, runtime 5, prefill 0, free 10.
  EXPECT_NE(bar.find("[" + std::string(25, '#') + std::string(10, '=') + std::string(5, '+') +
                     std::string(10, '.') + "]"),
            std::string::npos)
      << bar;
  // Over the device: the bar spans the total and says by how much.
  plan.total_bytes = 2000;
  plan.weights_bytes = 1700;
  std::string over = render_stacked_bar(plan, assess_fit(plan, 1000, "test"), style);
  EXPECT_NE(over.find("over"), std::string::npos) << over;
}

TEST(Report, VerdictWords) {
  MemoryPlan plan;
  plan.total_bytes = 500;
  EXPECT_EQ(render_verdict(plan, assess_fit(plan, 1000, "t"), plain()).rfind("GREEN", 0), 0u);
  plan.total_bytes = 900;
  EXPECT_EQ(render_verdict(plan, assess_fit(plan, 1000, "t"), plain()).rfind("YELLOW", 0), 0u);
  plan.total_bytes = 1500;
  EXPECT_EQ(render_verdict(plan, assess_fit(plan, 1000, "t"), plain()).rfind("RED", 0), 0u);
}

// --- export -----------------------------------------------------------------------------------

std::vector<std::string> argv_of(ExportTarget target, const MemoryPlan& plan,
                                 uint64_t device_bytes = 0) {
  return export_command(target, plan, ExportContext{"/models/llama", device_bytes}).argv;
}

bool has_pair(const std::vector<std::string>& argv, const std::string& flag,
              const std::string& value) {
  for (size_t i = 0; i + 1 < argv.size(); ++i)
    if (argv[i] == flag && argv[i + 1] == value) return true;
  return false;
}

TEST(Export, VllmFlags) {
  MemoryPlan plan = plan_of(llama_with_layers(2), 8192, 4, KvDtype::kFp8);
  std::vector<std::string> argv = argv_of(ExportTarget::kVllm, plan, 80ull << 30);
  EXPECT_EQ(argv[0], "vllm");
  EXPECT_EQ(argv[1], "serve");
  EXPECT_EQ(argv[2], "/models/llama");
  EXPECT_TRUE(has_pair(argv, "--kv-cache-dtype", "fp8"));
  EXPECT_TRUE(has_pair(argv, "--max-model-len", "8192"));
  EXPECT_TRUE(has_pair(argv, "--max-num-seqs", "4"));
  EXPECT_TRUE(has_pair(argv, "--dtype", "bfloat16"));
  EXPECT_TRUE(has_pair(argv, "--max-num-batched-tokens", "2048"));  // 4 users x 512
  EXPECT_TRUE(has_pair(argv, "--gpu-memory-utilization", "0.01") ||
              has_pair(argv, "--gpu-memory-utilization", "0.05"));
  // fp8 weights add --quantization fp8; f16 KV is vLLM's "auto".
  MemoryPlan fp8 = plan_of(llama_with_layers(2), 1024, 1, KvDtype::kF16, WeightFormat::kFp8);
  argv = argv_of(ExportTarget::kVllm, fp8);
  EXPECT_TRUE(has_pair(argv, "--quantization", "fp8"));
  EXPECT_TRUE(has_pair(argv, "--kv-cache-dtype", "auto"));
  EXPECT_EQ(std::find(argv.begin(), argv.end(), "--gpu-memory-utilization"), argv.end());
}

TEST(Export, VllmRefusesWhatItCannotDo) {
  try {
    argv_of(ExportTarget::kVllm, plan_of(llama_with_layers(2), 1024, 1, KvDtype::kQ8_0));
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("q8_0"), std::string::npos) << e.what();
  }
  EXPECT_THROW(argv_of(ExportTarget::kVllm,
                       plan_of(llama_with_layers(2), 1024, 1, KvDtype::kF16, WeightFormat::kQ4_K)),
               InputError);
}

TEST(Export, LlamaCppFlags) {
  MemoryPlan plan = plan_of(llama_with_layers(2), 8192, 4, KvDtype::kQ8_0, WeightFormat::kQ4_K);
  ExportCommand command = export_command(ExportTarget::kLlamaCpp, plan, {"/models/llama", 0});
  const std::vector<std::string>& argv = command.argv;
  EXPECT_EQ(argv[0], "llama-server");
  EXPECT_TRUE(has_pair(argv, "-m", "llama-Q4_K.gguf"));
  EXPECT_TRUE(has_pair(argv, "-ctk", "q8_0"));
  EXPECT_TRUE(has_pair(argv, "-ctv", "q8_0"));
  EXPECT_TRUE(has_pair(argv, "-fa", "on"));    // a quantized V cache needs it
  EXPECT_TRUE(has_pair(argv, "-c", "32768"));  // the total over 4 slots of 8192
  EXPECT_TRUE(has_pair(argv, "-np", "4"));
  EXPECT_TRUE(has_pair(argv, "-ub", "2048"));
  EXPECT_NE(command.command_line().find("-ctk q8_0 -ctv q8_0"), std::string::npos);
  // An f16 cache does not force flash attention.
  MemoryPlan f16 = plan_of(llama_with_layers(2), 1024, 1, KvDtype::kF16, WeightFormat::kQ8_0);
  std::vector<std::string> plain_argv = argv_of(ExportTarget::kLlamaCpp, f16);
  EXPECT_EQ(std::find(plain_argv.begin(), plain_argv.end(), "-fa"), plain_argv.end());
  EXPECT_THROW(
      argv_of(ExportTarget::kLlamaCpp, plan_of(llama_with_layers(2), 1024, 1, KvDtype::kFp8)),
      InputError);
  EXPECT_THROW(argv_of(ExportTarget::kLlamaCpp,
                       plan_of(llama_with_layers(2), 1024, 1, KvDtype::kF16, WeightFormat::kFp8)),
               InputError);
}

TEST(Export, HwledgerFlags) {
  MemoryPlan plan = plan_of(llama_with_layers(2), 4096, 2, KvDtype::kBF16);
  std::vector<std::string> argv = argv_of(ExportTarget::kHwledger, plan);
  EXPECT_EQ(argv[0], "hwledger");
  EXPECT_EQ(argv[1], "serve");
  EXPECT_TRUE(has_pair(argv, "--model", "/models/llama"));
  EXPECT_TRUE(has_pair(argv, "--kv-dtype", "bf16"));
  EXPECT_TRUE(has_pair(argv, "--max-context", "4096"));
  // KV: 2 layers x 4096 tokens x 2 users x (2 (K,V) x 2 kv heads x 64 x 2 bytes) = 8 MiB.
  EXPECT_TRUE(has_pair(argv, "--max-kv-size", "8M"));
  // The engine's quantized KV types: q8_0 at ggml's 34 bytes per 32 values, and fp8 priced as
  // the engine stores it (e4m3 + an f16 scale per 32: the same 34 bytes): 2 layers x 4096 tokens x
  // 256 values x 34/32 bytes = 2.125 MiB -> 3M.
  EXPECT_TRUE(has_pair(
      argv_of(ExportTarget::kHwledger, plan_of(llama_with_layers(2), 4096, 1, KvDtype::kQ8_0)),
      "--max-kv-size", "3M"));
  PlanOptions fp8;
  fp8.context_tokens = 4096;
  fp8.kv_dtype = KvDtype::kFp8;
  fp8.hwledger_kv = true;
  const MemoryPlan fp8_plan = plan_memory(llama_with_layers(2), fp8);
  EXPECT_EQ(fp8_plan.kv_bytes, plan_of(llama_with_layers(2), 4096, 1, KvDtype::kQ8_0).kv_bytes);
  argv = argv_of(ExportTarget::kHwledger, fp8_plan);
  EXPECT_TRUE(has_pair(argv, "--kv-dtype", "fp8"));
  EXPECT_TRUE(has_pair(argv, "--max-kv-size", "3M"));
  // A plan that priced fp8 as vLLM's (one byte per value) would under-size the engine's cache.
  EXPECT_THROW(
      argv_of(ExportTarget::kHwledger, plan_of(llama_with_layers(2), 4096, 1, KvDtype::kFp8)),
      Error);
  EXPECT_THROW(argv_of(ExportTarget::kHwledger,
                       plan_of(llama_with_layers(2), 1024, 1, KvDtype::kF16, WeightFormat::kQ4_0)),
               InputError);
}

TEST(Export, TargetsAndQuoting) {
  EXPECT_EQ(parse_export_target("llama.cpp"), ExportTarget::kLlamaCpp);
  EXPECT_THROW(parse_export_target("tgi"), InputError);
  ExportCommand command;
  command.argv = {"vllm", "serve", "/models/my model", "it's"};
  EXPECT_EQ(command.command_line(), "vllm serve '/models/my model' 'it'\\''s'");
}

// --- device memory ----------------------------------------------------------------------------

TEST(DeviceMemory, MeminfoTotal) {
  EXPECT_EQ(parse_meminfo_total("MemTotal:       65759464 kB\nMemFree: 1 kB\n"),
            65759464ull * 1024);
  EXPECT_THROW(parse_meminfo_total("MemFree: 1 kB\n"), InputError);
  EXPECT_THROW(parse_meminfo_total("MemTotal: lots\n"), InputError);
}

TEST(DeviceMemory, Specs) {
  DeviceMemory given = resolve_device_memory("24G");
  EXPECT_EQ(given.bytes, 24ull << 30);
  EXPECT_TRUE(given.explicit_device);
  DeviceMemory ram = resolve_device_memory("");
  EXPECT_GT(ram.bytes, 0u);
  EXPECT_FALSE(ram.explicit_device);
  EXPECT_THROW(resolve_device_memory("gpu:x; rm -rf /"), InputError);
  EXPECT_THROW(resolve_device_memory("0"), InputError);
  EXPECT_THROW(resolve_device_memory("lots"), InputError);
}

}  // namespace
}  // namespace hwledger::planner
