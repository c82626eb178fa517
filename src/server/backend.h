// What the HTTP server needs from the model it serves. The real implementation wraps a
// ModelContext (model_backend.cpp); tests substitute a scripted one so that every protocol
// path (tool calls, stop strings, prefill pings, a full queue) can be driven exactly.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kv/kv_cache.h"
#include "sched/scheduler.h"

namespace hwledger {
class ModelContext;
namespace tokenizer {
class Tokenizer;
}
}  // namespace hwledger

namespace hwledger::server {

class ServingBackend {
 public:
  virtual ~ServingBackend() = default;

  virtual const std::string& model_name() const = 0;
  virtual int64_t context_length() const = 0;
  virtual const tokenizer::Tokenizer* tokenizer() const = 0;  // null: text requests refused
  virtual const std::vector<int32_t>& stop_token_ids() const = 0;
  // The chat template's source ("" when the model has none): picks the tool-call format.
  virtual std::string chat_template_source() const = 0;

  // OpenAI-shape messages and tools, keys in the client's order -> the template's text.
  // Throws InputError (no template, a template error).
  virtual std::string render_chat(const nlohmann::ordered_json& messages,
                                  const nlohmann::ordered_json& tools, bool add_generation_prompt,
                                  const nlohmann::ordered_json& extra) const = 0;
  virtual std::vector<int32_t> encode(const std::string& text, bool add_special_tokens) const = 0;

  // As Scheduler::submit / cancel / stats.
  virtual bool submit(GenerateRequest request, std::shared_ptr<RequestSink> sink) = 0;
  virtual bool cancel(const std::string& id) = 0;
  virtual SchedulerStats scheduler_stats() const = 0;
  // KV cache counters indexed by Tier (empty when there is no cache to report).
  virtual std::vector<TierStats> kv_stats() const = 0;
};

// The backend of a loaded model (defined only when src/sched is built).
std::unique_ptr<ServingBackend> make_model_backend(ModelContext& model);

}  // namespace hwledger::server
