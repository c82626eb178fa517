#include "planner/formats.h"

#include <array>
#include <string>

#include "util/error.h"

namespace hwledger::planner {
namespace {

struct WeightFormatInfo {
  WeightFormat format;
  std::string_view name;
  BlockLayout layout;
};

// ggml block sizes: q8_0 = f16 scale + 32 int8; q5_0 = f16 scale + 4 bytes of high bits + 16 bytes
// of nibbles; q4_0 = f16 scale + 16 bytes of nibbles; q4_k = 2 f16 (d, dmin) + 12 bytes of 6-bit
// sub-block scales + 128 bytes of nibbles; q6_k = 128 bytes low bits + 64 high bits + 16 int8
// scales + f16 d.
constexpr std::array<WeightFormatInfo, 9> kWeightFormats{{
    {WeightFormat::kBF16, "bf16", {1, 2}},
    {WeightFormat::kF16, "f16", {1, 2}},
    {WeightFormat::kF32, "f32", {1, 4}},
    {WeightFormat::kQ8_0, "q8_0", {32, 34}},
    {WeightFormat::kQ5_0, "q5_0", {32, 22}},
    {WeightFormat::kQ4_0, "q4_0", {32, 18}},
    {WeightFormat::kQ4_K, "q4_k", {256, 144}},
    {WeightFormat::kQ6_K, "q6_k", {256, 210}},
    {WeightFormat::kFp8, "fp8", {1, 1}},
}};

struct KvDtypeInfo {
  KvDtype dtype;
  std::string_view name;
  BlockLayout layout;
};

constexpr std::array<KvDtypeInfo, 6> kKvDtypes{{
    {KvDtype::kF16, "f16", {1, 2}},
    {KvDtype::kBF16, "bf16", {1, 2}},
    {KvDtype::kF32, "f32", {1, 4}},
    {KvDtype::kFp8, "fp8", {1, 1}},
    {KvDtype::kQ8_0, "q8_0", {32, 34}},
    {KvDtype::kQ4_0, "q4_0", {32, 18}},
}};

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

uint64_t checked_product(uint64_t a, uint64_t b) {
  uint64_t out = 0;
  if (__builtin_mul_overflow(a, b, &out)) fail_input("size overflow: {} x {}", a, b);
  return out;
}

}  // namespace

std::string_view to_string(WeightFormat format) {
  for (const auto& info : kWeightFormats)
    if (info.format == format) return info.name;
  return "?";
}

std::string_view to_string(KvDtype dtype) {
  for (const auto& info : kKvDtypes)
    if (info.dtype == dtype) return info.name;
  return "?";
}

WeightFormat parse_weight_format(std::string_view text) {
  std::string name = lower(text);
  if (name == "bfloat16") name = "bf16";
  if (name == "float16" || name == "half") name = "f16";
  if (name == "float32" || name == "float") name = "f32";
  if (name == "fp8_e4m3" || name == "f8_e4m3") name = "fp8";
  for (const auto& info : kWeightFormats)
    if (info.name == name) return info.format;
  fail_input("unknown weight format '{}': use bf16, f16, f32, q8_0, q5_0, q4_0, q4_k, q6_k or fp8",
             text);
}

KvDtype parse_kv_dtype(std::string_view text) {
  std::string name = lower(text);
  if (name == "bfloat16") name = "bf16";
  if (name == "float16" || name == "half") name = "f16";
  if (name == "float32" || name == "float") name = "f32";
  if (name == "fp8_e4m3" || name == "fp8_e5m2") name = "fp8";
  for (const auto& info : kKvDtypes)
    if (info.name == name) return info.dtype;
  fail_input("unknown KV dtype '{}': use f16, bf16, f32, fp8, q8_0 or q4_0", text);
}

BlockLayout block_layout(WeightFormat format) {
  for (const auto& info : kWeightFormats)
    if (info.format == format) return info.layout;
  fail("unknown weight format {}", static_cast<int>(format));
}

BlockLayout block_layout(KvDtype dtype) {
  for (const auto& info : kKvDtypes)
    if (info.dtype == dtype) return info.layout;
  fail("unknown KV dtype {}", static_cast<int>(dtype));
}

BlockLayout block_layout(KvDtype dtype, bool hwledger_kv) {
  if (hwledger_kv && dtype == KvDtype::kFp8) return {32, 34};  // e4m3 + an f16 scale per 32
  return block_layout(dtype);
}

double bytes_per_weight(WeightFormat format) {
  BlockLayout layout = block_layout(format);
  return static_cast<double>(layout.block_bytes) / static_cast<double>(layout.block_elements);
}

bool is_block_quantized(WeightFormat format) {
  return block_layout(format).block_elements > 1;
}

bool is_float(WeightFormat format) {
  return format == WeightFormat::kF32 || format == WeightFormat::kF16 ||
         format == WeightFormat::kBF16;
}

WeightFormat storage_format_for_row(WeightFormat format, int64_t row_elements) {
  if (!is_block_quantized(format)) return format;
  if (row_elements % block_layout(format).block_elements == 0) return format;
  WeightFormat fallback = format;
  if (format == WeightFormat::kQ4_K) fallback = WeightFormat::kQ5_0;
  if (format == WeightFormat::kQ6_K) fallback = WeightFormat::kQ8_0;
  if (row_elements % block_layout(fallback).block_elements == 0) return fallback;
  return WeightFormat::kF16;
}

uint64_t matrix_bytes(WeightFormat format, int64_t rows, int64_t row_elements) {
  if (rows < 0 || row_elements < 0) fail("negative matrix shape {} x {}", rows, row_elements);
  WeightFormat stored = storage_format_for_row(format, row_elements);
  BlockLayout layout = block_layout(stored);
  uint64_t blocks_per_row = static_cast<uint64_t>(row_elements / layout.block_elements);
  uint64_t bytes = checked_product(checked_product(static_cast<uint64_t>(rows), blocks_per_row),
                                   static_cast<uint64_t>(layout.block_bytes));
  if (stored == WeightFormat::kFp8) bytes += 4;  // the per-tensor f32 scale
  return bytes;
}

WeightFormat unquantized_companion(WeightFormat format) {
  if (is_block_quantized(format)) return WeightFormat::kF32;
  if (format == WeightFormat::kFp8) return WeightFormat::kBF16;
  return format;
}

uint64_t kv_row_bytes(KvDtype dtype, int64_t elements, std::string_view what, bool hwledger_kv) {
  BlockLayout layout = block_layout(dtype, hwledger_kv);
  if (elements % layout.block_elements != 0)
    fail_input("KV dtype {} stores blocks of {} values, which do not divide {} = {}",
               to_string(dtype), layout.block_elements, what, elements);
  return checked_product(static_cast<uint64_t>(elements / layout.block_elements),
                         static_cast<uint64_t>(layout.block_bytes));
}

}  // namespace hwledger::planner
