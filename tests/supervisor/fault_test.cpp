// Fault tests of `hwledger serve`, the supervisor: kill -9 of the engine (a new one serves within
// 2 s plus model load, the port never refuses), a hung (SIGSTOP) engine is replaced, a crash loop
// ends the service with an error, SIGTERM lets running streams finish and exits 0, and after each
// test no zombie and no orphaned engine remains (checked in /proc; this test process is a child
// subreaper, so an orphaned engine would become its child).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <atomic>
#include <regex>

#include "rpc/process_harness.h"

namespace hwledger::testing {
namespace {

const bool kSubreaper = (become_subreaper(), true);

int connect_to(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  timeval tv{30, 0};  // no test read may hang
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

struct HttpResult {
  bool connected = false;
  bool timed_out = false;
  std::string raw;  // status line, headers and body as received (chunk framing included)
  int status() const { return raw.size() > 12 ? std::atoi(raw.c_str() + 9) : 0; }
  // The body with chunked framing removed when the response used it.
  std::string body() const {
    size_t start = raw.find("\r\n\r\n");
    if (start == std::string::npos) return "";
    std::string headers = raw.substr(0, start), data = raw.substr(start + 4);
    std::string lower = headers;
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (lower.find("transfer-encoding: chunked") == std::string::npos) return data;
    std::string out;
    size_t at = 0;
    while (at < data.size()) {
      size_t eol = data.find("\r\n", at);
      if (eol == std::string::npos) break;
      size_t n = std::stoul(data.substr(at, eol - at), nullptr, 16);
      if (n == 0) break;
      out += data.substr(eol + 2, n);
      at = eol + 2 + n + 2;
    }
    return out;
  }
};

// POSTs `body` to `path` and reads the response to its end; on_data sees the bytes as they come.
HttpResult http_post(int port, const std::string& path, const json& body,
                     const std::function<void(const std::string&)>& on_data = {}) {
  HttpResult r;
  int fd = connect_to(port);
  if (fd < 0) return r;
  r.connected = true;
  std::string payload = body.dump();
  std::string request = "POST " + path +
                        " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" +
                        "Content-Length: " + std::to_string(payload.size()) +
                        "\r\nConnection: close\r\n\r\n" + payload;
  (void)!::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  char buf[16384];
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) r.timed_out = true;
    if (n <= 0) break;
    r.raw.append(buf, static_cast<size_t>(n));
    if (on_data) on_data(r.raw);
  }
  ::close(fd);
  return r;
}

std::string tail(const std::string& s, size_t n = 1500) {
  return s.size() > n ? s.substr(s.size() - n) : s;
}

bool ends_with(const std::string& s, const std::string& end) {
  return s.size() >= end.size() && s.compare(s.size() - end.size(), end.size(), end) == 0;
}

// The JSON of the last SSE `data:` line that carries an "error" (null when none).
json last_sse_error(const std::string& body) {
  json found;
  size_t at = 0;
  while ((at = body.find("data: ", at)) != std::string::npos) {
    size_t eol = body.find('\n', at);
    json j = json::parse(body.substr(at + 6, eol - at - 6), nullptr, false);
    if (j.is_object() && j.contains("error")) found = j;
    at = eol == std::string::npos ? body.size() : eol;
  }
  return found;
}

int http_get_running(int port) {
  int fd = connect_to(port);
  if (fd < 0) return -1;
  std::string request = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  (void)!::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  std::string raw;
  char buf[4096];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) raw.append(buf, static_cast<size_t>(n));
  ::close(fd);
  size_t start = raw.find("\r\n\r\n");
  json j = json::parse(start == std::string::npos ? "" : raw.substr(start + 4), nullptr, false);
  return j.is_object() && j.contains("running") ? j["running"].get<int>() : -1;
}

// start() asserts; a test must not go on (and signal a pid it does not have) when it failed.
#define START(...)                 \
  do {                             \
    start(__VA_ARGS__);            \
    if (HasFatalFailure()) return; \
  } while (0)

