// The HTTP API over the scripted backend: response and stream shapes of both APIs, usage, stop
// strings, tool calls (Qwen and Llama forms), pings during a long prefill, client disconnects,
// the connection cap, metrics and a clean stop.
#include <gtest/gtest.h>

#include <atomic>
#include <future>

#include "scripted_backend.h"
#include "server_fixture.h"

namespace hwledger::test {
namespace {

const std::string kQwen = std::string(HWLEDGER_SHARED_DIR) + "/models/qwen3";
const std::string kLlama = std::string(HWLEDGER_SHARED_DIR) + "/models/llama3.1";

Json chat_body(const std::string& user, Json extra = Json::object()) {
  Json body = {{"model", "scripted"}, {"messages", {{{"role", "user"}, {"content", user}}}}};
  for (auto& [k, v] : extra.items()) body[k] = v;
  return body;
}

Json messages_body(const std::string& user, Json extra = Json::object()) {
  Json body = {{"model", "scripted"},
               {"max_tokens", 64},
               {"messages", {{{"role", "user"}, {"content", user}}}}};
  for (auto& [k, v] : extra.items()) body[k] = v;
  return body;
}

// OpenAI chat stream -> content, tool calls (by index: name, arguments), finish reason, usage.
struct ChatStream {
  std::string content, finish_reason;
  std::vector<std::pair<std::string, std::string>> calls;
  std::vector<std::string> call_ids;
  Json usage;
  bool done = false, role_first = false;
  int chunks = 0, comments = 0;
};

ChatStream read_chat_stream(const std::string& body) {
  ChatStream s;
  for (const SseEvent& e : parse_sse(body)) {
    if (e.event == "comment") {
      ++s.comments;
      continue;
    }
    EXPECT_FALSE(s.done) << "data after [DONE]";
    if (e.data == "[DONE]") {
      s.done = true;
      continue;
    }
    const Json chunk = Json::parse(e.data);
    EXPECT_EQ(chunk["object"], "chat.completion.chunk");
    if (chunk.contains("usage") && !chunk["usage"].is_null()) s.usage = chunk["usage"];
    if (chunk["choices"].empty()) continue;
    const Json& choice = chunk["choices"][0];
    const Json& delta = choice["delta"];
    if (s.chunks++ == 0) s.role_first = delta.value("role", "") == "assistant";
    if (delta.contains("content") && delta["content"].is_string())
      s.content += delta["content"].get<std::string>();
    if (delta.contains("tool_calls")) {
      for (const Json& tc : delta["tool_calls"]) {
        const size_t index = tc["index"].get<size_t>();
        if (tc.contains("id")) {
          EXPECT_EQ(index, s.calls.size());
          s.calls.emplace_back(tc["function"]["name"].get<std::string>(), "");
          s.call_ids.push_back(tc["id"].get<std::string>());
          EXPECT_EQ(tc["type"], "function");
        }
        EXPECT_LT(index, s.calls.size());
        if (tc["function"].contains("arguments"))
          s.calls.at(index).second += tc["function"]["arguments"].get<std::string>();
      }
    }
    if (!choice["finish_reason"].is_null()) s.finish_reason = choice["finish_reason"];
  }
  return s;
}

class ScriptedHttp : public ::testing::Test {
 protected:
  void serve(ScriptedOptions so = {}, server::ServerOptions opts = {}) {
    opts.port = 0;
    backend_ = std::make_unique<ScriptedBackend>(so);
    server_ = std::make_unique<LiveServer>(*backend_, opts);
  }
  void TearDown() override {
    server_.reset();
    backend_.reset();
  }
  LiveServer& http() { return *server_; }
  ScriptedBackend& backend() { return *backend_; }

