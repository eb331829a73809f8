#pragma once
// SshAgentProxy: RUN --mount=type=ssh on the daemon side. It listens on a unix socket (bind
// mounted into the container as SSH_AUTH_SOCK) and forwards every connection to the client's
// agent through the session: one moby.sshforward.v1.SSH/ForwardAgent stream per connection,
// the agent protocol's bytes carried verbatim in BytesMessage.data. Thread-safe; Stop() and the
// destructor end every connection and join every thread the proxy started.

#include <sys/types.h>

#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/context.h"
#include "daemon/session/session.h"

namespace kiln::session {

inline constexpr char kSshCheckAgentMethod[] = "/moby.sshforward.v1.SSH/CheckAgent";
inline constexpr char kSshForwardAgentMethod[] = "/moby.sshforward.v1.SSH/ForwardAgent";
// gRPC metadata key naming the agent of a ForwardAgent stream (BuildKit's sshforward.KeySSHID).
inline constexpr char kSshIdMetadataKey[] = "buildkit.ssh.id";
inline constexpr char kDefaultSshId[] = "default";

// OK when the client forwards an SSH agent named `id` ("" means "default"); NOT_FOUND with
// `no SSH key "ID" forwarded from the client` when it does not (or serves no SSH at all);
// UNAVAILABLE when the session is closed.
[[nodiscard]] absl::Status CheckSshAgent(const Context& ctx, const Session& session,
                                         const std::string& id);

class SshAgentProxy {
 public:
  struct Options {
    std::string id = kDefaultSshId;  // the client's agent ("" means "default")
    std::string dir;                 // existing host directory that will hold the socket
    // Owner and permissions of the socket, so the container's user can connect (LLB SSHOpt
    // uid/gid/mode). -1 keeps the daemon's own uid/gid.
    int64_t uid = -1;
    int64_t gid = -1;
    mode_t mode = 0600;
  };

  // Checks that the client forwards agent `options.id`, then listens on a new socket in
  // `options.dir`. The proxy keeps `session` alive until it stops.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<SshAgentProxy>> Start(
      const Context& ctx, std::shared_ptr<Session> session, Options options);
  ~SshAgentProxy();  // Stop()
  SshAgentProxy(const SshAgentProxy&) = delete;
  SshAgentProxy& operator=(const SshAgentProxy&) = delete;

  // The listening socket, inside options.dir.
  const std::string& socket_path() const { return socket_path_; }

  // Closes the listener and every connection and stream, joins their threads and removes the
  // socket file. Idempotent.
  void Stop();

 private:
  struct Conn;
  SshAgentProxy(std::shared_ptr<Session> session, std::string id, std::string socket_path,
                int listen_fd, int wake_fd);
  void AcceptLoop();
  void Serve(Conn* conn);
  void ReapFinished();

  // Constant after construction.
  const std::shared_ptr<Session> session_;
  const std::string id_;
  const std::string socket_path_;
  const int listen_fd_;
  const int wake_fd_;     // eventfd: wakes the accept loop on Stop()
  std::thread acceptor_;  // set once by Start(), joined by Stop()

  std::mutex mu_;
  bool stopped_ = false;                    // guarded by mu_
  std::list<std::unique_ptr<Conn>> conns_;  // guarded by mu_
};

}  // namespace kiln::session
