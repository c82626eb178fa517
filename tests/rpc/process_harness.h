// Test harness for the process-level tests of `hwledger engine --stdio` and `hwledger serve`:
// starts the built binary with pipes, talks JSON-RPC, reads its log, inspects /proc.
#pragma once
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "tokenizer/tokenizer.h"

extern char** environ;

namespace hwledger::testing {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

inline std::string hwledger_binary() {
  return std::string(HWLEDGER_BINARY_DIR) + "/hwledger";
}

inline double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Makes this test process the reaper of orphaned descendants, so that an engine whose supervisor
// died shows up as our child (and can be checked and reaped) instead of vanishing into init.
inline void become_subreaper() {
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
}

// --- /proc --------------------------------------------------------------------------------

struct ProcInfo {
  pid_t pid = 0, ppid = 0;
  char state = '?';
  std::string comm;
};

inline std::optional<ProcInfo> read_proc(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (!std::getline(in, stat)) return std::nullopt;
  size_t open = stat.find('('), close = stat.rfind(')');
  if (open == std::string::npos || close == std::string::npos) return std::nullopt;
  ProcInfo p;
  p.pid = pid;
  p.comm = stat.substr(open + 1, close - open - 1);
  std::istringstream rest(stat.substr(close + 2));
  rest >> p.state >> p.ppid;
  return p;
}

inline std::vector<ProcInfo> children_of(pid_t parent) {
  std::vector<ProcInfo> out;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    auto p = read_proc(static_cast<pid_t>(std::stol(name)));
    if (p && p->ppid == parent) out.push_back(*p);
  }
  return out;
}

inline std::string cmdline_of(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline", std::ios::binary);
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (char& c : s) c = c == '\0' ? ' ' : c;
  return s;
}

inline bool process_exists(pid_t pid) {
  return pid > 0 && read_proc(pid).has_value();
}

// kill(2) for one process only: a pid <= 0 would signal a process group or every process on the
// machine, so it is refused (and fails the test) instead.
inline void signal_process(pid_t pid, int sig) {
  if (pid <= 0) {
    ADD_FAILURE() << "refusing to send signal " << sig << " to pid " << pid;
    return;
  }
  ::kill(pid, sig);
}

// Waits until `pred` holds or `timeout_s` passes; returns whether it held.
template <typename Pred>
bool wait_until(Pred pred, double timeout_s, double step_s = 0.02) {
  auto start = Clock::now();
  while (!pred()) {
    if (seconds_since(start) > timeout_s) return false;
    std::this_thread::sleep_for(std::chrono::duration<double>(step_s));
  }
  return true;
}

// No child of this test process is left: neither alive nor a zombie. Orphans that were reparented
// to us (as subreaper) and exited are reaped here and reported by the assertion.
inline void expect_no_children(double timeout_s = 5) {
  std::vector<ProcInfo> left;
  bool clean = wait_until(
      [&] {
        left = children_of(::getpid());
        return left.empty();
      },
      timeout_s);
  std::string names;
  for (const auto& p : left)
    names += " " + std::to_string(p.pid) + "(" + p.comm + "," + p.state + ")";
  EXPECT_TRUE(clean) << "processes left behind:" << names;
  for (const auto& p : left) {
    signal_process(p.pid, SIGKILL);
    ::waitpid(p.pid, nullptr, 0);
  }
}

// --- a child process on pipes ----------------------------------------------------------------

class ChildProcess {
 public:
  explicit ChildProcess(std::vector<std::string> argv, std::vector<std::string> env = {}) {
    int in[2], out[2], err[2];
    if (::pipe2(in, O_CLOEXEC) || ::pipe2(out, O_CLOEXEC) || ::pipe2(err, O_CLOEXEC))
      throw std::runtime_error("pipe");
    // The additions first and the inherited variables they do not replace after them.
    std::vector<std::string> env_storage = env;
    for (char** e = environ; *e; ++e) {
      std::string entry = *e, name = entry.substr(0, entry.find('=') + 1);
      bool replaced = false;
      for (const auto& add : env) replaced |= add.rfind(name, 0) == 0;
      if (!replaced) env_storage.push_back(std::move(entry));
    }
    std::vector<char*> envp, args;
    for (auto& e : env_storage) envp.push_back(e.data());
    envp.push_back(nullptr);
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error("fork failed");
    if (pid == 0) {
      ::dup2(in[0], 0);
      ::dup2(out[1], 1);
      ::dup2(err[1], 2);
      ::execve(args[0], args.data(), envp.data());
      ::_exit(127);
    }
    pid_ = pid;
    ::close(in[0]);
    ::close(out[1]);
    ::close(err[1]);
    stdin_fd_ = in[1];
    stdout_fd_ = out[0];
    stderr_fd_ = err[0];
    stderr_thread_ = std::thread([this] { collect_stderr(); });
  }

