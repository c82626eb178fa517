#include "supervisor/supervisor.h"

#include <fcntl.h>
#include <poll.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstring>
#include <optional>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "rpc/line_splitter.h"
#include "supervisor/child_process.h"
#include "supervisor/conn_guard.h"
#include "supervisor/listen_socket.h"
#include "util/error.h"

namespace hwledger::supervisor {

namespace {

using json = nlohmann::json;

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return fmt::format("exited with code {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    return fmt::format("was killed by signal {} ({})", sig, strsignal(sig));
  }
  return fmt::format("ended (status {:#x})", status);
}

// fds 0-2 must be open: otherwise the socket or a pipe could land there and be clobbered when the
// child's stdio is set up.
void ensure_standard_fds() {
  for (int fd = 0; fd <= 2; ++fd) {
    if (::fcntl(fd, F_GETFD) < 0 && errno == EBADF) {
      int null_fd = ::open("/dev/null", O_RDWR);
      if (null_fd >= 0 && null_fd != fd) {
        ::dup2(null_fd, fd);
        ::close(null_fd);
      }
    }
  }
}

constexpr size_t kMaxLogLine = 64 << 10;    // longer engine stderr lines are cut
constexpr size_t kMaxReplyLine = 16 << 20;  // the engine's replies to health/shutdown are small
constexpr double kStartingHealthInterval = 0.1;  // poll a starting engine often: ready sooner

}  // namespace

class Supervisor::Impl {
 public:
  explicit Impl(SupervisorOptions options)
      : options_(std::move(options)), policy_(options_.restart) {
    auto sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    engine_log_ = std::make_shared<spdlog::logger>("engine", sink);
    engine_log_->set_pattern("%v");  // the engine's lines carry their own time and level
  }

  int run();

 private:
  struct Engine {
    Child child;
    enum class Phase { Starting, Ready, Stopping } phase = Phase::Starting;
    double started_at = 0;
    std::optional<double> ready_at;
    std::optional<std::string> pending_health;  // id of the health request in flight
    double health_deadline = 0, next_health_at = 0;
    bool killed = false;  // SIGKILL sent; its exit is on the way
    std::string model;
    std::unique_ptr<rpc::LineSplitter> out, err;
    std::unique_ptr<ConnectionGuard> guard;  // its HTTP connections, answered if it dies
  };
  void settle_connections(Engine& engine, const std::string& message);

  void start_engine(double now);
  void send_health(double now);
  bool send_line(const json& message);
  void kill_engine(const std::string& reason);
  // kill(2) of the engine only (a pid <= 0 would reach a whole group or every process).
  void signal_engine(int sig) {
    if (engine_ && engine_->child.pid > 0) ::kill(engine_->child.pid, sig);
  }
  void read_engine(int fd, bool is_stdout, bool to_eof);
  void on_engine_line(std::string_view line);
  void reap(double now);
  void on_engine_exit(int status, double now);
  void on_stop_signal(int sig, double now);
  void check_timers(double now);
  int poll_timeout_ms(double now) const;
  void finish(int exit_code) {
    done_ = true;
    exit_code_ = exit_code;
  }

  SupervisorOptions options_;
  RestartPolicy policy_;
  std::shared_ptr<spdlog::logger> engine_log_;
  int listen_fd_ = -1, signal_fd_ = -1;
  std::optional<Engine> engine_;
  std::optional<double> restart_at_;
  uint64_t health_counter_ = 0;
  bool stopping_ = false, forced_ = false, done_ = false;
  double stop_deadline_ = 0;
  int exit_code_ = 0;
};

Supervisor::Supervisor(SupervisorOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}
Supervisor::~Supervisor() = default;
int Supervisor::run() {
  return impl_->run();
}

