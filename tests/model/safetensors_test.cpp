// The safetensors reader never reads outside the file, whatever the header claims.
#include "model/safetensors.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "util/error.h"

namespace hwledger {
namespace {

std::vector<uint8_t> image(const std::string& header, size_t data_bytes) {
  std::vector<uint8_t> b(8 + header.size() + data_bytes, 0);
  uint64_t n = header.size();
  std::memcpy(b.data(), &n, 8);
  std::memcpy(b.data() + 8, header.data(), header.size());
  return b;
}

std::string error_of(const std::vector<uint8_t>& b) {
  try {
    parse_safetensors(b.data(), b.size(), "x.safetensors");
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

TEST(Safetensors, ParsesAValidImage) {
  auto b = image(R"({"__metadata__":{"format":"pt"},"w":{"dtype":"BF16","shape":[2,3],"data_offsets":[0,12]}})", 12);
  auto h = parse_safetensors(b.data(), b.size(), "x");
  ASSERT_EQ(h.tensors.size(), 1u);
  EXPECT_EQ(h.tensors.at("w").shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(h.metadata.at("format"), "pt");
}

TEST(Safetensors, RejectsLiesAndTruncation) {
  EXPECT_NE(error_of({1, 2, 3}).find("truncated"), std::string::npos);
  auto b = image("{}", 0);
  uint64_t huge = 1ull << 40;
  std::memcpy(b.data(), &huge, 8);
  EXPECT_NE(error_of(b).find("over the 100 MB limit"), std::string::npos);
  uint64_t more = 1000;
  std::memcpy(b.data(), &more, 8);
  EXPECT_NE(error_of(b).find("header says 1000 header bytes"), std::string::npos);
  // Offsets beyond the data (a truncated file).
  EXPECT_NE(error_of(image(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8)).find("fall outside"),
            std::string::npos);
  // Size that does not match shape x dtype.
  EXPECT_NE(error_of(image(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,12]}})", 16)).find("needs 16 bytes"),
            std::string::npos);
  // Overflowing shape.
  EXPECT_NE(error_of(image(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,16]}})", 16))
                .find("overflows"),
            std::string::npos);
  EXPECT_NE(error_of(image(R"({"w":{"dtype":"Q9","shape":[4],"data_offsets":[0,4]}})", 4)).find("unknown dtype \"Q9\""),
            std::string::npos);
  EXPECT_NE(error_of(image(R"([1,2])", 0)).find("not a JSON object"), std::string::npos);
  EXPECT_NE(error_of(image(R"({"w":{"dtype":"F32"}})", 0)).find("needs dtype, shape and data_offsets"),
            std::string::npos);
  EXPECT_NE(error_of(image(R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4)).find("bad shape"),
            std::string::npos);
}

}  // namespace
}  // namespace hwledger
