#pragma once
// The frontend gateway (moby.buildkit.v1.frontend.LLBBridge) on the daemon connection. Current
// buildctl and buildx send Control.Solve without a definition and then drive the build here,
// every call carrying the build's ref in the `buildkit-controlapi-buildid` header: Ping for
// capabilities, Solve for each definition, Return with the final result. Control.Solve waits
// for that Return and exports what it names. Thread-safe.

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "base/context.h"
#include "daemon/cache/manager.h"
#include "daemon/config/config.h"
#include "daemon/ops/worker.h"
#include "daemon/server/progress.h"
#include "daemon/server/worker_info.h"
#include "daemon/session/manager.h"
#include "daemon/solver/solver.h"
#include "proto/moby/buildkit/v1/frontend/gateway.grpc.pb.h"

namespace kiln::server {

inline constexpr char kBuildIdHeader[] = "buildkit-controlapi-buildid";

// What every build's ops get from the daemon, and the entitlements the daemon allows
// (buildkitd's --allow-insecure-entitlement).
struct WorkerBase {
  ops::Worker worker;  // cache, sessions, executor, cache mounts, content; no session id
  std::vector<std::string> allowed_entitlements;
  std::map<std::string, config::RegistryConfig> registry_hosts;  // [registry."host"] config
};

// The ops worker of one build: `base` with the build's session and the entitlements it asked
// for that the daemon allows. Asking for one the daemon does not allow is an error naming it.
[[nodiscard]] absl::StatusOr<ops::Worker> WorkerForBuild(
    const WorkerBase& base, const std::string& session_id,
    const std::vector<std::string>& requested_entitlements);

// What a build returns: its result (null = empty) and the frontend's metadata for exporters
// ("containerimage.config", ...).
struct BuildResult {
  solver::ResultPtr ref;
  std::map<std::string, std::string> metadata;
};

// One gateway-driven build: the results its frontend produced and, once returned, the final one.
class GatewayBuild {
 public:
  // What the Control.Solve behind the build passed on to its frontend.
  struct Params {
    std::string session_id;
    std::map<std::string, pb::Definition> inputs;  // SolveRequest.FrontendInputs
    bool no_cache = false;                         // frontend attr "no-cache"
    std::vector<std::string> entitlements;         // SolveRequest.Entitlements
    solver::Solver::SolveOptions solve;            // the build's recorder and imported cache
    std::shared_ptr<ops::SecretIds> secret_ids;    // the build's secret ids (leak guard)
  };
  GatewayBuild(Context ctx, Params params, std::shared_ptr<BuildProgress> progress)
      : ctx_(std::move(ctx)), params_(std::move(params)), progress_(std::move(progress)) {}

  const Context& ctx() const { return ctx_; }
  const std::string& session_id() const { return params_.session_id; }
  const Params& params() const { return params_; }
  BuildProgress& progress() { return *progress_; }

  // Keeps `result` under a new ref id and returns the id.
  std::string AddResult(solver::ResultPtr result);
  solver::ResultPtr FindResult(const std::string& id);

  // Called by Return: the final result (null = empty) or the frontend's error.
  void SetReturn(absl::StatusOr<BuildResult> result);
  // Waits for Return (or cancellation).
  [[nodiscard]] absl::StatusOr<BuildResult> WaitReturn();

 private:
  Context ctx_;
  const Params params_;
  std::shared_ptr<BuildProgress> progress_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, solver::ResultPtr> results_;     // guarded by mu_
  std::optional<absl::StatusOr<BuildResult>> returned_;  // guarded by mu_
};

class GatewayService final : public moby::buildkit::v1::frontend::LLBBridge::CallbackService {
 public:
  struct Options {
    const WorkerBase* base = nullptr;
    solver::Solver* solver = nullptr;
    WorkerInfo* worker = nullptr;  // for Ping's worker list; may be null
  };
  explicit GatewayService(Options options) : options_(options) {}

  // Registers / removes the build behind a Control.Solve.
  void Register(const std::string& ref, std::shared_ptr<GatewayBuild> build);
  void Unregister(const std::string& ref);

