// tool_choice is enforced: a forced choice (OpenAI "required" / a named function, Anthropic
// "any" / "tool") starts the assistant's turn with a tool call's opening, and "required" among
// several tools constrains the name to one of them. A random-weight model with the real Qwen3
// tokenizer and chat template shows it: whatever noise it would write, the answer is a call.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include "model/synth.h"
#include "sched/model_context.h"
#include "server/reply.h"
#include "server/tool_choice.h"
#include "server_fixture.h"
#include "tokenizer/tokenizer.h"

namespace hwledger::test {
namespace {

namespace fs = std::filesystem;
using server::ToolCallFormat;
using server::ToolChoice;

const std::string kShared = HWLEDGER_SHARED_DIR;

const Json kOpenAITools = Json::array(
    {{{"type", "function"},
      {"function",
       {{"name", "get_weather"},
        {"description", "Weather in a city"},
        {"parameters", {{"type", "object"}, {"properties", {{"city", {{"type", "string"}}}}}}}}}},
     {{"type", "function"},
      {"function",
       {{"name", "get_time"},
        {"description", "Time in a zone"},
        {"parameters", {{"type", "object"}, {"properties", {{"zone", {{"type", "string"}}}}}}}}}}});

const Json kAnthropicTools = Json::array(
    {{{"name", "get_weather"},
      {"description", "Weather in a city"},
      {"input_schema", {{"type", "object"}, {"properties", {{"city", {{"type", "string"}}}}}}}},
     {{"name", "get_time"},
      {"description", "Time in a zone"},
      {"input_schema", {{"type", "object"}, {"properties", {{"zone", {{"type", "string"}}}}}}}}});

const Json kUser = Json::array({{{"role", "user"}, {"content", "What is the weather in Paris?"}}});

class ToolChoiceHttp : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / fmt::format("hwledger-tool-choice-test-{}", getpid());
    fs::create_directories(dir_);
    // Small, with Qwen3's vocabulary: its tokenizer and template (which teaches <tool_call>).
    nlohmann::json config = find_synth_preset("demo").config;
    config["vocab_size"] = 151936;
    config["hidden_size"] = 64;
    config["intermediate_size"] = 128;
    config["num_hidden_layers"] = 2;
    config["num_attention_heads"] = 2;
    config["num_key_value_heads"] = 1;
    config["head_dim"] = 32;
    config["eos_token_id"] = 151645;
    synth_model(config, 5, DType::BF16, dir_.string(), false);
    for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
      fs::copy_file(kShared + "/models/qwen3/" + f, dir_ / f);
    EngineOptions eo;
    eo.max_context = 2048;
    eo.threads = 2;
    model_ = new ModelContext(dir_.string(), "tiny-qwen", eo, SchedulerOptions{});
    server::ServerOptions opts;
    opts.port = 0;
    server_ = new LiveServer(*model_, opts);
  }
  static void TearDownTestSuite() {
    delete server_;
    delete model_;
    fs::remove_all(dir_);
  }

  static Json chat(const Json& tool_choice, bool stream = false) {
    Json body = {{"model", "tiny-qwen"}, {"messages", kUser},  {"tools", kOpenAITools},
                 {"max_tokens", 24},     {"temperature", 0.8}, {"seed", 7},
                 {"stream", stream}};
    if (!tool_choice.is_null()) body["tool_choice"] = tool_choice;
    return body;
  }
  static Json messages(const Json& tool_choice) {
    Json body = {{"model", "tiny-qwen"}, {"messages", kUser},  {"tools", kAnthropicTools},
                 {"max_tokens", 24},     {"temperature", 0.8}, {"top_k", 50}};
    if (!tool_choice.is_null()) body["tool_choice"] = tool_choice;
    return body;
  }

  static inline fs::path dir_;
  static inline ModelContext* model_ = nullptr;
  static inline LiveServer* server_ = nullptr;
};

bool is_tool_name(const std::string& name) {
  return name == "get_weather" || name == "get_time";
}

