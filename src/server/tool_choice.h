// Making tool_choice effective without a grammar engine: a forced choice starts the assistant's
// turn with the opening of a tool call in the format the chat template teaches, so that the
// model can only continue it (OpenAI "required" / a named function, Anthropic "any" / "tool").
//   Hermes/Qwen, named:  <tool_call>\n{"name": "get_weather", "arguments": {
//   Hermes/Qwen, any:    <tool_call>\n{"name": "       + the name constrained to the tools'
//   Llama 3.1, named:    {"name": "get_weather", "parameters": {
// The reply parses that opening as the model's own output (Reply::prime), so the call is
// reported like any other. The arguments themselves are not constrained.
#pragma once
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "sched/scheduler.h"
#include "server/tool_calls.h"

namespace hwledger::tokenizer {
class Tokenizer;
}

namespace hwledger::server {

struct ToolChoice {
  enum class Mode { Auto, None, Required, Named };
  Mode mode = Mode::Auto;
  std::string name;                // Named: the function
  std::vector<std::string> names;  // every offered tool, in order
};

// The text the assistant's turn starts with ("" for auto/none). "required" with a single tool
// is that tool, named.
std::string forced_tool_prefix(ToolCallFormat format, const ToolChoice& choice);

// For "required" among several tools: a GenerateRequest::constrain that lets only tokens through
// that keep the text generated so far on one of `<name>", "arguments": {` (or "parameters"),
// until one is complete. Empty when no constraint is needed.
std::function<void(float*, int64_t, std::span<const int32_t>)> tool_name_constraint(
    const tokenizer::Tokenizer& tokenizer, ToolCallFormat format, const ToolChoice& choice);

}  // namespace hwledger::server
