// `hwledger serve` keeps the prefix cache's RAM and SSD tiers on by default (the SSD tier in
// ~/.cache/hwledger/kv), so an agent's repeated prefix survives a restart with no flags; `0`
// turns a tier off. Runs the built program under a temporary HOME and reads /metrics.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <regex>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace fs = std::filesystem;
const std::string kBinary = std::string(HWLEDGER_BINARY_DIR) + "/hwledger";
const std::string kModel = std::string(HWLEDGER_SHARED_DIR) + "/golden/qwen3-tiny";

// `hwledger serve` with a HOME of its own; stderr goes to a file we poll.
class Serve {
 public:
  Serve(const fs::path& home, const std::vector<std::string>& extra) : log_(home / "serve.log") {
    std::vector<std::string> args = {kBinary, "serve",     "--model", kModel,
                                     "--port", "0",        "--threads", "1"};
    args.insert(args.end(), extra.begin(), extra.end());
    pid_ = ::fork();
    if (pid_ == 0) {
      const int fd = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(fd, 2);
      ::setenv("HOME", home.c_str(), 1);
      ::unsetenv("XDG_CACHE_HOME");
      for (const char* v : {"HWLEDGER_CACHE_DIR", "HWLEDGER_RAM_CACHE", "HWLEDGER_SSD_CACHE",
                            "HWLEDGER_CONFIG"})
        ::unsetenv(v);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
  }
  ~Serve() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int status;
      ::waitpid(pid_, &status, 0);
    }
  }
  // The port from "listening on 127.0.0.1:PORT", waiting up to 30 s.
  int port() {
    for (int i = 0; i < 300; ++i) {
      std::smatch m;
      const std::string log = read_log();
      if (std::regex_search(log, m, std::regex(R"(listening on 127\.0\.0\.1:(\d+))")))
        return std::stoi(m[1]);
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return -1;
  }
  std::string read_log() const {
    FILE* f = std::fopen(log_.c_str(), "r");
    std::string s;
    if (!f) return s;
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) s.append(buf, n);
    std::fclose(f);
    return s;
  }

 private:
  fs::path log_;
  pid_t pid_ = -1;
};

std::string http_get(int port, const std::string& path) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string raw;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    const std::string req = "GET " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    (void)!::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
    char buf[4096];
    ssize_t n;
    while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) raw.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return raw;
}

// hwledger_kv_cache_capacity_bytes{tier="..."} from /metrics, once the engine answers.
std::optional<double> capacity(int port, const std::string& tier) {
  const std::regex re("hwledger_kv_cache_capacity_bytes\\{tier=\"" + tier + "\"\\} ([0-9.e+]+)");
  for (int i = 0; i < 300; ++i) {
    std::smatch m;
    const std::string body = http_get(port, "/metrics");
    if (std::regex_search(body, m, re)) return std::stod(m[1]);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return std::nullopt;
}

fs::path temp_home(const char* name) {
  fs::path home = fs::temp_directory_path() / (std::string("hwledger-") + name + "-" +
                                               std::to_string(::getpid()));
  fs::remove_all(home);
  fs::create_directories(home);
  return home;
}

TEST(ServeCacheDefaults, RamAndSsdTiersAreOnWithNoFlags) {
  const fs::path home = temp_home("cache-on");
  {
    Serve serve(home, {});
    const int port = serve.port();
    ASSERT_GT(port, 0) << serve.read_log();
    const auto ssd = capacity(port, "ssd"), ram = capacity(port, "ram");
    ASSERT_TRUE(ssd && ram) << serve.read_log();
    EXPECT_GT(*ssd, 0);
    EXPECT_LE(*ssd, 16.0 * (1ull << 30));
    EXPECT_GT(*ram, 0);
    EXPECT_LE(*ram, 2.0 * (1ull << 30));
    EXPECT_TRUE(fs::is_directory(home / ".cache" / "hwledger" / "kv"));
  }
  fs::remove_all(home);
}

TEST(ServeCacheDefaults, ZeroTurnsATierOff) {
  const fs::path home = temp_home("cache-off");
  {
    Serve serve(home, {"--ssd-cache", "0", "--ram-cache", "0"});
    const int port = serve.port();
    ASSERT_GT(port, 0) << serve.read_log();
    const auto ssd = capacity(port, "ssd"), ram = capacity(port, "ram");
    ASSERT_TRUE(ssd && ram) << serve.read_log();
    EXPECT_EQ(*ssd, 0);
    EXPECT_EQ(*ram, 0);
  }
  fs::remove_all(home);
}

}  // namespace
