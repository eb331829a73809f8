#pragma once
// The client side of RUN --mount=type=ssh: parsing --ssh flags the way buildctl and buildx do,
// and SSHService, which forwards the daemon's ForwardAgent streams to a local ssh-agent. Key
// files are loaded into a private `ssh-agent -D` child that lives as long as the service.
// Unless a spec says raw=true, the forwarded agent is read-only, as BuildKit's: only listing
// identities and signing reach the agent; adding, removing, locking and extensions are refused
// with SSH_AGENT_FAILURE. Thread-safe.

#include <grpcpp/grpcpp.h>
#include <sys/types.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "proto/moby/sshforward/v1/ssh.grpc.pb.h"

namespace kiln::client {

// gRPC metadata key naming the agent of a ForwardAgent stream (BuildKit's sshforward.KeySSHID).
inline constexpr char kSshIdMetadataKey[] = "buildkit.ssh.id";
inline constexpr char kDefaultSshId[] = "default";

// One --ssh value: ID[=PATH[,PATH…]].
struct SshSpec {
  std::string id = kDefaultSshId;
  // One agent socket, or private key files. Empty: $SSH_AUTH_SOCK.
  std::vector<std::string> paths;
  bool raw = false;  // buildctl's raw=true: forward the socket's bytes without the filter

  bool operator==(const SshSpec&) const = default;
};

// Parses --ssh values (empty ones are skipped): `default`, `ID=PATH[,PATH…]`, and buildctl's
// `raw=true|false` among the paths. An empty ID is "default". Errors quote the offending flag;
// an ID given twice is an error.
[[nodiscard]] absl::StatusOr<std::vector<SshSpec>> ParseSshSpecs(
    const std::vector<std::string>& specs);

class PrivateSshAgent;

class SSHService final : public moby::sshforward::v1::SSH::CallbackService {
 public:
  // Resolves every spec: a path that is a unix socket is an agent to forward; regular files
  // are private keys, added with ssh-add to a private ssh-agent started for that spec
  // (passphrase-protected keys are refused: there is no prompt). Errors name the flag.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<SSHService>> Create(
      const std::vector<SshSpec>& specs);
  // Shutdown(). The session serving this service must be closed first.
  ~SSHService() override;

  // Kills (SIGTERM, then SIGKILL) and reaps the private ssh-agents and removes their
  // sockets. Idempotent.
  void Shutdown();

  // The agent socket forwarded for `id`, or "" (for diagnostics and tests).
  std::string agent_socket(const std::string& id) const;
  // Process ids of the private ssh-agents still running.
  std::vector<pid_t> private_agent_pids() const;

  grpc::ServerUnaryReactor* CheckAgent(grpc::CallbackServerContext* ctx,
                                       const moby::sshforward::v1::CheckAgentRequest* req,
                                       moby::sshforward::v1::CheckAgentResponse* resp) override;
  grpc::ServerBidiReactor<moby::sshforward::v1::BytesMessage, moby::sshforward::v1::BytesMessage>*
  ForwardAgent(grpc::CallbackServerContext* ctx) override;

 private:
  struct Agent {
    std::string socket;
    bool raw = false;
  };
  SSHService() = default;

  std::map<std::string, Agent> agents_;  // by id; constant after Create
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<PrivateSshAgent>> private_;  // guarded by mu_
};

}  // namespace kiln::client