  ~ChildProcess() {
    if (!exited_ && pid_ > 0) {
      signal_process(pid_, SIGKILL);
      wait(10);
    }
    close_stdin();
    if (stderr_thread_.joinable()) stderr_thread_.join();
    if (stdout_fd_ >= 0) ::close(stdout_fd_);
    if (std::getenv("HWLEDGER_TEST_VERBOSE"))
      std::fprintf(stderr, "---- child log ----\n%s\n", log().c_str());
  }

  pid_t pid() const { return pid_; }

  bool write(std::string_view bytes) {
    while (!bytes.empty()) {
      ssize_t n = ::write(stdin_fd_, bytes.data(), bytes.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }
  void close_stdin() {
    if (stdin_fd_ >= 0) ::close(stdin_fd_);
    stdin_fd_ = -1;
  }

  // The next stdout line within `timeout_s`; nothing on timeout or at end of output (see eof()).
  std::optional<std::string> read_line(double timeout_s) {
    auto start = Clock::now();
    for (;;) {
      size_t nl = stdout_buffer_.find('\n');
      if (nl != std::string::npos) {
        std::string line = stdout_buffer_.substr(0, nl);
        stdout_buffer_.erase(0, nl + 1);
        return line;
      }
      if (stdout_eof_) return std::nullopt;
      double left = timeout_s - seconds_since(start);
      if (left <= 0) return std::nullopt;
      pollfd p{stdout_fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left * 1000) + 1) <= 0) continue;
      char buf[65536];
      ssize_t n = ::read(stdout_fd_, buf, sizeof buf);
      if (n > 0)
        stdout_buffer_.append(buf, static_cast<size_t>(n));
      else if (n == 0)
        stdout_eof_ = true;
    }
  }
  bool eof() const { return stdout_eof_; }

  std::string log() const {
    std::lock_guard lock(mutex_);
    return log_;
  }
  // Waits until the log holds `needle` at or after `from`; returns the offset just past it.
  std::optional<size_t> wait_for_log(const std::string& needle, double timeout_s, size_t from = 0) {
    std::unique_lock lock(mutex_);
    std::optional<size_t> found;
    log_changed_.wait_for(lock, std::chrono::duration<double>(timeout_s), [&] {
      size_t at = log_.find(needle, from);
      if (at != std::string::npos) found = at + needle.size();
      return found.has_value() || log_closed_;
    });
    if (!found) {
      size_t at = log_.find(needle, from);
      if (at != std::string::npos) found = at + needle.size();
    }
    return found;
  }
  size_t log_size() const {
    std::lock_guard lock(mutex_);
    return log_.size();
  }

