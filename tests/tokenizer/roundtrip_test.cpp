// Properties beyond the goldens, on the real tokenizers: decode(encode(s)) gives s back (its
// NFC form for Qwen3, whose normalizer is NFC), whitespace and digit runs split as the
// pre-tokenizer patterns say, and added tokens inside text are cut out.
#include <gtest/gtest.h>
#include <utf8proc.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <random>
#include <thread>

#include "test_support.h"

namespace hwledger::tokenizer {
namespace {

using testing::model_tokenizer;

void append_utf8(std::string& out, char32_t cp) {
  utf8proc_uint8_t buf[4];
  auto n = utf8proc_encode_char(utf8proc_int32_t(cp), buf);
  out.append(reinterpret_cast<const char*>(buf), size_t(n));
}

// Independent NFC (utf8proc directly, not the tokenizer's quick-check path).
std::string reference_nfc(const std::string& s) {
  utf8proc_uint8_t* out = nullptr;
  auto n =
      utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()), utf8proc_ssize_t(s.size()),
                   &out, utf8proc_option_t(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  EXPECT_GE(n, 0);
  std::string result(reinterpret_cast<const char*>(out), size_t(n));
  std::free(out);
  return result;
}

// Random valid UTF-8 drawn from the ranges that stress a tokenizer.
std::string random_text(std::mt19937& rng, size_t length) {
  static const std::pair<char32_t, char32_t> kRanges[] = {
      {0x20, 0x7E},        // ASCII
      {0x20, 0x7E},        //
      {0x09, 0x0D},        // tab, newlines
      {0x30, 0x39},        // digits
      {0xA0, 0xFF},        // Latin-1 (precomposed letters, NBSP)
      {0x300, 0x36F},      // combining marks (NFC reorders and composes them)
      {0x391, 0x3C9},      // Greek
      {0x410, 0x44F},      // Cyrillic
      {0x5D0, 0x5EA},      // Hebrew
      {0x627, 0x64A},      // Arabic
      {0x905, 0x939},      // Devanagari
      {0x1100, 0x1112},    // Hangul leading jamo (compose with the vowels below)
      {0x1161, 0x1175},    // Hangul vowel jamo
      {0x3041, 0x3096},    // Hiragana
      {0x4E00, 0x9FFF},    // CJK
      {0xAC00, 0xD7A3},    // Hangul syllables
      {0x1F300, 0x1FAFF},  // emoji (4 bytes)
      {0x1F3FB, 0x1F3FF},  // skin tones
      {0x200B, 0x200D},    // zero width space / joiners
      {0x2000, 0x200A},    // Unicode spaces
      {0xFF01, 0xFF5E},    // fullwidth forms
      {0x10000, 0x10FFFF}  // anything astral (unassigned too)
  };
  std::string text;
  std::uniform_int_distribution<size_t> pick(0, std::size(kRanges) - 1);
  for (size_t i = 0; i < length; ++i) {
    auto [lo, hi] = kRanges[pick(rng)];
    char32_t cp = std::uniform_int_distribution<uint32_t>(lo, hi)(rng);
    if (cp >= 0xD800 && cp <= 0xDFFF) cp = 'x';
    append_utf8(text, cp);
  }
  return text;
}

std::string show(const std::string& s) {
  return nlohmann::json(s).dump();
}

TEST(RoundTrip, RandomUnicodeQwen3GivesNfc) {
  const Tokenizer& tok = model_tokenizer("qwen3");
  std::mt19937 rng(1);
  for (int i = 0; i < 300; ++i) {
    std::string text = random_text(rng, 1 + rng() % 80);
    EXPECT_EQ(tok.decode(tok.encode(text, false)), reference_nfc(text)) << show(text);
  }
}

TEST(RoundTrip, RandomUnicodeLlama31IsExact) {
  const Tokenizer& tok = model_tokenizer("llama3.1");
  std::mt19937 rng(2);
  for (int i = 0; i < 300; ++i) {
    std::string text = random_text(rng, 1 + rng() % 80);
    EXPECT_EQ(tok.decode(tok.encode(text, false)), text) << show(text);
    // With BOS: skip_special_tokens removes it again.
    EXPECT_EQ(tok.decode(tok.encode(text, true), true), text) << show(text);
  }
}

TEST(RoundTrip, RandomUnicodeSentencePieceByteFallbackIsExact) {
  const Tokenizer& tok = model_tokenizer("spm-bpe-32k");
  std::mt19937 rng(3);
  for (int i = 0; i < 300; ++i) {
    std::string text = random_text(rng, 1 + rng() % 80);
    auto ids = tok.encode(text, false);
    // Byte fallback covers every character: nothing becomes <unk>.
    EXPECT_EQ(std::count(ids.begin(), ids.end(), 0), 0) << show(text);
    EXPECT_EQ(tok.decode(ids), text) << show(text);
  }
}

TEST(RoundTrip, LongWhitespaceAndDigitRuns) {
  std::vector<std::string> texts = {
      std::string(1000, ' '),
      std::string(1000, '\n'),
      std::string(500, '\t') + "x",
      "a" + std::string(300, ' ') + "b",
      " \n \n\t\r\n    \n",
      std::string(999, '7'),
      "x = 12345678901234567890 + 0.000000001\n",
      std::string(5000, 'a'),
      "\u3000\u3000\u00a0\u00a0 \u2003",
  };
  for (const char* name : {"qwen3", "llama3.1", "spm-bpe-32k"}) {
    const Tokenizer& tok = model_tokenizer(name);
    for (const auto& text : texts)
      EXPECT_EQ(tok.decode(tok.encode(text, false)), text) << name << " " << show(text);
  }
}

TEST(RoundTrip, DigitsSplitAsThePatternSays) {
  // Qwen's pattern takes digits one at a time, Llama 3's up to three at a time.
  std::string digits(30, '9');
  const Tokenizer& qwen = model_tokenizer("qwen3");
  EXPECT_EQ(qwen.encode(digits, false).size(), 30u);
  const Tokenizer& llama = model_tokenizer("llama3.1");
  auto ids = llama.encode(digits, false);
  ASSERT_EQ(ids.size(), 10u);
  for (int32_t id : ids) EXPECT_EQ(llama.id_to_token(id), "999");
  EXPECT_EQ(llama.encode("1234567", false).size(), 3u);  // 123 456 7
}

TEST(RoundTrip, WhitespaceBeforeAWordStaysWithTheWord) {
  // \s+(?!\S): of "a   b" the last space goes with "b".
  const Tokenizer& qwen = model_tokenizer("qwen3");
  auto ids = qwen.encode("a   b", false);
  ASSERT_EQ(ids.size(), 3u);
  EXPECT_EQ(qwen.id_to_token(ids[1]), "ĠĠ");
  EXPECT_EQ(qwen.id_to_token(ids[2]), "Ġb");
}

TEST(AddedTokensInText, SpecialTokensAreSplitOut) {
  const Tokenizer& qwen = model_tokenizer("qwen3");
  auto ids = qwen.encode("x<|im_end|>y<|im_start|><|im_start|>", false);
  ASSERT_EQ(ids.size(), 5u);
  EXPECT_EQ(ids[1], 151645);
  EXPECT_EQ(ids[3], 151644);
  EXPECT_EQ(ids[4], 151644);
  // Non-special added tokens (<think>) are split out too.
  auto think = qwen.encode("a<think>b</think>", false);
  EXPECT_NE(std::find(think.begin(), think.end(), 151667), think.end());
  EXPECT_NE(std::find(think.begin(), think.end(), 151668), think.end());
  // An incomplete marker is plain text.
  auto partial = qwen.encode("<|im_end|", false);
  EXPECT_EQ(std::find(partial.begin(), partial.end(), 151645), partial.end());
  EXPECT_EQ(qwen.decode(partial), "<|im_end|");
  // skip_special_tokens drops <|im_end|> but keeps <think> (added, not special).
  EXPECT_EQ(qwen.decode(ids, true), "xy");
  EXPECT_EQ(qwen.decode(think, true), "a<think>b</think>");

  const Tokenizer& llama = model_tokenizer("llama3.1");
  auto l = llama.encode("<|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>", true);
  ASSERT_GE(l.size(), 6u);
  EXPECT_EQ(l[0], 128000);  // BOS from the post-processor
  EXPECT_EQ(l[1], 128006);
  EXPECT_EQ(l[3], 128007);
  EXPECT_EQ(l.back(), 128009);

  // SentencePiece: each piece between added tokens gets its own "▁" prefix.
  const Tokenizer& spm = model_tokenizer("spm-bpe-32k");
  auto s = spm.encode("hi</s>there", false);
  auto hi = spm.encode("hi", false), there = spm.encode("there", false);
  std::vector<int32_t> want = hi;
  want.push_back(2);
  want.insert(want.end(), there.begin(), there.end());
  EXPECT_EQ(s, want);
}

TEST(AddedTokensInText, ParseSpecialFalseKeepsSpecialTokensAsText) {
  // For untrusted text: "<|im_end|>" in a user message must not end the turn.
  const Tokenizer& qwen = model_tokenizer("qwen3");
  std::string text = "a<|im_end|>b<think>c";
  auto ids = qwen.encode(text, false, /*parse_special=*/false);
  EXPECT_EQ(std::find(ids.begin(), ids.end(), 151645), ids.end());
  EXPECT_NE(std::find(ids.begin(), ids.end(), 151667), ids.end());  // <think> is not special
  EXPECT_EQ(qwen.decode(ids), text);
  for (int32_t id : ids) EXPECT_FALSE(qwen.is_special(id));
  const Tokenizer& llama = model_tokenizer("llama3.1");
  auto l = llama.encode("<|eot_id|>", true, false);
  ASSERT_GE(l.size(), 2u);
  EXPECT_EQ(l[0], 128000);  // the post-processor's BOS is still added
  EXPECT_EQ(std::find(l.begin(), l.end(), 128009), l.end());
  EXPECT_EQ(llama.decode(l, true), "<|eot_id|>");
}

TEST(Robustness, InvalidUtf8IsRepairedNotRejected) {
  const Tokenizer& qwen = model_tokenizer("qwen3");
  std::string bad = "ok \xC3\x28 \xE2\x82 \xF0\x9F\x98 end\xFF";
  auto ids = qwen.encode(bad, false);
  EXPECT_EQ(qwen.decode(ids), "ok \uFFFD( \uFFFD \uFFFD end\uFFFD");
}

TEST(Robustness, UnknownIdsAreSkippedWhenDecoding) {
  const Tokenizer& qwen = model_tokenizer("qwen3");
  std::vector<int32_t> ids = {9707, -5, 151669, 151935, 1000000, 11};
  EXPECT_EQ(qwen.decode(ids), "Hello,");
  EXPECT_THROW(qwen.id_to_token(151669), InputError);
  EXPECT_THROW(qwen.id_to_token(-1), InputError);
  EXPECT_EQ(qwen.token_to_id("no such token"), -1);
}

TEST(Concurrency, ParallelEncodesAgreeWithSerial) {
  const Tokenizer& qwen = model_tokenizer("qwen3");
  std::mt19937 rng(7);
  std::vector<std::string> texts;
  std::vector<std::vector<int32_t>> expected;
  for (int i = 0; i < 64; ++i) {
    texts.push_back(random_text(rng, 200) + " the same words again and again " + std::to_string(i));
  }
  {
    // Reference from a fresh tokenizer, so the shared one's cache is not involved.
    Tokenizer fresh = Tokenizer::load(testing::shared_path("models/qwen3"));
    for (const auto& t : texts) expected.push_back(fresh.encode(t, false));
  }
  std::vector<std::thread> threads;
  std::atomic<int> mismatches{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 20; ++round)
        for (size_t i = size_t(t); i < texts.size(); i += 1 + size_t(round % 3))
          if (qwen.encode(texts[i], false) != expected[i]) ++mismatches;
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(mismatches.load(), 0);
}

}  // namespace
}  // namespace hwledger::tokenizer
