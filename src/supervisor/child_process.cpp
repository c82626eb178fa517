#include "supervisor/child_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "util/error.h"

extern char** environ;

namespace hwledger::supervisor {

namespace {

struct Pipe {
  int read = -1, write = -1;
};

Pipe make_pipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) fail("supervisor: pipe2: {}", std::strerror(errno));
  return {fds[0], fds[1]};
}

void close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

// Only async-signal-safe calls from here on (we are in the forked child of a threaded process).
[[noreturn]] void exec_child(const char* program, char* const* argv, char* const* envp,
                             pid_t parent, int in_fd, int out_fd, int err_fd, const int* pass,
                             int n_pass) {
  ::setpgid(0, 0);
  ::prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (::getppid() != parent) ::_exit(127);  // the supervisor died before prctl took effect
  // Pipe ends are >= 3 (0-2 are open in the supervisor); dup2 clears close-on-exec.
  if (::dup2(in_fd, 0) < 0 || ::dup2(out_fd, 1) < 0 || ::dup2(err_fd, 2) < 0) ::_exit(127);
  // Every passed descriptor first moves above the target numbers (a source may sit on another's
  // target), then into place; F_DUPFD's copies are not close-on-exec. At most 16 (checked by
  // spawn_child before the fork).
  int tmp[16];
  const int top = child_fd(n_pass);
  for (int i = 0; i < n_pass; ++i)
    if (pass[i] >= 0 && (tmp[i] = ::fcntl(pass[i], F_DUPFD, top)) < 0) ::_exit(127);
  for (int i = 0; i < n_pass; ++i) {
    if (pass[i] < 0) continue;
    if (::dup2(tmp[i], child_fd(i)) < 0) ::_exit(127);
    ::close(tmp[i]);
  }
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::signal(SIGPIPE, SIG_DFL);
  ::execve(program, argv, envp);
  static const char msg[] = "supervisor: cannot execute the engine program\n";
  (void)!::write(2, msg, sizeof msg - 1);
  ::_exit(127);
}

}  // namespace

Child spawn_child(const ChildSpec& spec) {
  HW_CHECK(!spec.argv.empty(), "spawn_child: empty argv");
  HW_CHECK(spec.pass_fds.size() <= 16, "spawn_child: {} descriptors to pass, at most 16",
           spec.pass_fds.size());
  // Everything the child needs is built before fork: no allocation after it.
  std::vector<char*> argv;
  for (const auto& a : spec.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<std::string> env_storage;
  for (char** e = environ; *e; ++e) {
    std::string entry = *e;
    std::string name = entry.substr(0, entry.find('='));
    bool replaced = false;
    for (const auto& add : spec.env) replaced |= add.compare(0, name.size() + 1, name + "=") == 0;
    if (!replaced) env_storage.push_back(std::move(entry));
  }
  for (const auto& add : spec.env) env_storage.push_back(add);
  std::vector<char*> envp;
  for (auto& e : env_storage) envp.push_back(e.data());
  envp.push_back(nullptr);

  Pipe in = make_pipe(), out = make_pipe(), err = make_pipe();
  const pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) {
    int e = errno;
    for (int* fd : {&in.read, &in.write, &out.read, &out.write, &err.read, &err.write})
      close_fd(*fd);
    fail("supervisor: fork: {}", std::strerror(e));
  }
  if (pid == 0)
    exec_child(spec.program.c_str(), argv.data(), envp.data(), parent, in.read, out.write,
               err.write, spec.pass_fds.data(), static_cast<int>(spec.pass_fds.size()));
  close_fd(in.read);
  close_fd(out.write);
  close_fd(err.write);
  for (int fd : {in.write, out.read, err.read})
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  return Child{pid, in.write, out.read, err.read};
}

void close_pipes(Child& child) {
  close_fd(child.stdin_fd);
  close_fd(child.stdout_fd);
  close_fd(child.stderr_fd);
}

}  // namespace hwledger::supervisor