  // The wait status once the process ended (reaping it), or nothing after `timeout_s`.
  std::optional<int> wait(double timeout_s) {
    if (exited_) return status_;
    if (pid_ <= 0) return std::nullopt;
    auto start = Clock::now();
    for (;;) {
      int status;
      pid_t r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        exited_ = true;
        status_ = status;
        return status;
      }
      if (seconds_since(start) > timeout_s) return std::nullopt;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  void signal(int sig) { signal_process(pid_, sig); }

 private:
  void collect_stderr() {
    char buf[65536];
    for (;;) {
      ssize_t n = ::read(stderr_fd_, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      std::lock_guard lock(mutex_);
      if (n <= 0) {
        log_closed_ = true;
        log_changed_.notify_all();
        break;
      }
      log_.append(buf, static_cast<size_t>(n));
      log_changed_.notify_all();
    }
    ::close(stderr_fd_);
  }

  pid_t pid_ = -1;
  int stdin_fd_ = -1, stdout_fd_ = -1, stderr_fd_ = -1;
  std::string stdout_buffer_;
  bool stdout_eof_ = false;
  bool exited_ = false;
  int status_ = 0;
  mutable std::mutex mutex_;
  std::condition_variable log_changed_;
  std::string log_;
  bool log_closed_ = false;
  std::thread stderr_thread_;
};

// --- JSON-RPC over a child's pipes -------------------------------------------------------

class RpcPeer {
 public:
  explicit RpcPeer(ChildProcess& process) : p_(process) {}

  void send(const json& message) { ASSERT_TRUE(p_.write(message.dump() + "\n")); }
  void send_raw(std::string_view bytes) { ASSERT_TRUE(p_.write(bytes)); }

  // The next message on stdout (every line must be one JSON object: stdout is protocol only).
  std::optional<json> next(double timeout_s = 30) {
    auto line = p_.read_line(timeout_s);
    if (!line) return std::nullopt;
    json message = json::parse(*line, nullptr, false);
    EXPECT_TRUE(message.is_object())
        << "stdout line is not a JSON object: " << line->substr(0, 300);
    if (message.is_object()) {
      EXPECT_EQ(message.value("jsonrpc", ""), "2.0") << *line;
    }
    return message;
  }

  // Reads until the response with `id`; notifications (and other responses) seen on the way are
  // kept in `notifications` / `others`.
  json response(const json& id, double timeout_s = 60) {
    // A response read earlier while waiting for another id was kept in `others`.
    for (auto it = others.begin(); it != others.end(); ++it)
      if ((*it)["id"] == id) {
        json found = *it;
        others.erase(it);
        return found;
      }
    auto start = Clock::now();
    for (;;) {
      double left = timeout_s - seconds_since(start);
      auto message = left > 0 ? next(left) : std::nullopt;
      if (!message) {
        ADD_FAILURE() << "no response with id " << id.dump() << " within " << timeout_s << " s";
        return json();
      }
      if (!message->contains("id"))
        notifications.push_back(*message);
      else if ((*message)["id"] == id)
        return *message;
      else
        others.push_back(*message);
    }
  }

  json call(const std::string& method, const json& params = json::object(), double timeout_s = 60) {
    json id = next_id_++;
    send({{"jsonrpc", "2.0"}, {"id", id}, {"method", method}, {"params", params}});
    return response(id, timeout_s);
  }
  // The result of a successful call (fails the test on an error reply).
  json result(const std::string& method, const json& params = json::object(),
              double timeout_s = 60) {
    json r = call(method, params, timeout_s);
    EXPECT_TRUE(r.contains("result")) << method << " -> " << r.dump();
    return r.value("result", json());
  }

  std::vector<json> notifications, others;

 private:
  ChildProcess& p_;
  int next_id_ = 1;
};

// Notifications of one request_id, in order.
inline std::vector<json> tokens_of(const std::vector<json>& notifications,
                                   const std::string& request_id) {
  std::vector<json> out;
  for (const auto& n : notifications) {
    if (n.value("method", "") == "token" && n["params"].value("request_id", "") == request_id) {
      out.push_back(n["params"]);
    }
  }
  return out;
}

// --- models --------------------------------------------------------------------------------

inline std::string golden_dir(const std::string& name) {
  return std::string(HWLEDGER_SHARED_DIR) + "/golden/" + name;
}

// int32 tensor `name` of a safetensors file, read with nothing but the format's definition.
inline std::vector<int32_t> read_i32_tensor(const std::string& path, const std::string& name) {
  std::ifstream in(path, std::ios::binary);
  uint64_t n = 0;
  in.read(reinterpret_cast<char*>(&n), 8);
  std::string header(n, '\0');
  in.read(header.data(), static_cast<std::streamsize>(n));
  json h = json::parse(header);
  auto offsets = h.at(name).at("data_offsets");
  std::vector<int32_t> out((offsets[1].get<size_t>() - offsets[0].get<size_t>()) / 4);
  in.seekg(static_cast<std::streamoff>(8 + n + offsets[0].get<size_t>()));
  in.read(reinterpret_cast<char*>(out.data()), static_cast<std::streamsize>(out.size() * 4));
  return out;
}

// qwen3-tiny's golden weights with the built-in demo tokenizer (the same 1024-id vocabulary): a
// tiny model that takes and gives text and has a ChatML chat template. Made once per build tree.
inline std::string text_model_dir() {
  namespace fs = std::filesystem;
  fs::path dir = fs::path(HWLEDGER_BINARY_DIR) / "test-models" / "qwen3-tiny-text";
  if (fs::exists(dir / "tokenizer_config.json")) return dir.string();
  fs::path tmp = dir.string() + ".tmp" + std::to_string(::getpid());
  fs::create_directories(tmp);
  for (const char* f : {"config.json", "model.safetensors"})
    fs::copy_file(golden_dir("qwen3-tiny") + "/" + f, tmp / f);
  std::ofstream(tmp / "tokenizer.json") << tokenizer::demo_tokenizer_json();
  std::ofstream(tmp / "tokenizer_config.json") << tokenizer::demo_tokenizer_config_json();
  std::error_code ec;
  fs::rename(tmp, dir, ec);  // atomic: parallel tests either win or find it there
  if (ec) fs::remove_all(tmp);
  return dir.string();
}

// The demo model (`hwledger model synth --preset demo --seed 1`: 4 layers, hidden 256, context
// 32768, the built-in tokenizer), made once per build tree. Slower per token than qwen3-tiny,
// with a long context: its streams last long enough to be interrupted.
inline std::string demo_model_for_tests() {
  namespace fs = std::filesystem;
  fs::path dir = fs::path(HWLEDGER_BINARY_DIR) / "test-models" / "demo";
  if (fs::exists(dir / "config.json")) return dir.string();
  fs::path tmp = dir.string() + ".tmp" + std::to_string(::getpid());
  fs::remove_all(tmp);
  ChildProcess synth({hwledger_binary(), "model", "synth", "--preset", "demo", "--seed", "1",
                      "--out", tmp.string()});
  auto status = synth.wait(300);
  EXPECT_TRUE(status && WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << synth.log();
  std::error_code ec;
  fs::rename(tmp, dir, ec);  // atomic: parallel tests either win or find it there
  if (ec) fs::remove_all(tmp);
  return dir.string();
}

// The demo model without an end-of-sequence token (config, tokenizer_config and
// generation_config name none): its generations always run to max_tokens, so a test can be sure
// a stream is still going when it interrupts it. Folder name (and model id): "demo-noeos".
inline std::string endless_model_for_tests() {
  namespace fs = std::filesystem;
  fs::path demo = demo_model_for_tests();
  fs::path dir = fs::path(HWLEDGER_BINARY_DIR) / "test-models" / "demo-noeos";
  if (fs::exists(dir / "config.json")) return dir.string();
  fs::path tmp = dir.string() + ".tmp" + std::to_string(::getpid());
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  fs::create_symlink(demo / "model.safetensors", tmp / "model.safetensors");
  fs::copy_file(demo / "tokenizer.json", tmp / "tokenizer.json");
  json config = json::parse(std::ifstream(demo / "config.json"));
  config["eos_token_id"] = nullptr;
  std::ofstream(tmp / "config.json") << config.dump(2);
  json tokenizer_config = json::parse(std::ifstream(demo / "tokenizer_config.json"));
  tokenizer_config.erase("eos_token");
  std::ofstream(tmp / "tokenizer_config.json") << tokenizer_config.dump(2);
  std::error_code ec;
  fs::rename(tmp, dir, ec);
  if (ec) fs::remove_all(tmp);
  return dir.string();
}

// Files of the SSD tier (one per block) in a cache folder.
inline size_t ssd_block_files(const std::string& cache_dir) {
  size_t n = 0;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(cache_dir, ec))
    n += e.path().extension() == ".kvb";
  return n;
}

// A fresh, empty folder under the build tree for one test.
inline std::string scratch_dir(const std::string& name) {
  auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::filesystem::path dir =
      std::filesystem::path(HWLEDGER_BINARY_DIR) / "test-scratch" /
      (std::string(info->test_suite_name()) + "." + info->name() + "." + name);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

}  // namespace hwledger::testing
