// Bytes per weight and per KV value, block scales included, as ggml lays the blocks out.
#include <gtest/gtest.h>

#include "planner/formats.h"
#include "util/error.h"

namespace hwledger::planner {
namespace {

TEST(Formats, BytesPerWeightIncludeScales) {
  EXPECT_DOUBLE_EQ(bytes_per_weight(WeightFormat::kF32), 4.0);
  EXPECT_DOUBLE_EQ(bytes_per_weight(WeightFormat::kF16), 2.0);
  EXPECT_DOUBLE_EQ(bytes_per_weight(WeightFormat::kBF16), 2.0);
  EXPECT_DOUBLE_EQ(bytes_per_weight(WeightFormat::kQ8_0), 34.0 / 32);    // f16 scale + 32 int8
  EXPECT_DOUBLE_EQ(bytes_per_weight(WeightFormat::kQ4_0), 18.0 / 32);    // f16 scale + 16 bytes
  EXPECT_DOUBLE_EQ(bytes_per_weight(WeightFormat::kQ4_K), 144.0 / 256);  // 4.5 bits
  EXPECT_DOUBLE_EQ(bytes_per_weight(WeightFormat::kQ6_K), 210.0 / 256);  // 6.5625 bits
  EXPECT_DOUBLE_EQ(bytes_per_weight(WeightFormat::kQ5_0), 22.0 / 32);
  EXPECT_DOUBLE_EQ(bytes_per_weight(WeightFormat::kFp8), 1.0);
}

TEST(Formats, MatrixBytesAreWholeBlocksPerRow) {
  // 4096 x 4096 in q4_k: 16 blocks of 256 per row x 144 bytes x 4096 rows.
  EXPECT_EQ(matrix_bytes(WeightFormat::kQ4_K, 4096, 4096), 4096ull * 16 * 144);
  EXPECT_EQ(matrix_bytes(WeightFormat::kQ8_0, 10, 64), 10ull * 2 * 34);
  // fp8 adds one f32 scale per tensor.
  EXPECT_EQ(matrix_bytes(WeightFormat::kFp8, 100, 100), 10'000u + 4);
  EXPECT_EQ(matrix_bytes(WeightFormat::kBF16, 3, 5), 30u);
}

TEST(Formats, RowsTheBlockDoesNotDivideFallBackAsLlamaQuantizeDoes) {
  // 1408 = 5.5 x 256: q4_k falls back to q5_0 (44 blocks of 32 x 22 bytes per row).
  EXPECT_EQ(storage_format_for_row(WeightFormat::kQ4_K, 1408), WeightFormat::kQ5_0);
  EXPECT_EQ(matrix_bytes(WeightFormat::kQ4_K, 2, 1408), 2ull * 44 * 22);
  EXPECT_EQ(storage_format_for_row(WeightFormat::kQ6_K, 1408), WeightFormat::kQ8_0);
  // 100 is not a multiple of 32 either: f16.
  EXPECT_EQ(storage_format_for_row(WeightFormat::kQ4_K, 100), WeightFormat::kF16);
  EXPECT_EQ(storage_format_for_row(WeightFormat::kQ8_0, 100), WeightFormat::kF16);
  EXPECT_EQ(storage_format_for_row(WeightFormat::kQ8_0, 4096), WeightFormat::kQ8_0);
}

TEST(Formats, UnquantizedTensorsStayFloat) {
  EXPECT_EQ(unquantized_companion(WeightFormat::kQ4_K), WeightFormat::kF32);
  EXPECT_EQ(unquantized_companion(WeightFormat::kFp8), WeightFormat::kBF16);
  EXPECT_EQ(unquantized_companion(WeightFormat::kF16), WeightFormat::kF16);
}

TEST(Formats, KvRowBytes) {
  EXPECT_EQ(kv_row_bytes(KvDtype::kF16, 1024, "x"), 2048u);
  EXPECT_EQ(kv_row_bytes(KvDtype::kBF16, 1024, "x"), 2048u);
  EXPECT_EQ(kv_row_bytes(KvDtype::kFp8, 1024, "x"), 1024u);  // vLLM's: per-tensor scales
  // hwledger's engine: e4m3 values and an f16 scale per 32, q8_0's size.
  EXPECT_EQ(kv_row_bytes(KvDtype::kFp8, 1024, "x", true), 32u * 34);
  EXPECT_EQ(kv_row_bytes(KvDtype::kQ8_0, 1024, "x", true), 32u * 34);
  EXPECT_EQ(kv_row_bytes(KvDtype::kF16, 1024, "x", true), 2048u);
  EXPECT_THROW(kv_row_bytes(KvDtype::kFp8, 80, "x", true), InputError);
  EXPECT_EQ(kv_row_bytes(KvDtype::kQ8_0, 1024, "x"), 32u * 34);
  EXPECT_EQ(kv_row_bytes(KvDtype::kQ4_0, 1024, "x"), 32u * 18);
  EXPECT_EQ(kv_row_bytes(KvDtype::kF32, 3, "x"), 12u);
  try {
    kv_row_bytes(KvDtype::kQ8_0, 80, "num_key_value_heads x head_dim");
    FAIL() << "expected an InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("head_dim"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("80"), std::string::npos) << e.what();
  }
}

TEST(Formats, ParseNamesAndRefusals) {
  EXPECT_EQ(parse_weight_format("Q4_K"), WeightFormat::kQ4_K);
  EXPECT_EQ(parse_weight_format("bfloat16"), WeightFormat::kBF16);
  EXPECT_EQ(parse_kv_dtype("fp8"), KvDtype::kFp8);
  EXPECT_EQ(parse_kv_dtype("q8_0"), KvDtype::kQ8_0);
  for (WeightFormat f :
       {WeightFormat::kBF16, WeightFormat::kF16, WeightFormat::kF32, WeightFormat::kQ8_0,
        WeightFormat::kQ4_0, WeightFormat::kQ4_K, WeightFormat::kQ6_K, WeightFormat::kFp8})
    EXPECT_EQ(parse_weight_format(to_string(f)), f);
  try {
    parse_weight_format("q3_x");
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("q3_x"), std::string::npos);
  }
  EXPECT_THROW(parse_kv_dtype("int4"), InputError);
}

}  // namespace
}  // namespace hwledger::planner