class ServeTest : public ::testing::Test {
 protected:
  // Starts `hwledger serve` on a free port and waits for its first ready engine.
  void start(std::vector<std::string> extra = {}, bool wait_ready = true) {
    // Defaults for the tests; a flag given in `extra` replaces its default. No SSD tier unless a
    // test asks for one: serve's default tier lives in ~/.cache, shared by every engine.
    std::vector<std::pair<std::string, std::string>> defaults = {
        {"--ssd-cache", "0"},         {"--port", "0"},           {"--threads", "2"},
        {"--health-interval", "0.2"}, {"--health-timeout", "3"}, {"--grace", "10"},
        {"--model", text_model_dir()}};
    std::vector<std::string> argv = {hwledger_binary(), "serve"};
    for (const auto& [flag, value] : defaults) {
      if (std::find(extra.begin(), extra.end(), flag) == extra.end())
        argv.insert(argv.end(), {flag, value});
    }
    argv.insert(argv.end(), extra.begin(), extra.end());
    serve_ = std::make_unique<ChildProcess>(argv);
    auto at = serve_->wait_for_log("listening on 127.0.0.1:", 30);
    ASSERT_TRUE(at) << serve_->log();
    port_ = std::atoi(serve_->log().c_str() + *at);
    ASSERT_GT(port_, 0);
    if (wait_ready) {
      engine_pid_ = wait_ready_engine();
      ASSERT_GT(engine_pid_, 0) << "no engine became ready\n" << serve_->log();
    }
  }

  // Waits for the next "engine ready" line after the log offset `from_`; returns its pid.
  pid_t wait_ready_engine(double timeout_s = 60) {
    auto at = serve_->wait_for_log("engine ready: pid ", timeout_s, log_from_);
    EXPECT_TRUE(at) << serve_->log();
    if (!at) return -1;
    log_from_ = *at;
    std::string log = serve_->log();
    pid_t pid = std::atoi(log.c_str() + *at);
    std::smatch m;
    std::string rest = log.substr(*at);
    if (std::regex_search(rest, m, std::regex(R"(([0-9.]+) s after start)")))
      load_s_ = std::stod(m[1]);
    return pid;
  }

  // The supervisor's children that are alive (not zombies).
  std::vector<ProcInfo> live_children() {
    std::vector<ProcInfo> out;
    for (const auto& p : children_of(serve_->pid())) {
      if (p.state != 'Z') out.push_back(p);
    }
    return out;
  }
  bool no_zombie_children() {
    for (const auto& p : children_of(serve_->pid())) {
      if (p.state == 'Z') return false;
    }
    return true;
  }
  // The engine logs whether it serves HTTP once it holds the socket. That line and the
  // supervisor's "engine ready" come from two processes, in either order: wait for it.
  bool http_served() {
    wait_until(
        [&] {
          const std::string log = serve_->log();
          return log.find("serving HTTP for") != std::string::npos ||
                 log.find("this build has no HTTP server") != std::string::npos;
        },
        30);
    return serve_->log().find("serving HTTP for") != std::string::npos;
  }

  void stop_and_expect_exit(int code, double timeout_s = 30) {
    serve_->signal(SIGTERM);
    auto status = serve_->wait(timeout_s);
    ASSERT_TRUE(status) << "the supervisor did not exit\n" << serve_->log();
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == code) << *status << "\n"
                                                                    << serve_->log();
  }

  void TearDown() override {
    serve_.reset();  // SIGKILLs it if still running
    expect_no_children();
  }

  std::unique_ptr<ChildProcess> serve_;
  int port_ = 0;
  pid_t engine_pid_ = -1;
  size_t log_from_ = 0;
  double load_s_ = 0;
};

