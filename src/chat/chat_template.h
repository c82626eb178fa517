// Chat templates: the Jinja2 subset that Hugging Face chat templates (tokenizer_config.json's
// "chat_template") are written in, rendered the way transformers renders them (Jinja2's sandbox
// with trim_blocks and lstrip_blocks, a tojson that keeps key order and does not escape HTML,
// raise_exception, strftime_now, {% generation %}). docs/chat-templates.md lists what is supported.
//
//   hwledger::chat::ChatTemplate tmpl(config["chat_template"]);
//   std::string prompt = render_chat(tmpl, messages, tools, /*add_generation_prompt=*/true,
//                                    "<|begin_of_text|>", "<|eot_id|>");
//
// Key order: Python dicts keep insertion order and `tojson` prints keys in that order. A
// nlohmann::json object has already sorted its keys, so pass nlohmann::ordered_json (parse with
// nlohmann::ordered_json::parse) wherever a template prints JSON (tools, tool-call arguments).
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <type_traits>

#include "util/error.h"

namespace hwledger::chat {

// A syntax error, a runtime error (undefined variable used, bad operand, unknown filter), a limit
// reached, or the template's own raise_exception('...'). what() reads
// "chat template line N: MESSAGE"; message() is MESSAGE alone (for raise_exception, its text).
class TemplateError : public hwledger::InputError {
 public:
  TemplateError(std::string message, int line);
  int line() const { return line_; }  // 1-based line of the template; 0 when not tied to one
  const std::string& message() const { return message_; }

 private:
  std::string message_;
  int line_;
};

// Bounds on one render, so that no template (fuzzed or hostile) runs forever or eats memory.
struct RenderLimits {
  size_t max_output_bytes = size_t{64} << 20;
  // All the strings and lists a render builds, added up; bounds peak memory.
  size_t max_allocated_bytes = size_t{512} << 20;
  // Expression evaluations, statements and loop iterations (10 million take about 2 s; a
  // 1000-message chat takes about 100 thousand).
  uint64_t max_steps = 10'000'000;
  int max_call_depth = 64;  // nested macro calls
};

struct Program;  // the parsed template (parser.h)

class ChatTemplate {
 public:
  // Parses once; throws TemplateError on syntax errors, unknown filters and unknown tests.
  explicit ChatTemplate(std::string source, RenderLimits limits = {});

  // `context` is a JSON object whose keys become the template's variables: messages, tools,
  // add_generation_prompt, bos_token, eos_token, and any others (enable_thinking, date_string...).
  // Thread-safe: a render shares nothing mutable with others.
  std::string render(const nlohmann::json& context) const;
  // Same, for a context that keeps key order (what Python would see).
  template <typename Json>
  requires std::same_as<Json, nlohmann::ordered_json> std::string render(const Json& context)
  const { return render_ordered(context); }
  std::string render_ordered(const nlohmann::ordered_json& context) const;

  const std::string& source() const;

 private:
  std::shared_ptr<const Program> program_;
  RenderLimits limits_;
};

// Renders with the variables transformers' apply_chat_template passes: messages, tools (None when
// `tools` is null), documents (None), add_generation_prompt, bos_token, eos_token, and the keys of
// `extra` (an object, or null), which take precedence.
std::string render_chat(const ChatTemplate& chat_template, const nlohmann::json& messages,
                        const nlohmann::json& tools, bool add_generation_prompt,
                        const std::string& bos_token, const std::string& eos_token,
                        const nlohmann::json& extra = {});

std::string render_chat_ordered(const ChatTemplate& chat_template,
                                const nlohmann::ordered_json& messages,
                                const nlohmann::ordered_json& tools, bool add_generation_prompt,
                                const std::string& bos_token, const std::string& eos_token,
                                const nlohmann::ordered_json& extra = {});

// render_chat for ordered messages: picked over the nlohmann::json overload when `messages` is a
// nlohmann::ordered_json, so that key order survives.
template <typename Json>
requires std::same_as<Json, nlohmann::ordered_json> std::string render_chat(
    const ChatTemplate& chat_template, const Json& messages,
    const std::type_identity_t<Json>& tools, bool add_generation_prompt,
    const std::string& bos_token, const std::string& eos_token,
    const std::type_identity_t<Json>& extra = {}) {
  return render_chat_ordered(chat_template, messages, tools, add_generation_prompt, bos_token,
                             eos_token, extra);
}

}  // namespace hwledger::chat