  using Pong = moby::buildkit::v1::frontend::PongResponse;
  grpc::ServerUnaryReactor* Ping(grpc::CallbackServerContext* ctx,
                                 const moby::buildkit::v1::frontend::PingRequest* req,
                                 Pong* resp) override;
  grpc::ServerUnaryReactor* Solve(grpc::CallbackServerContext* ctx,
                                  const moby::buildkit::v1::frontend::SolveRequest* req,
                                  moby::buildkit::v1::frontend::SolveResponse* resp) override;
  grpc::ServerUnaryReactor* Return(grpc::CallbackServerContext* ctx,
                                   const moby::buildkit::v1::frontend::ReturnRequest* req,
                                   moby::buildkit::v1::frontend::ReturnResponse* resp) override;
  grpc::ServerUnaryReactor* Inputs(grpc::CallbackServerContext* ctx,
                                   const moby::buildkit::v1::frontend::InputsRequest* req,
                                   moby::buildkit::v1::frontend::InputsResponse* resp) override;
  grpc::ServerUnaryReactor* Warn(grpc::CallbackServerContext* ctx,
                                 const moby::buildkit::v1::frontend::WarnRequest* req,
                                 moby::buildkit::v1::frontend::WarnResponse* resp) override;
  grpc::ServerUnaryReactor* ResolveImageConfig(
      grpc::CallbackServerContext* ctx,
      const moby::buildkit::v1::frontend::ResolveImageConfigRequest* req,
      moby::buildkit::v1::frontend::ResolveImageConfigResponse* resp) override;
  grpc::ServerUnaryReactor* ResolveSourceMeta(
      grpc::CallbackServerContext* ctx,
      const moby::buildkit::v1::frontend::ResolveSourceMetaRequest* req,
      moby::buildkit::v1::frontend::ResolveSourceMetaResponse* resp) override;
  grpc::ServerUnaryReactor* ReadFile(grpc::CallbackServerContext* ctx,
                                     const moby::buildkit::v1::frontend::ReadFileRequest* req,
                                     moby::buildkit::v1::frontend::ReadFileResponse* resp) override;
  grpc::ServerUnaryReactor* ReadDir(grpc::CallbackServerContext* ctx,
                                    const moby::buildkit::v1::frontend::ReadDirRequest* req,
                                    moby::buildkit::v1::frontend::ReadDirResponse* resp) override;
  grpc::ServerUnaryReactor* StatFile(grpc::CallbackServerContext* ctx,
                                     const moby::buildkit::v1::frontend::StatFileRequest* req,
                                     moby::buildkit::v1::frontend::StatFileResponse* resp) override;
  grpc::ServerUnaryReactor* Evaluate(grpc::CallbackServerContext* ctx,
                                     const moby::buildkit::v1::frontend::EvaluateRequest* req,
                                     moby::buildkit::v1::frontend::EvaluateResponse* resp) override;
  grpc::ServerUnaryReactor* NewContainer(
      grpc::CallbackServerContext* ctx,
      const moby::buildkit::v1::frontend::NewContainerRequest* req,
      moby::buildkit::v1::frontend::NewContainerResponse* resp) override;
  grpc::ServerUnaryReactor* ReleaseContainer(
      grpc::CallbackServerContext* ctx,
      const moby::buildkit::v1::frontend::ReleaseContainerRequest* req,
      moby::buildkit::v1::frontend::ReleaseContainerResponse* resp) override;

  grpc::ServerBidiReactor<moby::buildkit::v1::frontend::ExecMessage,
                          moby::buildkit::v1::frontend::ExecMessage>*
  ExecProcess(grpc::CallbackServerContext* ctx) override;

 private:
  // The build named by the call's header, waiting briefly for its Control.Solve to arrive.
  absl::StatusOr<std::shared_ptr<GatewayBuild>> BuildFor(grpc::CallbackServerContext* ctx);

  const Options options_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, std::shared_ptr<GatewayBuild>> builds_;  // guarded by mu_
};

}  // namespace kiln::server
