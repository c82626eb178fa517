#include "server/tool_choice.h"

#include <cmath>
#include <map>
#include <memory>
#include <mutex>

#include <nlohmann/json.hpp>

#include "tokenizer/tokenizer.h"

namespace hwledger::server {

namespace {

// A name as it appears inside a JSON string (escaped, without the quotes).
std::string json_inner(const std::string& s) {
  const std::string quoted = nlohmann::json(s).dump();
  return quoted.substr(1, quoted.size() - 2);
}

const char* arguments_key(ToolCallFormat format) {
  return format == ToolCallFormat::LlamaJson ? "parameters" : "arguments";
}

std::string call_opening(ToolCallFormat format) {
  return format == ToolCallFormat::Hermes ? "<tool_call>\n{\"name\": \"" : "{\"name\": \"";
}

// The text of each token id alone ("" for special tokens and ids past the vocabulary), computed
// once per tokenizer: the constraint compares candidate tokens' texts on every masked step.
std::shared_ptr<const std::vector<std::string>> token_texts(const tokenizer::Tokenizer& tok) {
  static std::mutex mu;
  static std::map<const tokenizer::Tokenizer*,
                  std::pair<size_t, std::shared_ptr<const std::vector<std::string>>>>
      cache;
  std::lock_guard lock(mu);
  auto& slot = cache[&tok];
  if (slot.second && slot.first == tok.vocab_size()) return slot.second;
  auto texts = std::make_shared<std::vector<std::string>>(tok.vocab_size());
  for (size_t id = 0; id < texts->size(); ++id) {
    const int32_t i = static_cast<int32_t>(id);
    if (!tok.is_special(i)) (*texts)[id] = tok.decode(std::span<const int32_t>(&i, 1));
  }
  slot = {tok.vocab_size(), texts};
  return texts;
}

}  // namespace

std::string forced_tool_prefix(ToolCallFormat format, const ToolChoice& choice) {
  std::string name;
  if (choice.mode == ToolChoice::Mode::Named)
    name = choice.name;
  else if (choice.mode == ToolChoice::Mode::Required && choice.names.size() == 1)
    name = choice.names.front();
  else if (choice.mode != ToolChoice::Mode::Required)
    return "";
  std::string prefix = call_opening(format);
  if (!name.empty()) prefix += json_inner(name) + "\", \"" + arguments_key(format) + "\": {";
  return prefix;
}

std::function<void(float*, int64_t, std::span<const int32_t>)> tool_name_constraint(
    const tokenizer::Tokenizer& tokenizer, ToolCallFormat format, const ToolChoice& choice) {
  if (choice.mode != ToolChoice::Mode::Required || choice.names.size() < 2) return {};
  std::vector<std::string> targets;
  for (const std::string& n : choice.names)
    targets.push_back(json_inner(n) + "\", \"" + arguments_key(format) + "\": {");
  auto texts = token_texts(tokenizer);
  return [texts, targets = std::move(targets)](float* logits, int64_t vocab,
                                               std::span<const int32_t> generated) {
    std::string so_far;
    for (int32_t id : generated)
      if (id >= 0 && static_cast<size_t>(id) < texts->size()) so_far += (*texts)[id];
    bool open = false;  // so_far is a proper prefix of a target: constrain the next token
    for (const std::string& t : targets) {
      if (so_far.size() >= t.size() && so_far.compare(0, t.size(), t) == 0) return;  // done
      if (t.compare(0, so_far.size(), so_far) == 0) open = true;
    }
    if (!open) return;  // off every target (cannot happen while masked): leave it alone
    for (int64_t id = 0; id < vocab; ++id) {
      const std::string* text =
          static_cast<size_t>(id) < texts->size() ? &(*texts)[static_cast<size_t>(id)] : nullptr;
      bool allowed = false;
      if (text && !text->empty()) {
        for (const std::string& t : targets) {
          if (so_far.size() + text->size() <= t.size() &&
              t.compare(0, so_far.size(), so_far) == 0 &&
              t.compare(so_far.size(), text->size(), *text) == 0) {
            allowed = true;
            break;
          }
        }
      }
      if (!allowed) logits[id] = -INFINITY;
    }
  };
}

}  // namespace hwledger::server
