// Errors: each API's error shape, the right status and a message that says what was wrong.
#include <gtest/gtest.h>

#include "scripted_backend.h"
#include "server_fixture.h"

namespace hwledger::test {
namespace {

class HttpErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    ScriptedOptions so;
    so.context_length = 256;
    backend_ = std::make_unique<ScriptedBackend>(so);
    server::ServerOptions opts;
    opts.port = 0;
    opts.api_key = "sekrit";
    opts.max_body_bytes = 64 * 1024;
    server_ = std::make_unique<LiveServer>(*backend_, opts);
  }
  void TearDown() override {
    server_.reset();
    backend_.reset();
  }

  const httplib::Headers auth{{"Authorization", "Bearer sekrit"}};

  // OpenAI error: {"error": {"message", "type", "param", "code"}}
  Json openai_error(const httplib::Result& res, int status) {
    EXPECT_TRUE(res);
    if (!res) return {};
    EXPECT_EQ(res->status, status) << res->body;
    const Json body = Json::parse(res->body);
    EXPECT_TRUE(body["error"].contains("message"));
    EXPECT_TRUE(body["error"].contains("type"));
    EXPECT_TRUE(body["error"].contains("param"));
    EXPECT_TRUE(body["error"].contains("code"));
    return body["error"];
  }
  // Anthropic error: {"type": "error", "error": {"type", "message"}}
  Json anthropic_error(const httplib::Result& res, int status) {
    EXPECT_TRUE(res);
    if (!res) return {};
    EXPECT_EQ(res->status, status) << res->body;
    const Json body = Json::parse(res->body);
    EXPECT_EQ(body["type"], "error");
    return body["error"];
  }
  std::string message(const Json& error) { return error.value("message", ""); }

  std::unique_ptr<ScriptedBackend> backend_;
  std::unique_ptr<LiveServer> server_;
};

const Json kChat = {{"model", "scripted"}, {"messages", {{{"role", "user"}, {"content", "hi"}}}}};
const Json kMessages = {{"model", "scripted"},
                        {"max_tokens", 8},
                        {"messages", {{{"role", "user"}, {"content", "hi"}}}}};

TEST_F(HttpErrors, ApiKey) {
  const Json e = openai_error(server_->post("/v1/chat/completions", kChat), 401);
  EXPECT_EQ(e["code"], "invalid_api_key");
  EXPECT_NE(message(e).find("Bearer"), std::string::npos);
  openai_error(server_->post("/v1/chat/completions", kChat, {{"Authorization", "Bearer wrong"}}),
               401);
  EXPECT_EQ(anthropic_error(server_->post("/v1/messages", kMessages, {{"x-api-key", "wrong"}}),
                            401)["type"],
            "authentication_error");
  EXPECT_EQ(server_->post("/v1/chat/completions", kChat, auth)->status, 200);
  EXPECT_EQ(server_->post("/v1/messages", kMessages, {{"x-api-key", "sekrit"}})->status, 200);
  EXPECT_EQ(server_->get("/health")->status, 200);  // exempt
  EXPECT_EQ(server_->get("/metrics")->status, 401);
  EXPECT_EQ(server_->get("/v1/models")->status, 401);
}

TEST_F(HttpErrors, MalformedJsonAndWrongTypes) {
  Json e = openai_error(
      server_->post_raw("/v1/chat/completions", "{\"model\": \"scripted\", \"messages\": [", auth),
      400);
  EXPECT_EQ(e["type"], "invalid_request_error");
  EXPECT_NE(message(e).find("not valid JSON"), std::string::npos) << message(e);

  e = openai_error(
      server_->post_raw("/v1/chat/completions",
                        R"({"model": "scripted", "messages": [], "temperature": 1e999})", auth),
      400);
  EXPECT_NE(message(e).find("number overflow"), std::string::npos) << message(e);

  Json body = kChat;
  body["temperature"] = "hot";
  e = openai_error(server_->post("/v1/chat/completions", body, auth), 400);
  EXPECT_EQ(message(e), "'temperature' must be a number, got a string (\"hot\")");
  EXPECT_EQ(e["param"], "temperature");

  body = kChat;
  body["messages"] = "hello";
  e = openai_error(server_->post("/v1/chat/completions", body, auth), 400);
  EXPECT_EQ(message(e), "'messages' must be an array, got a string (\"hello\")");

  body = kChat;
  body["messages"][0]["content"] = 5;
  e = openai_error(server_->post("/v1/chat/completions", body, auth), 400);
  EXPECT_NE(message(e).find("'messages[0].content' must be a string or an array of content parts, "
                            "got an integer (5)"),
            std::string::npos);

  body = kChat;
  body["max_tokens"] = 1.5;
  EXPECT_NE(message(openai_error(server_->post("/v1/chat/completions", body, auth), 400))
                .find("'max_tokens' must be an integer"),
            std::string::npos);

  body = kChat;
  body["temperature"] = 3;
  EXPECT_EQ(message(openai_error(server_->post("/v1/chat/completions", body, auth), 400)),
            "'temperature' must be between 0 and 2, got 3");

  body = kChat;
  body["n"] = 2;
  EXPECT_NE(message(openai_error(server_->post("/v1/chat/completions", body, auth), 400))
                .find("'n' must be 1"),
            std::string::npos);

  body = kChat;
  body.erase("messages");
  EXPECT_NE(message(openai_error(server_->post("/v1/chat/completions", body, auth), 400))
                .find("'messages' is required"),
            std::string::npos);

  body = kChat;
  body["messages"][0]["role"] = "wizard";
  EXPECT_NE(
      message(openai_error(server_->post("/v1/chat/completions", body, auth), 400)).find("wizard"),
      std::string::npos);

  Json m = kMessages;
  m.erase("max_tokens");
  Json ae = anthropic_error(server_->post("/v1/messages", m, auth), 400);
  EXPECT_EQ(ae["type"], "invalid_request_error");
  EXPECT_NE(message(ae).find("'max_tokens' is required"), std::string::npos);

  m = kMessages;
  m["messages"][0]["content"] = Json::array({{{"type", "image"}, {"source", Json::object()}}});
  EXPECT_NE(message(anthropic_error(server_->post("/v1/messages", m, auth), 400)).find("\"image\""),
            std::string::npos);

  EXPECT_NE(message(anthropic_error(server_->post_raw("/v1/messages", "[1,2]", auth), 400))
                .find("must be a JSON object"),
            std::string::npos);
}

