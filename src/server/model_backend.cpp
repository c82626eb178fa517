#include "chat/chat_template.h"
#include "sched/model_context.h"
#include "server/backend.h"

namespace hwledger::server {

namespace {

class ModelBackend final : public ServingBackend {
 public:
  explicit ModelBackend(ModelContext& model) : model_(model) {}

  const std::string& model_name() const override { return model_.name(); }
  int64_t context_length() const override { return model_.context_length(); }
  const tokenizer::Tokenizer* tokenizer() const override { return model_.tokenizer(); }
  const std::vector<int32_t>& stop_token_ids() const override { return model_.stop_token_ids(); }
  std::string chat_template_source() const override {
    return model_.chat_template() ? model_.chat_template()->source() : std::string();
  }
  std::string render_chat(const nlohmann::ordered_json& messages,
                          const nlohmann::ordered_json& tools, bool add_generation_prompt,
                          const nlohmann::ordered_json& extra) const override {
    return model_.render_chat_ordered(messages, tools, add_generation_prompt, extra);
  }
  std::vector<int32_t> encode(const std::string& text, bool add_special_tokens) const override {
    return model_.encode(text, add_special_tokens);
  }
  bool submit(GenerateRequest request, std::shared_ptr<RequestSink> sink) override {
    return model_.scheduler().submit(std::move(request), std::move(sink));
  }
  bool cancel(const std::string& id) override { return model_.scheduler().cancel(id); }
  SchedulerStats scheduler_stats() const override { return model_.scheduler().stats(); }
  std::vector<TierStats> kv_stats() const override { return model_.engine().kv_cache().stats(); }

 private:
  ModelContext& model_;
};

}  // namespace

std::unique_ptr<ServingBackend> make_model_backend(ModelContext& model) {
  return std::make_unique<ModelBackend>(model);
}

}  // namespace hwledger::server