int Supervisor::Impl::run() {
  ensure_standard_fds();
  std::signal(SIGPIPE, SIG_IGN);  // a dead engine's stdin is EPIPE, not a kill
  listen_fd_ = listen_tcp(options_.host, options_.port);
  options_.port = bound_port(listen_fd_);
  if (!is_loopback(options_.host)) {
    bool has_key =
        std::any_of(options_.engine_env.begin(), options_.engine_env.end(),
                    [](const std::string& e) { return e.rfind("HWLEDGER_API_KEY=", 0) == 0; });
    spdlog::warn("listening on {}: reachable from other machines{}", options_.host,
                 has_key ? "" : ", and no --api-key is set");
  }
  spdlog::info("hwledger serve: listening on {}:{} (supervisor pid {})", options_.host,
               options_.port, ::getpid());

  sigset_t signals;
  sigemptyset(&signals);
  for (int s : {SIGCHLD, SIGTERM, SIGINT, SIGHUP}) sigaddset(&signals, s);
  sigprocmask(SIG_BLOCK, &signals, nullptr);
  signal_fd_ = signalfd(-1, &signals, SFD_CLOEXEC | SFD_NONBLOCK);
  if (signal_fd_ < 0) fail("supervisor: signalfd: {}", std::strerror(errno));

  start_engine(now_s());
  while (!done_) {
    pollfd fds[4] = {{signal_fd_, POLLIN, 0},
                     {engine_ ? engine_->child.stdout_fd : -1, POLLIN, 0},
                     {engine_ ? engine_->child.stderr_fd : -1, POLLIN, 0},
                     {engine_ && engine_->guard ? engine_->guard->fd() : -1, POLLIN, 0}};
    if (::poll(fds, 4, poll_timeout_ms(now_s())) < 0) {
      if (errno == EINTR) continue;
      fail("supervisor: poll: {}", std::strerror(errno));
    }
    double now = now_s();
    if (fds[1].revents) read_engine(fds[1].fd, true, false);
    if (fds[2].revents) read_engine(fds[2].fd, false, false);
    if (fds[3].revents && engine_) engine_->guard->read_reports();
    if (fds[0].revents & POLLIN) {
      signalfd_siginfo info;
      while (::read(signal_fd_, &info, sizeof info) == sizeof info) {
        int sig = static_cast<int>(info.ssi_signo);
        if (sig != SIGCHLD) on_stop_signal(sig, now);
      }
    }
    reap(now);  // cheap, and catches every exit even when SIGCHLDs were merged
    if (!done_) check_timers(now);
  }

  if (engine_) {  // only when giving up with the engine somehow still there
    signal_engine(SIGKILL);
    int status;
    ::waitpid(engine_->child.pid, &status, 0);
    close_pipes(engine_->child);
    settle_connections(*engine_, "the server stopped before this request finished");
    engine_.reset();
  }
  while (::waitpid(-1, nullptr, WNOHANG) > 0) {
  }
  if (listen_fd_ >= 0) ::close(listen_fd_);
  ::close(signal_fd_);
  sigprocmask(SIG_UNBLOCK, &signals, nullptr);
  spdlog::info("hwledger serve: stopped (exit code {})", exit_code_);
  return exit_code_;
}

void Supervisor::Impl::start_engine(double now) {
  restart_at_.reset();
  ChildSpec spec;
  spec.program = options_.engine_program;
  // Inherited descriptors: the listening socket and the connection reports (ConnectionGuard).
  constexpr int kListen = 0, kConnWatch = 1;
  spec.argv = {"hwledger",
               "engine",
               "--stdio",
               "--listen-fd",
               std::to_string(child_fd(kListen)),
               "--host",
               options_.host,
               "--port",
               std::to_string(options_.port),
               "--drain-timeout",
               fmt::format("{}", options_.grace_s),
               "--conn-watch-fd",
               std::to_string(child_fd(kConnWatch))};
  spec.argv.insert(spec.argv.end(), options_.engine_args.begin(), options_.engine_args.end());
  spec.env = options_.engine_env;
  Engine engine;
  try {
    engine.guard = std::make_unique<ConnectionGuard>();
    spec.pass_fds.assign(2, -1);
    spec.pass_fds[kListen] = listen_fd_;
    spec.pass_fds[kConnWatch] = engine.guard->child_end();
    engine.child = spawn_child(spec);
    engine.guard->close_child_end();
  } catch (const std::exception& e) {
    spdlog::error("cannot start the engine: {}", e.what());
    auto delay = policy_.on_failure(now, std::nullopt);
    if (!delay) return finish(1);
    restart_at_ = now + *delay;
    return;
  }
  engine.started_at = now;
  engine.next_health_at = now + kStartingHealthInterval;
  const pid_t pid = engine.child.pid;
  engine.out = std::make_unique<rpc::LineSplitter>(
      kMaxReplyLine,
      rpc::LineSplitter::Handlers{[this](std::string_view line) { on_engine_line(line); },
                                  [](size_t) { spdlog::warn("engine: over-long reply line"); }});
  engine.err = std::make_unique<rpc::LineSplitter>(
      kMaxLogLine,
      rpc::LineSplitter::Handlers{
          [this, pid](std::string_view line) { engine_log_->info("engine[{}] {}", pid, line); },
          [this, pid](size_t limit) {
            engine_log_->info("engine[{}] (a log line over {} bytes was cut)", pid, limit);
          }});
  engine_ = std::move(engine);
  spdlog::info("started engine pid {}", pid);
}

