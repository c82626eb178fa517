#include "planner/model_source.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "planner/checkpoint.h"
#include "util/error.h"

namespace hwledger::planner {

namespace fs = std::filesystem;

namespace {
constexpr uint64_t kMaxConfigBytes = 16ull << 20;
}

LoadedModel load_plan_model(const std::string& path) {
  if (path.empty()) fail_input("--model: give a model folder or its config.json");
  LoadedModel loaded;
  std::error_code error;
  const fs::path given(path);
  if (fs::is_directory(given, error)) {
    loaded.model_dir = given;
    loaded.config_path = given / "config.json";
  } else if (fs::is_regular_file(given, error)) {
    loaded.config_path = given;
    loaded.model_dir = given.has_parent_path() ? given.parent_path() : fs::path(".");
  } else {
    fail_input("--model {}: no such file or folder", path);
  }
  if (!fs::is_regular_file(loaded.config_path, error))
    fail_input("--model {}: the folder has no config.json", path);
  const uint64_t size = fs::file_size(loaded.config_path, error);
  if (error || size > kMaxConfigBytes)
    fail_input("{}: cannot read it, or it is larger than {} bytes", loaded.config_path.string(),
               kMaxConfigBytes);
  std::ifstream in(loaded.config_path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  if (!in) fail_input("cannot read {}", loaded.config_path.string());
  nlohmann::json config = nlohmann::json::parse(text.str(), nullptr, false);
  if (config.is_discarded())
    fail_input(
        "{}: not valid JSON (a .safetensors or .gguf file is not a config; pass the model "
        "folder)",
        loaded.config_path.string());
  loaded.model = parse_plan_model(config);
  if (auto checkpoint = read_checkpoint(loaded.model_dir)) {
    apply_checkpoint(loaded.model, *checkpoint);
    loaded.read_checkpoint = loaded.model.parameters_source == "safetensors";
  }
  return loaded;
}

}  // namespace hwledger::planner
