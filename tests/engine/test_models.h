// Where the parity tests find their reference models.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

namespace hwledger::testing {

// Every folder holding config.json + reference.safetensors among the shared goldens and the
// extra references extracted into the build tree.
inline std::vector<std::string> golden_model_dirs() {
  std::vector<std::string> dirs;
  for (const char* root : {HWLEDGER_SHARED_DIR "/golden", HWLEDGER_EXTRA_GOLDEN_DIR}) {
    if (!std::filesystem::is_directory(root)) continue;
    for (const auto& e : std::filesystem::directory_iterator(root))
      if (std::filesystem::exists(e.path() / "reference.safetensors") &&
          std::filesystem::exists(e.path() / "config.json"))
        dirs.push_back(e.path().string());
  }
  std::sort(dirs.begin(), dirs.end());
  return dirs;
}

inline std::string golden_name(const std::string& dir) {
  std::string n = std::filesystem::path(dir).filename().string();
  for (auto& ch : n)
    if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return n;
}

}  // namespace hwledger::testing
