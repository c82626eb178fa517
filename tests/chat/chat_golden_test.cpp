// Every chat case of the tokenizer goldens (rendered by transformers.js and cross-checked with
// Python transformers + Jinja2) must render byte for byte with the model's own chat template.
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "chat/chat_template.h"

namespace hwledger::chat {
namespace {

using Json = nlohmann::ordered_json;

Json load_json(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open " + path);
  return Json::parse(in);
}

// tokenizer_config.json writes special tokens as "text" or {"content": "text", ...}.
Json special_token(const Json& config, const char* name) {
  if (!config.contains(name)) return nullptr;
  const Json& token = config[name];
  if (token.is_object()) return token.value("content", Json());
  return token;
}

class ChatGolden : public testing::TestWithParam<std::string> {};

TEST_P(ChatGolden, RendersEveryGoldenChat) {
  const std::string model = GetParam();
  const std::string shared = HWLEDGER_SHARED_DIR;
  const Json config = load_json(shared + "/models/" + model + "/tokenizer_config.json");
  const Json golden = load_json(shared + "/golden/tokenizers/" + model + ".json");
  const ChatTemplate chat_template(config.at("chat_template").get<std::string>());
  const Json bos = special_token(config, "bos_token");
  const Json eos = special_token(config, "eos_token");

  ASSERT_FALSE(golden.at("chats").empty());
  int index = 0;
  for (const Json& chat : golden.at("chats")) {
    SCOPED_TRACE(model + " chat #" + std::to_string(index++) + ": " + chat.at("messages").dump());
    // The context transformers.js's apply_chat_template builds (make_tokenizer_golden.mjs).
    Json context = Json::object();
    context["messages"] = chat.at("messages");
    context["add_generation_prompt"] = chat.value("add_generation_prompt", false);
    context["tools"] = chat.contains("tools") ? chat["tools"] : Json();
    if (!bos.is_null()) context["bos_token"] = bos;
    if (!eos.is_null()) context["eos_token"] = eos;
    if (chat.contains("extra")) {
      for (const auto& [key, value] : chat["extra"].items()) context[key] = value;
    }
    if (!chat.at("error").is_null()) {
      EXPECT_THROW(chat_template.render(context), TemplateError);
      continue;
    }
    EXPECT_EQ(chat_template.render(context), chat.at("rendered").get<std::string>());
  }
}

INSTANTIATE_TEST_SUITE_P(Models, ChatGolden, testing::Values("qwen3", "llama3.1"));

// The same through render_chat, with tools passed when the case has them.
TEST(ChatGoldenRenderChat, Qwen3ToolCall) {
  const std::string shared = HWLEDGER_SHARED_DIR;
  const Json config = load_json(shared + "/models/qwen3/tokenizer_config.json");
  const Json golden = load_json(shared + "/golden/tokenizers/qwen3.json");
  const ChatTemplate chat_template(config.at("chat_template").get<std::string>());
  int checked = 0;
  for (const Json& chat : golden.at("chats")) {
    if (!chat.at("error").is_null()) continue;
    const Json tools = chat.contains("tools") ? chat["tools"] : Json();
    EXPECT_EQ(render_chat(chat_template, chat.at("messages"), tools,
                          chat.value("add_generation_prompt", false), "", "<|im_end|>"),
              chat.at("rendered").get<std::string>());
    ++checked;
  }
  EXPECT_GT(checked, 0);
}

}  // namespace
}  // namespace hwledger::chat