TEST_F(ToolChoiceHttp, OpenAINamedFunctionIsCalled) {
  for (const char* name : {"get_time", "get_weather"}) {
    auto res = server_->post("/v1/chat/completions",
                             chat({{"type", "function"}, {"function", {{"name", name}}}}));
    ASSERT_EQ(res->status, 200) << res->body;
    const Json choice = Json::parse(res->body)["choices"][0];
    ASSERT_TRUE(choice["message"].contains("tool_calls")) << res->body;
    const Json call = choice["message"]["tool_calls"][0];
    EXPECT_EQ(call["function"]["name"], name) << res->body;
    EXPECT_EQ(call["function"]["arguments"].get<std::string>().substr(0, 1), "{") << res->body;
    // Random weights rarely close the call before max_tokens.
    EXPECT_TRUE(choice["finish_reason"] == "tool_calls" || choice["finish_reason"] == "length")
        << res->body;
  }
}

TEST_F(ToolChoiceHttp, OpenAIRequiredStreamsACallToOneOfTheTools) {
  for (int seed = 1; seed <= 3; ++seed) {
    Json body = chat("required", true);
    body["seed"] = seed;
    auto res = server_->post("/v1/chat/completions", body);
    ASSERT_EQ(res->status, 200) << res->body;
    std::string name;
    size_t at = 0;
    while ((at = res->body.find("data: {", at)) != std::string::npos) {
      const size_t eol = res->body.find('\n', at);
      const Json chunk = Json::parse(res->body.substr(at + 6, eol - at - 6));
      at = eol;
      if (chunk["choices"].empty()) continue;
      const Json& delta = chunk["choices"][0]["delta"];
      if (delta.contains("tool_calls") && delta["tool_calls"][0]["function"].contains("name"))
        name += delta["tool_calls"][0]["function"]["name"].get<std::string>();
    }
    EXPECT_TRUE(is_tool_name(name)) << "seed " << seed << ": '" << name << "'\n" << res->body;
  }
}

TEST_F(ToolChoiceHttp, AutoAndNoneLeaveTheModelFree) {
  // The same prompt as without tool_choice: nothing forced.
  auto count = [&](const Json& choice) {
    Json body = messages(choice);
    body.erase("max_tokens");
    auto res = server_->post("/v1/messages/count_tokens", body);
    EXPECT_EQ(res->status, 200) << res->body;
    return Json::parse(res->body)["input_tokens"].get<int64_t>();
  };
  const int64_t free = count(nullptr);
  EXPECT_EQ(count({{"type", "auto"}}), free);
  EXPECT_LT(count({{"type", "none"}}), free) << "none hides the tools";
  // A forced call adds its opening to the prompt, and count_tokens says so.
  EXPECT_GT(count({{"type", "tool"}, {"name", "get_time"}}), free);
}

TEST_F(ToolChoiceHttp, AnthropicToolChoiceToolAndAny) {
  auto res = server_->post("/v1/messages", messages({{"type", "tool"}, {"name", "get_time"}}));
  ASSERT_EQ(res->status, 200) << res->body;
  Json msg = Json::parse(res->body);
  ASSERT_FALSE(msg["content"].empty()) << res->body;
  const Json last = msg["content"].back();
  EXPECT_EQ(last["type"], "tool_use") << res->body;
  EXPECT_EQ(last["name"], "get_time") << res->body;
  EXPECT_TRUE(last["input"].is_object()) << res->body;

  res = server_->post("/v1/messages", messages({{"type", "any"}}));
  ASSERT_EQ(res->status, 200) << res->body;
  msg = Json::parse(res->body);
  bool called = false;
  for (const Json& block : msg["content"])
    if (block["type"] == "tool_use") called = is_tool_name(block["name"]);
  EXPECT_TRUE(called) << res->body;
}

// ---- the pieces, without a model --------------------------------------------------------------

