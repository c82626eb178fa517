// The supervisor's HTTP listening socket, bound once and handed to every engine it starts.
#pragma once
#include <string>

namespace hwledger::supervisor {

// Binds and listens on host:port (a numeric address or a name; port 0 picks a free port).
// The fd is close-on-exec. Throws hwledger::InputError naming the address and the reason.
int listen_tcp(const std::string& host, int port, int backlog = 1024);
// The port a bound socket listens on.
int bound_port(int fd);
// Whether `host` is a loopback address or "localhost" (anything else is reachable from outside).
bool is_loopback(const std::string& host);

}  // namespace hwledger::supervisor
