// ModelContext: what it loads from a model folder (tokenizer, chat template, stop ids) and how
// it renders OpenAI-shaped chats (content parts, tool-call arguments sent as JSON strings),
// checked against transformers.js renderings of the real Qwen3 template.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "chat/chat_template.h"
#include "sched/model_context.h"
#include "sched_test_support.h"
#include "util/error.h"

namespace hwledger {
namespace {

namespace fs = std::filesystem;
using ordered_json = nlohmann::ordered_json;

EngineOptions engine_options() {
  EngineOptions o;
  o.threads = 1;
  o.max_context = 256;
  o.load.show_progress = false;
  return o;
}

// A model folder made of links to other files plus files written here.
std::string make_model_dir(const std::string& name, const std::vector<std::pair<std::string, std::string>>& links,
                           const std::vector<std::pair<std::string, std::string>>& files) {
  fs::path dir = fs::path(HWLEDGER_BINARY_DIR) / ("sched-test-" + name + "-" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  for (const auto& [file, target] : links) fs::create_symlink(target, dir / file);
  for (const auto& [file, text] : files) testing::write_text(dir / file, text);
  return dir.string();
}

std::string expect_input_error(const std::function<void()>& f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no InputError";
  return {};
}

TEST(ModelContext, DemoModelLoadsTokenizerTemplateAndStopIds) {
  ModelContext ctx(testing::demo_model_dir(), "demo", engine_options(), SchedulerOptions{});
  EXPECT_EQ(ctx.name(), "demo");
  ASSERT_NE(ctx.tokenizer(), nullptr);
  ASSERT_NE(ctx.chat_template(), nullptr);
  EXPECT_EQ(ctx.context_length(), 256);
  // tokenizer_config.json's eos_token <|im_end|>, then config.json's eos_token_id 2.
  EXPECT_EQ(ctx.stop_token_ids(), (std::vector<int32_t>{1023, 2}));
  nlohmann::json messages = {{{"role", "user"}, {"content", "Hi"}}};
  const std::string text = ctx.render_chat(messages, nullptr, true);
  EXPECT_EQ(text, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  auto ids = ctx.encode(text, false);
  EXPECT_EQ(ids.front(), 1022);  // <|im_start|> is split out as its special token
  EXPECT_EQ(ctx.tokenizer()->decode(ids), text);

  // The scheduler serves the encoded prompt.
  auto sink = std::make_shared<testing::RecordingSink>();
  GenerateRequest r;
  r.prompt = ids;
  r.max_tokens = 4;
  ASSERT_TRUE(ctx.scheduler().submit(r, sink));
  ASSERT_TRUE(sink->wait());
  EXPECT_NE(sink->result.reason, StopReason::Error) << sink->result.error;
}

TEST(ModelContext, ContentPartsAreFlattenedToText) {
  ModelContext ctx(testing::demo_model_dir(), "demo", engine_options(), SchedulerOptions{});
  nlohmann::json messages = nlohmann::json::parse(R"([
    {"role": "user", "content": [{"type": "text", "text": "Hello"}, {"type": "text", "text": "world"}]}])");
  EXPECT_EQ(ctx.render_chat(messages, nullptr, false), "<|im_start|>user\nHello\nworld<|im_end|>\n");
  nlohmann::json image = nlohmann::json::parse(R"([
    {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}])");
  std::string error = expect_input_error([&] { ctx.render_chat(image, nullptr, false); });
  EXPECT_NE(error.find("messages[0].content[0]"), std::string::npos) << error;
  EXPECT_NE(error.find("image_url"), std::string::npos) << error;
  EXPECT_NE(expect_input_error([&] { ctx.render_chat(nlohmann::json::object(), nullptr, false); })
                .find("messages must be a JSON array"),
            std::string::npos);
}

class Qwen3Context : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string golden = HWLEDGER_SHARED_DIR "/golden/qwen3-tiny";
    const std::string tokenizer = HWLEDGER_SHARED_DIR "/models/qwen3";
    dir_ = new std::string(make_model_dir(
        "qwen3",
        {{"config.json", golden + "/config.json"},
         {"model.safetensors", golden + "/model.safetensors"},
         {"tokenizer.json", tokenizer + "/tokenizer.json"},
         {"tokenizer_config.json", tokenizer + "/tokenizer_config.json"}},
        {{"generation_config.json", R"({"bos_token_id": 151643, "eos_token_id": [151645, 151643]})"}}));
    ctx_ = new ModelContext(*dir_, "qwen3-tiny", engine_options(), SchedulerOptions{});
    std::ifstream in(HWLEDGER_SHARED_DIR "/golden/tokenizers/qwen3.json");
    golden_ = new ordered_json(ordered_json::parse(in));
  }
  static void TearDownTestSuite() {
    delete ctx_;
    fs::remove_all(*dir_);
    delete dir_;
    delete golden_;
  }
  static std::string* dir_;
  static ModelContext* ctx_;
  static ordered_json* golden_;
};
std::string* Qwen3Context::dir_ = nullptr;
ModelContext* Qwen3Context::ctx_ = nullptr;
ordered_json* Qwen3Context::golden_ = nullptr;

