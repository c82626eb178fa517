#include <fmt/format.h>

#include <chrono>

#include "server/api.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace hwledger::server {

void check_model(const std::string& model, const ServingBackend& backend) {
  if (model == backend.model_name()) return;
  throw ApiError(ErrorKind::NotFound,
                 fmt::format("The model '{}' does not exist. This server serves '{}'.", model,
                             backend.model_name()),
                 "model", "model_not_found");
}

const tokenizer::Tokenizer& require_tokenizer(const ServingBackend& backend) {
  if (!backend.tokenizer())
    throw_invalid(
        fmt::format("model '{}' has no tokenizer (tokenizer.json), so it cannot take text",
                    backend.model_name()));
  return *backend.tokenizer();
}

std::vector<int32_t> render_and_encode(const ServingBackend& backend, const Json& messages,
                                       const Json& tools, const Json& extra,
                                       const std::string& assistant_prefix) {
  require_tokenizer(backend);
  std::string text;
  try {
    text = backend.render_chat(messages, tools, /*add_generation_prompt=*/true, extra);
  } catch (const InputError& e) {
    throw_invalid(fmt::format("the chat template could not render these messages: {}", e.what()),
                  "messages");
  }
  // The template writes the special tokens (BOS, role markers) itself.
  return backend.encode(text + assistant_prefix, /*add_special_tokens=*/false);
}

void plan_chat_prompt(GenerationPlan& plan, const ServingBackend& backend, const Json& messages,
                      const Json& tools, const ToolChoice& choice, const Json& extra) {
  if (!tools.is_null()) {
    plan.tool_format = detect_tool_call_format(backend.chat_template_source());
    plan.forced_prefix = forced_tool_prefix(*plan.tool_format, choice);
    plan.request.constrain =
        tool_name_constraint(require_tokenizer(backend), *plan.tool_format, choice);
  }
  plan.request.prompt = render_and_encode(backend, messages, tools, extra, plan.forced_prefix);
}

void fit_context(GenerationPlan& plan, const ServingBackend& backend,
                 std::optional<int64_t> max_tokens, const std::string& max_tokens_field,
                 const std::string& prompt_field) {
  const int64_t context = backend.context_length();
  const int64_t prompt = static_cast<int64_t>(plan.request.prompt.size());
  if (prompt == 0)
    throw_invalid(fmt::format("'{}' is empty: there is nothing to continue", prompt_field),
                  prompt_field);
  if (max_tokens) {
    if (*max_tokens < 1)
      throw ApiError(ErrorKind::InvalidRequest,
                     fmt::format("'{}' must be at least 1, got {}", max_tokens_field, *max_tokens),
                     max_tokens_field, "invalid_value");
    if (prompt + *max_tokens > context)
      throw ApiError(
          ErrorKind::InvalidRequest,
          fmt::format(
              "This model's maximum context length is {} tokens. However, you requested {} tokens "
              "({} in the {}, {} in the completion). Please reduce the length of the {} or '{}'.",
              context, prompt + *max_tokens, prompt, prompt_field, *max_tokens, prompt_field,
              max_tokens_field),
          prompt_field, "context_length_exceeded");
    plan.request.max_tokens = *max_tokens;
    return;
  }
  if (prompt >= context)
    throw ApiError(
        ErrorKind::InvalidRequest,
        fmt::format(
            "This model's maximum context length is {} tokens, but the {} alone is {} tokens, "
            "leaving no room for the completion. Please reduce the length of the {}.",
            context, prompt_field, prompt, prompt_field),
        prompt_field, "context_length_exceeded");
  plan.request.max_tokens = context - prompt;
}

std::vector<std::string> parse_stop_strings(const Json& body, const std::string& key) {
  std::vector<std::string> stops;
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return stops;
  if (it->is_string()) {
    if (!it->get<std::string>().empty()) stops.push_back(it->get<std::string>());
    return stops;
  }
  if (!it->is_array()) throw_type_error(key, "a string or an array of strings", *it);
  for (size_t i = 0; i < it->size(); ++i) {
    const Json& s = (*it)[i];
    if (!s.is_string()) throw_type_error(field_name(key, i), "a string", s);
    if (!s.get<std::string>().empty()) stops.push_back(s.get<std::string>());
  }
  if (stops.size() > 16)
    throw_invalid(fmt::format("'{}' has {} entries; at most 16 are allowed", key, stops.size()),
                  key);
  return stops;
}

std::string content_text(const Json& content, const std::string& field) {
  if (content.is_null()) return {};
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array())
    throw_type_error(field, "a string or an array of content parts", content);
  std::string text;
  for (size_t p = 0; p < content.size(); ++p) {
    const Json& part = content[p];
    const std::string name = field_name(field, p);
    if (!part.is_object()) throw_type_error(name, "a content part object", part);
    const std::string type = get_string(part, "type", name).value_or("");
    if (type != "text") {
      if (type == "image_url" || type == "input_audio" || type == "image" || type == "file" ||
          type == "document")
        throw_invalid(
            fmt::format("'{}': {} content is not supported by this server (text only)", name, type),
            name);
      throw_invalid(fmt::format("'{}.type' must be \"text\", got {}", name,
                                describe_value(part.value("type", Json()))),
                    name + ".type");
    }
    auto t = get_string(part, "text", name);
    if (!t) throw_missing(field_name(name, "text"), "a string");
    if (p > 0) text += '\n';
    text += *t;
  }
  return text;
}

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string dump(const Json& value) {
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string sse_data(const Json& value) {
  return "data: " + dump(value) + "\n\n";
}

std::string sse_event(const std::string& name, const Json& value) {
  return "event: " + name + "\ndata: " + dump(value) + "\n\n";
}

}  // namespace hwledger::server
