#include "engine/engine.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "util/error.h"

namespace hwledger {

DType parse_kv_dtype(const std::string& name) {
  if (name == "f16") return DType::F16;
  if (name == "bf16") return DType::BF16;
  if (name == "f32") return DType::F32;
  if (name == "q8_0") return DType::Q8_0;
  if (name == "q4_0") return DType::Q4_0;
  if (name == "fp8" || name == "fp8_e4m3" || name == "f8_e4m3") return DType::F8_E4M3;
  fail_input("unsupported --kv-dtype '{}' (supported: f16, bf16, f32, q8_0, q4_0, fp8)", name);
}

void parse_device(const std::string& name, Device& device, int& index) {
  if (name == "cpu") {
    device = Device::CPU;
    index = 0;
    return;
  }
  if (name == "cuda" || name.rfind("cuda:", 0) == 0) {
    device = Device::CUDA;
    index = 0;
    if (name.size() > 5) {
      const std::string n = name.substr(5);
      if (n.empty() || n.find_first_not_of("0123456789") != std::string::npos || n.size() > 4)
        fail_input("--device '{}': expected cuda:N with N a device number", name);
      index = std::stoi(n);
    }
    return;
  }
  fail_input("unsupported --device '{}' (supported: cpu, cuda, cuda:N)", name);
}

Engine::Engine(const std::string& model_dir, const EngineOptions& opts) {
  model_ = Model::load(model_dir, opts.load);
  const ModelConfig& c = model_->config;
  threads_ =
      std::make_unique<ThreadPool>(opts.threads > 0 ? opts.threads : ThreadPool::default_threads());
  KVLayout layout = c.kv_layout(opts.block_tokens, opts.kv_dtype);
  validate_kv_layout(layout);
  max_context_ =
      opts.max_context > 0 ? opts.max_context : std::min<int64_t>(c.max_position_embeddings, 32768);
  int64_t blocks = (max_context_ + layout.block_tokens - 1) / layout.block_tokens;
  if (opts.max_kv_bytes > 0)
    blocks = std::max<int64_t>(1, static_cast<int64_t>(opts.max_kv_bytes / layout.block_bytes()));
  layout_ = layout;
  cache_opts_ = opts.cache;
  cache_opts_.working_blocks = blocks;
  cache_opts_.device = opts.device;
  cache_opts_.device_index = opts.device_index;
  restart_kv_cache();
  if (opts.device == Device::CUDA) warm_up();
}

void Engine::warm_up() {
  // Two prefills of 512 tokens: the first pays the one-time costs (module loading, cuBLAS's
  // choices) that the first request would otherwise pay, the second measures the prefill rate
  // so that a restore from the SSD tier right after a restart can already be split.
  const int64_t n = std::min<int64_t>(512, max_context_ - 1);
  if (n < 128) return;
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) ids[i] = static_cast<int32_t>(i % config().vocab_size);
  for (int pass = 0; pass < 2; ++pass) {
    KVSequence seq;
    try {
      BatchItem item{&seq, ids, BatchItem::Logits::Last};
      const auto t0 = std::chrono::steady_clock::now();
      runner_->forward(std::span<BatchItem>(&item, 1));
      if (pass == 1)
        note_prefill(n,
                     std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    } catch (const std::exception&) {
      kv_->release(seq);
      return;  // a warm-up is never worth failing a start for
    }
    kv_->release(seq);
  }
}

std::vector<float> Engine::prefill_cached(KVSequence& seq, std::span<const int32_t> prompt,
                                          PrefixHit* hit, const std::string& salt, int64_t chunk) {
  HW_CHECK(!prompt.empty(), "prefill: the prompt is empty");
  if (static_cast<int64_t>(prompt.size()) > max_context_)
    fail_input("prompt of {} tokens exceeds the context of {} tokens", prompt.size(), max_context_);
  std::unique_ptr<PrefixRestore> restore = kv_->attach_prefix_async(seq, prompt, salt);
  std::vector<float> last;
  const int64_t n = static_cast<int64_t>(prompt.size());
  while (seq.n_tokens < n) {
    const int64_t at = seq.n_tokens;
    int64_t len = chunk > 0 ? std::min(chunk, n - at) : n - at;
    if (!restore->finished()) {
      // While the SSD tier reads the cached prefix's tail, compute its head if that is faster.
      len = restore->claim(len, prefill_tok_s_);
      if (len == 0) {
        restore->finish();
        continue;
      }
    }
    BatchItem item{&seq, prompt.subspan(at, len),
                   at + len == n ? BatchItem::Logits::Last : BatchItem::Logits::None};
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<float>& logits = runner_->forward(std::span<BatchItem>(&item, 1));
    note_prefill(len, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    kv_->commit(seq, prompt.first(at + len), salt);
    if (at + len == n) last = logits;
  }
  const PrefixHit h = restore->finish();  // at once if finished above
  if (hit) *hit = h;
  return last;
}

void Engine::note_prefill(int64_t tokens, double seconds) {
  if (tokens < 128 || seconds <= 0) return;  // decode-like steps say little about prefill
  const double rate = static_cast<double>(tokens) / seconds;
  prefill_tok_s_ = prefill_tok_s_ > 0 ? 0.7 * prefill_tok_s_ + 0.3 * rate : rate;
}

nlohmann::json Engine::memory_report() const {
  const uint64_t kv_total = kv_->pool().bytes();
  const uint64_t per_layer_kv = kv_total / static_cast<uint64_t>(config().num_layers);
  nlohmann::json layers = nlohmann::json::array();
  for (size_t i = 0; i < model_->layers.size(); ++i)
    layers.push_back(
        {{"index", i}, {"weights_bytes", model_->layers[i].bytes()}, {"kv_bytes", per_layer_kv}});
  const uint64_t weights = model_->weights_bytes();
  const uint64_t runtime = runner_->workspace_bytes();
  return {{"total_bytes", weights + kv_total + runtime},
          {"weights_bytes", weights},
          {"embedding_bytes", model_->embedding_bytes()},
          {"kv_bytes", kv_total},
          {"runtime_bytes", runtime},
          {"kv_dtype", std::string(dtype_name(layout_.dtype))},
          {"kv_block_tokens", layout_.block_tokens},
          {"kv_blocks", kv_->pool().capacity()},
          {"layers", layers},
          {"tiers", kv_->stats_json()}};
}

void Engine::restart_kv_cache() {
  runner_.reset();
  kv_.reset();
  kv_ = std::make_unique<KVCacheManager>(layout_, model_->fingerprint, cache_opts_);
  runner_ = std::make_unique<ModelRunner>(*model_, *kv_, *threads_);
}

int32_t argmax(const float* logits, int64_t n) {
  return ops::argmax(logits, n);
}

std::vector<int32_t> Engine::generate_greedy(std::span<const int32_t> prompt, int64_t n,
                                             const std::function<bool(int32_t)>& on_token,
                                             std::span<const int32_t> suppress) {
  HW_CHECK(!prompt.empty(), "generate: the prompt is empty");
  if (static_cast<int64_t>(prompt.size()) + n > max_context_)
    fail_input("prompt of {} tokens plus {} new ones exceeds the context of {} tokens",
               prompt.size(), n, max_context_);
  KVSequence seq;
  std::vector<int32_t> out;
  std::vector<int32_t> step(prompt.begin(), prompt.end());
  const int64_t V = config().vocab_size;
  try {
    for (int64_t i = 0; i < n; ++i) {
      BatchItem item{&seq, step, BatchItem::Logits::Last};
      std::vector<float>& logits = runner_->forward(std::span<BatchItem>(&item, 1));
      for (int32_t id : suppress)
        if (id >= 0 && id < V) logits[id] = -INFINITY;
      int32_t next = argmax(logits.data(), V);
      out.push_back(next);
      if (on_token && !on_token(next)) break;
      step.assign(1, next);
    }
  } catch (...) {
    kv_->release(seq);
    throw;
  }
  kv_->release(seq);
  return out;
}

}  // namespace hwledger
