// Random-weight models in Hugging Face layout, for tests, demos and benchmarks.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ops/dtype.h"

namespace hwledger {

struct SynthPreset {
  std::string name;
  std::string description;
  nlohmann::json config;  // a Hugging Face config.json
};

const std::vector<SynthPreset>& synth_presets();
const SynthPreset& find_synth_preset(const std::string& name);  // throws InputError listing names

// Writes config.json and model.safetensors (weights ~ N(0, std) in `dtype`, norm weights near 1),
// deterministic in `seed`. The tokenizer files are the caller's business.
void synth_model(const nlohmann::json& config, uint64_t seed, DType dtype, const std::string& out_dir,
                 bool show_progress = true);

}  // namespace hwledger
