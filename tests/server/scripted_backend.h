// A ServingBackend whose "model" says what the prompt tells it to, so that tests can drive every
// protocol path exactly: tool calls, stop strings, long prefills, a full queue, disconnects.
//
// Directives in the prompt's text (the last of each kind wins):
//   [[reply:TEXT]]      the reply (default "Hello from the scripted model."); "\n" in TEXT is a
//   newline
//   [[token_ms:N]]      N ms between tokens (default 1)
//   [[prefill_ms:N]]    N ms of "prefill" before the first token, with progress every 50 ms
// Like the real scheduler, one thread calls every sink; a reply shorter than max_tokens ends
// with EOS, a longer one with Length.
#pragma once
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "chat/chat_template.h"
#include "server/backend.h"
#include "tokenizer/tokenizer.h"

namespace hwledger::test {

struct ScriptedOptions {
  std::string model_name = "scripted";
  // A folder with tokenizer.json and tokenizer_config.json, or "demo" (the built-in tokenizer).
  std::string tokenizer = "demo";
  std::string chat_template;  // replaces the tokenizer's template when not empty
  int64_t context_length = 4096;
  int64_t max_running = 64;
  int64_t max_queue = 64;
  int64_t block_tokens = 16;  // cached_tokens are whole blocks of a prompt prefix seen before
};

class ScriptedBackend final : public server::ServingBackend {
 public:
  explicit ScriptedBackend(const ScriptedOptions& options);
  ~ScriptedBackend() override;

  const std::string& model_name() const override { return opts_.model_name; }
  int64_t context_length() const override { return opts_.context_length; }
  const tokenizer::Tokenizer* tokenizer() const override { return &tokenizer_; }
  const std::vector<int32_t>& stop_token_ids() const override { return stop_ids_; }
  std::string chat_template_source() const override { return template_ ? template_->source() : ""; }
  std::string render_chat(const nlohmann::ordered_json& messages,
                          const nlohmann::ordered_json& tools, bool add_generation_prompt,
                          const nlohmann::ordered_json& extra) const override;
  std::vector<int32_t> encode(const std::string& text, bool add_special_tokens) const override;
  bool submit(GenerateRequest request, std::shared_ptr<RequestSink> sink) override;
  bool cancel(const std::string& id) override;
  SchedulerStats scheduler_stats() const override;
  std::vector<TierStats> kv_stats() const override;

  // What the last submitted request asked for (tests check the sampling fields got through).
  GenerateRequest last_request() const;
  // The rendered text of the last chat prompt.
  std::string last_prompt_text() const;

 private:
  struct Live;
  void loop();

  ScriptedOptions opts_;
  tokenizer::Tokenizer tokenizer_;
  std::unique_ptr<chat::ChatTemplate> template_;
  std::vector<int32_t> stop_ids_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Live>> queue_;
  std::vector<std::shared_ptr<Live>> running_;
  std::vector<std::vector<int32_t>> seen_prompts_;
  SchedulerStats stats_;
  int64_t cache_hits_ = 0, cache_misses_ = 0;
  GenerateRequest last_request_;
  mutable std::string last_prompt_text_;
  bool stop_ = false;
  bool poked_ = false;  // new work or a cancel since the loop last looked
  std::thread thread_;
};

}  // namespace hwledger::test
