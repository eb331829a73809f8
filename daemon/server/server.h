#pragma once
// Server: kilnd's gRPC server and its listeners (unix sockets, TCP with mTLS or, only when
// asked for explicitly, plain TCP). Owns the grpc::Server; removes its unix sockets when it
// shuts down. Thread-safe for Shutdown(); constructed and destroyed on one thread.

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "daemon/server/tls_terminator.h"

namespace kiln::server {

// 16 MiB each way, as BuildKit.
inline constexpr int kMaxMessageBytes = 16 << 20;

struct TlsFiles {
  std::string cert;  // server certificate (PEM)
  std::string key;   // its private key (PEM)
  std::string ca;    // CA that must have signed client certificates (PEM)
};

// One parsed --addr.
struct ListenAddress {
  enum class Kind { kUnix, kTcp, kFd } kind;
  std::string path;      // kUnix: socket path
  std::string hostport;  // kTcp: host:port
  std::vector<int> fds;  // kFd: listening sockets handed over (systemd socket activation)
  std::string original;
};

// Parses "unix:///path", "unix:path", "tcp://host:port", and "fd://" (every socket systemd
// passed: LISTEN_FDS from fd 3, when LISTEN_PID is this process) or "fd://N" (that one, which
// must be a listening socket); INVALID_ARGUMENT names the address.
[[nodiscard]] absl::StatusOr<ListenAddress> ParseListenAddress(const std::string& address);

struct ServerOptions {
  std::vector<std::string> addresses;
  TlsFiles tls;
  bool insecure_tcp = false;
  std::vector<grpc::Service*> services;              // not owned; outlive the server
  grpc::CallbackGenericService* fallback = nullptr;  // not owned; answers unknown methods
};

class Server {
 public:
  // Binds every address and starts serving. Fails, naming the address, when one cannot be
  // bound or its security settings are incomplete.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<Server>> Start(ServerOptions options);
  ~Server();

  // Stops accepting calls, cancels the rest after `grace_ms`, removes the unix sockets.
  void Shutdown(int grace_ms);

  // Addresses actually listened on (TCP port 0 resolved), in --addr order.
  const std::vector<std::string>& listening() const { return listening_; }

 private:
  Server() = default;
  // Accepts connections on a listening socket and gives each to the gRPC server (through
  // `tls_` when `tls`) until `wake_fd_` is signalled.
  void AcceptLoop(int listen_fd, bool tls);

  std::unique_ptr<grpc::Server> server_;
  std::vector<std::string> socket_paths_;
  std::vector<std::string> listening_;
  std::vector<int> fd_listeners_;       // owned; closed by Shutdown
  std::vector<int> tls_listeners_;      // TCP with TLS; owned; closed by Shutdown
  std::unique_ptr<TlsTerminator> tls_;  // for tls_listeners_
  int wake_fd_ = -1;                    // eventfd ending the accept loops
  std::vector<std::thread> acceptors_;  // joined by Shutdown
  bool shut_down_ = false;
};

}  // namespace kiln::server