TEST(ToolChoice, ForcedPrefixPerFormat) {
  ToolChoice named{ToolChoice::Mode::Named, "get_time", {"get_weather", "get_time"}};
  EXPECT_EQ(server::forced_tool_prefix(ToolCallFormat::Hermes, named),
            "<tool_call>\n{\"name\": \"get_time\", \"arguments\": {");
  EXPECT_EQ(server::forced_tool_prefix(ToolCallFormat::LlamaJson, named),
            "{\"name\": \"get_time\", \"parameters\": {");
  ToolChoice required{ToolChoice::Mode::Required, "", {"get_weather", "get_time"}};
  EXPECT_EQ(server::forced_tool_prefix(ToolCallFormat::Hermes, required),
            "<tool_call>\n{\"name\": \"");
  required.names = {"only"};  // required with one tool: that tool
  EXPECT_EQ(server::forced_tool_prefix(ToolCallFormat::LlamaJson, required),
            "{\"name\": \"only\", \"parameters\": {");
  EXPECT_EQ(server::forced_tool_prefix(ToolCallFormat::Hermes, ToolChoice{}), "");
}

// The constraint, driven with random logits over each real tokenizer, always spells one of the
// names followed by the arguments' opening, and then lets go.
TEST(ToolChoice, RequiredConstraintSpellsAToolName) {
  for (const char* model : {"qwen3", "llama3.1"}) {
    auto tok = tokenizer::Tokenizer::load(kShared + "/models/" + model);
    const auto format =
        std::string(model) == "qwen3" ? ToolCallFormat::Hermes : ToolCallFormat::LlamaJson;
    const std::string key = format == ToolCallFormat::Hermes ? "arguments" : "parameters";
    ToolChoice choice{ToolChoice::Mode::Required, "", {"get_weather", "get_time", "search"}};
    auto constrain = server::tool_name_constraint(tok, format, choice);
    ASSERT_TRUE(constrain);
    std::mt19937 rng(3);
    std::normal_distribution<float> noise;
    const int64_t V = static_cast<int64_t>(tok.vocab_size()) + 8;  // model rows may be padded
    std::vector<float> logits(V);
    for (int run = 0; run < 5; ++run) {
      std::vector<int32_t> generated;
      for (int step = 0; step < 40; ++step) {
        for (float& l : logits) l = noise(rng);
        constrain(logits.data(), V, generated);
        const auto best = std::max_element(logits.begin(), logits.end()) - logits.begin();
        ASSERT_TRUE(std::isfinite(logits[best]));
        generated.push_back(static_cast<int32_t>(best));
        const std::string text = tok.decode(generated);
        bool done = false;
        for (const std::string& n : choice.names) done |= text == n + "\", \"" + key + "\": {";
        if (done) break;
      }
      const std::string text = tok.decode(generated);
      bool ok = false;
      for (const std::string& n : choice.names) ok |= text == n + "\", \"" + key + "\": {";
      EXPECT_TRUE(ok) << model << ": " << text;
      // Past the opening the model is free again.
      std::vector<float> before(V, 1.0f), after = before;
      constrain(after.data(), V, generated);
      EXPECT_EQ(before, after);
    }
  }
}

TEST(ToolChoice, APrimedReplyReportsTheForcedCall) {
  server::Reply reply(ToolCallFormat::Hermes, "call_");
  reply.prime("<tool_call>\n{\"name\": \"get_time\", \"arguments\": {");
  std::vector<server::SessionEvent> events(2);
  events[0].kind = server::SessionEvent::Kind::Text;
  events[0].text = "\"zone\": \"UTC\"}}\n</tool_call>";
  events[1].kind = server::SessionEvent::Kind::Done;
  std::vector<server::OutputEvent> out;
  reply.add(events, out);
  ASSERT_EQ(reply.tool_calls().size(), 1u);
  EXPECT_EQ(reply.tool_calls()[0].name, "get_time");
  EXPECT_EQ(reply.tool_calls()[0].arguments, "{\"zone\": \"UTC\"}");
  EXPECT_EQ(reply.content(), "");
  ASSERT_FALSE(out.empty());
  EXPECT_EQ(out[0].kind, server::OutputEvent::Kind::ToolStart);
}

}  // namespace
}  // namespace hwledger::test
