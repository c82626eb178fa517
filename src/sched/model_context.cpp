#include "sched/model_context.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "chat/chat_template.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace hwledger {

namespace fs = std::filesystem;
using ordered_json = nlohmann::ordered_json;

namespace {

// eos_token_id as generation_config.json / config.json write it: an int, a list of ints, or null.
void add_token_ids(const nlohmann::json& value, const std::string& origin, std::vector<int32_t>& out) {
  if (value.is_null()) return;
  if (value.is_number_integer()) {
    out.push_back(value.get<int32_t>());
    return;
  }
  if (value.is_array()) {
    for (const auto& v : value) {
      if (!v.is_number_integer()) fail_input("{}: eos_token_id list holds {} ({})", origin, v.dump(), v.type_name());
      out.push_back(v.get<int32_t>());
    }
    return;
  }
  fail_input("{}: eos_token_id must be an integer or a list of integers, not {}", origin, value.dump());
}

nlohmann::json read_json_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail_input("cannot read {}", path.string());
  std::stringstream ss;
  ss << in.rdbuf();
  nlohmann::json doc = nlohmann::json::parse(ss.str(), nullptr, false);
  if (doc.is_discarded()) fail_input("{}: not valid JSON", path.string());
  return doc;
}

}  // namespace

ModelContext::ModelContext(const std::string& model_dir, const std::string& model_name,
                           const EngineOptions& engine_opts, const SchedulerOptions& sched_opts)
    : name_(model_name) {
  engine_ = std::make_unique<Engine>(model_dir, engine_opts);
  const fs::path dir(model_dir);
  std::vector<int32_t> ids;

  if (fs::exists(dir / "tokenizer.json")) {
    tokenizer_ = std::make_unique<tokenizer::Tokenizer>(tokenizer::Tokenizer::load(model_dir));
    const tokenizer::TokenizerConfig& tc = tokenizer_->config();
    bos_token_ = tc.bos_token;
    eos_token_ = tc.eos_token;
    if (tc.eos_id >= 0) ids.push_back(tc.eos_id);
    if (!tc.chat_template.empty()) {
      try {
        template_ = std::make_unique<chat::ChatTemplate>(tc.chat_template);
      } catch (const InputError& e) {
        // The model still serves raw prompts; chat requests get this message.
        template_error_ = e.what();
        spdlog::warn("{}: the chat template cannot be used: {}", model_name, e.what());
      }
    }
  }

  const fs::path generation_config = dir / "generation_config.json";
  if (fs::exists(generation_config)) {
    nlohmann::json doc = read_json_file(generation_config);
    if (doc.is_object() && doc.contains("eos_token_id"))
      add_token_ids(doc["eos_token_id"], generation_config.string(), ids);
  }
  for (int32_t id : engine_->config().eos_token_ids) ids.push_back(id);
  for (int32_t id : ids)
    if (id >= 0 && std::find(stop_ids_.begin(), stop_ids_.end(), id) == stop_ids_.end()) stop_ids_.push_back(id);

  scheduler_ = std::make_unique<Scheduler>(*engine_, sched_opts);
}

ModelContext::~ModelContext() {
  scheduler_.reset();  // stops the loop before the engine it drives goes
}

std::string ModelContext::render_chat(const nlohmann::json& messages, const nlohmann::json& tools,
                                      bool add_generation_prompt, const nlohmann::json& extra) const {
  return render_chat_ordered(ordered_json(messages), ordered_json(tools), add_generation_prompt,
                             ordered_json(extra));
}

std::string ModelContext::render_chat_ordered(const ordered_json& messages, const ordered_json& tools,
                                              bool add_generation_prompt, const ordered_json& extra) const {
  if (!template_) {
    if (!template_error_.empty())
      fail_input("model '{}' has a chat template that cannot be used: {}", name_, template_error_);
    fail_input("model '{}' has no chat template (tokenizer_config.json chat_template); send a raw prompt instead",
               name_);
  }
  if (!tools.is_null() && !tools.is_array()) fail_input("tools must be a JSON array or null, not {}", tools.type_name());
  return chat::render_chat_ordered(*template_, messages_for_template(messages), tools, add_generation_prompt,
                                   bos_token_, eos_token_, extra);
}

std::vector<int32_t> ModelContext::encode(const std::string& text, bool add_special_tokens) const {
  if (!tokenizer_)
    fail_input("model '{}' has no tokenizer (tokenizer.json); send prompt token ids instead", name_);
  return tokenizer_->encode(text, add_special_tokens);
}

}  // namespace hwledger
