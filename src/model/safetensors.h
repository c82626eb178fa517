// Reader for the safetensors format: an 8-byte little-endian header length N, N bytes of JSON
// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}, then the data.
// Every field is checked against the file before a tensor is handed out: a header that lies
// about sizes or offsets is an InputError, never an out-of-bounds read.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "ops/tensor.h"
#include "util/mapped_file.h"

namespace hwledger {

struct SafetensorsEntry {
  std::string dtype_name;       // as in the file: "BF16", "F16", "F32", "I32", ...
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // byte range relative to the data section
};

struct SafetensorsHeader {
  std::map<std::string, SafetensorsEntry> tensors;
  std::map<std::string, std::string> metadata;
  uint64_t data_offset = 0;  // 8 + N: where the data section starts in the file
};

// The safetensors header cap of the reference implementation (100 MB).
inline constexpr uint64_t kMaxSafetensorsHeaderBytes = 100'000'000;

// Bytes per element of a safetensors dtype name ("BF16", "F8_E4M3", ...); 0 if unknown.
size_t safetensors_dtype_bytes(std::string_view name);

// Validates a header (its JSON text) against the size of the data section after it: known
// dtypes, shapes of at most 8 dimensions, offsets inside the data, sizes equal to dtype x shape,
// no two tensors sharing bytes, __metadata__ an object of strings. Throws InputError naming
// `what` and the tensor. data_offset is left 0. Pure, for fuzzing.
SafetensorsHeader parse_safetensors_header(std::string_view header_json, uint64_t data_bytes,
                                           std::string_view what);

// Parses and validates a whole safetensors image (header and offsets against `size`).
// `what` names the file in error messages. Exposed for the fuzz target.
SafetensorsHeader parse_safetensors(const uint8_t* data, size_t size, const std::string& what);

// Reads and validates only the header of a file, not its data (the planner's exact parameter
// counts need names, dtypes and shapes of checkpoints it never loads).
SafetensorsHeader read_safetensors_header(const std::string& path);

class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);
  const SafetensorsHeader& header() const { return header_; }
  const MappedFile& file() const { return file_; }
  bool contains(const std::string& name) const { return header_.tensors.count(name) != 0; }
  // A view of the tensor in the mapped file. Supports F32, F16, BF16, I32; others throw.
  Tensor tensor(const std::string& name) const;

 private:
  MappedFile file_;
  SafetensorsHeader header_;
};

// Writes tensors to a safetensors file (used by `model synth`). Data is written in the order
// given, each tensor's bytes as they are in memory.
struct SafetensorsWriteItem {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  const void* data;
};
void write_safetensors(const std::string& path, const std::vector<SafetensorsWriteItem>& items,
                       const std::map<std::string, std::string>& metadata = {{"format", "pt"}});

}  // namespace hwledger
