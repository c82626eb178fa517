#include "chat/chat_template.h"

#include <fmt/format.h>

#include "chat/interpreter.h"
#include "chat/parser.h"
#include "chat/python.h"

namespace hwledger::chat {

TemplateError::TemplateError(std::string message, int line)
    : InputError(line > 0 ? fmt::format("chat template line {}: {}", line, message)
                          : fmt::format("chat template: {}", message)),
      message_(std::move(message)),
      line_(line) {}

ChatTemplate::ChatTemplate(std::string source, RenderLimits limits)
    : program_(parse_template(std::move(source))), limits_(limits) {}

const std::string& ChatTemplate::source() const {
  return program_->source;
}

namespace {

Value context_value(const auto& context) {
  if (context.is_null()) return Value::dict(std::make_shared<DictObj>());
  if (!context.is_object()) {
    throw TemplateError(
        fmt::format("the render context must be a JSON object, not {}", context.type_name()), 0);
  }
  try {
    return from_json(context);
  } catch (const EvalError& e) {
    throw TemplateError(fmt::format("render context: {}", e.what()), 0);
  }
}

std::string run(const std::shared_ptr<const Program>& program, const RenderLimits& limits,
                const Value& context) {
  Interpreter interpreter(program, limits);
  try {
    return interpreter.render(context);
  } catch (const EvalError& e) {  // raised outside any statement (should not happen)
    throw TemplateError(e.what(), 0);
  }
}

template <typename Json>
Json chat_context(const Json& messages, const Json& tools, bool add_generation_prompt,
                  const std::string& bos_token, const std::string& eos_token, const Json& extra) {
  if (!extra.is_null() && !extra.is_object()) {
    throw TemplateError(
        fmt::format("extra variables must be a JSON object, not {}", extra.type_name()), 0);
  }
  Json context = Json::object();
  context["messages"] = messages;
  context["tools"] = tools;
  context["documents"] = nullptr;
  context["add_generation_prompt"] = add_generation_prompt;
  context["bos_token"] = bos_token;
  context["eos_token"] = eos_token;
  if (extra.is_object()) {
    for (auto it = extra.begin(); it != extra.end(); ++it) context[it.key()] = it.value();
  }
  return context;
}

}  // namespace

std::string ChatTemplate::render(const nlohmann::json& context) const {
  return run(program_, limits_, context_value(context));
}

std::string ChatTemplate::render_ordered(const nlohmann::ordered_json& context) const {
  return run(program_, limits_, context_value(context));
}

std::string render_chat(const ChatTemplate& chat_template, const nlohmann::json& messages,
                        const nlohmann::json& tools, bool add_generation_prompt,
                        const std::string& bos_token, const std::string& eos_token,
                        const nlohmann::json& extra) {
  return chat_template.render(
      chat_context(messages, tools, add_generation_prompt, bos_token, eos_token, extra));
}

std::string render_chat_ordered(const ChatTemplate& chat_template,
                                const nlohmann::ordered_json& messages,
                                const nlohmann::ordered_json& tools, bool add_generation_prompt,
                                const std::string& bos_token, const std::string& eos_token,
                                const nlohmann::ordered_json& extra) {
  return chat_template.render_ordered(
      chat_context(messages, tools, add_generation_prompt, bos_token, eos_token, extra));
}

}  // namespace hwledger::chat
