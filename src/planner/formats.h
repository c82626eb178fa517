// Storage formats the planner prices: weight quantizations and KV-cache element types.
// Block formats are priced exactly as llama.cpp (ggml) stores them, scales included:
// a block of `block_elements` values takes `block_bytes` bytes.
#pragma once
#include <cstdint>
#include <string_view>

namespace hwledger::planner {

enum class WeightFormat { kF32, kF16, kBF16, kQ8_0, kQ5_0, kQ4_0, kQ4_K, kQ6_K, kFp8 };
enum class KvDtype { kF32, kF16, kBF16, kFp8, kQ8_0, kQ4_0 };

struct BlockLayout {
  int64_t block_elements = 1;
  int64_t block_bytes = 0;
};

// Names as users type them ("bf16", "q4_k", ...). parse_* throw InputError listing the choices.
std::string_view to_string(WeightFormat format);
std::string_view to_string(KvDtype dtype);
WeightFormat parse_weight_format(std::string_view text);
KvDtype parse_kv_dtype(std::string_view text);

BlockLayout block_layout(WeightFormat format);
BlockLayout block_layout(KvDtype dtype);
// KvDtype::kFp8 is priced as vLLM's fp8 cache, one byte per value (per-tensor scales). hwledger's
// engine stores fp8 as e4m3 values with an f16 scale per 32 (ops/paged_kv.h): 34 bytes per 32,
// q8_0's size. With hwledger_kv, block_layout and kv_row_bytes price that.
BlockLayout block_layout(KvDtype dtype, bool hwledger_kv);

// Bytes per weight including block scales: q8_0 34/32, q4_0 18/32, q4_k 144/256, ...
double bytes_per_weight(WeightFormat format);
bool is_block_quantized(WeightFormat format);  // the ggml q* formats
bool is_float(WeightFormat format);            // f32, f16, bf16

// The format a matrix whose rows hold `row_elements` values is really stored in: ggml blocks run
// along a row, so a row that the block size does not divide falls back as llama-quantize does
// (q4_k -> q5_0, q6_k -> q8_0, then f16 when even 32 does not divide).
WeightFormat storage_format_for_row(WeightFormat format, int64_t row_elements);

// Bytes of a quantizable weight of `rows` rows of `row_elements` values, after the fallback above.
// fp8 adds one f32 per-tensor scale (vLLM's --quantization fp8).
uint64_t matrix_bytes(WeightFormat format, int64_t rows, int64_t row_elements);

// Format of tensors that are never quantized (norms, biases, routers, SSM vectors, conv kernels):
// f32 beside ggml block formats (llama.cpp keeps them in f32), bf16 beside fp8 (vLLM keeps them in
// the model dtype), else the format itself.
WeightFormat unquantized_companion(WeightFormat format);

// Bytes of one KV row of `elements` values (one token's K, or V, or MLA latent, in one layer).
// Block dtypes need `elements` to be a multiple of 32; otherwise InputError naming `what`.
uint64_t kv_row_bytes(KvDtype dtype, int64_t elements, std::string_view what,
                      bool hwledger_kv = false);

}  // namespace hwledger::planner