TEST_F(Qwen3Context, StopIdsFromTokenizerGenerationConfigAndConfig) {
  EXPECT_EQ(ctx_->stop_token_ids(), (std::vector<int32_t>{151645, 151643, 2}));
}

TEST_F(Qwen3Context, PlainChatsMatchTransformers) {
  for (const auto& chat : (*golden_)["chats"]) {
    if (chat.contains("tools")) continue;
    EXPECT_EQ(ctx_->render_chat(nlohmann::json(chat["messages"]), nullptr, chat["add_generation_prompt"].get<bool>()),
              chat["rendered"].get<std::string>());
  }
}

TEST_F(Qwen3Context, OpenAIShapedToolCallsMatchTransformers) {
  // The golden passes tool-call arguments as an object; OpenAI clients send a JSON string and
  // the content as parts. Both must render the same.
  int checked = 0;
  for (const auto& chat : (*golden_)["chats"]) {
    if (!chat.contains("tools")) continue;
    ordered_json messages = chat["messages"];
    for (auto& m : messages) {
      if (m["content"].is_string() && !m["content"].get<std::string>().empty())
        m["content"] = ordered_json::array({{{"type", "text"}, {"text", m["content"]}}});
      if (m.contains("tool_calls"))
        for (auto& call : m["tool_calls"]) call["function"]["arguments"] = call["function"]["arguments"].dump();
    }
    EXPECT_EQ(ctx_->render_chat_ordered(messages, chat["tools"], chat["add_generation_prompt"].get<bool>()),
              chat["rendered"].get<std::string>());
    ++checked;
  }
  EXPECT_EQ(checked, 2);
}

TEST(ModelContext, TemplateListPicksDefaultAndExtraVariablesReachIt) {
  const std::string demo = testing::demo_model_dir();
  nlohmann::json config = nlohmann::json::parse(tokenizer::demo_tokenizer_config_json());
  config["chat_template"] = nlohmann::json::array(
      {{{"name", "tool_use"}, {"template", "TOOL"}},
       {{"name", "default"},
        {"template",
         "{% for m in messages %}{{ m.role }}:{% for c in m.tool_calls %}{{ c.function.arguments | tojson }}"
         "{% endfor %}{% endfor %}|{{ flavour }}|{{ eos_token }}"}}});
  const std::string dir = make_model_dir(
      "template-list",
      {{"config.json", demo + "/config.json"},
       {"model.safetensors", demo + "/model.safetensors"},
       {"tokenizer.json", demo + "/tokenizer.json"}},
      {{"tokenizer_config.json", config.dump()}, {"generation_config.json", R"({"eos_token_id": 1021})"}});
  {
    ModelContext ctx(dir, "custom", engine_options(), SchedulerOptions{});
    EXPECT_EQ(ctx.stop_token_ids(), (std::vector<int32_t>{1023, 1021, 2}));
    ordered_json messages = ordered_json::parse(R"([
      {"role": "assistant", "content": null,
       "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": "{\"b\": 1, \"a\": [2]}"}},
                      {"type": "function", "function": {"name": "g", "arguments": "not json"}}]}])");
    EXPECT_EQ(ctx.render_chat_ordered(messages, nullptr, false, {{"flavour", "mint"}}),
              "assistant:{\"b\": 1, \"a\": [2]}\"not json\"|mint|<|im_end|>");
  }
  fs::remove_all(dir);
}

TEST(ModelContext, BadGenerationConfigIsAnInputError) {
  const std::string demo = testing::demo_model_dir();
  const std::string dir = make_model_dir("bad-genconfig",
                                         {{"config.json", demo + "/config.json"},
                                          {"model.safetensors", demo + "/model.safetensors"}},
                                         {{"generation_config.json", R"({"eos_token_id": "two"})"}});
  std::string error =
      expect_input_error([&] { ModelContext ctx(dir, "bad", engine_options(), SchedulerOptions{}); });
  EXPECT_NE(error.find("generation_config.json"), std::string::npos) << error;
  EXPECT_NE(error.find("\"two\""), std::string::npos) << error;
  fs::remove_all(dir);
}

TEST(ModelContext, WithoutATokenizerOnlyTokenIdsWork) {
  ModelContext ctx(HWLEDGER_SHARED_DIR "/golden/qwen3-tiny", "qwen3-tiny", engine_options(), SchedulerOptions{});
  EXPECT_EQ(ctx.tokenizer(), nullptr);
  EXPECT_EQ(ctx.chat_template(), nullptr);
  EXPECT_EQ(ctx.stop_token_ids(), (std::vector<int32_t>{2}));
  EXPECT_NE(expect_input_error([&] { ctx.encode("hi", false); }).find("prompt token ids"), std::string::npos);
  EXPECT_NE(expect_input_error([&] { ctx.render_chat(nlohmann::json::array(), nullptr, true); })
                .find("has no chat template"),
            std::string::npos);
}

}  // namespace
}  // namespace hwledger
