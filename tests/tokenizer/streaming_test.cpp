// The streaming detokenizer: for every prefix of an id sequence, what push() and flush()
// returned equals decode() of that prefix, and no push() ever returns a partial character.
#include <gtest/gtest.h>
#include <utf8proc.h>

#include <random>

#include "test_support.h"

namespace hwledger::tokenizer {
namespace {

using testing::golden;
using testing::model_tokenizer;

// Checked with utf8proc, independently of the tokenizer's own UTF-8 code.
bool whole_utf8(const std::string& s) {
  const auto* p = reinterpret_cast<const utf8proc_uint8_t*>(s.data());
  utf8proc_ssize_t left = utf8proc_ssize_t(s.size());
  while (left > 0) {
    utf8proc_int32_t cp;
    utf8proc_ssize_t n = utf8proc_iterate(p, left, &cp);
    if (n <= 0) return false;
    p += n;
    left -= n;
  }
  return true;
}

// Streams `ids`. After each push: the text released so far is a prefix of decode() of the ids
// pushed so far, and streaming exactly those ids then flushing equals that decode().
void check_stream(const Tokenizer& tok, const std::vector<int32_t>& ids, bool skip_special,
                  const std::string& label) {
  StreamingDetokenizer stream(tok, skip_special);
  std::string streamed;
  for (size_t k = 0; k < ids.size(); ++k) {
    std::string piece = stream.push(ids[k]);
    ASSERT_TRUE(whole_utf8(piece)) << label << " partial character after id #" << k;
    streamed += piece;
    // What has been released is always a prefix of the full decode of this prefix.
    std::span<const int32_t> prefix(ids.data(), k + 1);
    std::string full = tok.decode(prefix, skip_special);
    ASSERT_EQ(full.compare(0, streamed.size(), streamed), 0)
        << label << " streamed text is not a prefix of decode() after id #" << k;
    // And streaming that prefix then flushing gives exactly decode().
    StreamingDetokenizer again(tok, skip_special);
    std::string whole;
    for (size_t j = 0; j <= k; ++j) whole += again.push(ids[j]);
    whole += again.flush();
    ASSERT_EQ(whole, full) << label << " prefix of " << (k + 1) << " ids";
  }
  streamed += stream.flush();
  EXPECT_EQ(streamed, tok.decode(ids, skip_special)) << label;
}

class Streaming : public ::testing::TestWithParam<std::string> {};

TEST_P(Streaming, EqualsDecodeOnGoldenIds) {
  const Tokenizer& tok = model_tokenizer(GetParam());
  for (const auto& c : golden(GetParam())["texts"]) {
    auto ids = c["ids_with_special_tokens"].get<std::vector<int32_t>>();
    check_stream(tok, ids, false, GetParam() + " " + c["text"].dump());
    check_stream(tok, ids, true, GetParam() + " skip " + c["text"].dump());
  }
}

TEST_P(Streaming, EqualsDecodeOnRandomIds) {
  // Random ids include byte tokens that split characters and sequences that are not UTF-8 at
  // all (each bad byte run must come out as U+FFFD, the same way in both paths).
  const Tokenizer& tok = model_tokenizer(GetParam());
  std::mt19937 rng(11);
  std::uniform_int_distribution<int32_t> any(0, int32_t(tok.vocab_size()) - 1);
  std::uniform_int_distribution<int32_t> low(0, 300);  // single bytes live here
  for (int round = 0; round < 40; ++round) {
    std::vector<int32_t> ids;
    size_t n = 1 + rng() % 40;
    for (size_t i = 0; i < n; ++i) ids.push_back(rng() % 2 ? any(rng) : low(rng));
    check_stream(tok, ids, round % 2 == 1, GetParam() + " random round " + std::to_string(round));
  }
}

TEST_P(Streaming, MultiByteCharactersWaitForTheirLastByte) {
  const Tokenizer& tok = model_tokenizer(GetParam());
  // Emoji with modifiers, ZWJ sequences and flags: byte-level models split them into several
  // tokens, SentencePiece falls back to <0xNN> bytes.
  std::string text = "go 👍🏽 👨\u200d👩\u200d👧 🇫🇷 日本語 ok";
  auto ids = tok.encode(text, false);
  check_stream(tok, ids, false, GetParam() + " emoji");
  StreamingDetokenizer stream(tok);
  std::string out;
  for (int32_t id : ids) out += stream.push(id);
  out += stream.flush();
  EXPECT_EQ(out, text);
}

INSTANTIATE_TEST_SUITE_P(Models, Streaming, ::testing::Values("qwen3", "llama3.1", "spm-bpe-32k"),
                         [](const auto& info) {
                           std::string name = info.param;
                           for (char& c : name)
                             if (!isalnum(uint8_t(c))) c = '_';
                           return name;
                         });

TEST(StreamingSentencePiece, LeadingSpaceIsRemovedOnceLikeDecode) {
  const Tokenizer& spm = model_tokenizer("spm-bpe-32k");
  auto ids = spm.encode(" two leading", false);  // "▁▁two▁leading"
  StreamingDetokenizer stream(spm);
  std::string first = stream.push(ids[0]);
  std::string out = first;
  for (size_t i = 1; i < ids.size(); ++i) out += stream.push(ids[i]);
  out += stream.flush();
  EXPECT_EQ(out, " two leading");
  EXPECT_EQ(out, spm.decode(ids));
  // With BOS first (not skipped), the space after <s> stays, as in decode().
  auto with_bos = spm.encode("Hello", true);
  StreamingDetokenizer bos_stream(spm);
  std::string bos_out;
  for (int32_t id : with_bos) bos_out += bos_stream.push(id);
  bos_out += bos_stream.flush();
  EXPECT_EQ(bos_out, "<s> Hello");
  EXPECT_EQ(bos_out, spm.decode(with_bos));
  // Skipping it, the text starts at the word.
  StreamingDetokenizer skip_stream(spm, true);
  std::string skip_out;
  for (int32_t id : with_bos) skip_out += skip_stream.push(id);
  EXPECT_EQ(skip_out + skip_stream.flush(), "Hello");
}

TEST(StreamingByteLevel, IncompleteCharacterAtTheEndBecomesReplacement) {
  const Tokenizer& qwen = model_tokenizer("qwen3");
  // "日" is E6 97 A5; its first two bytes as separate byte tokens.
  int32_t e6 = qwen.token_to_id("æ"), x97 = qwen.token_to_id("Ĺ");
  ASSERT_GE(e6, 0);
  ASSERT_GE(x97, 0);
  StreamingDetokenizer stream(qwen);
  EXPECT_EQ(stream.push(e6), "");
  EXPECT_EQ(stream.push(x97), "");
  EXPECT_EQ(stream.flush(), "\uFFFD");
  std::vector<int32_t> ids = {e6, x97};
  EXPECT_EQ(qwen.decode(ids), "\uFFFD");
  // After flush the detokenizer starts afresh.
  EXPECT_EQ(stream.push(9707), "Hello");
}

}  // namespace
}  // namespace hwledger::tokenizer
