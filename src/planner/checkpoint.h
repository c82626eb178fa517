// Exact parameter counts from a checkpoint's safetensors headers. Only the headers are read
// (8-byte little-endian length N, then N bytes of JSON); every field is validated against the
// file before it is believed.
#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "planner/plan_model.h"

namespace hwledger::planner {

struct CheckpointTensor {
  std::string name;
  std::string dtype;  // as in the file: "BF16", "F8_E4M3", ...
  std::vector<int64_t> shape;
  uint64_t bytes = 0;  // end - begin, checked against dtype x shape
};

struct Checkpoint {
  std::vector<CheckpointTensor> tensors;  // all shards
  std::vector<std::string> files;         // shard file names, in the order read
  uint64_t data_bytes = 0;                // sum of the tensors' stored bytes
};

// One header's tensors, validated by model/safetensors (parse_safetensors_header: known dtypes,
// shapes, offsets inside the data, sizes equal to dtype x shape, no overlaps). Throws InputError
// naming `file_name` and the tensor. Pure, for fuzzing.
std::vector<CheckpointTensor> parse_safetensors_header(std::string_view header_json,
                                                       uint64_t data_bytes,
                                                       std::string_view file_name);

// Reads and validates the header of one .safetensors file (not its data).
std::vector<CheckpointTensor> read_safetensors_header(const std::filesystem::path& file);

// The checkpoint in a model folder: model.safetensors.index.json and its shards, else
// model.safetensors; nullopt when the folder has neither.
std::optional<Checkpoint> read_checkpoint(const std::filesystem::path& model_dir);

// Replaces the config-derived tensors of `model` with the checkpoint's, so that parameter counts
// are exact. Tensors of layers beyond num_hidden_layers (DeepSeek's MTP) are counted in
// unplanned_parameters; quantization scales are not parameters. Leaves the model as it was, with
// a note, when the checkpoint's names or packing cannot be matched to the layers.
void apply_checkpoint(PlanModel& model, const Checkpoint& checkpoint);

}  // namespace hwledger::planner
