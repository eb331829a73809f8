#pragma once
// SessionPair: a real BuildKit session inside one test process. A gRPC server on a unix socket
// in `dir` hands Control.Session calls to a daemon-side session::Manager; a
// client::SessionServer connects to it and serves Health plus the given services; session()
// is the daemon's view of it. Everything goes through the real tunnel (h2c in the byte
// stream). Header-only; link kiln::session and kiln::client. Not thread-safe itself.

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "client/session.h"
#include "daemon/session/manager.h"
#include "proto/moby/buildkit/v1/control.grpc.pb.h"

namespace kiln::testing {

class SessionPair {
 public:
  // `services`: (service, full name such as "moby.buildkit.secrets.v1.Secrets"); not owned,
  // they must outlive the pair.
  static absl::StatusOr<std::unique_ptr<SessionPair>> Start(
      const std::string& dir, std::vector<std::pair<grpc::Service*, std::string>> services) {
    std::unique_ptr<SessionPair> p(new SessionPair());
    p->manager_ = std::make_unique<session::Manager>(session::Manager::Options{});
    p->control_ = std::make_unique<ControlSessionOnly>(p->manager_.get());
    const std::string address = absl::StrCat("unix:", dir, "/kilnd.sock");
    grpc::ServerBuilder builder;
    builder.AddListeningPort(address, grpc::InsecureServerCredentials());
    builder.RegisterService(p->control_.get());
    p->server_ = builder.BuildAndStart();
    if (!p->server_) return absl::InternalError(absl::StrCat("cannot listen on ", address));

    client::SessionOptions opts{.name = "test", .shared_key = "test"};
    opts.services.push_back({&p->health_, "grpc.health.v1.Health"});
    for (auto& s : services) opts.services.push_back(std::move(s));
    auto client = client::SessionServer::Start(
        grpc::CreateChannel(address, grpc::InsecureChannelCredentials()), std::move(opts));
    if (!client.ok()) return client.status();
    p->client_ = std::move(*client);
    auto s = p->manager_->Get(Context(), p->client_->id(), std::chrono::seconds(10));
    if (!s.ok()) return s.status();
    p->session_ = std::move(*s);
    return p;
  }

  ~SessionPair() {
    session_.reset();
    if (client_) client_->Close();
    manager_->Shutdown();
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
    server_->Wait();
  }

  const std::shared_ptr<session::Session>& session() const { return session_; }
  // The daemon's session manager, for code that looks the session up by id (ops::Worker).
  session::Manager& manager() const { return *manager_; }
  // Ends the client's side of the session (as when `kiln build` exits).
  void CloseClient() { client_->Close(); }

 private:
  // Control with only Session implemented: the piece of kilnd's ControlService sessions need.
  class ControlSessionOnly final : public moby::buildkit::v1::Control::CallbackService {
   public:
    explicit ControlSessionOnly(session::Manager* manager) : manager_(manager) {}
    grpc::ServerBidiReactor<moby::buildkit::v1::BytesMessage, moby::buildkit::v1::BytesMessage>*
    Session(grpc::CallbackServerContext* ctx) override {
      return manager_->Accept(ctx);
    }

   private:
    session::Manager* manager_;
  };

  SessionPair() = default;

  client::HealthService health_;
  std::unique_ptr<session::Manager> manager_;
  std::unique_ptr<ControlSessionOnly> control_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<client::SessionServer> client_;
  std::shared_ptr<session::Session> session_;
};

}  // namespace kiln::testing
