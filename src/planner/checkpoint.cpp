#include "planner/checkpoint.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "util/error.h"

namespace hwledger::planner {

using nlohmann::json;
namespace fs = std::filesystem;

namespace {

constexpr uint64_t kMaxIndexBytes = 64ull << 20;
constexpr size_t kMaxRank = 8;

// Bytes per element of each safetensors dtype.
int64_t safetensors_dtype_size(const std::string& dtype) {
  static const std::map<std::string, int64_t> sizes = {
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E4M3", 1}, {"F8_E5M2", 1}, {"F8_E8M0", 1},
      {"I16", 2},  {"U16", 2}, {"F16", 2}, {"BF16", 2},    {"I32", 4},     {"U32", 4},
      {"F32", 4},  {"I64", 8}, {"U64", 8}, {"F64", 8}};
  auto it = sizes.find(dtype);
  return it == sizes.end() ? 0 : it->second;
}

uint64_t json_offset(const json& value, std::string_view file, const std::string& name) {
  if (!value.is_number_unsigned())
    fail_input("{}: tensor \"{}\" has a data offset that is not a non-negative integer: {}", file,
               name, value.dump());
  return value.get<uint64_t>();
}

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

std::vector<CheckpointTensor> parse_safetensors_header(std::string_view header_json,
                                                       uint64_t data_bytes,
                                                       std::string_view file_name) {
  json header = json::parse(header_json.begin(), header_json.end(), nullptr, false);
  if (header.is_discarded()) fail_input("{}: the safetensors header is not valid JSON", file_name);
  if (!header.is_object())
    fail_input("{}: the safetensors header must be a JSON object, got {}", file_name,
               header.type_name());
  std::vector<CheckpointTensor> tensors;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object())
        fail_input("{}: \"__metadata__\" must be an object of strings", file_name);
      for (const auto& [key, value] : entry.items())
        if (!value.is_string())
          fail_input("{}: \"__metadata__\" entry \"{}\" is not a string", file_name, key);
      continue;
    }
    if (!entry.is_object())
      fail_input("{}: tensor \"{}\" must be an object {{dtype, shape, data_offsets}}", file_name,
                 name);
    CheckpointTensor tensor;
    tensor.name = name;
    auto dtype = entry.find("dtype");
    if (dtype == entry.end() || !dtype->is_string())
      fail_input("{}: tensor \"{}\" has no string \"dtype\"", file_name, name);
    tensor.dtype = dtype->get<std::string>();
    const int64_t element_size = safetensors_dtype_size(tensor.dtype);
    if (element_size == 0)
      fail_input("{}: tensor \"{}\" has unknown dtype \"{}\"", file_name, name, tensor.dtype);
    auto shape = entry.find("shape");
    if (shape == entry.end() || !shape->is_array() || shape->size() > kMaxRank)
      fail_input("{}: tensor \"{}\" needs a \"shape\" list of at most {} dimensions", file_name,
                 name, kMaxRank);
    uint64_t elements = 1;
    for (const json& dim : *shape) {
      if (!dim.is_number_unsigned() || dim.get<uint64_t>() > (uint64_t(1) << 40))
        fail_input("{}: tensor \"{}\" has a bad dimension {} in its shape", file_name, name,
                   dim.dump());
      tensor.shape.push_back(int64_t(dim.get<uint64_t>()));
      if (__builtin_mul_overflow(elements, dim.get<uint64_t>(), &elements))
        fail_input("{}: tensor \"{}\" has a shape whose size overflows", file_name, name);
    }
    auto offsets = entry.find("data_offsets");
    if (offsets == entry.end() || !offsets->is_array() || offsets->size() != 2)
      fail_input("{}: tensor \"{}\" needs \"data_offsets\": [begin, end]", file_name, name);
    const uint64_t begin = json_offset((*offsets)[0], file_name, name);
    const uint64_t end = json_offset((*offsets)[1], file_name, name);
    if (begin > end || end > data_bytes)
      fail_input("{}: tensor \"{}\" has data_offsets [{}, {}] outside the {} bytes of data",
                 file_name, name, begin, end, data_bytes);
    uint64_t expected = 0;
    if (__builtin_mul_overflow(elements, uint64_t(element_size), &expected) ||
        expected != end - begin)
      fail_input("{}: tensor \"{}\" is {} bytes in the file but its dtype {} and shape need {}",
                 file_name, name, end - begin, tensor.dtype, expected);
    tensor.bytes = end - begin;
    ranges.emplace_back(begin, end);
    tensors.push_back(std::move(tensor));
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i)
    if (ranges[i].first < ranges[i - 1].second)
      fail_input("{}: two tensors overlap at data offset {}", file_name, ranges[i].first);
  return tensors;
}

std::vector<CheckpointTensor> read_safetensors_header(const fs::path& file) {
  const std::string name = file.string();
  std::error_code error;
  const uint64_t file_size = fs::file_size(file, error);
  if (error) fail_input("cannot read {}: {}", name, error.message());
  if (file_size < 8)
    fail_input("{}: {} bytes is too short for a safetensors file", name, file_size);
  std::ifstream in(file, std::ios::binary);
  if (!in) fail_input("cannot open {}", name);
  std::array<unsigned char, 8> length_bytes{};
  in.read(reinterpret_cast<char*>(length_bytes.data()), 8);
  if (!in) fail_input("cannot read {}", name);
  uint64_t header_length = 0;
  for (int i = 7; i >= 0; --i) header_length = (header_length << 8) | length_bytes[size_t(i)];
  if (header_length > kMaxSafetensorsHeaderBytes || header_length > file_size - 8)
    fail_input("{}: header length {} does not fit the file ({} bytes) or the {} byte cap", name,
               header_length, file_size, kMaxSafetensorsHeaderBytes);
  std::string header(header_length, '\0');
  in.read(header.data(), std::streamsize(header_length));
  if (!in) fail_input("cannot read the header of {}", name);
  return parse_safetensors_header(header, file_size - 8 - header_length, name);
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
