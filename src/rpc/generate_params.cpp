#include "rpc/generate_params.h"

#include <limits>

#include <fmt/format.h>

namespace hwledger::rpc {

namespace {

// A JSON integer in [0, INT32_MAX] (parsed JSON holds non-negative integers as unsigned, values
// built in C++ as signed: both count).
bool is_token_id(const json& v) {
  if (v.is_number_unsigned())
    return v.get<uint64_t>() <= uint64_t{std::numeric_limits<int32_t>::max()};
  if (v.is_number_integer())
    return v.get<int64_t>() >= 0 && v.get<int64_t>() <= std::numeric_limits<int32_t>::max();
  return false;
}

std::vector<int32_t> parse_prompt_ids(const json& ids) {
  if (!ids.is_array()) {
    throw_invalid_param("prompt_ids",
                        fmt::format("must be an array of token ids, not {}", ids.type_name()));
  }
  if (ids.empty()) throw_invalid_param("prompt_ids", "must not be empty");
  std::vector<int32_t> out;
  out.reserve(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    const json& id = ids[i];
    if (!is_token_id(id)) {
      throw_invalid_param(fmt::format("prompt_ids[{}]", i),
                          fmt::format("{} is not a token id (an integer >= 0)",
                                      id.is_number() ? id.dump() : id.type_name()));
    }
    out.push_back(static_cast<int32_t>(id.get<int64_t>()));
  }
  return out;
}

void check_messages(const json& messages) {
  if (!messages.is_array()) {
    throw_invalid_param("messages",
                        fmt::format("must be an array of messages, not {}", messages.type_name()));
  }
  if (messages.empty()) throw_invalid_param("messages", "must not be empty");
  for (size_t i = 0; i < messages.size(); ++i) {
    const json& m = messages[i];
    std::string field = fmt::format("messages[{}]", i);
    if (!m.is_object())
      throw_invalid_param(field, fmt::format("must be an object, not {}", m.type_name()));
    auto role = m.find("role");
    if (role == m.end() || !role->is_string())
      throw_invalid_param(field + ".role", "must be a string");
  }
}

std::vector<std::string> parse_stop(const json& stop) {
  std::vector<std::string> out;
  auto add = [&](const json& s, const std::string& field) {
    if (!s.is_string())
      throw_invalid_param(field, fmt::format("must be a string, not {}", s.type_name()));
    const auto& text = s.get_ref<const std::string&>();
    if (text.empty()) throw_invalid_param(field, "must not be empty");
    if (text.size() > kMaxStopBytes) {
      throw_invalid_param(field, fmt::format("longer than {} bytes", kMaxStopBytes));
    }
    out.push_back(text);
  };
  if (stop.is_string()) {
    add(stop, "stop");
  } else if (stop.is_array()) {
    if (stop.size() > kMaxStopStrings) {
      throw_invalid_param("stop",
                          fmt::format("more than {} strings ({})", kMaxStopStrings, stop.size()));
    }
    for (size_t i = 0; i < stop.size(); ++i) add(stop[i], fmt::format("stop[{}]", i));
  } else {
    throw_invalid_param(
        "stop", fmt::format("must be a string or an array of strings, not {}", stop.type_name()));
  }
  return out;
}

}  // namespace

GenerateParams parse_generate_params(const json& params) {
  Params p(params);
  GenerateParams g;
  g.request_id = p.string("request_id", 256);
  if (g.request_id.empty()) throw_invalid_param("request_id", "must not be empty");

  int forms = p.has("prompt") + p.has("messages") + p.has("prompt_ids");
  if (forms != 1) {
    throw_invalid_param("prompt", forms == 0 ? "one of prompt, messages or prompt_ids is required"
                                             : "give only one of prompt, messages and prompt_ids");
  }
  if (p.has("prompt")) {
    g.kind = GenerateParams::PromptKind::Text;
    g.prompt = p.string("prompt", std::numeric_limits<size_t>::max());
  } else if (p.has("messages")) {
    g.kind = GenerateParams::PromptKind::Messages;
    g.messages = *p.find("messages");
    check_messages(g.messages);
    if (const json* tools = p.find("tools")) {
      if (!tools->is_array())
        throw_invalid_param("tools", fmt::format("must be an array, not {}", tools->type_name()));
      g.tools = *tools;
    }
  } else {
    g.kind = GenerateParams::PromptKind::Ids;
    g.prompt_ids = parse_prompt_ids(*p.find("prompt_ids"));
  }

  g.max_tokens = p.integer("max_tokens", 1, kMaxGenerateTokens);
  SamplingParams& s = g.sampling;
  s.temperature = static_cast<float>(p.opt_number("temperature", 0, 100).value_or(s.temperature));
  s.top_p = static_cast<float>(p.opt_number("top_p", 0, 1).value_or(s.top_p));
  if (p.has("top_p") && s.top_p <= 0) throw_invalid_param("top_p", "must be greater than 0");
  s.top_k = static_cast<int32_t>(
      p.opt_integer("top_k", 0, std::numeric_limits<int32_t>::max()).value_or(0));
  s.min_p = static_cast<float>(p.opt_number("min_p", 0, 1).value_or(s.min_p));
  if (auto seed = p.opt_unsigned("seed")) s.seed = *seed;
  if (const json* stop = p.find("stop")) g.stop = parse_stop(*stop);
  g.stream = p.opt_bool("stream").value_or(false);
  return g;
}

}  // namespace hwledger::rpc