  std::unique_ptr<ScriptedBackend> backend_;
  std::unique_ptr<LiveServer> server_;
};

TEST_F(ScriptedHttp, ModelsListsTheServedModel) {
  serve();
  auto res = http().get("/v1/models");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  const Json body = Json::parse(res->body);
  EXPECT_EQ(body["object"], "list");
  ASSERT_EQ(body["data"].size(), 1u);
  EXPECT_EQ(body["data"][0]["id"], "scripted");
  EXPECT_EQ(body["data"][0]["object"], "model");
  auto one = http().get("/v1/models/scripted");
  ASSERT_TRUE(one);
  EXPECT_EQ(one->status, 200);
  EXPECT_EQ(http().get("/v1/models/other")->status, 404);
  auto health = http().get("/health");
  EXPECT_EQ(Json::parse(health->body)["status"], "ok");
  EXPECT_EQ(Json::parse(health->body)["model"], "scripted");
}

TEST_F(ScriptedHttp, ChatCompletionNonStreaming) {
  serve();
  auto res = http().post("/v1/chat/completions", chat_body("[[reply:The answer is 42.]]",
                                                           {{"temperature", 0.5},
                                                            {"top_p", 0.9},
                                                            {"top_k", 40},
                                                            {"min_p", 0.05},
                                                            {"seed", 7},
                                                            {"repetition_penalty", 1.1},
                                                            {"presence_penalty", 0.5},
                                                            {"frequency_penalty", -0.5},
                                                            {"max_completion_tokens", 100}}));
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  const Json body = Json::parse(res->body);
  EXPECT_EQ(body["object"], "chat.completion");
  EXPECT_EQ(body["model"], "scripted");
  EXPECT_EQ(body["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(body["choices"][0]["message"]["content"], "The answer is 42.");
  EXPECT_EQ(body["choices"][0]["finish_reason"], "stop");
  const Json& usage = body["usage"];
  const int64_t reply_tokens =
      static_cast<int64_t>(backend().encode("The answer is 42.", false).size());
  EXPECT_EQ(usage["completion_tokens"], reply_tokens + 1);  // and EOS
  EXPECT_GT(usage["prompt_tokens"].get<int64_t>(), 5);
  EXPECT_EQ(usage["total_tokens"],
            usage["prompt_tokens"].get<int64_t>() + usage["completion_tokens"].get<int64_t>());
  EXPECT_TRUE(usage["prompt_tokens_details"]["cached_tokens"].is_number_integer());
  // The sampling fields reach the scheduler.
  const GenerateRequest req = backend().last_request();
  EXPECT_FLOAT_EQ(req.sampling.temperature, 0.5f);
  EXPECT_FLOAT_EQ(req.sampling.top_p, 0.9f);
  EXPECT_EQ(req.sampling.top_k, 40);
  EXPECT_FLOAT_EQ(req.sampling.min_p, 0.05f);
  EXPECT_FLOAT_EQ(req.sampling.repetition_penalty, 1.1f);
  EXPECT_FLOAT_EQ(req.sampling.presence_penalty, 0.5f);
  EXPECT_FLOAT_EQ(req.sampling.frequency_penalty, -0.5f);
  EXPECT_EQ(req.sampling.seed, 7u);
  EXPECT_EQ(req.sampling.top_logprobs, -1);
  EXPECT_EQ(req.max_tokens, 100);
  EXPECT_EQ(req.stop_token_ids, backend().stop_token_ids());
}

TEST_F(ScriptedHttp, CachedTokensOnARepeatedPrefix) {
  serve();
  const std::string system(400, 'x');
  Json body = {
      {"model", "scripted"},
      {"messages",
       {{{"role", "system"}, {"content", system}}, {{"role", "user"}, {"content", "first"}}}}};
  auto first = http().post("/v1/chat/completions", body);
  EXPECT_EQ(Json::parse(first->body)["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
  body["messages"][1]["content"] = "second";
  auto second = http().post("/v1/chat/completions", body);
  EXPECT_GT(
      Json::parse(second->body)["usage"]["prompt_tokens_details"]["cached_tokens"].get<int64_t>(),
      16);
  // Anthropic reports the same as cache_read_input_tokens, apart from input_tokens.
  Json anthropic = {{"model", "scripted"},
                    {"max_tokens", 8},
                    {"system", system},
                    {"messages", {{{"role", "user"}, {"content", "third"}}}}};
  auto third = http().post("/v1/messages", anthropic);
  const Json usage = Json::parse(third->body)["usage"];
  EXPECT_GT(usage["cache_read_input_tokens"].get<int64_t>(), 16);
  EXPECT_GT(usage["input_tokens"].get<int64_t>(), 0);
  EXPECT_GT(http().metric("hwledger_cached_prompt_tokens_total"), 32);
}

TEST_F(ScriptedHttp, ChatCompletionStreaming) {
  serve();
  auto res =
      http().post("/v1/chat/completions",
                  chat_body("[[reply:Streaming, one token at a time.]]",
                            {{"stream", true}, {"stream_options", {{"include_usage", true}}}}));
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("Content-Type"), "text/event-stream");
  const ChatStream s = read_chat_stream(res->body);
  EXPECT_TRUE(s.role_first);
  EXPECT_EQ(s.content, "Streaming, one token at a time.");
  EXPECT_EQ(s.finish_reason, "stop");
  EXPECT_TRUE(s.done);
  EXPECT_GT(s.chunks, 5);
  ASSERT_TRUE(s.usage.is_object());
  EXPECT_EQ(
      s.usage["completion_tokens"].get<int64_t>(),
      static_cast<int64_t>(backend().encode("Streaming, one token at a time.", false).size()) + 1);
  // The usage chunk is the last data before [DONE], with no choices.
  const auto events = parse_sse(res->body);
  ASSERT_GE(events.size(), 2u);
  const Json last = Json::parse(events[events.size() - 2].data);
  EXPECT_TRUE(last["choices"].empty());
}

TEST_F(ScriptedHttp, MaxTokensCutsTheReply) {
  serve();
  const std::string reply = "one two three four five six seven eight nine ten";
  auto res = http().post("/v1/chat/completions",
                         chat_body("[[reply:" + reply + "]]", {{"max_tokens", 3}}));
  const Json body = Json::parse(res->body);
  EXPECT_EQ(body["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(body["usage"]["completion_tokens"], 3);
  const std::vector<int32_t> ids = backend().encode(reply, false);
  EXPECT_EQ(body["choices"][0]["message"]["content"],
            backend().tokenizer()->decode(std::vector<int32_t>(ids.begin(), ids.begin() + 3)));

  auto anthropic =
      http().post("/v1/messages", messages_body("[[reply:" + reply + "]]", {{"max_tokens", 2}}));
  const Json msg = Json::parse(anthropic->body);
  EXPECT_EQ(msg["stop_reason"], "max_tokens");
  EXPECT_EQ(msg["usage"]["output_tokens"], 2);
}

TEST_F(ScriptedHttp, StopStringsAcrossTokensNeverShown) {
  serve();
  const std::string reply = "alpha beta gamma delta epsilon";
  for (bool stream : {false, true}) {
    auto res =
        http().post("/v1/chat/completions",
                    chat_body("[[reply:" + reply + "]]",
                              {{"stop", Json::array({"xyz", "mma del"})}, {"stream", stream}}));
    ASSERT_EQ(res->status, 200);
    std::string content, finish;
    if (stream) {
      const ChatStream s = read_chat_stream(res->body);
      content = s.content;
      finish = s.finish_reason;
    } else {
      const Json body = Json::parse(res->body);
      content = body["choices"][0]["message"]["content"];
      finish = body["choices"][0]["finish_reason"];
    }
    EXPECT_EQ(content, "alpha beta ga") << "stream " << stream;
    EXPECT_EQ(finish, "stop");
  }
  auto completion = http().post("/v1/completions", {{"model", "scripted"},
                                                    {"prompt", "[[reply:" + reply + "]]"},
                                                    {"stop", "delta"},
                                                    {"max_tokens", 50}});
  EXPECT_EQ(Json::parse(completion->body)["choices"][0]["text"], "alpha beta gamma ");
  auto anthropic = http().post(
      "/v1/messages", messages_body("[[reply:" + reply + "]]", {{"stop_sequences", {"beta"}}}));
  const Json msg = Json::parse(anthropic->body);
  EXPECT_EQ(msg["content"][0]["text"], "alpha ");
  EXPECT_EQ(msg["stop_reason"], "stop_sequence");
  EXPECT_EQ(msg["stop_sequence"], "beta");
}

TEST_F(ScriptedHttp, CompletionsNonStreamingStreamingAndEcho) {
  serve();
  const Json base = {
      {"model", "scripted"}, {"prompt", "Say it: [[reply: plain completion]]"}, {"max_tokens", 50}};
  auto res = http().post("/v1/completions", base);
  ASSERT_EQ(res->status, 200) << res->body;
  const Json body = Json::parse(res->body);
  EXPECT_EQ(body["object"], "text_completion");
  EXPECT_EQ(body["choices"][0]["text"], " plain completion");
  EXPECT_EQ(body["choices"][0]["finish_reason"], "stop");

  Json echo = base;
  echo["echo"] = true;
  EXPECT_EQ(Json::parse(http().post("/v1/completions", echo)->body)["choices"][0]["text"],
            "Say it: [[reply: plain completion]] plain completion");

  Json streamed = base;
  streamed["stream"] = true;
  auto sres = http().post("/v1/completions", streamed);
  std::string text, finish;
  bool done = false;
  for (const SseEvent& e : parse_sse(sres->body)) {
    if (e.data == "[DONE]") {
      done = true;
      continue;
    }
    const Json chunk = Json::parse(e.data);
    EXPECT_EQ(chunk["object"], "text_completion");
    text += chunk["choices"][0]["text"].get<std::string>();
    if (!chunk["choices"][0]["finish_reason"].is_null())
      finish = chunk["choices"][0]["finish_reason"];
  }
  EXPECT_TRUE(done);
  EXPECT_EQ(text, " plain completion");
  EXPECT_EQ(finish, "stop");

  // A prompt of token ids.
  const std::vector<int32_t> ids = backend().encode("[[reply:ids]]", false);
  auto ires =
      http().post("/v1/completions", {{"model", "scripted"}, {"prompt", ids}, {"max_tokens", 5}});
  EXPECT_EQ(Json::parse(ires->body)["choices"][0]["text"], "ids");
}

TEST_F(ScriptedHttp, Logprobs) {
  serve();
  auto res = http().post("/v1/chat/completions",
                         chat_body("[[reply:ab]]", {{"logprobs", true}, {"top_logprobs", 2}}));
  const Json body = Json::parse(res->body);
  const Json& content = body["choices"][0]["logprobs"]["content"];
  ASSERT_EQ(content.size(), backend().encode("ab", false).size());
  std::string joined;
  for (const Json& e : content) {
    joined += e["token"].get<std::string>();
    EXPECT_FLOAT_EQ(e["logprob"].get<float>(), -0.25f);
    EXPECT_EQ(e["top_logprobs"].size(), 2u);
    EXPECT_TRUE(e["bytes"].is_array());
  }
  EXPECT_EQ(joined, "ab");
  EXPECT_EQ(backend().last_request().sampling.top_logprobs, 2);

  auto legacy = http().post("/v1/completions",
                            {{"model", "scripted"}, {"prompt", "[[reply:cd]]"}, {"logprobs", 1}});
  const Json lp = Json::parse(legacy->body)["choices"][0]["logprobs"];
  EXPECT_EQ(lp["tokens"].size(), lp["token_logprobs"].size());
  EXPECT_EQ(lp["top_logprobs"].size(), lp["tokens"].size());
  EXPECT_EQ(lp["text_offset"][0], 0);
}

TEST_F(ScriptedHttp, AnthropicMessageNonStreaming) {
  serve();
  Json body = messages_body("[[reply:Bonjour.]]",
                            {{"system", Json::array({{{"type", "text"}, {"text", "Be brief."}}})},
                             {"temperature", 0.2},
                             {"top_k", 5},
                             {"top_p", 0.5}});
  auto res = http().post("/v1/messages", body);
  ASSERT_EQ(res->status, 200) << res->body;
  const Json msg = Json::parse(res->body);
  EXPECT_EQ(msg["type"], "message");
  EXPECT_EQ(msg["role"], "assistant");
  EXPECT_EQ(msg["model"], "scripted");
  EXPECT_EQ(msg["content"], Json::parse(R"([{"type":"text","text":"Bonjour."}])"));
  EXPECT_EQ(msg["stop_reason"], "end_turn");
  EXPECT_TRUE(msg["stop_sequence"].is_null());
  EXPECT_GT(msg["usage"]["input_tokens"].get<int64_t>(), 0);
  EXPECT_EQ(msg["usage"]["output_tokens"].get<int64_t>(),
            static_cast<int64_t>(backend().encode("Bonjour.", false).size()) + 1);
  EXPECT_TRUE(msg["usage"].contains("cache_read_input_tokens"));
  EXPECT_NE(backend().last_prompt_text().find("Be brief."), std::string::npos);
  EXPECT_FLOAT_EQ(backend().last_request().sampling.temperature, 0.2f);
  EXPECT_EQ(backend().last_request().sampling.top_k, 5);
  EXPECT_EQ(backend().last_request().max_tokens, 64);
}

TEST_F(ScriptedHttp, AnthropicStreamEventSequence) {
  serve();
  auto res =
      http().post("/v1/messages", messages_body("[[reply:Hi there, friend.]]", {{"stream", true}}));
  ASSERT_EQ(res->status, 200);
  std::vector<std::string> names;
  std::string text;
  Json final_usage;
  for (const SseEvent& e : parse_sse(res->body)) {
    ASSERT_NE(e.event, "comment");
    const Json data = Json::parse(e.data);
    EXPECT_EQ(data["type"], e.event);  // Anthropic repeats the event name as "type"
    if (names.empty() || names.back() != e.event || e.event != "content_block_delta")
      names.push_back(e.event);
    if (e.event == "content_block_delta") {
      EXPECT_EQ(data["delta"]["type"], "text_delta");
      EXPECT_EQ(data["index"], 0);
      text += data["delta"]["text"].get<std::string>();
    }
    if (e.event == "message_start") {
      EXPECT_EQ(data["message"]["role"], "assistant");
      EXPECT_TRUE(data["message"]["content"].empty());
    }
    if (e.event == "message_delta") {
      EXPECT_EQ(data["delta"]["stop_reason"], "end_turn");
      final_usage = data["usage"];
    }
  }
  EXPECT_EQ(names, (std::vector<std::string>{"message_start", "ping", "content_block_start",
                                             "content_block_delta", "content_block_stop",
                                             "message_delta", "message_stop"}));
  EXPECT_EQ(text, "Hi there, friend.");
  EXPECT_GT(final_usage["output_tokens"].get<int64_t>(), 3);
}

TEST_F(ScriptedHttp, CountTokens) {
  serve();
  Json body = {{"model", "scripted"},
               {"messages", {{{"role", "user"}, {"content", "How many tokens is this?"}}}}};
  auto res = http().post("/v1/messages/count_tokens", body);
  ASSERT_EQ(res->status, 200) << res->body;
  const int64_t counted = Json::parse(res->body)["input_tokens"];
  body["max_tokens"] = 4;
  const int64_t used =
      Json::parse(http().post("/v1/messages", body)->body)["usage"]["input_tokens"];
  EXPECT_EQ(counted, used);
  EXPECT_GT(counted, 5);
}

// ---- tool calls ------------------------------------------------------------------------------

const Json kWeatherTool = Json::parse(R"({
  "type": "function",
  "function": {"name": "get_weather", "description": "Current weather in a city",
               "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}})");

const std::string kQwenCall =
    "[[reply:<tool_call>\\n{\"name\": \"get_weather\", \"arguments\": {\"city\": "
    "\"Paris\"}}\\n</tool_call>]]";

TEST_F(ScriptedHttp, OpenAIToolCallRoundTripQwen) {
  ScriptedOptions so;
  so.tokenizer = kQwen;
  serve(so);
  Json body = chat_body("Weather in Paris? " + kQwenCall, {{"tools", {kWeatherTool}}});
  auto res = http().post("/v1/chat/completions", body);
  ASSERT_EQ(res->status, 200) << res->body;
  // The tools were rendered through the model's template.
  EXPECT_NE(backend().last_prompt_text().find("<tools>"), std::string::npos);
  EXPECT_NE(backend().last_prompt_text().find("\"get_weather\""), std::string::npos);
  const Json msg = Json::parse(res->body)["choices"][0];
  EXPECT_EQ(msg["finish_reason"], "tool_calls");
  EXPECT_TRUE(msg["message"]["content"].is_null());
  ASSERT_EQ(msg["message"]["tool_calls"].size(), 1u);
  const Json call = msg["message"]["tool_calls"][0];
  EXPECT_EQ(call["type"], "function");
  EXPECT_EQ(call["function"]["name"], "get_weather");
  EXPECT_EQ(Json::parse(call["function"]["arguments"].get<std::string>()),
            Json({{"city", "Paris"}}));
  EXPECT_EQ(call["id"].get<std::string>().rfind("call_", 0), 0u);

  // Streaming: name first, then argument fragments that add up to the same JSON.
  body["stream"] = true;
  const ChatStream s = read_chat_stream(http().post("/v1/chat/completions", body)->body);
  ASSERT_EQ(s.calls.size(), 1u);
  EXPECT_EQ(s.calls[0].first, "get_weather");
  EXPECT_EQ(Json::parse(s.calls[0].second), Json({{"city", "Paris"}}));
  EXPECT_EQ(s.content, "");
  EXPECT_EQ(s.finish_reason, "tool_calls");

  // The result goes back in the next request and is rendered as the template's tool response.
  Json next = chat_body("Weather in Paris? " + kQwenCall, {{"tools", {kWeatherTool}}});
  next["messages"].push_back({{"role", "assistant"}, {"content", nullptr}, {"tool_calls", {call}}});
  next["messages"].push_back({{"role", "tool"},
                              {"tool_call_id", call["id"]},
                              {"content", "{\"temp_c\": 21} [[reply:It is 21 C in Paris.]]"}});
  auto final_res = http().post("/v1/chat/completions", next);
  ASSERT_EQ(final_res->status, 200) << final_res->body;
  const Json final_msg = Json::parse(final_res->body)["choices"][0];
  EXPECT_EQ(final_msg["message"]["content"], "It is 21 C in Paris.");
  EXPECT_EQ(final_msg["finish_reason"], "stop");
  const std::string prompt = backend().last_prompt_text();
  EXPECT_NE(prompt.find("<tool_response>\n{\"temp_c\": 21}"), std::string::npos) << prompt;
  EXPECT_NE(
      prompt.find("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}"),
      std::string::npos)
      << prompt;
}

TEST_F(ScriptedHttp, AnthropicToolUseRoundTripQwen) {
  ScriptedOptions so;
  so.tokenizer = kQwen;
  serve(so);
  const Json tools = Json::parse(R"([{"name": "get_weather", "description": "Current weather",
      "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}])");
  Json body = messages_body("Weather? " + kQwenCall, {{"tools", tools}});
  auto res = http().post("/v1/messages", body);
  ASSERT_EQ(res->status, 200) << res->body;
  const Json msg = Json::parse(res->body);
  EXPECT_EQ(msg["stop_reason"], "tool_use");
  ASSERT_EQ(msg["content"].size(), 1u);
  const Json use = msg["content"][0];
  EXPECT_EQ(use["type"], "tool_use");
  EXPECT_EQ(use["name"], "get_weather");
  EXPECT_EQ(use["input"], Json({{"city", "Paris"}}));
  EXPECT_EQ(use["id"].get<std::string>().rfind("toolu_", 0), 0u);
  EXPECT_NE(backend().last_prompt_text().find("\"description\": \"Current weather\""),
            std::string::npos);

  // Streaming: a tool_use block with input_json_delta fragments.
  body["stream"] = true;
  auto sres = http().post("/v1/messages", body);
  std::string partial;
  std::vector<std::string> blocks;
  std::string stop_reason;
  for (const SseEvent& e : parse_sse(sres->body)) {
    const Json data = Json::parse(e.data);
    if (e.event == "content_block_start") blocks.push_back(data["content_block"]["type"]);
    if (e.event == "content_block_start" && data["content_block"]["type"] == "tool_use") {
      EXPECT_EQ(data["content_block"]["name"], "get_weather");
      EXPECT_EQ(data["content_block"]["input"], Json::object());
    }
    if (e.event == "content_block_delta") {
      EXPECT_EQ(data["delta"]["type"], "input_json_delta");
      partial += data["delta"]["partial_json"].get<std::string>();
    }
    if (e.event == "message_delta") stop_reason = data["delta"]["stop_reason"];
  }
  EXPECT_EQ(blocks, std::vector<std::string>{"tool_use"});
  EXPECT_EQ(Json::parse(partial), Json({{"city", "Paris"}}));
  EXPECT_EQ(stop_reason, "tool_use");

  // tool_result in the next request.
  Json next = messages_body("Weather? " + kQwenCall, {{"tools", tools}});
  next["messages"].push_back({{"role", "assistant"}, {"content", {use}}});
  next["messages"].push_back({{"role", "user"},
                              {"content",
                               {{{"type", "tool_result"},
                                 {"tool_use_id", use["id"]},
                                 {"content", "sunny [[reply:Sunny.]]"}}}}});
  auto final_res = http().post("/v1/messages", next);
  ASSERT_EQ(final_res->status, 200) << final_res->body;
  EXPECT_EQ(Json::parse(final_res->body)["content"][0]["text"], "Sunny.");
  EXPECT_NE(backend().last_prompt_text().find("<tool_response>\nsunny"), std::string::npos);
}

// Llama 3.1's way with tools, condensed: JSON function definitions in the first user turn, calls
// as {"name": ..., "parameters": ...}, results in "ipython" turns. (The shared Llama tokenizer
// carries Llama 3's template, which has no tools.)
const char* const kLlamaToolTemplate = R"({{- bos_token }}
{%- for message in messages %}
{%- if message.role == 'user' and loop.first and tools %}<|start_header_id|>user<|end_header_id|>

Given the following functions, please respond with a JSON for a function call with its proper arguments that best answers the given prompt.

Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}. Do not use variables.

{% for t in tools %}{{ t | tojson }}

{% endfor %}{{ message.content }}<|eot_id|>
{%- elif message.role == 'assistant' and message.tool_calls %}<|start_header_id|>assistant<|end_header_id|>

{% for tc in message.tool_calls %}{"name": "{{ tc.function.name }}", "parameters": {{ tc.function.arguments | tojson }}}{% endfor %}<|eot_id|>
{%- elif message.role == 'tool' %}<|start_header_id|>ipython<|end_header_id|>

{{ message.content }}<|eot_id|>
{%- else %}<|start_header_id|>{{ message.role }}<|end_header_id|>

{{ message.content }}<|eot_id|>
{%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>

{% endif %})";

TEST_F(ScriptedHttp, ToolCallsLlamaJsonForm) {
  ScriptedOptions so;
  so.tokenizer = kLlama;
  so.chat_template = kLlamaToolTemplate;
  serve(so);
  const std::string reply =
      "[[reply:{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Oslo\"}}]]";
  Json body = chat_body("Weather in Oslo? " + reply, {{"tools", {kWeatherTool}}});
  auto res = http().post("/v1/chat/completions", body);
  ASSERT_EQ(res->status, 200) << res->body;
  const Json choice = Json::parse(res->body)["choices"][0];
  ASSERT_TRUE(choice["message"].contains("tool_calls")) << res->body;
  ASSERT_EQ(choice["message"]["tool_calls"].size(), 1u) << res->body;
  EXPECT_EQ(choice["message"]["tool_calls"][0]["function"]["name"], "get_weather");
  EXPECT_EQ(
      Json::parse(choice["message"]["tool_calls"][0]["function"]["arguments"].get<std::string>()),
      Json({{"city", "Oslo"}}));
  EXPECT_EQ(choice["finish_reason"], "tool_calls");
  EXPECT_NE(backend().last_prompt_text().find("\"name\": \"get_weather\""), std::string::npos);

  // The result comes back as an ipython turn after the call the template writes out again.
  Json next = body;
  next["messages"].push_back(
      {{"role", "assistant"}, {"content", ""}, {"tool_calls", choice["message"]["tool_calls"]}});
  next["messages"].push_back({{"role", "tool"},
                              {"tool_call_id", choice["message"]["tool_calls"][0]["id"]},
                              {"content", "-3 C [[reply:Cold.]]"}});
  auto final_res = http().post("/v1/chat/completions", next);
  EXPECT_EQ(Json::parse(final_res->body)["choices"][0]["message"]["content"], "Cold.");
  EXPECT_NE(
      backend().last_prompt_text().find("{\"name\": \"get_weather\", \"parameters\": {\"city\": "
                                        "\"Oslo\"}}<|eot_id|><|start_header_id|>ipython"),
      std::string::npos)
      << backend().last_prompt_text();
  // Without tools the same text is just text.
  auto plain = http().post("/v1/chat/completions", chat_body("Weather in Oslo? " + reply));
  EXPECT_EQ(Json::parse(plain->body)["choices"][0]["message"]["content"],
            "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Oslo\"}}");
}

TEST_F(ScriptedHttp, SeveralToolCallsWithTextFirst) {
  ScriptedOptions so;
  so.tokenizer = kQwen;
  serve(so);
  const std::string reply =
      "[[reply:Checking both.\\n<tool_call>\\n{\"name\": \"get_weather\", \"arguments\": "
      "{\"city\": \"A\"}}\\n</tool_call>\\n"
      "<tool_call>\\n{\"name\": \"get_weather\", \"arguments\": {\"city\": "
      "\"B\"}}\\n</tool_call>]]";
  Json body = chat_body(reply, {{"tools", {kWeatherTool}}, {"stream", true}});
  const ChatStream s = read_chat_stream(http().post("/v1/chat/completions", body)->body);
  EXPECT_EQ(s.content, "Checking both.\n");
  ASSERT_EQ(s.calls.size(), 2u);
  EXPECT_EQ(Json::parse(s.calls[1].second), Json({{"city", "B"}}));
  EXPECT_NE(s.call_ids[0], s.call_ids[1]);

  Json anthropic = messages_body(
      reply,
      {{"tools", Json::parse(R"([{"name": "get_weather", "input_schema": {"type": "object"}}])")}});
  const Json msg = Json::parse(http().post("/v1/messages", anthropic)->body);
  ASSERT_EQ(msg["content"].size(), 3u) << msg.dump();
  EXPECT_EQ(msg["content"][0]["type"], "text");
  EXPECT_EQ(msg["content"][1]["input"], Json({{"city", "A"}}));
  EXPECT_EQ(msg["content"][2]["input"], Json({{"city", "B"}}));
}

// ---- long prefill, disconnects, limits, shutdown ----------------------------------------------

TEST_F(ScriptedHttp, PingsDuringALongPrefill) {
  server::ServerOptions opts;
  opts.ping_interval_s = 0.2;
  serve({}, opts);
  auto anthropic = http().post(
      "/v1/messages", messages_body("[[prefill_ms:1200]][[reply:late]]", {{"stream", true}}));
  int pings_before_text = 0;
  for (const SseEvent& e : parse_sse(anthropic->body)) {
    if (e.event == "content_block_start") break;
    if (e.event == "ping") ++pings_before_text;
  }
  EXPECT_GE(pings_before_text, 3);
  auto openai = http().post("/v1/chat/completions",
                            chat_body("[[prefill_ms:1200]][[reply:late]]", {{"stream", true}}));
  const ChatStream s = read_chat_stream(openai->body);
  EXPECT_GE(s.comments, 3);
  EXPECT_EQ(s.content, "late");
}

TEST_F(ScriptedHttp, ClientDisconnectMidStreamFreesTheSlot) {
  serve();
  const std::string body =
      chat_body("[[token_ms:50]][[reply:" + std::string(300, 'z') + "]]", {{"stream", true}})
          .dump();
  const std::string got = request_then_hang_up(http().port(), "/v1/chat/completions", body,
                                               "\"content\":\"z", std::chrono::milliseconds(5000));
  ASSERT_NE(got.find("\"content\":\"z"), std::string::npos);
  EXPECT_TRUE(eventually([&] { return http().metric("hwledger_client_disconnects_total") == 1; }));
  EXPECT_TRUE(eventually([&] { return backend().scheduler_stats().running == 0; }));
  EXPECT_EQ(http().metric("hwledger_running_sequences"), 0);
  EXPECT_EQ(http().metric("hwledger_http_generations_active"), 0);

  // The same for a non-streaming request whose client gives up.
  const std::string plain =
      chat_body("[[token_ms:50]][[reply:" + std::string(300, 'z') + "]]").dump();
  request_then_hang_up(http().port(), "/v1/chat/completions", plain, "never",
                       std::chrono::milliseconds(300));
  EXPECT_TRUE(eventually([&] { return http().metric("hwledger_client_disconnects_total") == 2; }));
  EXPECT_TRUE(eventually([&] { return backend().scheduler_stats().running == 0; }));
}

TEST_F(ScriptedHttp, QueueFullIs503Or529WithRetryAfter) {
  ScriptedOptions so;
  so.max_running = 1;
  so.max_queue = 1;
  serve(so);
  const std::string slow =
      chat_body("[[token_ms:20]][[reply:" + std::string(60, 'q') + "]]").dump();
  auto running =
      std::async(std::launch::async, [&] { return http().post_raw("/v1/chat/completions", slow); });
  ASSERT_TRUE(eventually([&] { return backend().scheduler_stats().running == 1; }));
  auto waiting =
      std::async(std::launch::async, [&] { return http().post_raw("/v1/chat/completions", slow); });
  ASSERT_TRUE(eventually([&] { return backend().scheduler_stats().queued == 1; }));
  auto openai = http().post("/v1/chat/completions", chat_body("hi"));
  EXPECT_EQ(openai->status, 503);
  EXPECT_EQ(openai->get_header_value("Retry-After"), "1");
  EXPECT_EQ(Json::parse(openai->body)["error"]["type"], "server_error");
  auto anthropic = http().post("/v1/messages", messages_body("hi"));
  EXPECT_EQ(anthropic->status, 529);
  EXPECT_EQ(Json::parse(anthropic->body)["error"]["type"], "overloaded_error");
  EXPECT_EQ(running.get()->status, 200);
  EXPECT_EQ(waiting.get()->status, 200);
  EXPECT_EQ(http().metric("hwledger_queue_rejections_total"), 2);
}

TEST_F(ScriptedHttp, ConnectionsBeyondTheCapGet503) {
  server::ServerOptions opts;
  opts.max_connections = 2;
  serve({}, opts);
  const std::string slow =
      chat_body("[[token_ms:20]][[reply:" + std::string(60, 'c') + "]]").dump();
  auto a =
      std::async(std::launch::async, [&] { return http().post_raw("/v1/chat/completions", slow); });
  auto b =
      std::async(std::launch::async, [&] { return http().post_raw("/v1/chat/completions", slow); });
  ASSERT_TRUE(eventually([&] { return backend().scheduler_stats().running == 2; }));
  auto third = http().post("/v1/chat/completions", chat_body("hi"));
  EXPECT_EQ(third->status, 503);
  EXPECT_NE(
      Json::parse(third->body)["error"]["message"].get<std::string>().find("too many connections"),
      std::string::npos);
  EXPECT_EQ(a.get()->status, 200);
  EXPECT_EQ(b.get()->status, 200);
}

TEST_F(ScriptedHttp, ThirtyTwoConcurrentStreamsAllComplete) {
  serve();
  std::vector<std::future<httplib::Result>> streams;
  for (int i = 0; i < 32; ++i) {
    streams.push_back(std::async(std::launch::async, [&, i] {
      return http().post("/v1/chat/completions", chat_body("[[token_ms:5]][[reply:stream " +
                                                               std::to_string(i) + " says hello]]",
                                                           {{"stream", true}}));
    }));
  }
  for (int i = 0; i < 32; ++i) {
    auto res = streams[i].get();
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 200);
    const ChatStream s = read_chat_stream(res->body);
    EXPECT_EQ(s.content, "stream " + std::to_string(i) + " says hello");
    EXPECT_TRUE(s.done);
  }
}

TEST_F(ScriptedHttp, StopLetsARunningStreamFinish) {
  serve();
  auto stream = std::async(std::launch::async, [&] {
    return http().post(
        "/v1/chat/completions",
        chat_body("[[token_ms:30]][[reply:" + std::string(40, 's') + "]]", {{"stream", true}}));
  });
  ASSERT_TRUE(eventually([&] { return backend().scheduler_stats().running == 1; }));
  http().stop(10);
  auto res = stream.get();
  ASSERT_TRUE(res);
  const ChatStream s = read_chat_stream(res->body);
  EXPECT_TRUE(s.done);
  EXPECT_EQ(s.content, std::string(40, 's'));
}

TEST_F(ScriptedHttp, MetricsInPrometheusFormat) {
  serve();
  http().post("/v1/chat/completions", chat_body("[[reply:x]]"));
  http().post("/v1/chat/completions", chat_body("[[reply:x]]", {{"model", "nope"}}));
  // Requests are counted once their response is out, so the second may lag a moment.
  EXPECT_TRUE(eventually([&] {
    return http().get("/metrics")->body.find("route=\"/v1/chat/completions\",status=\"404\"") !=
           std::string::npos;
  }));
  auto res = http().get("/metrics");
  ASSERT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("Content-Type").rfind("text/plain", 0), 0u);
  const std::string& text = res->body;
  SCOPED_TRACE(text.substr(0, 600));
  EXPECT_NE(
      text.find("hwledger_http_requests_total{route=\"/v1/chat/completions\",status=\"200\"} 1"),
      std::string::npos);
  EXPECT_NE(
      text.find("hwledger_http_requests_total{route=\"/v1/chat/completions\",status=\"404\"} 1"),
      std::string::npos);
  EXPECT_NE(text.find("# TYPE hwledger_time_to_first_token_seconds histogram"), std::string::npos);
  EXPECT_NE(text.find("hwledger_time_to_first_token_seconds_count 1"), std::string::npos);
  EXPECT_NE(text.find("hwledger_inter_token_latency_seconds_bucket{le=\"+Inf\"}"),
            std::string::npos);
  EXPECT_NE(text.find("hwledger_kv_cache_hits_total{tier=\"working\"}"), std::string::npos);
  EXPECT_NE(text.find("hwledger_queue_depth 0"), std::string::npos);
  EXPECT_NE(text.find("hwledger_generated_tokens_total 2"), std::string::npos);
}

}  // namespace
}  // namespace hwledger::test