bool Supervisor::Impl::send_line(const json& message) {
  std::string line = message.dump() + "\n";  // small: one atomic pipe write (< PIPE_BUF)
  ssize_t n;
  do {
    n = ::write(engine_->child.stdin_fd, line.data(), line.size());
  } while (n < 0 && errno == EINTR);
  return n == static_cast<ssize_t>(line.size());
}

void Supervisor::Impl::send_health(double now) {
  std::string id = fmt::format("health-{}", ++health_counter_);
  if (!send_line({{"jsonrpc", "2.0"}, {"id", id}, {"method", "health"}})) {
    if (errno == EAGAIN) kill_engine("its stdin is full: it stopped reading");
    return;  // EPIPE: it is exiting; SIGCHLD follows
  }
  engine_->pending_health = id;
  engine_->health_deadline = now + options_.health_timeout_s;
}

void Supervisor::Impl::kill_engine(const std::string& reason) {
  if (!engine_ || engine_->killed) return;
  spdlog::error("engine pid {} {}: killing it (SIGKILL)", engine_->child.pid, reason);
  signal_engine(SIGKILL);
  engine_->killed = true;
}

void Supervisor::Impl::read_engine(int fd, bool is_stdout, bool to_eof) {
  if (!engine_ || fd < 0) return;
  char buffer[64 << 10];
  for (int rounds = 0; rounds < 64 || to_eof; ++rounds) {
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n > 0) {
      (is_stdout ? engine_->out : engine_->err)
          ->feed(std::string_view(buffer, static_cast<size_t>(n)));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) {  // EOF: the engine closed it (it is exiting); stop polling this end
      (is_stdout ? engine_->out : engine_->err)->finish();
      int& end = is_stdout ? engine_->child.stdout_fd : engine_->child.stderr_fd;
      ::close(end);
      end = -1;
    }
    return;  // EAGAIN or EOF
  }
}

void Supervisor::Impl::on_engine_line(std::string_view line) {
  json message = json::parse(line.begin(), line.end(), nullptr, /*allow_exceptions=*/false);
  if (!message.is_object() || !engine_) {
    spdlog::warn("engine: unexpected output line: {}", line.substr(0, 200));
    return;
  }
  auto id = message.find("id");
  if (id == message.end() || !id->is_string()) return;  // notifications: none expected
  const std::string& key = id->get_ref<const std::string&>();
  if (key == "shutdown") {
    spdlog::info("engine pid {} is draining its requests", engine_->child.pid);
    return;
  }
  if (!engine_->pending_health || key != *engine_->pending_health) return;  // a late answer
  double now = now_s();
  engine_->pending_health.reset();
  bool ready = engine_->phase == Engine::Phase::Ready;
  engine_->next_health_at = now + (ready ? options_.health_interval_s : kStartingHealthInterval);
  const json& result = message.contains("result") ? message["result"] : json();
  std::string status = result.is_object() ? result.value("status", "") : "";
  if (status == "ok" && engine_->phase == Engine::Phase::Starting) {
    engine_->phase = Engine::Phase::Ready;
    engine_->ready_at = now;
    engine_->model =
        result.value("model", json()).is_string() ? result["model"].get<std::string>() : "";
    engine_->next_health_at = now + options_.health_interval_s;
    spdlog::info("engine ready: pid {}, model '{}', {:.2f} s after start", engine_->child.pid,
                 engine_->model, now - engine_->started_at);
  } else if (status.empty()) {
    spdlog::warn("engine pid {}: unexpected health answer: {}", engine_->child.pid,
                 line.substr(0, 200));
  }
}

void Supervisor::Impl::reap(double now) {
  int status = 0;
  pid_t pid;
  while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
    if (engine_ && pid == engine_->child.pid) {
      on_engine_exit(status, now);
    } else {
      spdlog::warn("reaped an unknown child pid {} ({})", pid, describe_status(status));
    }
  }
}

