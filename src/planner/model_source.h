// Where `hwledger plan --model PATH` gets its model: a config.json file, or a model folder
// (its config.json, and its safetensors headers when the weights are there).
#pragma once
#include <filesystem>
#include <string>

#include "planner/plan_model.h"

namespace hwledger::planner {

struct LoadedModel {
  PlanModel model;
  std::filesystem::path config_path;
  std::filesystem::path model_dir;  // the folder holding config.json
  bool read_checkpoint = false;     // safetensors headers were found and applied
};

// Reads and parses config.json (at most 16 MiB), builds the plan model, and, when the folder
// holds model.safetensors or model.safetensors.index.json, replaces the config-derived parameter
// counts with the checkpoint's. Throws InputError naming the path and the problem.
LoadedModel load_plan_model(const std::string& path);

}  // namespace hwledger::planner
