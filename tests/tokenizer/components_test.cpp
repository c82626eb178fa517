// Pipeline components on small hand-made tokenizers, for behaviours the real tokenizers in
// the goldens do not exercise: merge formats, ignore_merges, byte fallback and <unk>, added
// token options, Metaspace, Split behaviours, Strip decoding, NFC, UTF-8 repair.
#include <gtest/gtest.h>
#include <utf8proc.h>

#include <cstdlib>
#include <random>

#include "test_support.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/utf8.h"

namespace hwledger::tokenizer {
namespace {

using nlohmann::json;

// A character-level BPE tokenizer over `tokens` (ids in order) with `merges`.
json char_bpe(const std::vector<std::string>& tokens, const json& merges) {
  json vocab = json::object();
  for (size_t i = 0; i < tokens.size(); ++i) vocab[tokens[i]] = i;
  return {{"added_tokens", json::array()},
          {"normalizer", nullptr},
          {"pre_tokenizer", nullptr},
          {"post_processor", nullptr},
          {"decoder", {{"type", "Fuse"}}},
          {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}}}};
}

std::vector<int32_t> ids(std::initializer_list<int32_t> list) {
  return list;
}

TEST(Bpe, MergesAsStringsOrPairsAgree) {
  std::vector<std::string> tokens = {"a", "b", "c", "ab", "bc", "abc"};
  Tokenizer strings = Tokenizer::from_json(char_bpe(tokens, {"a b", "ab c"}).dump());
  Tokenizer pairs = Tokenizer::from_json(
      char_bpe(tokens, json::array({json::array({"a", "b"}), json::array({"ab", "c"})})).dump());
  EXPECT_EQ(strings.encode("abcab", false), ids({5, 3}));
  EXPECT_EQ(pairs.encode("abcab", false), ids({5, 3}));
}

TEST(Bpe, LowestRankFirstLeftmostOnTies) {
  std::vector<std::string> tokens = {"a", "b", "ab", "ba", "aa"};
  // "aba": (a,b) has rank 0, (b,a) rank 1 -> ab + a.
  Tokenizer tok = Tokenizer::from_json(char_bpe(tokens, {"a b", "b a"}).dump());
  EXPECT_EQ(tok.encode("aba", false), ids({2, 0}));
  Tokenizer reversed = Tokenizer::from_json(char_bpe(tokens, {"b a", "a b"}).dump());
  EXPECT_EQ(reversed.encode("aba", false), ids({0, 3}));
  // "aaa": equal pairs, the leftmost merges first -> aa + a.
  Tokenizer tie = Tokenizer::from_json(char_bpe(tokens, {"a a"}).dump());
  EXPECT_EQ(tie.encode("aaa", false), ids({4, 0}));
  // Long words take the heap path; it must agree with the short-word path.
  std::string longer(1001, 'a');
  auto long_ids = tie.encode(longer, false);
  ASSERT_EQ(long_ids.size(), 501u);
  EXPECT_EQ(long_ids.back(), 0);
}

TEST(Bpe, IgnoreMergesEmitsWholeVocabularyWords) {
  // "abc" is in the vocabulary but the merges would give "ab" + "c".
  std::vector<std::string> tokens = {"a", "b", "c", "ab", "abc"};
  json doc = char_bpe(tokens, {"a b"});
  Tokenizer plain = Tokenizer::from_json(doc.dump());
  EXPECT_EQ(plain.encode("abc", false), ids({3, 2}));
  doc["model"]["ignore_merges"] = true;
  Tokenizer ignoring = Tokenizer::from_json(doc.dump());
  EXPECT_EQ(ignoring.encode("abc", false), ids({4}));
}

