// The API-specific half of a request: parsing its body into a generation plan, and turning the
// reply into that API's response body or stream of server-sent events.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "sched/scheduler.h"
#include "server/api_error.h"
#include "server/backend.h"
#include "server/json_fields.h"
#include "server/reply.h"
#include "server/tool_calls.h"
#include "server/tool_choice.h"

namespace hwledger::server {

struct GenerationPlan {
  GenerateRequest request;  // prompt, max_tokens, sampling, EOS ids (id filled in by the server)
  std::vector<std::string> stop_strings;
  bool stream = false;
  bool want_logprobs = false;
  std::optional<ToolCallFormat> tool_format;  // set when the request offers tools
  // The start of the assistant's turn that a forced tool_choice put at the end of the prompt
  // (tool_choice.h); the reply parses it as the model's own output.
  std::string forced_prefix;
};

class Exchange {
 public:
  virtual ~Exchange() = default;
  virtual ApiFlavor flavor() const = 0;
  virtual const GenerationPlan& plan() const = 0;
  virtual std::string tool_id_prefix() const = 0;

  // Streaming: the server-sent events to write (never empty strings but for stream_events).
  virtual std::string stream_start() = 0;
  virtual std::string stream_events(const std::vector<OutputEvent>& events, const Reply& reply) = 0;
  virtual std::string stream_end(const Reply& reply) = 0;
  virtual std::string stream_ping() = 0;
  virtual std::string stream_error(const ApiError& error) = 0;
  // Non-streaming: the response body.
  virtual std::string response_body(const Reply& reply) = 0;
};

// OpenAI
std::unique_ptr<Exchange> openai_chat_exchange(const Json& body, const ServingBackend& backend);
std::unique_ptr<Exchange> openai_completion_exchange(const Json& body,
                                                     const ServingBackend& backend);
std::string openai_models_body(const ServingBackend& backend, int64_t created_unix);
std::string openai_model_body(const ServingBackend& backend, const std::string& id,
                              int64_t created_unix);

// Anthropic
std::unique_ptr<Exchange> anthropic_messages_exchange(const Json& body,
                                                      const ServingBackend& backend);
std::string anthropic_count_tokens_body(const Json& body, const ServingBackend& backend);

// ---- shared by both APIs (api_common.cpp) ----------------------------------------------------

// 404 unless `model` names the served model.
void check_model(const std::string& model, const ServingBackend& backend);
// 400 when the server has no tokenizer for text requests.
const tokenizer::Tokenizer& require_tokenizer(const ServingBackend& backend);
// Template rendering + encoding; template errors become 400s.
// `assistant_prefix` is appended after the generation prompt (a forced tool call's opening).
std::vector<int32_t> render_and_encode(const ServingBackend& backend, const Json& messages,
                                       const Json& tools, const Json& extra,
                                       const std::string& assistant_prefix = "");
// Sets plan.tool_format, plan.forced_prefix and the request's constraint for `choice`, then
// renders and encodes the prompt (tools: null when none are offered).
void plan_chat_prompt(GenerationPlan& plan, const ServingBackend& backend, const Json& messages,
                      const Json& tools, const ToolChoice& choice, const Json& extra);
// Sets request.max_tokens: `max_tokens` when given (400 when prompt + it exceed the context),
// else what the context leaves. 400 for a prompt that fills the context by itself.
void fit_context(GenerationPlan& plan, const ServingBackend& backend,
                 std::optional<int64_t> max_tokens, const std::string& max_tokens_field,
                 const std::string& prompt_field);
// `stop`-style field: a string or an array of strings.
std::vector<std::string> parse_stop_strings(const Json& body, const std::string& key);
// A chat message's content as templates want it: a string (text parts joined).
std::string content_text(const Json& content, const std::string& field);
int64_t unix_now();
// Serializes for the wire (invalid UTF-8 replaced, never thrown).
std::string dump(const Json& value);
std::string sse_data(const Json& value);                            // "data: {...}\n\n"
std::string sse_event(const std::string& name, const Json& value);  // "event: x\ndata: {...}\n\n"

}  // namespace hwledger::server
