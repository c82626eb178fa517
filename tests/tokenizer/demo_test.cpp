// The built-in demo tokenizer: loads with the same loader, round-trips text, splits the
// ChatML markers, and is the same on every call.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "test_support.h"

#ifdef HWLEDGER_HAVE_CHAT
#include "chat/chat_template.h"
#endif

namespace hwledger::tokenizer {
namespace {

const Tokenizer& demo() {
  static const Tokenizer tok =
      Tokenizer::from_json(demo_tokenizer_json(), demo_tokenizer_config_json(), "demo");
  return tok;
}

TEST(Demo, ShapeAndSpecialTokens) {
  const Tokenizer& tok = demo();
  EXPECT_EQ(tok.vocab_size(), kDemoVocabSize);
  EXPECT_LE(tok.vocab_size(), 1024u);
  EXPECT_EQ(tok.token_to_id("<|endoftext|>"), 1021);
  EXPECT_EQ(tok.token_to_id("<|im_start|>"), 1022);
  EXPECT_EQ(tok.token_to_id("<|im_end|>"), 1023);
  for (int32_t id : {1021, 1022, 1023}) EXPECT_TRUE(tok.is_special(id));
  EXPECT_FALSE(tok.is_special(300));
  EXPECT_EQ(tok.config().eos_token, "<|im_end|>");
  EXPECT_EQ(tok.config().eos_id, 1023);
  EXPECT_EQ(tok.config().bos_id, -1);
  EXPECT_FALSE(tok.config().add_bos_token);
  EXPECT_NE(tok.config().chat_template.find("add_generation_prompt"), std::string::npos);
  // 256 single bytes, each its own token.
  for (int b = 0; b < 256; ++b) {
    std::string byte(1, char(b));
    if (b >= 0x80) continue;  // not valid UTF-8 alone
    EXPECT_EQ(tok.encode(byte, false), std::vector<int32_t>{b}) << b;
  }
}

TEST(Demo, Deterministic) {
  EXPECT_EQ(demo_tokenizer_json(), demo_tokenizer_json());
  auto doc = nlohmann::json::parse(demo_tokenizer_json());
  EXPECT_EQ(doc["model"]["vocab"].size(), 1021u);
  EXPECT_GE(doc["model"]["merges"].size(), 765u);
  EXPECT_EQ(doc["added_tokens"].size(), 3u);
}

TEST(Demo, MergesCompressEnglishAndCode) {
  const Tokenizer& tok = demo();
  std::string text = "The model keeps a cache of keys and values for the tokens it has seen.";
  auto ids = tok.encode(text, false);
  EXPECT_LT(ids.size(), text.size() / 2) << "merges should make common words single tokens";
  EXPECT_EQ(tok.decode(ids), text);
}

TEST(Demo, RoundTripAndChatMarkers) {
  const Tokenizer& tok = demo();
  std::mt19937 rng(5);
  const char* samples[] = {"def f(x):\n    return x * 2\n",
                           "日本語のテキスト 👍🏽",
                           "   spaces   ",
                           "",
                           "a\tb\r\nc",
                           "numbers 1234567890"};
  for (const char* s : samples) EXPECT_EQ(tok.decode(tok.encode(s, false)), s);
  std::string chat = "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n";
  auto ids = tok.encode(chat, true);
  EXPECT_EQ(ids.front(), 1022);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 1023), 1);
  EXPECT_EQ(tok.decode(ids), chat);
  EXPECT_EQ(tok.decode(ids, true), "user\nHi there\nassistant\n");
}

#ifdef HWLEDGER_HAVE_CHAT
TEST(Demo, ChatTemplateRendersChatML) {
  chat::ChatTemplate chat_template(demo().config().chat_template);
  nlohmann::json context = {
      {"messages",
       {{{"role", "system"}, {"content", "Be brief."}}, {{"role", "user"}, {"content", "Hi"}}}},
      {"add_generation_prompt", true}};
  EXPECT_EQ(chat_template.render(context),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
            "<|im_start|>assistant\n");
}
#endif

}  // namespace
}  // namespace hwledger::tokenizer