TEST(Bpe, ByteFallbackUnkAndFuseUnk) {
  std::vector<std::string> tokens = {"<unk>", "a", "b"};
  json doc = char_bpe(tokens, json::array());
  doc["model"]["unk_token"] = "<unk>";
  Tokenizer unk = Tokenizer::from_json(doc.dump());
  EXPECT_EQ(unk.encode("aéüb", false), ids({1, 0, 0, 2}));
  doc["model"]["fuse_unk"] = true;
  Tokenizer fused = Tokenizer::from_json(doc.dump());
  EXPECT_EQ(fused.encode("aéüb", false), ids({1, 0, 2}));
  // Byte fallback: é is C3 A9; ü has no byte tokens for BC, so it is <unk>.
  tokens.push_back("<0xC3>");
  tokens.push_back("<0xA9>");
  doc = char_bpe(tokens, json::array());
  doc["model"]["unk_token"] = "<unk>";
  doc["model"]["byte_fallback"] = true;
  doc["decoder"] = {{"type", "Sequence"},
                    {"decoders", {{{"type", "ByteFallback"}}, {{"type", "Fuse"}}}}};
  Tokenizer fallback = Tokenizer::from_json(doc.dump());
  EXPECT_EQ(fallback.encode("aéüb", false), ids({1, 3, 4, 0, 2}));
  EXPECT_EQ(fallback.decode(ids({1, 3, 4, 2})), "aéb");
  EXPECT_EQ(fallback.decode(ids({1, 3, 2})), "a\uFFFDb");  // a lone lead byte
  // Without an unk token, unknown characters are dropped (as `tokenizers` does).
  Tokenizer dropping = Tokenizer::from_json(char_bpe({"a", "b"}, json::array()).dump());
  EXPECT_EQ(dropping.encode("aéb", false), ids({0, 1}));
}

TEST(Bpe, ContinuingSubwordPrefixAndSuffix) {
  std::vector<std::string> tokens = {"a", "##b", "##c", "a##b", "c</w>", "b", "##c</w>"};
  json doc = char_bpe(tokens, json::array());
  // Merged token = left + right without the prefix: "a" + "##b" -> "ab"; give it an entry.
  doc["model"]["vocab"]["ab"] = 7;
  doc["model"]["merges"] = {"a ##b"};
  doc["model"]["continuing_subword_prefix"] = "##";
  doc["model"]["end_of_word_suffix"] = "</w>";
  Tokenizer tok = Tokenizer::from_json(doc.dump());
  EXPECT_EQ(tok.encode("abc", false), ids({7, 6}));
}

json with_added(json doc, json added) {
  doc["added_tokens"] = std::move(added);
  return doc;
}

json added_token(int id, const std::string& content, bool special, json options = json::object()) {
  json token = {{"id", id},        {"content", content},  {"single_word", false}, {"lstrip", false},
                {"rstrip", false}, {"normalized", false}, {"special", special}};
  for (auto& [key, value] : options.items()) token[key] = value;
  return token;
}

TEST(AddedTokens, LeftmostLongestAndOptions) {
  std::vector<std::string> tokens = {"a", "b", " ", "<", ">", "x"};
  json base = char_bpe(tokens, json::array());
  Tokenizer tok = Tokenizer::from_json(
      with_added(base, {added_token(10, "<x>", true), added_token(11, "<x>>", true),
                        added_token(12, "ab", false, {{"single_word", true}}),
                        added_token(13, "<l>", true, {{"lstrip", true}}),
                        added_token(14, "<r>", true, {{"rstrip", true}})})
          .dump());
  EXPECT_EQ(tok.encode("a<x>>b", false), ids({0, 11, 1}));  // longest match wins
  EXPECT_EQ(tok.encode("a<x>b", false), ids({0, 10, 1}));
  EXPECT_EQ(tok.encode("ab", false), ids({12}));  // a word on its own
  EXPECT_EQ(tok.encode("a ab b", false), ids({0, 2, 12, 2, 1}));
  EXPECT_EQ(tok.encode("aab", false), ids({0, 0, 1}));       // inside a word: not matched
  EXPECT_EQ(tok.encode("a  <l>b", false), ids({0, 13, 1}));  // swallows the spaces before
  EXPECT_EQ(tok.encode("a<r>  b", false), ids({0, 14, 1}));  // and after
  EXPECT_TRUE(tok.is_special(10));
  EXPECT_FALSE(tok.is_special(12));
  EXPECT_EQ(tok.decode(ids({0, 10, 12}), true), "aab");
}

