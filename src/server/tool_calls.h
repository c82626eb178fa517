// Tool calls in a model's output, found while the text streams so that they can be sent as
// incremental deltas (OpenAI tool_calls[].function.arguments fragments, Anthropic
// input_json_delta):
//   Hermes/Qwen:  text <tool_call>{"name": "f", "arguments": {...}}</tool_call> (possibly several)
//   Llama 3.1:    the whole reply is {"name": "f", "parameters": {...}}, possibly after
//                 <|python_tag|>, several separated by ';'
// Once the name is known and the arguments object starts, its text goes out as it arrives; a
// call whose JSON turns out not to be a tool call goes out as plain text instead.
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace hwledger::server {

enum class ToolCallFormat { Hermes, LlamaJson };

// The format the model's chat template teaches it (Hermes unless it is Llama 3.1's JSON form).
ToolCallFormat detect_tool_call_format(std::string_view chat_template_source);

struct ToolEvent {
  enum class Kind { Text, CallStart, CallArguments, CallEnd };
  Kind kind = Kind::Text;
  int index = 0;     // which call (0, 1, ...) for the Call* kinds
  std::string text;  // Text: content; CallStart: the function's name; CallArguments: a fragment
};

class ToolCallParser {
 public:
  explicit ToolCallParser(ToolCallFormat format);
  ~ToolCallParser();
  ToolCallParser(ToolCallParser&&) noexcept;
  ToolCallParser& operator=(ToolCallParser&&) noexcept;

  // Adds model output; appends what can be said now to `out`.
  void push(std::string_view text, std::vector<ToolEvent>& out);
  // End of output: flushes held text, ends an unfinished call.
  void finish(std::vector<ToolEvent>& out);

  int calls() const;  // tool calls started so far

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace hwledger::server
