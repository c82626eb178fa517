// libFuzzer target for the chat-template interpreter: the input is a template, then a NUL byte,
// then a JSON render context (a fixed chat when that part is missing or not a JSON object).
// Any input must end in a rendered string or a TemplateError: no crash, hang, leak or UB.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "chat/chat_template.h"

namespace {

const nlohmann::ordered_json& fallback_context() {
  static const nlohmann::ordered_json context = nlohmann::ordered_json::parse(R"({
    "messages": [
      {"role": "system", "content": "You are helpful."},
      {"role": "user", "content": "What is the weather in Paris?"},
      {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function",
        "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
      {"role": "tool", "content": "{\"temp\": 18}", "tool_call_id": "c1"},
      {"role": "assistant", "content": "<think>\nwarm\n</think>\n\nIt is 18 C."}
    ],
    "tools": [{"type": "function", "function": {"name": "get_weather", "description": "d",
      "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
      "required": ["city"]}}}],
    "add_generation_prompt": true, "bos_token": "<s>", "eos_token": "</s>",
    "enable_thinking": false
  })");
  return context;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t split = input.find('\0');
  const std::string source(input.substr(0, split));
  nlohmann::ordered_json context = fallback_context();
  if (split != std::string_view::npos) {
    auto parsed = nlohmann::ordered_json::parse(input.substr(split + 1), nullptr,
                                                /*allow_exceptions=*/false);
    if (parsed.is_object()) context = std::move(parsed);
  }
  // Smaller budgets than the defaults keep each run short; the limits themselves are what is
  // being exercised.
  hwledger::chat::RenderLimits limits;
  limits.max_steps = 200'000;
  limits.max_output_bytes = 1 << 20;
  limits.max_allocated_bytes = 64 << 20;
  try {
    const hwledger::chat::ChatTemplate chat_template(source, limits);
    chat_template.render(context);
  } catch (const hwledger::chat::TemplateError&) {
  }
  return 0;
}