TEST(AddedTokens, NormalizedTokensMatchNormalizedText) {
  // With NFC, a normalized added token written decomposed still matches composed text.
  std::vector<std::string> tokens = {"a", "b"};
  json doc = with_added(char_bpe(tokens, json::array()),
                        {added_token(5, "cafe\u0301", false, {{"normalized", true}})});
  doc["normalizer"] = {{"type", "NFC"}};
  Tokenizer tok = Tokenizer::from_json(doc.dump());
  EXPECT_EQ(tok.encode("acaf\u00e9b", false), ids({0, 5, 1}));
  EXPECT_EQ(tok.encode("acafe\u0301b", false), ids({0, 5, 1}));
}

TEST(PreTokenizer, SplitBehaviours) {
  // Vocabulary of single characters and the pairs the behaviours produce.
  std::vector<std::string> tokens = {"a", "-", "a-", "-a", "--", "a--", "--a"};
  auto make = [&](const std::string& behavior, bool invert) {
    json doc = char_bpe(tokens, {"a -", "- a", "- -", "a --", "-- a"});
    doc["pre_tokenizer"] = {{"type", "Split"},
                            {"pattern", {{"String", "-"}}},
                            {"behavior", behavior},
                            {"invert", invert}};
    return Tokenizer::from_json(doc.dump());
  };
  // Pieces of "a-a--a": a | - | a | - | - | a
  EXPECT_EQ(make("Removed", false).encode("a-a--a", false), ids({0, 0, 0}));
  EXPECT_EQ(make("Isolated", false).encode("a-a--a", false), ids({0, 1, 0, 1, 1, 0}));
  EXPECT_EQ(make("MergedWithPrevious", false).encode("a-a--a", false), ids({2, 2, 1, 0}));
  EXPECT_EQ(make("MergedWithNext", false).encode("a-a--a", false), ids({0, 3, 1, 3}));
  EXPECT_EQ(make("Contiguous", false).encode("a-a--a", false), ids({0, 1, 0, 4, 0}));
  // Inverted: the "a"s count as the matches, so Removed drops them.
  EXPECT_EQ(make("Removed", true).encode("a-a--a", false), ids({1, 1, 1}));
}

TEST(PreTokenizer, MetaspaceRoundTrip) {
  std::vector<std::string> tokens = {"\u2581", "h", "i", "\u2581h", "\u2581hi", "t", "\u2581t"};
  json doc = char_bpe(tokens, {"\u2581 h", "\u2581h i", "\u2581 t"});
  doc["pre_tokenizer"] = {{"type", "Metaspace"},
                          {"replacement", "\u2581"},
                          {"prepend_scheme", "always"},
                          {"split", true}};
  doc["decoder"] = {{"type", "Metaspace"}, {"replacement", "\u2581"}, {"prepend_scheme", "always"}};
  Tokenizer tok = Tokenizer::from_json(doc.dump());
  auto encoded = tok.encode("hi  t", false);
  EXPECT_EQ(encoded, ids({4, 0, 6}));  // ▁hi ▁ ▁t
  EXPECT_EQ(tok.decode(encoded), "hi  t");
  StreamingDetokenizer stream(tok);
  std::string streamed;
  for (int32_t id : encoded) streamed += stream.push(id);
  EXPECT_EQ(streamed + stream.flush(), "hi  t");
}

TEST(Decoder, StripAfterFuseStreamsLikeDecode) {
  std::vector<std::string> tokens = {" ", "a", "b"};
  json doc = char_bpe(tokens, json::array());
  doc["decoder"] = {
      {"type", "Sequence"},
      {"decoders",
       {{{"type", "Fuse"}}, {{"type", "Strip"}, {"content", " "}, {"start", 2}, {"stop", 1}}}}};
  Tokenizer tok = Tokenizer::from_json(doc.dump());
  std::vector<std::vector<int32_t>> cases = {{0, 0, 0, 1, 0, 0}, {0, 1, 0}, {0},
                                             {1, 0, 2},          {0, 0, 0}, {}};
  for (const auto& c : cases) {
    std::string want;
    for (int32_t id : c) want += tokens[size_t(id)];
    size_t begin = 0, end = want.size();
    while (begin < 2 && begin < end && want[begin] == ' ') ++begin;
    if (end > begin && want[end - 1] == ' ') --end;
    EXPECT_EQ(tok.decode(c), want.substr(begin, end - begin));
    StreamingDetokenizer stream(tok);
    std::string streamed;
    for (int32_t id : c) streamed += stream.push(id);
    EXPECT_EQ(streamed + stream.flush(), tok.decode(c));
  }
}

