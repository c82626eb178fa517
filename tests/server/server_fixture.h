// A live HttpServer on a free loopback port for the tests, and small client helpers.
#pragma once
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "server/http_server.h"

namespace hwledger::test {

using Json = nlohmann::json;

class LiveServer {
 public:
  LiveServer(server::ServingBackend& backend, const server::ServerOptions& options)
      : server_(backend, options) {
    start();
  }
  LiveServer(ModelContext& model, const server::ServerOptions& options) : server_(model, options) {
    start();
  }
  ~LiveServer() { stop(); }

  void stop(double drain_s = 2) {
    if (!thread_.joinable()) return;
    server_.stop(drain_s);
    thread_.join();
  }

  int port() const { return port_; }
  server::HttpServer& server() { return server_; }

  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(60, 0);
    c.set_connection_timeout(5, 0);
    return c;
  }

  // POST with a JSON body (or raw text) and optional headers.
  httplib::Result post(const std::string& path, const Json& body,
                       httplib::Headers headers = {}) const {
    return client().Post(path.c_str(), headers, body.dump(), "application/json");
  }
  httplib::Result post_raw(const std::string& path, const std::string& body,
                           httplib::Headers headers = {}) const {
    return client().Post(path.c_str(), headers, body, "application/json");
  }
  httplib::Result get(const std::string& path, httplib::Headers headers = {}) const {
    return client().Get(path.c_str(), headers);
  }

  // A gauge or counter from /metrics (the first sample whose name and labels start with `prefix`).
  double metric(const std::string& prefix) const {
    auto res = get("/metrics");
    if (!res || res->status != 200) return -1;
    std::istringstream in(res->body);
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind(prefix, 0) == 0 && line.size() > prefix.size() &&
          (line[prefix.size()] == ' ' || line[prefix.size()] == '{' || prefix.back() == '}'))
        return std::stod(line.substr(line.rfind(' ') + 1));
    }
    return -1;
  }

 private:
  void start() {
    port_ = server_.bind();
    thread_ = std::thread([this] { server_.serve(); });
    for (int i = 0; i < 500 && !server_.is_running(); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }

  server::HttpServer server_;
  int port_ = -1;
  std::thread thread_;
};

struct SseEvent {
  std::string event;  // "" for OpenAI's data-only events; "comment" for ": ..." lines
  std::string data;
};

inline std::vector<SseEvent> parse_sse(const std::string& body) {
  std::vector<SseEvent> events;
  SseEvent current;
  std::istringstream in(body);
  std::string line;
  bool any = false;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) {
      if (any) events.push_back(current);
      current = {};
      any = false;
    } else if (line[0] == ':') {
      events.push_back({"comment", line.substr(1)});
    } else if (line.rfind("event: ", 0) == 0) {
      current.event = line.substr(7);
      any = true;
    } else if (line.rfind("data: ", 0) == 0) {
      current.data += line.substr(6);
      any = true;
    }
  }
  if (any) events.push_back(current);
  return events;
}

// A client that sends a request over a raw socket, reads until `wait_for` shows up in the
// response (or `timeout`), then closes the connection: a client that goes away mid-stream.
inline std::string request_then_hang_up(int port, const std::string& path, const std::string& body,
                                        const std::string& wait_for,
                                        std::chrono::milliseconds timeout) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return {};
  }
  const std::string request = "POST " + path +
                              " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" +
                              "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  (void)!send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  std::string got;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  timeval tv{0, 100000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  char buf[4096];
  while (std::chrono::steady_clock::now() < deadline &&
         (wait_for.empty() || got.find(wait_for) == std::string::npos)) {
    const ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n > 0) got.append(buf, static_cast<size_t>(n));
    if (n == 0) break;
    if (wait_for.empty()) break;
  }
  close(fd);
  return got;
}

// Polls `fn` until it returns true or `timeout` passes.
template <typename Fn>
bool eventually(Fn fn, std::chrono::milliseconds timeout = std::chrono::milliseconds(5000)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (fn()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return fn();
}

}  // namespace hwledger::test
