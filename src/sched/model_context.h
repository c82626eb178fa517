// Everything a front end needs to serve one model: the engine, its scheduler, the tokenizer,
// the chat template and the model's stop tokens, loaded together from a model folder.
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/engine.h"
#include "sched/scheduler.h"

namespace hwledger {
namespace tokenizer {
class Tokenizer;
}
namespace chat {
class ChatTemplate;
}

// OpenAI-shaped chat messages as chat templates expect them: `content` given as a list of parts
// becomes one string (text parts joined by "\n"; other part types are refused), and
// tool_calls[].function.arguments sent as a JSON string becomes the object it encodes (left as
// it is when it does not parse to an object). Throws InputError naming the bad message / part.
nlohmann::ordered_json messages_for_template(const nlohmann::ordered_json& messages);

class ModelContext {
 public:
  // Loads `model_dir` (tokenizer.json, tokenizer_config.json and generation_config.json are
  // optional; without a tokenizer only prompt_ids requests work).
  ModelContext(const std::string& model_dir, const std::string& model_name, const EngineOptions& engine_opts,
               const SchedulerOptions& sched_opts);
  ~ModelContext();

  const std::string& name() const { return name_; }  // the id clients use ("demo", folder name, ...)
  Engine& engine() { return *engine_; }
  Scheduler& scheduler() { return *scheduler_; }
  const tokenizer::Tokenizer* tokenizer() const { return tokenizer_.get(); }  // null if none
  const chat::ChatTemplate* chat_template() const { return template_.get(); }  // null if none
  int64_t context_length() const { return engine_->max_context(); }
  // EOS ids from generation_config.json, tokenizer_config.json (eos_token) and config.json.
  const std::vector<int32_t>& stop_token_ids() const { return stop_ids_; }

  // messages (OpenAI shape: role, content (string or parts), tool_calls, tool_call_id, name),
  // tools (OpenAI function tools, or null) -> the chat template's text -> token ids (the
  // rendering is encoded without adding special tokens; special tokens in it are split out).
  // Throws InputError (no template, template error with its line).
  std::string render_chat(const nlohmann::json& messages, const nlohmann::json& tools,
                          bool add_generation_prompt, const nlohmann::json& extra = {}) const;
  // The same for JSON parsed with nlohmann::ordered_json::parse: keys keep the client's order,
  // which templates print with `tojson` (tool schemas, tool-call arguments).
  std::string render_chat_ordered(const nlohmann::ordered_json& messages, const nlohmann::ordered_json& tools,
                                  bool add_generation_prompt, const nlohmann::ordered_json& extra = {}) const;
  std::vector<int32_t> encode(const std::string& text, bool add_special_tokens) const;

 private:
  std::string name_;
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<Scheduler> scheduler_;
  std::unique_ptr<tokenizer::Tokenizer> tokenizer_;
  std::unique_ptr<chat::ChatTemplate> template_;
  std::vector<int32_t> stop_ids_;
  std::string bos_token_, eos_token_;  // as the template sees them ("" when unset)
  std::string template_error_;         // why the model's chat template could not be parsed
};

}  // namespace hwledger
