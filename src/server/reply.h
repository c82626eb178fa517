// The answer being built from a session's events: content text, tool calls (parsed from the
// model's output while it streams) and log-probabilities, as ordered output events for
// streaming and as totals for non-streaming responses.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "server/session.h"
#include "server/tool_calls.h"

namespace hwledger::server {

struct OutputEvent {
  enum class Kind { Content, ToolStart, ToolArguments, ToolEnd, Logprob };
  Kind kind = Kind::Content;
  int index = 0;     // tool call index
  std::string text;  // Content: text; ToolStart: name; ToolArguments: a fragment
  std::string id;    // ToolStart: the call's id
  TokenLogprob logprob;
};

struct ToolCallOut {
  std::string id, name, arguments;  // arguments: the JSON text the model wrote
};

class Reply {
 public:
  // tool_format: parse tool calls in this format (nullopt: the output is all content).
  // id_prefix: "call_" (OpenAI) or "toolu_" (Anthropic).
  Reply(std::optional<ToolCallFormat> tool_format, std::string id_prefix);

  // Adds session events; appends the resulting output events (in order) to `out`.
  void add(std::vector<SessionEvent>& events, std::vector<OutputEvent>& out);
  // Text the assistant's turn was started with (a forced tool call's opening, in the prompt):
  // parsed as if the model had written it; its output events come with the next add().
  void prime(const std::string& text);

  bool done() const { return done_; }
  const GenerateResult& result() const { return result_; }
  const std::string& stop_sequence() const { return stop_sequence_; }
  bool prefill_progressed() const { return prefill_events_ > 0; }

  const std::string& content() const { return content_; }
  const std::vector<ToolCallOut>& tool_calls() const { return tool_calls_; }
  const std::vector<TokenLogprob>& logprobs() const { return logprobs_; }

 private:
  void add_text(const std::string& text, std::vector<OutputEvent>& out);
  void convert(std::vector<ToolEvent>& events, std::vector<OutputEvent>& out);

  std::optional<ToolCallParser> parser_;
  std::string id_prefix_;
  bool done_ = false;
  GenerateResult result_;
  std::string stop_sequence_;
  int64_t prefill_events_ = 0;
  std::string content_;
  std::string held_space_;  // whitespace-only text that may precede a tool call
  std::vector<ToolCallOut> tool_calls_;
  std::vector<TokenLogprob> logprobs_;
  std::vector<OutputEvent> primed_;
};

// A random id such as "chatcmpl-3f9a..." (`prefix` followed by 24 letters and digits).
std::string random_id(const std::string& prefix);

}  // namespace hwledger::server