TEST(Normalizer, NfcMatchesUtf8procOnHardCases) {
  std::mt19937 rng(9);
  const char32_t pool[] = {'a',    'e',    'o',    'A',    ' ',    0x300,  0x301,  0x308,  0x323,
                           0x327,  0x1100, 0x1161, 0x11A8, 0xAC00, 0x3099, 0x304B, 0x212B, 0x2126,
                           0x0958, 0x0915, 0x093C, 0x0B47, 0x0B3E, 0x1E0A, 0xE9,   0x4E00, 0x1F44D};
  for (int round = 0; round < 2000; ++round) {
    std::string text;
    for (int i = 0, n = int(rng() % 12); i < n; ++i)
      utf8::append_code_point(text, pool[rng() % std::size(pool)]);
    utf8proc_uint8_t* out = nullptr;
    auto len = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                            utf8proc_ssize_t(text.size()), &out,
                            utf8proc_option_t(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
    ASSERT_GE(len, 0);
    std::string want(reinterpret_cast<const char*>(out), size_t(len));
    std::free(out);
    ASSERT_EQ(nfc(text), want) << json(text).dump();
  }
}

TEST(Utf8, RepairFollowsTheWhatwgRule) {
  // One U+FFFD per maximal ill-formed subsequence (examples from the Unicode standard, §3.9).
  EXPECT_EQ(utf8::make_valid("\x61\xF1\x80\x80\xE1\x80\xC2\x62\x80\x63\x80\xBF\x64"),
            "a\uFFFD\uFFFD\uFFFDb\uFFFDc\uFFFD\uFFFDd");
  EXPECT_EQ(utf8::make_valid("\xED\xA0\x80"), "\uFFFD\uFFFD\uFFFD");  // surrogate
  EXPECT_EQ(utf8::make_valid("\xC0\xAF"), "\uFFFD\uFFFD");            // overlong
  EXPECT_EQ(utf8::make_valid("\xF4\x90\x80\x80"), "\uFFFD\uFFFD\uFFFD\uFFFD");
  EXPECT_EQ(utf8::make_valid("ok\xE2\x82"), "ok\uFFFD");
  EXPECT_TRUE(utf8::is_valid("日本 👍🏽"));
  EXPECT_FALSE(utf8::is_valid("\xE2\x82"));
  // Fed one byte at a time, the stream decoder gives the same.
  std::string bad = "\x61\xF1\x80\x80\xE1\x80\xC2\x62\x80\x63\x80\xBF\x64\xF0\x9F\x91\x8D\xE2";
  utf8::StreamDecoder decoder;
  std::string out;
  for (char c : bad) decoder.feed(std::string_view(&c, 1), out);
  decoder.finish(out);
  EXPECT_EQ(out, utf8::make_valid(bad));
}

TEST(ByteLevel, AlphabetIsAByteBijection) {
  std::string decoded;
  for (int b = 0; b < 256; ++b) {
    ASSERT_TRUE(byte_level::decode_token(byte_level::byte_chars()[size_t(b)], decoded));
    ASSERT_EQ(decoded, std::string(1, char(b)));
  }
  EXPECT_EQ(byte_level::byte_chars()[' '], "Ġ");
  EXPECT_EQ(byte_level::byte_chars()['\n'], "Ċ");
  EXPECT_FALSE(byte_level::decode_token("日", decoded));
}

}  // namespace
}  // namespace hwledger::tokenizer
