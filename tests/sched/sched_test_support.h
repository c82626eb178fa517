// Shared by the scheduler tests: the demo model on disk and sinks that record what they get.
#pragma once
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "model/synth.h"
#include "sched/scheduler.h"
#include "tokenizer/tokenizer.h"

namespace hwledger::testing {

inline void write_text(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

// `hwledger model synth --preset demo` plus the built-in demo tokenizer, written once into the
// build tree (ctest runs test processes in parallel: each builds in its own folder and renames).
inline const std::string& demo_model_dir() {
  static const std::string dir = [] {
    namespace fs = std::filesystem;
    const fs::path final_dir = fs::path(HWLEDGER_BINARY_DIR) / "sched-test-demo-model";
    if (fs::exists(final_dir / "tokenizer_config.json")) return final_dir.string();
    const fs::path tmp = final_dir.string() + ".tmp-" + std::to_string(getpid());
    fs::remove_all(tmp);
    synth_model(find_synth_preset("demo").config, 1234, DType::BF16, tmp.string(), /*show_progress=*/false);
    write_text(tmp / "tokenizer.json", tokenizer::demo_tokenizer_json());
    write_text(tmp / "tokenizer_config.json", tokenizer::demo_tokenizer_config_json());
    std::error_code ec;
    fs::rename(tmp, final_dir, ec);
    if (ec) fs::remove_all(tmp);  // another process got there first
    return final_dir.string();
  }();
  return dir;
}

// Records every event of one request; wait() blocks until on_done.
class RecordingSink : public RequestSink {
 public:
  std::function<bool(const TokenEvent&)> on_token_hook;  // runs inside on_token when set
  std::function<void(int64_t, int64_t)> on_progress_hook;

  void on_prefill_progress(int64_t done, int64_t total) override {
    {
      std::lock_guard lock(mu_);
      progress.emplace_back(done, total);
    }
    if (on_progress_hook) on_progress_hook(done, total);
  }
  bool on_token(const TokenEvent& event) override {
    {
      std::lock_guard lock(mu_);
      events.push_back(event);
      tokens.push_back(event.token);
    }
    return on_token_hook ? on_token_hook(event) : true;
  }
  void on_done(const GenerateResult& r) override {
    std::lock_guard lock(mu_);
    result = r;
    ++done_calls;
    cv_.notify_all();
  }
  // Returns false on timeout.
  bool wait(double seconds = 120) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, std::chrono::duration<double>(seconds), [&] { return done_calls > 0; });
  }

  std::vector<int32_t> tokens;
  std::vector<TokenEvent> events;
  std::vector<std::pair<int64_t, int64_t>> progress;
  GenerateResult result;
  int done_calls = 0;

 private:
  std::mutex mu_;
  std::condition_variable cv_;
};

// A one-shot gate a sink can block the scheduler thread on (to hold the loop still in a test).
class Gate {
 public:
  void open() {
    std::lock_guard lock(mu_);
    open_ = true;
    cv_.notify_all();
  }
  void wait() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return open_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
};

}  // namespace hwledger::testing