TEST_F(ServeTest, RunsTheEngineAsAChildAndStopsCleanlyOnSigterm) {
  START({"--api-key", "sekrit-key"});
  auto engines = live_children();
  ASSERT_EQ(engines.size(), 1u);
  EXPECT_EQ(engines[0].pid, engine_pid_);
  std::string cmdline = cmdline_of(engine_pid_);
  EXPECT_NE(cmdline.find("engine --stdio --listen-fd 3"), std::string::npos) << cmdline;
  EXPECT_EQ(cmdline.find("sekrit-key"), std::string::npos)
      << "the API key is visible in the engine's argv";
  // fd 3 of the engine is the supervisor's listening socket.
  EXPECT_EQ(std::filesystem::read_symlink("/proc/" + std::to_string(engine_pid_) + "/fd/3")
                .string()
                .rfind("socket:", 0),
            0u);
  int fd = connect_to(port_);
  EXPECT_GE(fd, 0);
  if (fd >= 0) ::close(fd);
  // The engine's stderr is in the supervisor's log, prefixed.
  EXPECT_NE(serve_->log().find("engine[" + std::to_string(engine_pid_) + "] "), std::string::npos)
      << serve_->log();
  stop_and_expect_exit(0);
  EXPECT_FALSE(process_exists(engine_pid_));
  EXPECT_LT(connect_to(port_), 0) << "the port is still open after the stop";
}

TEST_F(ServeTest, KillDashNineOfTheEngineIsReplacedWithinTwoSeconds) {
  START();
  const pid_t old_pid = engine_pid_;
  auto killed_at = Clock::now();
  signal_process(old_pid, SIGKILL);
  // The port stays open while no engine runs: the connection waits in the backlog.
  int fd = connect_to(port_);
  EXPECT_GE(fd, 0) << "connection refused during the restart";
  pid_t new_pid = wait_ready_engine(30);
  double restart_s = seconds_since(killed_at);
  if (fd >= 0) ::close(fd);
  EXPECT_NE(new_pid, old_pid);
  EXPECT_LT(restart_s, 2.0 + load_s_) << serve_->log();
  RecordProperty("kill_to_ready_s", std::to_string(restart_s));
  RecordProperty("model_load_s", std::to_string(load_s_));
  EXPECT_NE(serve_->log().find("was killed by signal 9"), std::string::npos);
  // The dead engine was reaped: no zombie, and exactly one engine.
  EXPECT_TRUE(wait_until([&] { return !process_exists(old_pid); }, 5))
      << "old engine " << old_pid << " not reaped";
  EXPECT_TRUE(no_zombie_children());
  auto engines = live_children();
  ASSERT_EQ(engines.size(), 1u);
  EXPECT_EQ(engines[0].pid, new_pid);
  stop_and_expect_exit(0);
}

TEST_F(ServeTest, AHungEngineIsDetectedKilledAndReplaced) {
  START({"--health-timeout", "1", "--model", endless_model_for_tests()});
  const pid_t old_pid = engine_pid_;
  // A stream in flight when the engine hangs ends with an error once the engine is replaced.
  std::atomic<bool> got_data{false};
  HttpResult stream;
  std::thread client([&] {
    stream = http_post(
        port_, "/v1/completions",
        {{"model", "demo-noeos"}, {"prompt", "Hi"}, {"max_tokens", 20000}, {"stream", true}},
        [&](const std::string& raw) {
          if (raw.find("data: ") != std::string::npos) got_data = true;
        });
  });
  const bool streaming = wait_until([&] { return got_data.load(); }, 30);
  EXPECT_TRUE(streaming) << serve_->log();
  signal_process(old_pid, SIGSTOP);
  auto stopped_at = Clock::now();
  pid_t new_pid = wait_ready_engine(30);
  client.join();
  EXPECT_FALSE(stream.timed_out);
  EXPECT_EQ(last_sse_error(stream.body())["error"]["code"], "engine_unavailable")
      << tail(stream.body());
  EXPECT_TRUE(ends_with(stream.body(), "data: [DONE]\n\n")) << tail(stream.body());
  EXPECT_NE(new_pid, old_pid);
  EXPECT_LT(seconds_since(stopped_at), 0.2 + 1 + 2.0 + load_s_ + 1) << serve_->log();
  EXPECT_NE(serve_->log().find("did not answer health"), std::string::npos) << serve_->log();
  EXPECT_TRUE(wait_until([&] { return !process_exists(old_pid); }, 5));
  EXPECT_TRUE(no_zombie_children());
  EXPECT_EQ(live_children().size(), 1u);
  stop_and_expect_exit(0);
}

