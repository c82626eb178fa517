#include "rpc/stdio_engine.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <mutex>
#include <thread>

#include "sched/model_context.h"
#include "util/error.h"

namespace hwledger::rpc {

namespace {

// Signals the engine handles itself, through a signalfd read by the main loop.
sigset_t shutdown_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  return set;
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

}  // namespace

int run_stdio_engine(const StdioEngineOptions& options) {
  std::signal(SIGPIPE, SIG_IGN);  // a closed stdout is an EPIPE error, not a kill
  // The protocol gets a private copy of stdout; fd 1 then points at stderr, so a stray printf
  // anywhere in the process lands in the log instead of corrupting the protocol stream.
  Fd protocol_fd(fcntl(options.out_fd, F_DUPFD_CLOEXEC, 3));
  if (protocol_fd.get() < 0)
    fail("engine: cannot duplicate the output fd {}: {}", options.out_fd, std::strerror(errno));
  if (options.out_fd == STDOUT_FILENO) ::dup2(STDERR_FILENO, STDOUT_FILENO);

  // Block the shutdown signals before any thread starts, so that every thread inherits the mask
  // and they are only ever seen through the signalfd.
  sigset_t signals = shutdown_signals();
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  Fd signal_fd(signalfd(-1, &signals, SFD_CLOEXEC | SFD_NONBLOCK));
  Fd wake_fd(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (signal_fd.get() < 0 || wake_fd.get() < 0)
    fail("engine: signalfd/eventfd: {}", std::strerror(errno));
  auto wake = [&] {
    uint64_t one = 1;
    (void)!::write(wake_fd.get(), &one, sizeof one);
  };

  // Set by other threads, acted upon by the loop below.
  std::atomic<bool> shutdown_requested{false}, drained{false}, output_broken{false},
      start_failed{false};

  LineWriter out(protocol_fd.get());
  out.set_on_broken([&] {
    output_broken = true;
    wake();
  });
  EngineService service(options.service, out);
  service.set_on_shutdown([&] {
    shutdown_requested = true;
    wake();
  });

  std::mutex http_mutex;
  std::unique_ptr<HttpBridge> http;  // declared after the service: destroyed before its model
  std::thread http_stopper;          // HTTP drains its own requests while the service drains its
  if (options.model) {
    service.load_at_start(
        *options.model,
        [&](ModelContext& context) {
          if (options.listen_fd < 0) return;
          std::lock_guard lock(http_mutex);
          http = std::make_unique<HttpBridge>(context, options.listen_fd, options.http);
          service.set_pinned(true);
        },
        [&](const std::string& reason) {
          spdlog::error("could not load model '{}': {}", *options.model, reason);
          start_failed = true;
          wake();
        });
  } else if (options.listen_fd >= 0) {
    ::close(options.listen_fd);
    fail_input(
        "engine: --listen-fd needs --model (the HTTP server serves the model loaded at start)");
  }

  LineSplitter splitter(options.max_line_bytes,
                        {[&](std::string_view line) { service.handle_line(line); },
                         [&](size_t limit) { service.handle_overflow(limit); }});

  const pid_t parent = ::getppid();
  int exit_code = 0, signals_seen = 0;
  bool reading = true, draining = false;
  auto begin_shutdown = [&](const std::string& why) {
    if (draining) return;
    draining = true;
    spdlog::info("engine shutting down ({}): draining running requests for up to {} s", why,
                 options.drain_timeout_s);
    // Whatever happens to the drain, the process ends.
    auto limit = std::chrono::duration<double>(options.drain_timeout_s + 15);
    std::thread([limit] {
      std::this_thread::sleep_for(limit);
      spdlog::error("engine: shutdown did not finish in time; exiting");
      ::_exit(1);
    }).detach();
    service.begin_drain(
        options.drain_timeout_s,
        [&] {
          std::lock_guard lock(http_mutex);
          if (http) http_stopper = std::thread([&] { http->stop(options.drain_timeout_s); });
        },
        [&] {
          drained = true;
          wake();
        });
  };

  std::string buffer(size_t{64} << 10, '\0');
  while (!drained) {
    pollfd fds[3] = {{signal_fd.get(), POLLIN, 0},
                     {wake_fd.get(), POLLIN, 0},
                     {reading ? options.in_fd : -1, POLLIN, 0}};
    if (::poll(fds, 3, 1000) < 0) {
      if (errno == EINTR) continue;
      fail("engine: poll: {}", std::strerror(errno));
    }
    if (fds[0].revents & POLLIN) {
      signalfd_siginfo info;
      while (::read(signal_fd.get(), &info, sizeof info) == sizeof info) {
        if (++signals_seen == 1) {
          begin_shutdown(strsignal(static_cast<int>(info.ssi_signo)));
        } else {
          spdlog::warn("engine: second signal ({}): cancelling the running requests",
                       strsignal(static_cast<int>(info.ssi_signo)));
          service.cancel_all();
        }
      }
    }
    if (fds[1].revents & POLLIN) {
      uint64_t count;
      (void)!::read(wake_fd.get(), &count, sizeof count);
    }
    if (reading && (fds[2].revents & (POLLIN | POLLHUP | POLLERR))) {
      ssize_t n = ::read(options.in_fd, buffer.data(), buffer.size());
      if (n > 0) {
        splitter.feed(std::string_view(buffer.data(), static_cast<size_t>(n)));
      } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
        splitter.finish();  // a last line without '\n' still counts
        reading = false;
        begin_shutdown("end of input");
      }
    }
    if (shutdown_requested) begin_shutdown("shutdown request");
    if (output_broken) {
      service.cancel_all();
      begin_shutdown("output closed");
    }
    if (start_failed.exchange(false)) {
      exit_code = 2;
      begin_shutdown("the model failed to load");
    }
    if (::getppid() != parent) begin_shutdown("parent exited");
  }
  if (http_stopper.joinable()) http_stopper.join();
  {
    std::lock_guard lock(http_mutex);
    http.reset();
  }
  spdlog::info("engine stopped");
  return exit_code;
}

}  // namespace hwledger::rpc
