// Shared helpers for the tokenizer tests: the real tokenizers under ../shared/models and
// their goldens under ../shared/golden/tokenizers (made by transformers.js).
#pragma once
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace hwledger::tokenizer::testing {

inline std::string shared_path(const std::string& relative) {
  return std::string(HWLEDGER_SHARED_DIR) + "/" + relative;
}

// Loaded once per process: the real tokenizers take ~100 ms each.
inline const Tokenizer& model_tokenizer(const std::string& name) {
  static std::mutex mutex;
  static std::map<std::string, Tokenizer> loaded;
  std::lock_guard<std::mutex> lock(mutex);
  auto it = loaded.find(name);
  if (it == loaded.end())
    it = loaded.emplace(name, Tokenizer::load(shared_path("models/" + name))).first;
  return it->second;
}

inline const nlohmann::json& golden(const std::string& name) {
  static std::mutex mutex;
  static std::map<std::string, nlohmann::json> loaded;
  std::lock_guard<std::mutex> lock(mutex);
  auto it = loaded.find(name);
  if (it == loaded.end()) {
    std::ifstream file(shared_path("golden/tokenizers/" + name + ".json"));
    std::stringstream buffer;
    buffer << file.rdbuf();
    it = loaded.emplace(name, nlohmann::json::parse(buffer.str())).first;
  }
  return it->second;
}

// The same file keeping key order, as the chat cases need (templates print JSON in the order
// it was written).
inline const nlohmann::ordered_json& ordered_golden(const std::string& name) {
  static std::mutex mutex;
  static std::map<std::string, nlohmann::ordered_json> loaded;
  std::lock_guard<std::mutex> lock(mutex);
  auto it = loaded.find(name);
  if (it == loaded.end()) {
    std::ifstream file(shared_path("golden/tokenizers/" + name + ".json"));
    std::stringstream buffer;
    buffer << file.rdbuf();
    it = loaded.emplace(name, nlohmann::ordered_json::parse(buffer.str())).first;
  }
  return it->second;
}

inline const char* const kModels[] = {"qwen3", "llama3.1", "spm-bpe-32k"};

}  // namespace hwledger::tokenizer::testing