void Supervisor::Impl::on_engine_exit(int status, double now) {
  // What it wrote before dying is still in the pipes: log it first.
  read_engine(engine_->child.stderr_fd, false, true);
  read_engine(engine_->child.stdout_fd, true, true);
  close_pipes(engine_->child);
  Engine engine = std::move(*engine_);
  engine_.reset();
  const std::string what = describe_status(status);
  settle_connections(engine, stopping_ ? "the server stopped before this request finished"
                                       : fmt::format("the engine serving this request {}; a new "
                                                     "one is starting: retry the request",
                                                     what));

  if (stopping_) {
    bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0 && !forced_;
    if (clean)
      spdlog::info("engine pid {} {} after draining", engine.child.pid, what);
    else
      spdlog::warn("engine pid {} {} while stopping", engine.child.pid, what);
    return finish(clean ? 0 : 1);
  }
  spdlog::error("engine pid {} {} ({})", engine.child.pid, what,
                engine.ready_at ? fmt::format("after {:.1f} s ready", now - *engine.ready_at)
                                : "before it became ready");
  if (!engine.ready_at && !engine.killed && WIFEXITED(status) && WEXITSTATUS(status) == 2) {
    // Exit code 2 is a usage error (bad flag, unknown model folder): restarting cannot help.
    spdlog::error("the engine cannot start with these options (see its log above): giving up");
    return finish(1);
  }
  std::optional<double> delay = policy_.on_failure(now, engine.ready_at);
  if (!delay) {
    spdlog::error("the engine failed {} times within {} s: giving up (crash loop)",
                  policy_.recent_failures(), policy_.options().failure_window_s);
    return finish(1);
  }
  spdlog::warn("restarting the engine in {:.2f} s", *delay);
  restart_at_ = now + *delay;
}

void Supervisor::Impl::settle_connections(Engine& engine, const std::string& message) {
  if (!engine.guard) return;
  const int answered = engine.guard->settle(message);
  if (answered > 0)
    spdlog::warn("answered {} HTTP request(s) of engine pid {} with an error: {}", answered,
                 engine.child.pid, message);
  engine.guard.reset();
}

void Supervisor::Impl::on_stop_signal(int sig, double now) {
  if (stopping_) {
    spdlog::warn("{} again: stopping the engine now", strsignal(sig));
    forced_ = true;
    kill_engine("was told to stop twice");
    if (!engine_) finish(1);
    return;
  }
  stopping_ = true;
  // No new connections reach a new engine; the running one stops accepting when it drains.
  ::close(listen_fd_);
  listen_fd_ = -1;
  if (!engine_) {
    spdlog::info("{}: stopping (no engine running)", strsignal(sig));
    return finish(0);
  }
  spdlog::info("{}: stopping: no new requests; running requests get up to {} s to finish",
               strsignal(sig), options_.grace_s);
  engine_->phase = Engine::Phase::Stopping;
  engine_->pending_health.reset();
  stop_deadline_ = now + options_.grace_s + 5;
  if (!engine_->killed &&
      !send_line({{"jsonrpc", "2.0"}, {"id", "shutdown"}, {"method", "shutdown"}})) {
    signal_engine(SIGTERM);  // its stdin is gone or full: the signal drains it too
  }
}

void Supervisor::Impl::check_timers(double now) {
  if (!engine_) {
    if (restart_at_ && now >= *restart_at_) start_engine(now);
    return;
  }
  if (engine_->killed) return;
  switch (engine_->phase) {
    case Engine::Phase::Starting:
      if (now - engine_->started_at > options_.start_timeout_s) {
        kill_engine(fmt::format("was not ready within {} s", options_.start_timeout_s));
        return;
      }
      [[fallthrough]];
    case Engine::Phase::Ready:
      if (engine_->pending_health) {
        if (now >= engine_->health_deadline) {
          kill_engine(fmt::format("did not answer health within {} s (hung or stopped)",
                                  options_.health_timeout_s));
        }
      } else if (now >= engine_->next_health_at) {
        send_health(now);
      }
      return;
    case Engine::Phase::Stopping:
      if (now >= stop_deadline_) {
        forced_ = true;
        kill_engine(fmt::format("did not stop within the {} s grace period", options_.grace_s));
      }
      return;
  }
}

int Supervisor::Impl::poll_timeout_ms(double now) const {
  double next = now + 1.0;
  if (restart_at_) next = std::min(next, *restart_at_);
  if (engine_ && !engine_->killed) {
    if (engine_->phase == Engine::Phase::Stopping) {
      next = std::min(next, stop_deadline_);
    } else {
      next = std::min(next,
                      engine_->pending_health ? engine_->health_deadline : engine_->next_health_at);
    }
  }
  return static_cast<int>(std::clamp(std::ceil((next - now) * 1000), 0.0, 1000.0));
}

}  // namespace hwledger::supervisor
