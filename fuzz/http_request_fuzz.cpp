// Fuzzes what the HTTP server takes from outside: request bodies for the three generation routes
// (parsed into a generation plan against the demo tokenizer and its chat template, then answered
// from a made-up result) and model output through the streaming tool-call parser, fed in pieces.
// Bad input must end in an ApiError (a 4xx), never a crash.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "chat/chat_template.h"
#include "server/api.h"
#include "tokenizer/tokenizer.h"

namespace {

using namespace hwledger;
using namespace hwledger::server;

class FuzzBackend final : public ServingBackend {
 public:
  FuzzBackend()
      : tokenizer_(tokenizer::Tokenizer::from_json(
            tokenizer::demo_tokenizer_json(), tokenizer::demo_tokenizer_config_json(), "demo")),
        template_(tokenizer_.config().chat_template) {}
  const std::string& model_name() const override { return name_; }
  int64_t context_length() const override { return 512; }
  const tokenizer::Tokenizer* tokenizer() const override { return &tokenizer_; }
  const std::vector<int32_t>& stop_token_ids() const override { return stops_; }
  std::string chat_template_source() const override { return template_.source(); }
  std::string render_chat(const nlohmann::ordered_json& messages,
                          const nlohmann::ordered_json& tools, bool add,
                          const nlohmann::ordered_json& extra) const override {
    return chat::render_chat_ordered(template_, messages, tools, add, "", "<|im_end|>", extra);
  }
  std::vector<int32_t> encode(const std::string& text, bool add_special) const override {
    return tokenizer_.encode(text, add_special);
  }
  bool submit(GenerateRequest, std::shared_ptr<RequestSink>) override { return false; }
  bool cancel(const std::string&) override { return false; }
  SchedulerStats scheduler_stats() const override { return {}; }
  std::vector<TierStats> kv_stats() const override { return {}; }

 private:
  std::string name_ = "demo";
  std::vector<int32_t> stops_{0};
  tokenizer::Tokenizer tokenizer_;
  chat::ChatTemplate template_;
};

void answer(Exchange& exchange, const std::string& text) {
  Reply reply(exchange.plan().tool_format, exchange.tool_id_prefix());
  std::vector<SessionEvent> events(2);
  events[0].text = text;
  events[1].kind = SessionEvent::Kind::Done;
  events[1].result.reason = StopReason::Eos;
  std::vector<OutputEvent> out;
  (void)exchange.stream_start();
  reply.add(events, out);
  (void)exchange.stream_events(out, reply);
  (void)exchange.stream_end(reply);
  (void)exchange.response_body(reply);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static FuzzBackend backend;
  if (size < 1) return 0;
  const uint8_t mode = data[0] % 5;
  const std::string input(reinterpret_cast<const char*>(data + 1), size - 1);
  if (mode <= 1) {
    // Model output in pieces whose sizes come from the input itself.
    ToolCallParser parser(mode == 0 ? ToolCallFormat::Hermes : ToolCallFormat::LlamaJson);
    std::vector<ToolEvent> events;
    size_t at = 0;
    while (at < input.size()) {
      const size_t n = 1 + static_cast<uint8_t>(input[at]) % 7;
      parser.push(std::string_view(input).substr(at, n), events);
      at += n;
    }
    parser.finish(events);
    return 0;
  }
  try {
    const Json body = parse_json_body(input);
    std::unique_ptr<Exchange> exchange = mode == 2   ? openai_chat_exchange(body, backend)
                                         : mode == 3 ? openai_completion_exchange(body, backend)
                                                     : anthropic_messages_exchange(body, backend);
    answer(*exchange, "<tool_call>{\"name\": \"f\", \"arguments\": {\"a\": 1}}</tool_call> text");
  } catch (const ApiError&) {
  }
  return 0;
}