TEST_F(ServeTest, ACrashLoopEndsTheServiceWithAnError) {
  START({"--max-restarts", "3", "--restart-window", "60"});
  for (int i = 0; i < 2; ++i) {
    signal_process(engine_pid_, SIGKILL);
    engine_pid_ = wait_ready_engine(30);
    ASSERT_GT(engine_pid_, 0);
  }
  signal_process(engine_pid_, SIGKILL);  // the third failure within the window
  auto status = serve_->wait(30);
  ASSERT_TRUE(status) << serve_->log();
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 1) << *status;
  EXPECT_NE(serve_->log().find("crash loop"), std::string::npos) << serve_->log();
  EXPECT_FALSE(process_exists(engine_pid_));
}

TEST_F(ServeTest, AnEngineThatCannotLoadItsModelStopsTheServiceAtOnce) {
  START({"--model", "/nonexistent/model/folder"}, /*wait_ready=*/false);
  auto status = serve_->wait(30);
  ASSERT_TRUE(status) << serve_->log();
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 1) << *status;
  EXPECT_NE(serve_->log().find("/nonexistent/model/folder"), std::string::npos) << serve_->log();
  EXPECT_NE(serve_->log().find("giving up"), std::string::npos) << serve_->log();
}

TEST_F(ServeTest, BadOptionsAreRefusedBeforeAnyEngineStarts) {
  ChildProcess p({hwledger_binary(), "serve", "--port", "0", "--ssd-cache", "lots"});
  auto status = p.wait(30);
  ASSERT_TRUE(status);
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 2) << p.log();
  EXPECT_NE(p.log().find("lots"), std::string::npos) << p.log();
  EXPECT_TRUE(children_of(p.pid()).empty());
}

TEST_F(ServeTest, TheEngineDiesWithItsSupervisor) {
  START();
  serve_->signal(SIGKILL);
  ASSERT_TRUE(serve_->wait(10));
  // Reparented to this test process (the subreaper): PR_SET_PDEATHSIG makes it stop by itself.
  EXPECT_TRUE(wait_until(
      [&] {
        auto p = read_proc(engine_pid_);
        if (p && p->state == 'Z' && engine_pid_ > 0) ::waitpid(engine_pid_, nullptr, 0);
        return !process_exists(engine_pid_);
      },
      10))
      << "engine " << engine_pid_ << " outlived its supervisor";
}

TEST_F(ServeTest, SigtermLetsRunningStreamsFinishThenExitsZero) {
  START({"--model", endless_model_for_tests(), "--grace", "10"});
  if (!http_served()) GTEST_SKIP() << "this build has no HTTP server (src/server)";
  std::atomic<int> streaming{0};
  std::vector<HttpResult> results(2);
  std::vector<std::thread> clients;
  for (int i = 0; i < 2; ++i) {
    clients.emplace_back([&, i] {
      bool counted = false;
      results[i] = http_post(port_, "/v1/completions",
                             {{"model", "demo-noeos"},
                              {"prompt", "Stream number " + std::to_string(i)},
                              {"max_tokens", 3000},
                              {"stream", true}},
                             [&](const std::string& raw) {
                               if (!counted && raw.find("data: ") != std::string::npos) {
                                 counted = true;
                                 ++streaming;
                               }
                             });
    });
  }
  bool both_streaming = wait_until([&] { return streaming == 2; }, 60);
  EXPECT_TRUE(both_streaming) << serve_->log();
  auto sigterm_at = Clock::now();
  serve_->signal(SIGTERM);
  for (auto& t : clients) t.join();
  if (!both_streaming) return;
  for (const auto& r : results) {
    EXPECT_EQ(r.status(), 200) << r.raw.substr(0, 300);
    EXPECT_FALSE(r.timed_out);
    // Ran to max_tokens (length) or, past the grace period, was cancelled: with its final events.
    EXPECT_GT(r.body().size(), 100000u) << "the stream ended early";
    EXPECT_NE(r.body().find("data: [DONE]"), std::string::npos)
        << "stream did not end cleanly:\n"
        << r.body().substr(r.body().size() > 2000 ? r.body().size() - 2000 : 0);
  }
  auto status = serve_->wait(30);
  ASSERT_TRUE(status) << serve_->log();
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << *status << "\n" << serve_->log();
  EXPECT_LT(seconds_since(sigterm_at), 10 + 5.0);
  EXPECT_NE(serve_->log().find("after draining"), std::string::npos) << serve_->log();
  // After the stop, the port is closed.
  EXPECT_LT(connect_to(port_), 0);
}

