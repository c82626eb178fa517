// libFuzzer target for the model-folder readers: the input is split at the first NUL byte into
// a config.json and a safetensors image. Both must end in a parsed value or an InputError.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include <nlohmann/json.hpp>

#include "model/config.h"
#include "model/safetensors.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const uint8_t* nul = static_cast<const uint8_t*>(std::memchr(data, 0, size));
  size_t config_len = nul ? static_cast<size_t>(nul - data) : size;
  try {
    auto j = nlohmann::json::parse(data, data + config_len, nullptr, false);
    if (!j.is_discarded()) hwledger::ModelConfig::from_json(j);
  } catch (const hwledger::InputError&) {
  }
  if (nul) {
    try {
      auto h = hwledger::parse_safetensors(nul + 1, size - config_len - 1, "fuzz.safetensors");
      // Every accepted tensor must lie inside the image.
      for (const auto& [name, e] : h.tensors)
        if (h.data_offset + e.end > size - config_len - 1) __builtin_trap();
    } catch (const hwledger::InputError&) {
    }
  }
  return 0;
}