TEST_F(HttpErrors, UnknownModelAndRoute) {
  Json body = kChat;
  body["model"] = "gpt-5";
  Json e = openai_error(server_->post("/v1/chat/completions", body, auth), 404);
  EXPECT_EQ(e["code"], "model_not_found");
  EXPECT_NE(message(e).find("'gpt-5'"), std::string::npos);
  EXPECT_NE(message(e).find("'scripted'"), std::string::npos);
  Json m = kMessages;
  m["model"] = "claude";
  EXPECT_EQ(anthropic_error(server_->post("/v1/messages", m, auth), 404)["type"],
            "not_found_error");
  e = openai_error(server_->get("/v1/nothing", auth), 404);
  EXPECT_NE(message(e).find("/v1/nothing"), std::string::npos);
}

TEST_F(HttpErrors, BodyTooLarge) {
  Json body = kChat;
  body["messages"][0]["content"] = std::string(100 * 1024, 'a');
  Json e = openai_error(server_->post("/v1/chat/completions", body, auth), 413);
  EXPECT_NE(message(e).find("65536"), std::string::npos);
  Json m = kMessages;
  m["messages"][0]["content"] = std::string(100 * 1024, 'a');
  EXPECT_EQ(anthropic_error(server_->post("/v1/messages", m, auth), 413)["type"],
            "request_too_large");
  // The connection pool is still fine afterwards.
  EXPECT_EQ(server_->post("/v1/chat/completions", kChat, auth)->status, 200);
}

TEST_F(HttpErrors, PromptLongerThanTheContext) {
  Json body = kChat;
  body["messages"][0]["content"] = std::string(2000, 'w') + " " + std::string(2000, 'q');
  Json e = openai_error(server_->post("/v1/chat/completions", body, auth), 400);
  EXPECT_EQ(e["code"], "context_length_exceeded");
  EXPECT_NE(message(e).find("maximum context length is 256 tokens"), std::string::npos)
      << message(e);

  // A short prompt with max_tokens past the context.
  body = kChat;
  body["max_tokens"] = 250;
  e = openai_error(server_->post("/v1/chat/completions", body, auth), 400);
  EXPECT_NE(message(e).find("250 in the completion"), std::string::npos) << message(e);

  Json m = kMessages;
  m["max_tokens"] = 1000;
  EXPECT_EQ(anthropic_error(server_->post("/v1/messages", m, auth), 400)["type"],
            "invalid_request_error");
}

TEST_F(HttpErrors, ToolsValidated) {
  Json body = kChat;
  body["tools"] = Json::array({{{"type", "retrieval"}}});
  EXPECT_NE(message(openai_error(server_->post("/v1/chat/completions", body, auth), 400))
                .find("\"retrieval\""),
            std::string::npos);
  body["tools"] = Json::array({{{"type", "function"}, {"function", {{"description", "no name"}}}}});
  EXPECT_NE(message(openai_error(server_->post("/v1/chat/completions", body, auth), 400))
                .find("'tools[0].function.name' is required"),
            std::string::npos);
  body["tools"] = Json::array({{{"type", "function"}, {"function", {{"name", "f"}}}}});
  body["tool_choice"] = {{"type", "function"}, {"function", {{"name", "g"}}}};
  EXPECT_NE(
      message(openai_error(server_->post("/v1/chat/completions", body, auth), 400)).find("\"g\""),
      std::string::npos);
}

}  // namespace
}  // namespace hwledger::test
