// Stop strings: however the text is split into tokens, the text before the first stop string is
// emitted and nothing of the stop string ever is; text is held back only while it could still
// become a stop string.
#include <gtest/gtest.h>

#include "sched/text_stream.h"

namespace hwledger {
namespace {

bool valid_utf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k)
      if ((static_cast<unsigned char>(s[i + k]) >> 6) != 2) return false;
    i += n;
  }
  return true;
}

TEST(StopStringMatcher, EverySplitEmitsExactlyTheTextBeforeTheStop) {
  const std::string text = "Hello world. STOP here, STOP again";
  for (size_t i = 0; i <= text.size(); ++i)
    for (size_t j = i; j <= text.size(); ++j) {
      StopStringMatcher m({"STOP"});
      std::string out = m.push(text.substr(0, i));
      out += m.push(text.substr(i, j - i));
      out += m.push(text.substr(j));
      out += m.finish();
      EXPECT_EQ(out, "Hello world. ") << i << "," << j;
      EXPECT_TRUE(m.stopped());
      EXPECT_EQ(m.matched(), "STOP");
    }
}

TEST(StopStringMatcher, HoldsBackOnlyWhatCouldStartAStop) {
  StopStringMatcher m({"Help"});
  EXPECT_EQ(m.push("Hel"), "");  // could be "Help"
  EXPECT_EQ(m.push("lo"), "Hello");  // was not
  EXPECT_EQ(m.push(" aH"), " a");
  EXPECT_EQ(m.push("x"), "Hx");
  EXPECT_EQ(m.push("He"), "");
  EXPECT_EQ(m.finish(), "He");  // the end of the stream releases it
  EXPECT_FALSE(m.stopped());
  EXPECT_EQ(m.matched(), "");
}

TEST(StopStringMatcher, EarliestStopWinsAndNothingFollows) {
  StopStringMatcher m({"world", "lo w"});
  EXPECT_EQ(m.push("Hello world"), "Hel");
  EXPECT_EQ(m.matched(), "lo w");
  EXPECT_EQ(m.push("more"), "");
  EXPECT_EQ(m.finish(), "");
}

TEST(StopStringMatcher, OverlappingPrefixes) {
  // "aab": after "aa" the tail "aa"'s suffix "a" may still start the stop; "aaab" must stop.
  StopStringMatcher m({"aab"});
  std::string out;
  for (char c : std::string("xaaab")) out += m.push(std::string(1, c));
  EXPECT_EQ(out, "xa");
  EXPECT_TRUE(m.stopped());
}

TEST(StopStringMatcher, NoStopsPassesThroughAndEmptyStopsAreIgnored) {
  StopStringMatcher m({"", ""});
  EXPECT_EQ(m.push("abc"), "abc");
  EXPECT_EQ(m.finish(), "");
  EXPECT_FALSE(m.stopped());
}

const tokenizer::Tokenizer& demo() {
  static const tokenizer::Tokenizer tok = tokenizer::Tokenizer::from_json(
      tokenizer::demo_tokenizer_json(), tokenizer::demo_tokenizer_config_json(), "demo");
  return tok;
}

TEST(TextStream, StopStringAcrossTokensIsNeverEmitted) {
  const auto& tok = demo();
  const std::string text = "The model keeps a cache of keys and values for the tokens it has seen.";
  const std::string stop = "keys and val";
  auto ids = tok.encode(text, false);
  // The stop string must span several tokens for this test to mean anything.
  for (int32_t id : ids) ASSERT_EQ(tok.decode(std::vector<int32_t>{id}).find(stop), std::string::npos);
  TextStream stream(tok, {stop, "never matches"});
  std::string out;
  size_t pushed = 0;
  for (int32_t id : ids) {
    ++pushed;
    out += stream.push(id);
    EXPECT_EQ(out, text.substr(0, out.size())) << "emitted text is always a prefix of the answer";
    EXPECT_LE(out.size(), text.find(stop));
    if (stream.stopped()) break;
  }
  EXPECT_TRUE(stream.stopped());
  EXPECT_EQ(stream.matched_stop(), stop);
  EXPECT_EQ(out, "The model keeps a cache of ");
  EXPECT_LT(pushed, ids.size());
  EXPECT_EQ(stream.finish(), "");
}

TEST(TextStream, WithoutStopsTheStreamIsTheDecode) {
  const auto& tok = demo();
  const std::string text = "naïve café ☕ résumé — 東京 done";
  auto ids = tok.encode(text, false);
  TextStream stream(tok, {});
  std::string out;
  for (int32_t id : ids) {
    std::string piece = stream.push(id);
    EXPECT_TRUE(valid_utf8(piece)) << "pieces are whole UTF-8 characters";
    out += piece;
  }
  out += stream.finish();
  EXPECT_EQ(out, text);
}

TEST(TextStream, MultiByteStopString) {
  const auto& tok = demo();
  const std::string text = "naïve café ☕ résumé";
  auto ids = tok.encode(text, false);
  TextStream stream(tok, {"☕"});
  std::string out;
  for (int32_t id : ids) {
    std::string piece = stream.push(id);
    EXPECT_TRUE(valid_utf8(piece));
    out += piece;
  }
  out += stream.finish();
  EXPECT_TRUE(stream.stopped());
  EXPECT_EQ(out, "naïve café ");
}

TEST(TextStream, SpecialTokensAreSkippedByDefault) {
  const auto& tok = demo();
  std::vector<int32_t> ids = tok.encode("Hi<|im_end|>there", false);
  ASSERT_NE(std::find(ids.begin(), ids.end(), 1023), ids.end());
  std::string skipped, kept;
  TextStream a(tok, {}), b(tok, {}, /*skip_special_tokens=*/false);
  for (int32_t id : ids) skipped += a.push(id), kept += b.push(id);
  skipped += a.finish();
  kept += b.finish();
  EXPECT_EQ(skipped, "Hithere");
  EXPECT_EQ(kept, "Hi<|im_end|>there");
}

}  // namespace
}  // namespace hwledger
