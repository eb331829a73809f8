#pragma once
// SessionServer: the client side of a BuildKit session. Opens Control.Session on the daemon
// connection and serves gRPC services (health, file sync, secrets, ssh, auth) *inside* that
// stream, the client acting as the gRPC server. Thread-safe; Close() is idempotent.

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "proto/grpc/health/v1/health.grpc.pb.h"
#include "proto/moby/buildkit/v1/control.grpc.pb.h"

namespace kiln::client {

struct SessionOptions {
  std::string name = "kiln";  // shown in the daemon's logs
  std::string shared_key;     // groups syncs of the same context across builds
  // Services to serve, with their full names ("moby.filesync.v1.FileSync"); every method of
  // each is advertised to the daemon. Not owned; must outlive the session.
  std::vector<std::pair<grpc::Service*, std::string>> services;
};

class SessionServer {
 public:
  // Connects the session. Fails with a message naming the daemon address on errors.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<SessionServer>> Start(
      std::shared_ptr<grpc::Channel> daemon, SessionOptions options);
  ~SessionServer();

  const std::string& id() const { return id_; }
  // Ends the session stream and stops serving.
  void Close();

 private:
  SessionServer() = default;
  void PumpStreamToFd();
  void PumpFdToStream();

  std::string id_;
  std::unique_ptr<moby::buildkit::v1::Control::Stub> stub_;
  grpc::ClientContext ctx_;
  std::unique_ptr<
      grpc::ClientReaderWriter<moby::buildkit::v1::BytesMessage, moby::buildkit::v1::BytesMessage>>
      stream_;
  std::unique_ptr<grpc::Server> server_;
  int fd_ = -1;
  std::thread in_, out_;
  std::atomic<bool> closed_{false};
};

// Health service every session serves: the daemon polls it to know the client is alive.
class HealthService final : public grpc::health::v1::Health::CallbackService {
 public:
  grpc::ServerUnaryReactor* Check(grpc::CallbackServerContext* ctx,
                                  const grpc::health::v1::HealthCheckRequest* req,
                                  grpc::health::v1::HealthCheckResponse* resp) override;
};

// A random session id in BuildKit's format (25 lowercase alphanumerics).
std::string NewSessionId();

}  // namespace kiln::client