TEST_F(ServeTest, KillDashNineMidStreamThenTheRepeatComesBackFromSsd) {
  const std::string cache = scratch_dir("kv");
  const std::string model = endless_model_for_tests();
  START({"--model", model, "--cache-dir", cache, "--ssd-cache", "256M"});
  if (!http_served()) GTEST_SKIP() << "this build has no HTTP server (src/server)";
  std::string prompt;
  for (int i = 0; prompt.size() < 3000; ++i)
    prompt += "Agent step " + std::to_string(i) + ": read the file, then edit it. ";
  auto tok = tokenizer::Tokenizer::load(model);
  const int64_t prompt_tokens = static_cast<int64_t>(tok.encode(prompt, true).size());
  const int64_t prompt_blocks = (prompt_tokens - 1) / 32;  // the cache keeps one token to compute
  std::atomic<bool> got_data{false};
  HttpResult stream;
  std::thread client([&] {
    stream = http_post(
        port_, "/v1/completions",
        {{"model", "demo-noeos"}, {"prompt", prompt}, {"max_tokens", 20000}, {"stream", true}},
        [&](const std::string& raw) {
          if (raw.find("data: ") != std::string::npos) got_data = true;
        });
  });
  // Tokens are streaming and the prompt's blocks are on the SSD tier (written behind, one file
  // each).
  bool ready = wait_until(
      [&] { return got_data && ssd_block_files(cache) >= static_cast<size_t>(prompt_blocks); }, 60);
  EXPECT_TRUE(ready) << serve_->log() << stream.raw.substr(0, 500);
  auto killed_at = Clock::now();
  signal_process(engine_pid_, SIGKILL);
  client.join();
  if (!ready) return;
  // The client saw an error, not a hang or a cut stream: the supervisor ended the stream with
  // an OpenAI error event and [DONE].
  EXPECT_EQ(stream.status(), 200) << stream.raw.substr(0, 500);
  EXPECT_FALSE(stream.timed_out);
  EXPECT_EQ(last_sse_error(stream.body())["error"]["code"], "engine_unavailable")
      << tail(stream.body());
  EXPECT_TRUE(ends_with(stream.body(), "data: [DONE]\n\n")) << tail(stream.body());
  EXPECT_TRUE(ends_with(stream.raw, "0\r\n\r\n")) << "the chunked body did not end properly";
  pid_t new_pid = wait_ready_engine(30);
  EXPECT_NE(new_pid, engine_pid_);
  EXPECT_LT(seconds_since(killed_at), 2.0 + load_s_) << serve_->log();
  HttpResult again = http_post(port_, "/v1/completions",
                               {{"model", "demo-noeos"}, {"prompt", prompt}, {"max_tokens", 2}});
  ASSERT_EQ(again.status(), 200) << again.raw;
  json reply = json::parse(again.body(), nullptr, false);
  ASSERT_TRUE(reply.is_object()) << again.body();
  EXPECT_EQ(reply["usage"]["prompt_tokens"], prompt_tokens);
  EXPECT_EQ(reply["usage"]["prompt_tokens_details"]["cached_tokens"], prompt_blocks * 32)
      << reply.dump();
  stop_and_expect_exit(0);
}

