// Starting the engine child: fork + exec with its stdin/stdout/stderr on pipes and inherited
// descriptors numbered from 3 (the supervisor passes the HTTP listening socket and the
// connection reports).
// Everything else the supervisor holds is close-on-exec, so the child inherits nothing by accident.
#pragma once
#include <sys/types.h>

#include <string>
#include <vector>

namespace hwledger::supervisor {

struct ChildSpec {
  std::string program;            // path for execv (e.g. /proc/self/exe)
  std::vector<std::string> argv;  // argv[0] included
  std::vector<std::string> env;   // NAME=value pairs added to (or replacing in) the environment
  // Descriptors the child inherits: pass_fds[i] becomes fd child_fd(i) = 3 + i (-1: that
  // number stays closed).
  std::vector<int> pass_fds;
};

constexpr int child_fd(int index) {
  return 3 + index;
}

struct Child {
  pid_t pid = -1;
  int stdin_fd = -1;   // write end, non-blocking
  int stdout_fd = -1;  // read end, non-blocking
  int stderr_fd = -1;  // read end, non-blocking
};

// Starts the child. In it, before exec: its own process group (a terminal's Ctrl-C reaches only
// the supervisor, which then shuts the engine down in order), PR_SET_PDEATHSIG(SIGTERM) so that
// it stops if the supervisor dies, all signals unblocked and SIGPIPE back to default.
// Call from the thread that lives as long as the child (PDEATHSIG fires when the forking thread
// ends). Throws hwledger::Error when fork or the pipes fail; a failed exec shows as exit code 127.
Child spawn_child(const ChildSpec& spec);

// Closes the parent's ends (those still open) and marks them -1.
void close_pipes(Child& child);

}  // namespace hwledger::supervisor
