#pragma once
// Session: one client's tunneled connection. The client runs a gRPC server inside its
// Control.Session stream; the daemon calls the services it advertises (FileSync, Secrets, SSH,
// Auth, Health) through channel(). Thread-safe.

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"

namespace kiln::session {

class Session {
 public:
  Session(std::string id, std::string name, std::string shared_key,
          std::vector<std::string> methods, std::shared_ptr<grpc::Channel> channel);

  const std::string& id() const { return id_; }
  const std::string& name() const { return name_; }
  const std::string& shared_key() const { return shared_key_; }
  std::shared_ptr<grpc::Channel> channel() const { return channel_; }

  // True when the client advertised `method` ("/pkg.Service/Method"; case-insensitive, as
  // BuildKit compares them).
  bool Supports(std::string_view method) const;
  // OK when the session is open and serves `method`; otherwise an error a user can act on.
  [[nodiscard]] absl::Status CheckMethod(std::string_view method) const;

  bool closed() const;
  std::string close_reason() const;
  // Closes the session once, runs the close callbacks; later calls do nothing.
  void Close(const std::string& reason);
  // Runs `fn` when the session closes (at once if it already has). `fn` must not block.
  void OnClose(std::function<void()> fn);

 private:
  const std::string id_;
  const std::string name_;
  const std::string shared_key_;
  const std::set<std::string> methods_;  // lowercased
  const std::shared_ptr<grpc::Channel> channel_;

  mutable std::mutex mu_;
  bool closed_ = false;                          // guarded by mu_
  std::string close_reason_;                     // guarded by mu_
  std::vector<std::function<void()>> on_close_;  // guarded by mu_
};

}  // namespace kiln::session
