// Small socket helpers the HTTP layer needs beyond cpp-httplib: finding a request's connection
// (to notice a client that went away while a non-streaming request generates) and closing idle
// keep-alive connections on shutdown.
#pragma once
#include <string>

namespace hwledger::server {

// The fd of this process's TCP connection local_port <-> remote_addr:remote_port; -1 if none.
int find_connection_socket(int local_port, const std::string& remote_addr, int remote_port);
// True when the peer of a connected socket has closed or reset it (pending request bytes do not
// count as closed).
bool peer_closed(int fd);
// Shuts down (both directions) every connected TCP socket of this process whose local port is
// `local_port`; returns how many.
int shutdown_connections(int local_port);
// A TCP socket bound to host:port (port 0: a free one) and listening with a long backlog,
// close-on-exec. Throws InputError naming the address and the reason.
int listen_socket(const std::string& host, int port);
// The local port a socket is bound to; -1 on error.
int socket_local_port(int fd);

}  // namespace hwledger::server
