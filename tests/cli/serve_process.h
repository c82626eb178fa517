// Test helpers for running the built `hwledger` program: `serve` on a free port under a HOME
// of its own, and plain HTTP/1.1 requests to it.
#pragma once
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <regex>
#include <string>
#include <thread>
#include <vector>

namespace hwledger::test {

namespace fs = std::filesystem;
inline const std::string kBinary = std::string(HWLEDGER_BINARY_DIR) + "/hwledger";

// `hwledger serve --model MODEL --port 0` with a HOME of its own; stderr goes to a file we poll.
class Serve {
 public:
  Serve(const fs::path& home, const std::string& model, const std::vector<std::string>& extra)
      : log_(home / "serve.log") {
    std::vector<std::string> args = {kBinary,  "serve", "--model",   model,
                                     "--port", "0",     "--threads", "1"};
    args.insert(args.end(), extra.begin(), extra.end());
    pid_ = ::fork();
    if (pid_ == 0) {
      const int fd = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(fd, 2);
      ::setenv("HOME", home.c_str(), 1);
      ::unsetenv("XDG_CACHE_HOME");
      for (const char* v :
           {"HWLEDGER_CACHE_DIR", "HWLEDGER_RAM_CACHE", "HWLEDGER_SSD_CACHE", "HWLEDGER_CONFIG"})
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

// The raw response (status line, headers, body) to a request with an optional JSON body.
inline std::string http_request(int port, const std::string& method, const std::string& path,
                                const std::string& body = "") {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string raw;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    std::string req = method + " " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n";
    if (!body.empty())
      req += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
             "\r\n";
    req += "\r\n" + body;
    (void)!::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
    char buf[4096];
    ssize_t n;
    while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) raw.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return raw;
}

inline std::string http_body(const std::string& raw) {
  const size_t at = raw.find("\r\n\r\n");
  return at == std::string::npos ? "" : raw.substr(at + 4);
}

inline fs::path temp_home(const std::string& name) {
  fs::path home =
      fs::temp_directory_path() / ("hwledger-" + name + "-" + std::to_string(::getpid()));
  fs::remove_all(home);
  fs::create_directories(home);
  return home;
}

}  // namespace hwledger::test
