#include "model/safetensors.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include "util/error.h"

namespace hwledger {

namespace {

constexpr size_t kMaxRank = 8;
constexpr uint64_t kMaxDim = uint64_t{1} << 40;

bool to_dtype(const std::string& name, DType& out) {
  if (name == "F32")
    out = DType::F32;
  else if (name == "F16")
    out = DType::F16;
  else if (name == "BF16")
    out = DType::BF16;
  else if (name == "I32")
    out = DType::I32;
  else
    return false;
  return true;
}

std::string dtype_to_name(DType t) {
  switch (t) {
    case DType::F32:
      return "F32";
    case DType::F16:
      return "F16";
    case DType::BF16:
      return "BF16";
    case DType::I32:
      return "I32";
    default:
      return "?";
  }
}

uint64_t read_length(const uint8_t* p) {
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | p[i];
  return n;
}

}  // namespace

size_t safetensors_dtype_bytes(std::string_view name) {
  if (name == "F64" || name == "I64" || name == "U64") return 8;
  if (name == "F32" || name == "I32" || name == "U32") return 4;
  if (name == "F16" || name == "BF16" || name == "I16" || name == "U16") return 2;
  if (name == "I8" || name == "U8" || name == "BOOL" || name == "F8_E4M3" || name == "F8_E5M2" ||
      name == "F8_E8M0")
    return 1;
  return 0;
}

SafetensorsHeader parse_safetensors_header(std::string_view header_json, uint64_t data_bytes,
                                           std::string_view what) {
  auto j = nlohmann::json::parse(header_json.begin(), header_json.end(), nullptr,
                                 /*allow_exceptions=*/false);
  if (j.is_discarded()) fail_input("{}: the safetensors header is not valid JSON", what);
  if (!j.is_object())
    fail_input("{}: the safetensors header is not a JSON object (got {})", what, j.type_name());
  SafetensorsHeader h;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& name = it.key();
    const auto& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) fail_input("{}: \"__metadata__\" must be an object of strings", what);
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string())
          fail_input("{}: \"__metadata__\" entry \"{}\" is not a string", what, m.key());
        h.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") ||
        !v.contains("data_offsets") || !v["dtype"].is_string() || !v["shape"].is_array() ||
        !v["data_offsets"].is_array() || v["data_offsets"].size() != 2)
      fail_input("{}: tensor \"{}\" needs dtype, shape and data_offsets [begin, end]", what, name);
    SafetensorsEntry e;
    e.dtype_name = v["dtype"].get<std::string>();
    const size_t esize = safetensors_dtype_bytes(e.dtype_name);
    if (esize == 0)
      fail_input("{}: tensor \"{}\" has unknown dtype \"{}\"", what, name, e.dtype_name);
    const auto& shape = v["shape"];
    if (shape.size() > kMaxRank)
      fail_input("{}: tensor \"{}\" has a bad shape {} (more than {} dimensions)", what, name,
                 shape.dump(), kMaxRank);
    uint64_t bytes = esize;
    for (const auto& d : shape) {
      if (!d.is_number_unsigned() || d.get<uint64_t>() > kMaxDim)
        fail_input("{}: tensor \"{}\" has a bad shape {} (dimensions are 0 .. 2^40)", what, name,
                   shape.dump());
      const uint64_t dim = d.get<uint64_t>();
      if (__builtin_mul_overflow(bytes, dim, &bytes))
        fail_input("{}: tensor \"{}\" has a shape {} whose size overflows", what, name,
                   shape.dump());
      e.shape.push_back(static_cast<int64_t>(dim));
    }
    const auto& off = v["data_offsets"];
    if (!off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      fail_input("{}: tensor \"{}\" has bad data_offsets {}", what, name, off.dump());
    e.begin = off[0].get<uint64_t>();
    e.end = off[1].get<uint64_t>();
    if (e.begin > e.end || e.end > data_bytes)
      fail_input(
          "{}: tensor \"{}\" has data_offsets [{}, {}] that fall outside the {} bytes of data "
          "(truncated file?)",
          what, name, e.begin, e.end, data_bytes);
    if (e.end - e.begin != bytes)
      fail_input(
          "{}: tensor \"{}\" of shape {} and dtype {} needs {} bytes but its data_offsets "
          "span {} bytes",
          what, name, shape.dump(), e.dtype_name, bytes, e.end - e.begin);
    h.tensors.emplace(name, std::move(e));
  }
  // No two tensors may share bytes.
  std::vector<std::pair<const SafetensorsEntry*, const std::string*>> by_offset;
  for (const auto& [name, e] : h.tensors)
    if (e.end > e.begin) by_offset.emplace_back(&e, &name);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const auto& a, const auto& b) { return a.first->begin < b.first->begin; });
  for (size_t i = 1; i < by_offset.size(); ++i)
    if (by_offset[i].first->begin < by_offset[i - 1].first->end)
      fail_input("{}: tensors \"{}\" and \"{}\" overlap at data offset {}", what,
                 *by_offset[i - 1].second, *by_offset[i].second, by_offset[i].first->begin);
  return h;
}

