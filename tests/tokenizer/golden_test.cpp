// Every case of the transformers.js goldens: ids without and with special tokens, decode, and
// (when the chat renderer is built) the chat-template renderings and their ids.
#include <gtest/gtest.h>

#include "test_support.h"

#ifdef HWLEDGER_HAVE_CHAT
#include "chat/chat_template.h"
#endif

namespace hwledger::tokenizer {
namespace {

using nlohmann::json;
using testing::golden;
using testing::model_tokenizer;

std::string show(const std::string& text) {
  return json(text).dump();
}

class GoldenTexts : public ::testing::TestWithParam<std::string> {};

TEST_P(GoldenTexts, IdsAndDecodeMatchTransformersJs) {
  const Tokenizer& tok = model_tokenizer(GetParam());
  const json& g = golden(GetParam());
  ASSERT_GE(g["texts"].size(), 40u);
  for (const json& c : g["texts"]) {
    std::string text = c["text"];
    auto want = c["ids"].get<std::vector<int32_t>>();
    auto want_special = c["ids_with_special_tokens"].get<std::vector<int32_t>>();
    std::string want_decoded = c["decoded"];
    auto ids = tok.encode(text, false);
    EXPECT_EQ(ids, want) << "text " << show(text);
    EXPECT_EQ(tok.encode(text, true), want_special) << "text " << show(text);
    EXPECT_EQ(tok.decode(want), want_decoded) << "text " << show(text);
  }
}

INSTANTIATE_TEST_SUITE_P(Models, GoldenTexts, ::testing::Values("qwen3", "llama3.1", "spm-bpe-32k"),
                         [](const auto& info) {
                           std::string name = info.param;
                           for (char& c : name)
                             if (!isalnum(uint8_t(c))) c = '_';
                           return name;
                         });

TEST(GoldenConfig, SpecialTokensFromTokenizerConfig) {
  const Tokenizer& qwen = model_tokenizer("qwen3");
  EXPECT_EQ(qwen.config().eos_token, "<|im_end|>");
  EXPECT_EQ(qwen.config().eos_id, 151645);
  EXPECT_EQ(qwen.config().bos_id, -1);
  EXPECT_FALSE(qwen.config().add_bos_token);
  EXPECT_NE(qwen.config().chat_template.find("<|im_start|>"), std::string::npos);
  EXPECT_EQ(qwen.vocab_size(), 151669u);
  EXPECT_TRUE(qwen.is_special(151645));
  EXPECT_FALSE(qwen.is_special(151667));  // <think> is added but not special
  EXPECT_EQ(qwen.token_to_id("<think>"), 151667);
  EXPECT_EQ(qwen.id_to_token(9707), "Hello");
  EXPECT_EQ(qwen.token_to_id("Ġworld"), 1879);

  const Tokenizer& llama = model_tokenizer("llama3.1");
  EXPECT_EQ(llama.config().bos_token, "<|begin_of_text|>");
  EXPECT_EQ(llama.config().bos_id, 128000);
  EXPECT_EQ(llama.config().eos_id, 128009);
  EXPECT_TRUE(llama.config().add_bos_token);  // from the TemplateProcessing post-processor
  EXPECT_EQ(llama.vocab_size(), 128256u);

  const Tokenizer& spm = model_tokenizer("spm-bpe-32k");
  EXPECT_EQ(spm.config().bos_id, 1);
  EXPECT_EQ(spm.config().eos_id, 2);
  EXPECT_EQ(spm.config().unk_id, 0);
  EXPECT_TRUE(spm.config().add_bos_token);
  EXPECT_TRUE(spm.config().chat_template.empty());
  EXPECT_EQ(spm.vocab_size(), 32000u);
}

#ifdef HWLEDGER_HAVE_CHAT
class GoldenChats : public ::testing::TestWithParam<std::string> {};

TEST_P(GoldenChats, RenderingAndIdsMatchTransformersJs) {
  const Tokenizer& tok = model_tokenizer(GetParam());
  const auto& g = testing::ordered_golden(GetParam());
  if (g["chats"].empty()) GTEST_SKIP() << "no chat cases for " << GetParam();
  chat::ChatTemplate chat_template(tok.config().chat_template);
  for (const auto& c : g["chats"]) {
    nlohmann::ordered_json tools = c.contains("tools") ? c["tools"] : nlohmann::ordered_json();
    nlohmann::ordered_json extra = c.contains("extra") ? c["extra"] : nlohmann::ordered_json();
    auto render = [&] {
      return chat::render_chat_ordered(chat_template, c["messages"], tools,
                                       c.value("add_generation_prompt", false),
                                       tok.config().bos_token, tok.config().eos_token, extra);
    };
    if (!c["error"].is_null()) {
      EXPECT_THROW(render(), InputError) << c.dump();
      continue;
    }
    std::string rendered = render();
    EXPECT_EQ(rendered, c["rendered"].get<std::string>());
    EXPECT_EQ(tok.encode(rendered, false), c["ids"].get<std::vector<int32_t>>());
  }
}

INSTANTIATE_TEST_SUITE_P(Models, GoldenChats, ::testing::Values("qwen3", "llama3.1"),
                         [](const auto& info) {
                           std::string name = info.param;
                           for (char& c : name)
                             if (!isalnum(uint8_t(c))) c = '_';
                           return name;
                         });
#endif

}  // namespace
}  // namespace hwledger::tokenizer
