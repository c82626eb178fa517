// hwledger model synth --preset NAME --seed N --out DIR: random-weight models for tests and demos.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>

#include "cli/commands.h"
#include <nlohmann/json.hpp>

#include "model/synth.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace hwledger::cli {

namespace fs = std::filesystem;

namespace {

void copy_tokenizer(const std::string& from, const std::string& to) {
  bool any = false;
  for (const char* name : {"tokenizer.json", "tokenizer_config.json", "generation_config.json"}) {
    fs::path src = fs::path(from) / name;
    if (fs::exists(src)) {
      fs::copy_file(src, fs::path(to) / name, fs::copy_options::overwrite_existing);
      any = true;
    }
  }
  if (!any) fail_input("--tokenizer '{}' holds no tokenizer.json", from);
}

void write_demo_tokenizer(const std::string& dir);  // below

void synth(const std::string& preset_name, uint64_t seed, const std::string& out, const std::string& tokenizer,
           const std::string& dtype) {
  const SynthPreset& preset = find_synth_preset(preset_name);
  DType t = dtype == "bf16" ? DType::BF16 : dtype == "f16" ? DType::F16 : dtype == "f32" ? DType::F32 : DType::I32;
  if (t == DType::I32) fail_input("--dtype '{}' (supported: bf16, f16, f32)", dtype);
  synth_model(preset.config, seed, t, out);
  if (!tokenizer.empty()) copy_tokenizer(tokenizer, out);
  else if (preset.name == "demo") write_demo_tokenizer(out);
}

}  // namespace

// The demo model lives in the user's cache folder and is made on first use.
std::string demo_model_dir() {
  const char* xdg = std::getenv("XDG_CACHE_HOME");
  const char* home = std::getenv("HOME");
  fs::path base = xdg && *xdg ? fs::path(xdg) : fs::path(home && *home ? home : "/tmp") / ".cache";
  fs::path dir = base / "hwledger" / "models" / "demo-v1";
  if (!fs::exists(dir / "model.safetensors")) {
    std::fprintf(stderr, "building the demo model (random weights) in %s\n", dir.c_str());
    synth("demo", 1, dir.string(), "", "bf16");
  }
  return dir.string();
}

namespace {
// The demo model's tokenizer is built in, so the demo needs no outside file.
void write_demo_tokenizer(const std::string& dir) {
  std::ofstream(fs::path(dir) / "tokenizer.json") << tokenizer::demo_tokenizer_json();
  std::ofstream(fs::path(dir) / "tokenizer_config.json") << tokenizer::demo_tokenizer_config_json();
  const int32_t eos = tokenizer::Tokenizer::load(dir).token_to_id("<|im_end|>");
  std::ofstream(fs::path(dir) / "generation_config.json") << nlohmann::json{{"eos_token_id", eos}}.dump() << "\n";
  // config.json's eos must name the same token.
  fs::path config_path = fs::path(dir) / "config.json";
  nlohmann::json config = nlohmann::json::parse(std::ifstream(config_path));
  config["eos_token_id"] = eos;
  std::ofstream out(config_path);
  out << config.dump(2) << "\n";
  if (!out) fail_input("cannot write the demo tokenizer into '{}'", dir);
}
}  // namespace

void add_model_command(CLI::App& app) {
  auto* model = app.add_subcommand("model", "model utilities");
  model->require_subcommand(1);
  auto* cmd = model->add_subcommand("synth", "write a random-weight model in Hugging Face layout");
  auto preset = std::make_shared<std::string>();
  auto seed = std::make_shared<uint64_t>(0);
  auto out = std::make_shared<std::string>();
  auto tokenizer = std::make_shared<std::string>();
  auto dtype = std::make_shared<std::string>("bf16");
  std::string names;
  for (const auto& p : synth_presets()) names += "\n  " + p.name + ": " + p.description;
  cmd->add_option("--preset", *preset, "one of:" + names)->required();
  cmd->add_option("--seed", *seed, "random seed (default 0)");
  cmd->add_option("--out", *out, "output folder")->required();
  cmd->add_option("--tokenizer", *tokenizer, "folder whose tokenizer.json/tokenizer_config.json to copy in");
  cmd->add_option("--dtype", *dtype, "weight type: bf16 (default), f16, f32");
  cmd->callback([=] {
    synth(*preset, *seed, *out, *tokenizer, *dtype);
    std::printf("wrote %s (preset %s, seed %llu)\n", out->c_str(), preset->c_str(),
                static_cast<unsigned long long>(*seed));
  });
}

}  // namespace hwledger::cli