SafetensorsHeader parse_safetensors(const uint8_t* data, size_t size, const std::string& what) {
  if (size < 8)
    fail_input("{}: truncated safetensors file ({} bytes, need at least 8)", what, size);
  const uint64_t n = read_length(data);
  if (n > kMaxSafetensorsHeaderBytes)
    fail_input("{}: safetensors header length {} is over the 100 MB limit", what, n);
  if (n > size - 8)
    fail_input("{}: truncated safetensors file: header says {} header bytes, file has {}", what, n,
               size - 8);
  SafetensorsHeader h = parse_safetensors_header(
      std::string_view(reinterpret_cast<const char*>(data + 8), n), size - 8 - n, what);
  h.data_offset = 8 + n;
  return h;
}

SafetensorsHeader read_safetensors_header(const std::string& path) {
  std::error_code error;
  const uint64_t file_size = std::filesystem::file_size(path, error);
  if (error) fail_input("cannot read {}: {}", path, error.message());
  if (file_size < 8)
    fail_input("{}: {} bytes is too short for a safetensors file", path, file_size);
  std::ifstream in(path, std::ios::binary);
  uint8_t length[8];
  if (!in.read(reinterpret_cast<char*>(length), 8)) fail_input("cannot read {}", path);
  const uint64_t n = read_length(length);
  if (n > kMaxSafetensorsHeaderBytes || n > file_size - 8)
    fail_input("{}: header length {} does not fit the file ({} bytes) or the 100 MB cap", path, n,
               file_size);
  std::string header(n, '\0');
  if (!in.read(header.data(), static_cast<std::streamsize>(n)))
    fail_input("cannot read the header of {}", path);
  SafetensorsHeader h = parse_safetensors_header(header, file_size - 8 - n, path);
  h.data_offset = 8 + n;
  return h;
}

SafetensorsFile::SafetensorsFile(const std::string& path)
    : file_(path), header_(parse_safetensors(file_.data(), file_.size(), path)) {}

Tensor SafetensorsFile::tensor(const std::string& name) const {
  auto it = header_.tensors.find(name);
  if (it == header_.tensors.end()) fail_input("{}: no tensor named '{}'", file_.path(), name);
  const SafetensorsEntry& e = it->second;
  Tensor t;
  if (!to_dtype(e.dtype_name, t.dtype))
    fail_input("{}: tensor '{}' has dtype {} (supported: BF16, F16, F32)", file_.path(), name,
               e.dtype_name);
  if (e.shape.size() > Tensor::kMaxDims)
    fail_input("{}: tensor '{}' has {} dimensions", file_.path(), name, e.shape.size());
  t.data = const_cast<uint8_t*>(file_.data() + header_.data_offset + e.begin);
  t.ndim = static_cast<int>(e.shape.size());
  for (int i = 0; i < t.ndim; ++i) t.shape[i] = e.shape[i];
  return t;
}

void write_safetensors(const std::string& path, const std::vector<SafetensorsWriteItem>& items,
                       const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header;
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& it : items) {
    uint64_t numel = 1;
    for (auto d : it.shape) numel *= static_cast<uint64_t>(d);
    uint64_t bytes = numel * dtype_size(it.dtype);
    header[it.name] = {{"dtype", dtype_to_name(it.dtype)},
                       {"shape", it.shape},
                       {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string hs = header.dump();
  while ((8 + hs.size()) % 8 != 0) hs.push_back(' ');  // keep the data 8-byte aligned
  std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) fail_input("cannot write '{}'", tmp);
  uint8_t len[8];
  uint64_t n = hs.size();
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(n >> (8 * i));
  bool ok = std::fwrite(len, 1, 8, f) == 8 && std::fwrite(hs.data(), 1, hs.size(), f) == hs.size();
  for (const auto& it : items) {
    uint64_t numel = 1;
    for (auto d : it.shape) numel *= static_cast<uint64_t>(d);
    size_t bytes = numel * dtype_size(it.dtype);
    ok = ok && std::fwrite(it.data, 1, bytes, f) == bytes;
  }
  ok = (std::fclose(f) == 0) && ok;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    fail_input("failed writing '{}' (disk full?)", path);
  }
}

}  // namespace hwledger
