// The sidecar's input framing: lines across reads, over-long lines skipped to their newline.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "rpc/line_splitter.h"

namespace hwledger::rpc {
namespace {

struct Collector {
  std::vector<std::string> lines;
  std::vector<size_t> overflows;
  LineSplitter make(size_t limit) {
    return LineSplitter(limit, {[this](std::string_view l) { lines.emplace_back(l); },
                                [this](size_t n) { overflows.push_back(n); }});
  }
};

TEST(LineSplitter, SplitsLinesAcrossArbitraryReads) {
  Collector c;
  LineSplitter s = c.make(1024);
  std::string input = "{\"a\":1}\n{\"b\":2}\n\n{\"c\":3}\n";
  for (char ch : input) s.feed(std::string_view(&ch, 1));  // one byte per read
  EXPECT_EQ(c.lines, (std::vector<std::string>{"{\"a\":1}", "{\"b\":2}", "", "{\"c\":3}"}));
  c.lines.clear();
  s.feed(input);  // all in one read
  EXPECT_EQ(c.lines.size(), 4u);
  EXPECT_EQ(s.buffered_bytes(), 0u);
}

TEST(LineSplitter, PartialLineWaitsForItsNewline) {
  Collector c;
  LineSplitter s = c.make(1024);
  s.feed("{\"jsonrpc\":\"2.0\",");
  EXPECT_TRUE(c.lines.empty());
  s.feed("\"method\":\"health\"}\nrest");
  ASSERT_EQ(c.lines.size(), 1u);
  EXPECT_EQ(c.lines[0], "{\"jsonrpc\":\"2.0\",\"method\":\"health\"}");
  EXPECT_EQ(s.buffered_bytes(), 4u);
}

TEST(LineSplitter, LastLineWithoutNewlineIsDeliveredAtEnd) {
  Collector c;
  LineSplitter s = c.make(1024);
  s.feed("one\ntwo");
  s.finish();
  EXPECT_EQ(c.lines, (std::vector<std::string>{"one", "two"}));
}

TEST(LineSplitter, OverlongLineIsReportedOnceAndSkippedToItsNewline) {
  Collector c;
  LineSplitter s = c.make(16);
  s.feed("short\n");
  s.feed(std::string(10, 'x'));
  s.feed(std::string(10, 'y'));  // crosses the limit here
  EXPECT_EQ(c.overflows, (std::vector<size_t>{16}));
  EXPECT_TRUE(s.skipping());
  for (int i = 0; i < 1000; ++i) s.feed(std::string(1000, 'z'));  // memory stays bounded
  EXPECT_EQ(s.buffered_bytes(), 0u);
  s.feed("zzz\nafter\n");
  EXPECT_EQ(c.overflows.size(), 1u);
  EXPECT_EQ(c.lines, (std::vector<std::string>{"short", "after"}));
}

TEST(LineSplitter, LineOfExactlyTheLimitIsAccepted) {
  Collector c;
  LineSplitter s = c.make(8);
  s.feed("12345678\n123456789\nok\n");
  EXPECT_EQ(c.lines, (std::vector<std::string>{"12345678", "ok"}));
  EXPECT_EQ(c.overflows.size(), 1u);
}

TEST(LineSplitter, OverlongUnterminatedLineIsDroppedAtEnd) {
  Collector c;
  LineSplitter s = c.make(4);
  s.feed("abcdefgh");
  s.finish();
  EXPECT_TRUE(c.lines.empty());
  EXPECT_EQ(c.overflows.size(), 1u);
  EXPECT_FALSE(s.skipping());
}

}  // namespace
}  // namespace hwledger::rpc
