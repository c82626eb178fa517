// Client chat messages (OpenAI shape) prepared for chat templates; kept apart from the
// ModelContext so that it can be used and fuzzed without an engine.
#include <string>

#include <nlohmann/json.hpp>

#include "sched/model_context.h"
#include "util/error.h"

namespace hwledger {

using ordered_json = nlohmann::ordered_json;

namespace {

// A message's content as string-expecting templates want it: text parts joined by "\n" (as
// vLLM does), null kept (transformers passes None through).
ordered_json flatten_content(const ordered_json& content, size_t message_index) {
  if (!content.is_array()) return content;
  std::string text;
  for (size_t p = 0; p < content.size(); ++p) {
    const ordered_json& part = content[p];
    std::string piece;
    if (part.is_string()) {
      piece = part.get<std::string>();
    } else if (part.is_object() && part.contains("type") && part["type"] == "text" && part.contains("text") &&
               part["text"].is_string()) {
      piece = part["text"].get<std::string>();
    } else {
      std::string type = part.is_object() && part.contains("type") ? part["type"].dump() : part.dump();
      fail_input("messages[{}].content[{}]: unsupported content part {} (only text parts are supported)",
                 message_index, p, type);
    }
    if (p > 0) text += '\n';
    text += piece;
  }
  return text;
}

}  // namespace

ordered_json messages_for_template(const ordered_json& messages) {
  if (!messages.is_array()) fail_input("messages must be a JSON array, not {}", messages.type_name());
  ordered_json out = ordered_json::array();
  for (size_t i = 0; i < messages.size(); ++i) {
    ordered_json m = messages[i];
    if (!m.is_object()) fail_input("messages[{}] must be a JSON object, not {}", i, m.type_name());
    if (m.contains("content")) m["content"] = flatten_content(m["content"], i);
    // OpenAI clients send tool-call arguments as a JSON string; templates print them with
    // `arguments | tojson`, which wants the object (else the string is quoted twice).
    if (m.contains("tool_calls") && m["tool_calls"].is_array()) {
      for (auto& call : m["tool_calls"]) {
        if (!call.is_object() || !call.contains("function") || !call["function"].is_object()) continue;
        auto& fn = call["function"];
        if (!fn.contains("arguments") || !fn["arguments"].is_string()) continue;
        ordered_json parsed = ordered_json::parse(fn["arguments"].get<std::string>(), nullptr, false);
        if (!parsed.is_discarded() && parsed.is_object()) fn["arguments"] = std::move(parsed);
      }
    }
    out.push_back(std::move(m));
  }
  return out;
}

}  // namespace hwledger
