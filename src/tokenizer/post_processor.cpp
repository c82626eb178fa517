#include "tokenizer/post_processor.h"

#include <nlohmann/json.hpp>

#include "util/error.h"

namespace hwledger::tokenizer {

using nlohmann::json;

PostProcessor PostProcessor::from_json(const json& spec, const std::string& origin) {
  PostProcessor processor;
  if (!spec.is_null()) processor.add(spec, origin);
  return processor;
}

void PostProcessor::apply(std::vector<int32_t>& ids) const {
  if (!prefix_.empty()) ids.insert(ids.begin(), prefix_.begin(), prefix_.end());
  ids.insert(ids.end(), suffix_.begin(), suffix_.end());
}

void PostProcessor::add(const json& spec, const std::string& origin) {
  if (!spec.is_object() || !spec.contains("type") || !spec["type"].is_string())
    fail_input("{}: post_processor must be an object with a 'type'", origin);
  const std::string type = spec["type"].get<std::string>();
  // A later processor wraps what the earlier ones produced.
  auto wrap = [&](std::vector<int32_t> before, std::vector<int32_t> after) {
    before.insert(before.end(), prefix_.begin(), prefix_.end());
    prefix_ = std::move(before);
    suffix_.insert(suffix_.end(), after.begin(), after.end());
  };
  if (type == "ByteLevel") return;
  if (type == "Sequence") {
    const json& list = spec.value("processors", json());
    if (!list.is_array())
      fail_input("{}: post_processor Sequence needs a 'processors' array", origin);
    for (const json& item : list) add(item, origin);
    return;
  }
  if (type == "TemplateProcessing") {
    const json& single = spec.value("single", json());
    const json& specials = spec.value("special_tokens", json::object());
    if (!single.is_array())
      fail_input("{}: post_processor TemplateProcessing needs a 'single' array", origin);
    std::vector<int32_t> before, after;
    bool seen_sequence = false;
    for (const json& piece : single) {
      if (piece.contains("Sequence")) {
        if (seen_sequence)
          fail_input("{}: unsupported TemplateProcessing: the sequence appears twice", origin);
        seen_sequence = true;
        continue;
      }
      if (!piece.contains("SpecialToken") || !piece["SpecialToken"].contains("id"))
        fail_input("{}: TemplateProcessing: bad piece {}", origin, piece.dump());
      std::string name = piece["SpecialToken"]["id"].get<std::string>();
      auto it = specials.find(name);
      if (it == specials.end() || !it->contains("ids") || !(*it)["ids"].is_array())
        fail_input("{}: TemplateProcessing: special token '{}' has no entry in special_tokens",
                   origin, name);
      for (const json& id : (*it)["ids"])
        (seen_sequence ? after : before).push_back(id.get<int32_t>());
    }
    if (!seen_sequence)
      fail_input("{}: unsupported TemplateProcessing: 'single' has no Sequence", origin);
    wrap(std::move(before), std::move(after));
    return;
  }
  if (type == "RobertaProcessing" || type == "BertProcessing") {
    // {"cls": [token, id], "sep": [token, id]}: cls A sep.
    auto id_of = [&](const char* key) {
      const json& pair = spec.value(key, json());
      if (!pair.is_array() || pair.size() != 2 || !pair[1].is_number_integer())
        fail_input("{}: post_processor {} needs '{}': [token, id]", origin, type, key);
      return pair[1].get<int32_t>();
    };
    wrap({id_of("cls")}, {id_of("sep")});
    return;
  }
  fail_input("{}: unsupported post_processor type '{}'", origin, type);
}

}  // namespace hwledger::tokenizer
