#include "model/synth.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <thread>

#include "model/config.h"
#include "model/safetensors.h"
#include "ops/tensor.h"
#include "util/error.h"
#include "util/progress.h"

namespace hwledger {

namespace fs = std::filesystem;

const std::vector<SynthPreset>& synth_presets() {
  static const std::vector<SynthPreset> presets = {
      {"demo",
       "small Qwen3-style model, fast on 2 cores (vocabulary of the built-in demo tokenizer)",
       {{"architectures", {"Qwen3ForCausalLM"}},
        {"model_type", "qwen3"},
        {"vocab_size", 1024},
        {"hidden_size", 256},
        {"intermediate_size", 768},
        {"num_hidden_layers", 4},
        {"num_attention_heads", 4},
        {"num_key_value_heads", 2},
        {"head_dim", 64},
        {"hidden_act", "silu"},
        {"max_position_embeddings", 32768},
        {"rms_norm_eps", 1e-6},
        {"rope_theta", 1000000.0},
        {"tie_word_embeddings", true},
        {"attention_bias", false},
        {"torch_dtype", "bfloat16"},
        {"bos_token_id", nullptr},
        {"eos_token_id", 2}}},
      {"qwen3-mini",
       "tiny Qwen3 with Qwen3's 151,936-token vocabulary, for tests with its real tokenizer",
       {{"architectures", {"Qwen3ForCausalLM"}},
        {"model_type", "qwen3"},
        {"vocab_size", 151936},
        {"hidden_size", 128},
        {"intermediate_size", 384},
        {"num_hidden_layers", 2},
        {"num_attention_heads", 4},
        {"num_key_value_heads", 2},
        {"head_dim", 64},
        {"hidden_act", "silu"},
        {"max_position_embeddings", 40960},
        {"rms_norm_eps", 1e-6},
        {"rope_theta", 1000000.0},
        {"tie_word_embeddings", true},
        {"attention_bias", false},
        {"torch_dtype", "bfloat16"},
        {"bos_token_id", 151643},
        {"eos_token_id", 151645}}},
      {"qwen3-0.6b",
       "the shape of Qwen/Qwen3-0.6B (596M parameters), random weights",
       {{"architectures", {"Qwen3ForCausalLM"}},
        {"model_type", "qwen3"},
        {"vocab_size", 151936},
        {"hidden_size", 1024},
        {"intermediate_size", 3072},
        {"num_hidden_layers", 28},
        {"num_attention_heads", 16},
        {"num_key_value_heads", 8},
        {"head_dim", 128},
        {"hidden_act", "silu"},
        {"max_position_embeddings", 40960},
        {"rms_norm_eps", 1e-6},
        {"rope_theta", 1000000.0},
        {"tie_word_embeddings", true},
        {"attention_bias", false},
        {"torch_dtype", "bfloat16"},
        {"bos_token_id", 151643},
        {"eos_token_id", 151645}}},
      {"llama-3.2-1b",
       "the shape of meta-llama/Llama-3.2-1B (1.24B parameters), random weights",
       {{"architectures", {"LlamaForCausalLM"}},
        {"model_type", "llama"},
        {"vocab_size", 128256},
        {"hidden_size", 2048},
        {"intermediate_size", 8192},
        {"num_hidden_layers", 16},
        {"num_attention_heads", 32},
        {"num_key_value_heads", 8},
        {"head_dim", 64},
        {"hidden_act", "silu"},
        {"max_position_embeddings", 131072},
        {"rms_norm_eps", 1e-5},
        {"rope_theta", 500000.0},
        {"rope_scaling",
         {{"factor", 32.0},
          {"low_freq_factor", 1.0},
          {"high_freq_factor", 4.0},
          {"original_max_position_embeddings", 8192},
          {"rope_type", "llama3"}}},
        {"tie_word_embeddings", true},
        {"attention_bias", false},
        {"mlp_bias", false},
        {"torch_dtype", "bfloat16"},
        {"bos_token_id", 128000},
        {"eos_token_id", {128001, 128008, 128009}}}},
      {"llama-3.1-8b",
       "the shape of meta-llama/Llama-3.1-8B (8.03B parameters), random weights",
       {{"architectures", {"LlamaForCausalLM"}},
        {"model_type", "llama"},
        {"vocab_size", 128256},
        {"hidden_size", 4096},
        {"intermediate_size", 14336},
        {"num_hidden_layers", 32},
        {"num_attention_heads", 32},
        {"num_key_value_heads", 8},
        {"head_dim", 128},
        {"hidden_act", "silu"},
        {"max_position_embeddings", 131072},
        {"rms_norm_eps", 1e-5},
        {"rope_theta", 500000.0},
        {"rope_scaling",
         {{"factor", 8.0},
          {"low_freq_factor", 1.0},
          {"high_freq_factor", 4.0},
          {"original_max_position_embeddings", 8192},
          {"rope_type", "llama3"}}},
        {"tie_word_embeddings", false},
        {"attention_bias", false},
        {"mlp_bias", false},
        {"torch_dtype", "bfloat16"},
        {"bos_token_id", 128000},
        {"eos_token_id", {128001, 128008, 128009}}}},
  };
  return presets;
}

const SynthPreset& find_synth_preset(const std::string& name) {
  std::string names;
  for (const auto& p : synth_presets()) {
    if (p.name == name) return p;
    names += (names.empty() ? "" : ", ") + p.name;
  }
  fail_input("unknown preset '{}' (presets: {})", name, names);
}

namespace {

// SplitMix64 feeding a Box-Muller transform: fast, portable and deterministic in the seed.
struct Rng {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  double uniform() { return (next() >> 11) * (1.0 / 9007199254740992.0); }
  void normal_pair(float& a, float& b) {
    double u1 = uniform(), u2 = uniform();
    double r = std::sqrt(-2.0 * std::log(u1 > 1e-300 ? u1 : 1e-300));
    a = static_cast<float>(r * std::cos(6.283185307179586 * u2));
    b = static_cast<float>(r * std::sin(6.283185307179586 * u2));
  }
};

void store(float v, DType dtype, uint8_t* dst, size_t i) {
  switch (dtype) {
    case DType::F32:
      std::memcpy(dst + 4 * i, &v, 4);
      break;
    case DType::BF16: {
      uint16_t h = f32_to_bf16(v);
      std::memcpy(dst + 2 * i, &h, 2);
      break;
    }
    case DType::F16: {
      uint16_t h = f32_to_f16(v);
      std::memcpy(dst + 2 * i, &h, 2);
      break;
    }
    default:
      break;
  }
}

}  // namespace

void synth_model(const nlohmann::json& config_json, uint64_t seed, DType dtype,
                 const std::string& out_dir, bool show_progress) {
  ModelConfig c = ModelConfig::from_json(config_json);  // validates
  fs::create_directories(out_dir);
  {
    std::ofstream f(fs::path(out_dir) / "config.json");
    f << config_json.dump(2) << "\n";
    if (!f) fail_input("cannot write config.json in '{}'", out_dir);
  }
  struct Spec {
    std::string name;
    std::vector<int64_t> shape;
    enum { Weight, Norm, Bias } kind;
  };
  std::vector<Spec> specs;
  const int64_t H = c.hidden_size, F = c.intermediate_size, V = c.vocab_size;
  specs.push_back({"model.embed_tokens.weight", {V, H}, Spec::Weight});
  for (int64_t i = 0; i < c.num_layers; ++i) {
    std::string p = "model.layers." + std::to_string(i) + ".";
    specs.push_back({p + "input_layernorm.weight", {H}, Spec::Norm});
    specs.push_back({p + "self_attn.q_proj.weight", {c.q_dim(), H}, Spec::Weight});
    specs.push_back({p + "self_attn.k_proj.weight", {c.kv_dim(), H}, Spec::Weight});
    specs.push_back({p + "self_attn.v_proj.weight", {c.kv_dim(), H}, Spec::Weight});
    specs.push_back({p + "self_attn.o_proj.weight", {H, c.q_dim()}, Spec::Weight});
    if (c.qkv_bias) {
      specs.push_back({p + "self_attn.q_proj.bias", {c.q_dim()}, Spec::Bias});
      specs.push_back({p + "self_attn.k_proj.bias", {c.kv_dim()}, Spec::Bias});
      specs.push_back({p + "self_attn.v_proj.bias", {c.kv_dim()}, Spec::Bias});
    }
    if (c.o_bias) specs.push_back({p + "self_attn.o_proj.bias", {H}, Spec::Bias});
    if (c.qk_norm) {
      specs.push_back({p + "self_attn.q_norm.weight", {c.head_dim}, Spec::Norm});
      specs.push_back({p + "self_attn.k_norm.weight", {c.head_dim}, Spec::Norm});
    }
    specs.push_back({p + "post_attention_layernorm.weight", {H}, Spec::Norm});
    specs.push_back({p + "mlp.gate_proj.weight", {F, H}, Spec::Weight});
    specs.push_back({p + "mlp.up_proj.weight", {F, H}, Spec::Weight});
    specs.push_back({p + "mlp.down_proj.weight", {H, F}, Spec::Weight});
    if (c.mlp_bias) {
      specs.push_back({p + "mlp.gate_proj.bias", {F}, Spec::Bias});
      specs.push_back({p + "mlp.up_proj.bias", {F}, Spec::Bias});
      specs.push_back({p + "mlp.down_proj.bias", {H}, Spec::Bias});
    }
  }
  specs.push_back({"model.norm.weight", {H}, Spec::Norm});
  if (!c.tie_word_embeddings) specs.push_back({"lm_head.weight", {V, H}, Spec::Weight});

  uint64_t total = 0;
  for (const auto& s : specs) {
    uint64_t n = 1;
    for (auto d : s.shape) n *= d;
    total += n * dtype_size(dtype);
  }
  ProgressBar bar("synthesizing", total);
  std::vector<Buffer> buffers;
  std::vector<SafetensorsWriteItem> items;
  // Each tensor is filled in chunks of kChunk values, chunk c of tensor t from its own generator
  // seeded by (seed, t, c), so the threads' work is independent and the weights do not depend on
  // how many threads made them (an 8B model takes seconds on a 16-core machine, not minutes).
  constexpr uint64_t kChunk = uint64_t{1} << 20;
  struct Job {
    uint8_t* dst;
    uint64_t begin, end, tensor;
    double mean, std;
  };
  std::vector<Job> jobs;
  for (size_t t = 0; t < specs.size(); ++t) {
    const Spec& s = specs[t];
    uint64_t n = 1;
    for (auto d : s.shape) n *= d;
    Buffer buf(n * dtype_size(dtype));
    // Scale like a trained model: weights ~ N(0, 1/sqrt(fan_in)) keep activations O(1).
    double std =
        s.kind == Spec::Weight ? 1.0 / std::sqrt(static_cast<double>(s.shape.back())) : 0.1;
    double mean = s.kind == Spec::Norm ? 1.0 : 0.0;
    for (uint64_t b = 0; b < n; b += kChunk)
      jobs.push_back({static_cast<uint8_t*>(buf.data()), b, std::min(n, b + kChunk), t, mean, std});
    items.push_back({s.name, dtype, s.shape, buf.data()});
    buffers.push_back(std::move(buf));
  }
  std::atomic<size_t> next{0};
  std::atomic<uint64_t> done{0};
  auto work = [&] {
    for (size_t j; (j = next.fetch_add(1)) < jobs.size();) {
      const Job& job = jobs[j];
      Rng rng{(seed * 0x2545f4914f6cdd1dull + 1) ^ (job.tensor * 0x9e3779b97f4a7c15ull) ^
              ((job.begin / kChunk) * 0xd1b54a32d192ed03ull)};
      for (uint64_t i = job.begin; i < job.end; i += 2) {
        float a, b;
        rng.normal_pair(a, b);
        store(static_cast<float>(job.mean + job.std * a), dtype, job.dst, i);
        if (i + 1 < job.end)
          store(static_cast<float>(job.mean + job.std * b), dtype, job.dst, i + 1);
      }
      done += (job.end - job.begin) * dtype_size(dtype);
    }
  };
  const unsigned n_threads = std::max(1u, std::min(std::thread::hardware_concurrency(), 64u));
  std::vector<std::thread> threads;
  for (unsigned i = 1; i < n_threads; ++i) threads.emplace_back(work);
  if (show_progress) {
    std::thread progress_owner(work);  // the calling thread reports progress while others work
    while (done.load() < total) {
      bar.update(done.load());
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    progress_owner.join();
    bar.update(done.load());
  } else {
    work();
  }
  for (auto& t : threads) t.join();
  bar.finish();
  write_safetensors((fs::path(out_dir) / "model.safetensors").string(), items);
}

}  // namespace hwledger