TEST_F(ServeTest, KillDashNineAnswersEveryRequestInFlightWithAnErrorInItsApisShape) {
  START({"--model", endless_model_for_tests()});
  if (!http_served()) GTEST_SKIP() << "this build has no HTTP server (src/server)";
  std::atomic<int> streaming{0};
  auto count_first_data = [&](bool& counted) {
    return [&](const std::string& raw) {
      if (!counted && raw.find("data: ") != std::string::npos) {
        counted = true;
        ++streaming;
      }
    };
  };
  bool c1 = false, c2 = false;
  HttpResult openai_stream, anthropic_stream, openai_plain, anthropic_plain;
  std::vector<std::thread> clients;
  clients.emplace_back([&] {
    openai_stream = http_post(port_, "/v1/chat/completions",
                              {{"model", "demo-noeos"},
                               {"messages", {{{"role", "user"}, {"content", "Hi"}}}},
                               {"max_tokens", 20000},
                               {"stream", true}},
                              count_first_data(c1));
  });
  clients.emplace_back([&] {
    anthropic_stream = http_post(port_, "/v1/messages",
                                 {{"model", "demo-noeos"},
                                  {"messages", {{{"role", "user"}, {"content", "Hi"}}}},
                                  {"max_tokens", 20000},
                                  {"stream", true}},
                                 count_first_data(c2));
  });
  clients.emplace_back([&] {
    openai_plain = http_post(port_, "/v1/completions",
                             {{"model", "demo-noeos"}, {"prompt", "Hi"}, {"max_tokens", 20000}});
  });
  clients.emplace_back([&] {
    anthropic_plain = http_post(port_, "/v1/messages",
                                {{"model", "demo-noeos"},
                                 {"messages", {{{"role", "user"}, {"content", "Hi"}}}},
                                 {"max_tokens", 20000}});
  });
  // All four generate: two streams have sent data, the scheduler runs four.
  bool ready = wait_until([&] { return streaming == 2 && http_get_running(port_) == 4; }, 60, 0.05);
  EXPECT_TRUE(ready) << serve_->log();
  signal_process(engine_pid_, SIGKILL);
  for (auto& t : clients) t.join();
  if (!ready) return;

  EXPECT_EQ(openai_stream.status(), 200);
  EXPECT_FALSE(openai_stream.timed_out);
  json e = last_sse_error(openai_stream.body());
  ASSERT_TRUE(e.is_object()) << tail(openai_stream.body());
  EXPECT_EQ(e["error"]["type"], "server_error") << tail(openai_stream.body());
  EXPECT_NE(e["error"]["message"].get<std::string>().find("was killed by signal 9"),
            std::string::npos)
      << e.dump();
  EXPECT_TRUE(ends_with(openai_stream.body(), "data: [DONE]\n\n")) << tail(openai_stream.body());

  EXPECT_EQ(anthropic_stream.status(), 200);
  EXPECT_FALSE(anthropic_stream.timed_out);
  const std::string a = anthropic_stream.body();
  EXPECT_TRUE(ends_with(a, "\n\n")) << tail(a);
  const size_t ev = a.rfind("event: error\ndata: ");
  ASSERT_NE(ev, std::string::npos) << tail(a);
  json ae = json::parse(a.substr(ev + 19), nullptr, false);
  ASSERT_TRUE(ae.is_object()) << tail(a);
  EXPECT_EQ(ae["type"], "error") << tail(a);
  EXPECT_EQ(ae["error"]["type"], "api_error") << tail(a);

  for (const HttpResult* r : {&openai_plain, &anthropic_plain}) {
    EXPECT_FALSE(r->timed_out);
    EXPECT_EQ(r->status(), 503) << r->raw;
    EXPECT_NE(r->raw.find("Retry-After: 1"), std::string::npos) << r->raw;
  }
  json oj = json::parse(openai_plain.body(), nullptr, false);
  json aj = json::parse(anthropic_plain.body(), nullptr, false);
  ASSERT_TRUE(oj.is_object() && aj.is_object()) << openai_plain.raw << "\n" << anthropic_plain.raw;
  EXPECT_EQ(oj["error"]["type"], "server_error") << openai_plain.raw;
  EXPECT_EQ(oj["error"]["code"], "engine_unavailable") << openai_plain.raw;
  EXPECT_EQ(aj["type"], "error") << anthropic_plain.raw;
  EXPECT_EQ(aj["error"]["type"], "api_error") << anthropic_plain.raw;
  EXPECT_TRUE(serve_->wait_for_log("answered 4 HTTP request(s)", 10)) << serve_->log();

  // The next engine serves, and the supervisor holds no connection of the dead one.
  EXPECT_GT(wait_ready_engine(30), 0);
  HttpResult again = http_post(port_, "/v1/completions",
                               {{"model", "demo-noeos"}, {"prompt", "Hi"}, {"max_tokens", 2}});
  EXPECT_EQ(again.status(), 200) << again.raw;
  stop_and_expect_exit(0);
}

}  // namespace
}  // namespace hwledger::testing
