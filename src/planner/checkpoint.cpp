#include "planner/checkpoint.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "model/safetensors.h"
#include "util/error.h"

namespace hwledger::planner {

using nlohmann::json;
namespace fs = std::filesystem;

namespace {

constexpr uint64_t kMaxIndexBytes = 64ull << 20;
std::string read_text_file(const fs::path& path, uint64_t limit) {
  std::error_code error;
  uint64_t size = fs::file_size(path, error);
  if (error) fail_input("cannot read {}: {}", path.string(), error.message());
  if (size > limit)
    fail_input("{} is {} bytes; the planner reads at most {}", path.string(), size, limit);
  std::ifstream in(path, std::ios::binary);
  if (!in) fail_input("cannot open {}", path.string());
  std::string text(size, '\0');
  in.read(text.data(), std::streamsize(size));
  if (!in) fail_input("cannot read {}", path.string());
  return text;
}

// A shard named by an index must be a plain file beside it, never a path out of the folder.
void check_shard_name(const std::string& name, const fs::path& index) {
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos ||
      name.find('\\') != std::string::npos || name.find('\0') != std::string::npos)
    fail_input("{}: weight_map names shard \"{}\", which is not a plain file name", index.string(),
               name);
}

bool ends_with(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

bool contains(std::string_view text, std::string_view part) {
  return text.find(part) != std::string_view::npos;
}

// Quantization side tensors: scales of fp8 / block-quantized checkpoints are not parameters.
bool is_scale_tensor(std::string_view name) {
  for (std::string_view suffix : {"_scale_inv", ".weight_scale", ".input_scale", ".k_scale",
                                  ".v_scale", ".weight_scale_2", ".input_scale_inv"})
    if (ends_with(name, suffix)) return true;
  return false;
}

// Packed integer formats (GPTQ, AWQ, bitsandbytes) whose element counts are not parameters.
bool is_packed_tensor(std::string_view name) {
  for (std::string_view suffix : {".qweight", ".qzeros", ".g_idx", ".scales", ".absmax",
                                  ".quant_map", ".quant_state.bitsandbytes__nf4"})
    if (ends_with(name, suffix)) return true;
  return false;
}

bool is_tower_tensor(std::string_view name) {
  for (std::string_view part :
       {"vision", "visual", "audio", "multi_modal_projector", "mm_projector"})
    if (contains(name, part)) return true;
  return false;
}

// The decoder layer a tensor belongs to: the N of "layers.N." at the start or after a dot.
std::optional<int64_t> layer_index(std::string_view name) {
  size_t from = 0;
  while ((from = name.find("layers.", from)) != std::string_view::npos) {
    if (from == 0 || name[from - 1] == '.') {
      size_t pos = from + 7, digits = 0;
      int64_t value = 0;
      while (pos < name.size() && std::isdigit(static_cast<unsigned char>(name[pos])) &&
             digits < 9) {
        value = value * 10 + (name[pos] - '0');
        ++pos, ++digits;
      }
      if (digits > 0 && pos < name.size() && name[pos] == '.') return value;
    }
    from += 7;
  }
  return std::nullopt;
}

// Projection matrices take the weight format; vectors, conv kernels, SSM A and routers do not.
bool is_quantizable(std::string_view name, size_t rank) {
  if (rank < 2) return false;
  for (std::string_view part : {"conv1d", "A_log", "router.weight", "mlp.gate.weight",
                                "block_sparse_moe.gate.weight", "shared_expert_gate.weight"})
    if (contains(name, part)) return false;
  return true;
}

PlanTensor to_plan_tensor(const CheckpointTensor& tensor) {
  return PlanTensor{tensor.name, tensor.shape, is_quantizable(tensor.name, tensor.shape.size()), 1};
}

}  // namespace

namespace {
// The planner's view of a header parsed (and validated) by model/safetensors.
std::vector<CheckpointTensor> to_checkpoint_tensors(const SafetensorsHeader& header) {
  std::vector<CheckpointTensor> tensors;
  tensors.reserve(header.tensors.size());
  for (const auto& [name, entry] : header.tensors)
    tensors.push_back(CheckpointTensor{name, entry.dtype_name, entry.shape, entry.end - entry.begin});
  return tensors;
}
}  // namespace

std::vector<CheckpointTensor> parse_safetensors_header(std::string_view header_json,
                                                       uint64_t data_bytes,
                                                       std::string_view file_name) {
  return to_checkpoint_tensors(hwledger::parse_safetensors_header(header_json, data_bytes, file_name));
}

std::vector<CheckpointTensor> read_safetensors_header(const fs::path& file) {
  return to_checkpoint_tensors(hwledger::read_safetensors_header(file.string()));
}

std::optional<Checkpoint> read_checkpoint(const fs::path& model_dir) {
  Checkpoint checkpoint;
  const fs::path index_path = model_dir / "model.safetensors.index.json";
  const fs::path single_path = model_dir / "model.safetensors";
  std::error_code error;
  if (fs::is_regular_file(index_path, error)) {
    json index = json::parse(read_text_file(index_path, kMaxIndexBytes), nullptr, false);
    if (index.is_discarded() || !index.is_object())
      fail_input("{}: not a JSON object", index_path.string());
    auto weight_map = index.find("weight_map");
    if (weight_map == index.end() || !weight_map->is_object())
      fail_input("{}: missing the \"weight_map\" object", index_path.string());
    std::map<std::string, std::string> shard_of;
    std::vector<std::string> shards;
    for (const auto& [tensor, shard] : weight_map->items()) {
      if (!shard.is_string())
        fail_input("{}: weight_map entry \"{}\" is not a file name", index_path.string(), tensor);
      const std::string shard_name = shard.get<std::string>();
      check_shard_name(shard_name, index_path);
      shard_of[tensor] = shard_name;
      if (std::find(shards.begin(), shards.end(), shard_name) == shards.end())
        shards.push_back(shard_name);
    }
    std::set<std::string> seen;
    for (const std::string& shard : shards) {
      for (CheckpointTensor& tensor : read_safetensors_header(model_dir / shard)) {
        if (!seen.insert(tensor.name).second)
          fail_input("{}: tensor \"{}\" is stored in more than one shard", index_path.string(),
                     tensor.name);
        checkpoint.tensors.push_back(std::move(tensor));
      }
      checkpoint.files.push_back(shard);
    }
    for (const auto& [tensor, shard] : shard_of)
      if (!seen.count(tensor))
        fail_input("{}: weight_map puts \"{}\" in {}, which does not hold it", index_path.string(),
                   tensor, shard);
  } else if (fs::is_regular_file(single_path, error)) {
    checkpoint.tensors = read_safetensors_header(single_path);
    checkpoint.files.push_back("model.safetensors");
  } else {
    return std::nullopt;
  }
  for (const CheckpointTensor& tensor : checkpoint.tensors) checkpoint.data_bytes += tensor.bytes;
  return checkpoint;
}

void apply_checkpoint(PlanModel& model, const Checkpoint& checkpoint) {
  for (const CheckpointTensor& tensor : checkpoint.tensors)
    if (is_packed_tensor(tensor.name)) {
      model.notes.push_back(fmt::format(
          "the checkpoint holds packed quantized tensors (e.g. {}); parameter counts come from "
          "config.json",
          tensor.name));
      return;
    }
  const int64_t layer_count = int64_t(model.layers.size());
  std::vector<std::vector<PlanTensor>> layers(model.layers.size());
  std::vector<PlanTensor> embedding, lm_head, other;
  int64_t unplanned = 0;
  bool skipped_tied_head = false;
  for (const CheckpointTensor& tensor : checkpoint.tensors) {
    if (is_scale_tensor(tensor.name)) continue;
    PlanTensor planned = to_plan_tensor(tensor);
    if (is_tower_tensor(tensor.name)) {
      other.push_back(std::move(planned));
    } else if (auto index = layer_index(tensor.name)) {
      if (*index < layer_count)
        layers[size_t(*index)].push_back(std::move(planned));
      else
        unplanned += planned.parameters();
    } else if (contains(tensor.name, "lm_head")) {
      if (model.tied_embeddings)
        skipped_tied_head = true;
      else
        lm_head.push_back(std::move(planned));
    } else if (contains(tensor.name, "embed_tokens") || contains(tensor.name, "embeddings.") ||
               contains(tensor.name, "embedding.") || contains(tensor.name, "wte.")) {
      embedding.push_back(std::move(planned));
    } else {
      other.push_back(std::move(planned));
    }
  }
  for (int64_t i = 0; i < layer_count; ++i)
    if (layers[size_t(i)].empty()) {
      model.notes.push_back(fmt::format(
          "the checkpoint has no tensors for layer {} under a recognisable name; parameter "
          "counts come from config.json",
          i));
      return;
    }
  const int64_t from_config = model.parameters();
  for (int64_t i = 0; i < layer_count; ++i)
    model.layers[size_t(i)].tensors = std::move(layers[size_t(i)]);
  model.embedding = std::move(embedding);
  model.lm_head = std::move(lm_head);
  model.other = std::move(other);
  model.unplanned_parameters = unplanned;
  model.parameters_source = "safetensors";
  const int64_t from_checkpoint = model.parameters();
  if (from_checkpoint != from_config)
    model.notes.push_back(fmt::format(
        "config.json implies {} parameters, the checkpoint holds {}: the plan uses the checkpoint",
        from_config, from_checkpoint));
  if (unplanned > 0)
    model.notes.push_back(
        fmt::format("{} checkpoint parameters belong to layers beyond num_hidden_layers (e.g. a "
                    "multi-token-prediction module) and are not planned",
                    unplanned));
  if (skipped_tied_head)
    model.notes.push_back(
        "the checkpoint stores lm_head although the embeddings are tied; it is "
        "counted once");
  if (model.lm_head.empty() && !model.tied_embeddings)
    model.notes.push_back(
        "config.json says the embeddings are untied but the checkpoint has no "
        "lm_head");
}

}  // namespace hwledger::planner
