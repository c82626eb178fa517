#include "util/size.h"

#include <gtest/gtest.h>

#include "util/error.h"

namespace hwledger {

TEST(ParseSize, AcceptsUnitsAsPowersOf1024) {
  EXPECT_EQ(parse_size("4096"), 4096u);
  EXPECT_EQ(parse_size("512M"), 512ull << 20);
  EXPECT_EQ(parse_size("8G"), 8ull << 30);
  EXPECT_EQ(parse_size("8GiB"), 8ull << 30);
  EXPECT_EQ(parse_size("1.5k"), 1536u);
  EXPECT_EQ(parse_size("2 TB"), 2ull << 40);
}

TEST(ParseSize, RejectsGarbageWithTheValueInTheMessage) {
  for (const char* bad : {"", "abc", "12Q", "-1G", "1e30T"}) {
    try {
      parse_size(bad);
      FAIL() << "accepted " << bad;
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find("invalid size"), std::string::npos);
    }
  }
}

TEST(FormatBytes, UsesBinaryUnits) {
  EXPECT_EQ(format_bytes(512), "512 B");
  EXPECT_EQ(format_bytes(3ull << 30), "3.00 GiB");
}

}  // namespace hwledger
