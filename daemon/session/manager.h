#pragma once
// Manager: the sessions clients have open. Accept() turns a Control.Session call into a
// Session (a gRPC channel tunneled through the call's byte stream); Get() finds one by id,
// waiting briefly because clients open the session and start the solve concurrently. A
// background thread health-checks every open session and closes those that fail twice in a
// row, like buildkitd. Thread-safe.

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "base/context.h"
#include "daemon/session/session.h"
#include "proto/moby/buildkit/v1/control.pb.h"

namespace kiln::session {

// Metadata keys of the Session call, as BuildKit's client sends them (lowercased by gRPC).
inline constexpr char kHeaderUuid[] = "x-docker-expose-session-uuid";
inline constexpr char kHeaderName[] = "x-docker-expose-session-name";
inline constexpr char kHeaderSharedKey[] = "x-docker-expose-session-sharedkey";
inline constexpr char kHeaderMethod[] = "x-docker-expose-session-grpc-method";
inline constexpr char kHealthCheckMethod[] = "/grpc.health.v1.Health/Check";

class Manager {
 public:
  struct Options {
    std::chrono::milliseconds health_interval{5000};
    std::chrono::milliseconds health_timeout{30000};
  };
  explicit Manager(Options options);
  ~Manager();  // Shutdown()
  // Closes every session and stops health checks; Get() fails afterwards. Idempotent.
  void Shutdown();
  Manager(const Manager&) = delete;
  Manager& operator=(const Manager&) = delete;

  using Reactor =
      grpc::ServerBidiReactor<moby::buildkit::v1::BytesMessage, moby::buildkit::v1::BytesMessage>;
  // Serves one Control.Session call; the session lives as long as the call.
  Reactor* Accept(grpc::CallbackServerContext* ctx);

  // The open session `id`, waiting up to `wait` for it to connect.
  [[nodiscard]] absl::StatusOr<std::shared_ptr<Session>> Get(const Context& ctx,
                                                             const std::string& id,
                                                             std::chrono::milliseconds wait);

  size_t open_sessions() const;

 private:
  friend class Tunnel;
  void Add(std::shared_ptr<Session> s);
  void Remove(const std::string& id, const Session* s);
  void HealthLoop();

  const Options options_;
  mutable std::mutex mu_;
  std::condition_variable changed_;
  std::map<std::string, std::shared_ptr<Session>> sessions_;  // guarded by mu_
  bool stopping_ = false;                                     // guarded by mu_
  std::thread health_;
};

}  // namespace kiln::session
