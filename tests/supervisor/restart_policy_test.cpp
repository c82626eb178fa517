// The supervisor's restart policy and its process plumbing (no engine involved).
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include "supervisor/child_process.h"
#include "supervisor/listen_socket.h"
#include "supervisor/restart_policy.h"
#include "util/error.h"

namespace hwledger::supervisor {
namespace {

RestartPolicyOptions options() {
  RestartPolicyOptions o;
  o.initial_backoff_s = 0.25;
  o.max_backoff_s = 2;
  o.max_failures = 5;
  o.failure_window_s = 60;
  o.stable_after_s = 30;
  return o;
}

TEST(RestartPolicy, BackoffDoublesUpToItsCap) {
  RestartPolicyOptions o = options();
  o.max_failures = 100;
  RestartPolicy p(o);
  std::vector<double> delays;
  for (int i = 0; i < 6; ++i)
    delays.push_back(*p.on_failure(i * 100.0, std::nullopt));  // outside the window
  EXPECT_EQ(delays, (std::vector<double>{0.25, 0.5, 1, 2, 2, 2}));
}

TEST(RestartPolicy, GivesUpAtTheCrashLoopLimit) {
  RestartPolicy p(options());
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(p.on_failure(i * 1.0, std::nullopt)) << i;
  EXPECT_FALSE(p.on_failure(4.0, std::nullopt));  // the 5th failure within 60 s
  EXPECT_EQ(p.recent_failures(), 5);
}

TEST(RestartPolicy, OldFailuresLeaveTheWindow) {
  RestartPolicy p(options());
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(p.on_failure(i * 1.0, std::nullopt));
  EXPECT_TRUE(p.on_failure(100.0, std::nullopt));  // the first four are older than 60 s
  EXPECT_EQ(p.recent_failures(), 1);
}

TEST(RestartPolicy, AStableRunResetsTheBackoff) {
  RestartPolicyOptions o = options();
  o.max_failures = 100;
  RestartPolicy p(o);
  EXPECT_EQ(*p.on_failure(0, std::nullopt), 0.25);
  EXPECT_EQ(*p.on_failure(1, 0.5), 0.5);      // ready only briefly: backoff keeps growing
  EXPECT_EQ(*p.on_failure(100, 10.0), 0.25);  // ready for 90 s: back to the first delay
}

TEST(ListenSocket, BindsAFreeLoopbackPort) {
  int fd = listen_tcp("127.0.0.1", 0);
  int port = bound_port(fd);
  EXPECT_GT(port, 0);
  int client = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::connect(client, reinterpret_cast<sockaddr*>(&addr), sizeof addr),
            0);  // queued in the backlog
  ::close(client);
  EXPECT_THROW(listen_tcp("127.0.0.1", port), InputError);  // taken
  ::close(fd);
  EXPECT_THROW(listen_tcp("no-such-host.invalid", 0), InputError);
  EXPECT_THROW(listen_tcp("127.0.0.1", 70000), InputError);
}

TEST(ListenSocket, Loopback) {
  EXPECT_TRUE(is_loopback("127.0.0.1"));
  EXPECT_TRUE(is_loopback("127.1.2.3"));
  EXPECT_TRUE(is_loopback("::1"));
  EXPECT_TRUE(is_loopback("localhost"));
  EXPECT_FALSE(is_loopback("0.0.0.0"));
  EXPECT_FALSE(is_loopback("::"));
  EXPECT_FALSE(is_loopback("192.168.1.5"));
}

std::string read_all(int fd) {
  std::string out;
  char buf[4096];
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 5000) <= 0) break;
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

// The child gets the pipes, the passed socket as fd 3 (and nothing else of ours), the extra
// environment, an unblocked signal mask and its own process group.
TEST(SpawnChild, PipesFd3EnvironmentAndProcessGroup) {
  int sock = listen_tcp("127.0.0.1", 0);
  ChildSpec spec;
  spec.program = "/bin/sh";
  spec.argv = {"sh", "-c",
               "read line; echo \"got:$line\"; echo \"env:$HWLEDGER_TEST_VALUE\"; "
               "ls /proc/self/fd | sort -n | tr '\\n' ' '; echo; "
               "grep SigBlk /proc/self/status; set -- $(cat /proc/$$/stat); echo \"pgid:$5\"; echo "
               "oops >&2"};
  spec.env = {"HWLEDGER_TEST_VALUE=42"};
  spec.pass_fds = {sock};
  Child child = spawn_child(spec);
  ASSERT_EQ(::write(child.stdin_fd, "hello\n", 6), 6);
  std::string out = read_all(child.stdout_fd);
  std::string err = read_all(child.stderr_fd);
  int status = 0;
  ASSERT_EQ(::waitpid(child.pid, &status, 0), child.pid);
  close_pipes(child);
  ::close(sock);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_NE(out.find("got:hello"), std::string::npos) << out;
  EXPECT_NE(out.find("env:42"), std::string::npos) << out;
  // fds 0-3 (and the one ls itself opens to list them): no leaked pipe ends.
  EXPECT_NE(out.find("0 1 2 3 "), std::string::npos) << out;
  EXPECT_EQ(out.find("0 1 2 3 4 5"), std::string::npos) << out;
  EXPECT_NE(out.find("SigBlk:\t0000000000000000"), std::string::npos) << out;
  EXPECT_NE(out.find("pgid:" + std::to_string(child.pid)), std::string::npos) << out;
  EXPECT_EQ(err, "oops\n");
}

// Several descriptors arrive in order from fd 3 (the supervisor passes the listening socket and
// the connection reports), whatever numbers they had here.
TEST(SpawnChild, PassedDescriptorsArriveInOrderFrom3) {
  int a[2], b[2];
  ASSERT_EQ(::pipe2(a, O_CLOEXEC), 0);
  ASSERT_EQ(::pipe2(b, O_CLOEXEC), 0);
  // In order, then with the write end passed first.
  for (bool swapped : {false, true}) {
    ChildSpec spec;
    spec.program = "/bin/sh";
    spec.argv = {"sh", "-c",
                 swapped ? "read x <&4; echo \"$x-back\" >&3" : "read x <&3; echo \"$x-back\" >&4"};
    spec.pass_fds = swapped ? std::vector<int>{b[1], a[0]} : std::vector<int>{a[0], b[1]};
    ASSERT_EQ(::write(a[1], "ping\n", 5), 5);
    Child child = spawn_child(spec);
    std::string got;
    char buf[64];
    pollfd p{b[0], POLLIN, 0};
    if (::poll(&p, 1, 5000) > 0) {
      ssize_t n = ::read(b[0], buf, sizeof buf);
      if (n > 0) got.assign(buf, static_cast<size_t>(n));
    }
    int status = 0;
    ASSERT_EQ(::waitpid(child.pid, &status, 0), child.pid);
    close_pipes(child);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
    EXPECT_EQ(got, "ping-back\n") << (swapped ? "swapped" : "in order");
  }
  for (int fd : {a[0], a[1], b[0], b[1]}) ::close(fd);
}

TEST(SpawnChild, AMissingProgramExits127) {
  ChildSpec spec;
  spec.program = "/nonexistent/program";
  spec.argv = {"x"};
  Child child = spawn_child(spec);
  int status = 0;
  ASSERT_EQ(::waitpid(child.pid, &status, 0), child.pid);
  close_pipes(child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 127);
}

}  // namespace
}  // namespace hwledger::supervisor
