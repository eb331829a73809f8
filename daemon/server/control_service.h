#pragma once
// ControlService: kilnd's implementation of moby.buildkit.v1.Control (callback API). Reactors
// return at once; blocking work (walking the state root, pruning) runs on `pool`.
// Thread-safe: gRPC calls it from many threads; it holds no mutable state of its own.

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <condition_variable>
#include <mutex>

#include "boost/asio/thread_pool.hpp"
#include "daemon/cache/manager.h"
#include "daemon/server/gateway.h"
#include "daemon/server/progress.h"
#include "daemon/server/worker_info.h"
#include "daemon/session/manager.h"
#include "daemon/solver/solver.h"
#include "proto/google/rpc/status.pb.h"
#include "proto/moby/buildkit/v1/control.grpc.pb.h"

namespace kiln::server {

// Converts a Status into the grpc::Status sent to clients (same code, same message), with
// BuildKit's typed details (errdefs.Source, errdefs.Vertex) for the payloads that carry them.
grpc::Status ToGrpcStatus(const absl::Status& status);

// The reverse for a google.rpc.Status a client sends (a gateway frontend's Return error): code,
// message, and the errdefs.Source and errdefs.Vertex details as payloads, so that they reach
// the Solve caller.
absl::Status FromRpcStatus(const google::rpc::Status& status);

class ControlService final : public moby::buildkit::v1::Control::CallbackService {
 public:
  struct Options {
    const WorkerBase* base = nullptr;          // not owned; outlives the service
    boost::asio::thread_pool* pool = nullptr;  // not owned; outlives the service
    ProgressRegistry* progress = nullptr;      // not owned; outlives the service
    solver::Solver* solver = nullptr;          // not owned; outlives the service
    GatewayService* gateway = nullptr;         // not owned; outlives the service
    WorkerInfo worker;
  };
  explicit ControlService(Options options) : options_(std::move(options)) {}

  grpc::ServerUnaryReactor* DiskUsage(grpc::CallbackServerContext* ctx,
                                      const moby::buildkit::v1::DiskUsageRequest* request,
                                      moby::buildkit::v1::DiskUsageResponse* response) override;
  grpc::ServerWriteReactor<moby::buildkit::v1::UsageRecord>* Prune(
      grpc::CallbackServerContext* ctx, const moby::buildkit::v1::PruneRequest* request) override;
  grpc::ServerUnaryReactor* Solve(grpc::CallbackServerContext* ctx,
                                  const moby::buildkit::v1::SolveRequest* request,
                                  moby::buildkit::v1::SolveResponse* response) override;
  grpc::ServerWriteReactor<moby::buildkit::v1::StatusResponse>* Status(
      grpc::CallbackServerContext* ctx, const moby::buildkit::v1::StatusRequest* request) override;
  grpc::ServerBidiReactor<moby::buildkit::v1::BytesMessage, moby::buildkit::v1::BytesMessage>*
  Session(grpc::CallbackServerContext* ctx) override;
  grpc::ServerUnaryReactor* ListWorkers(grpc::CallbackServerContext* ctx,
                                        const moby::buildkit::v1::ListWorkersRequest* request,
                                        moby::buildkit::v1::ListWorkersResponse* response) override;
  grpc::ServerUnaryReactor* Info(grpc::CallbackServerContext* ctx,
                                 const moby::buildkit::v1::InfoRequest* request,
                                 moby::buildkit::v1::InfoResponse* response) override;
  grpc::ServerWriteReactor<moby::buildkit::v1::BuildHistoryEvent>* ListenBuildHistory(
      grpc::CallbackServerContext* ctx,
      const moby::buildkit::v1::BuildHistoryRequest* request) override;
  grpc::ServerUnaryReactor* UpdateBuildHistory(
      grpc::CallbackServerContext* ctx,
      const moby::buildkit::v1::UpdateBuildHistoryRequest* request,
      moby::buildkit::v1::UpdateBuildHistoryResponse* response) override;

  // Waits until no build is running (at most `timeout`); true when idle.
  bool WaitIdle(std::chrono::milliseconds timeout);

 private:
  friend class SolveReactor;
  const Options options_;
  std::mutex builds_mu_;
  std::condition_variable builds_cv_;
  int running_builds_ = 0;  // guarded by builds_mu_
};

// Answers every method no registered service handles with UNIMPLEMENTED, naming the method
// (e.g. the LLBBridge gateway until the solver lands). Thread-safe; stateless.
class UnimplementedService final : public grpc::CallbackGenericService {
 public:
  grpc::ServerGenericBidiReactor* CreateReactor(grpc::GenericCallbackServerContext* ctx) override;
};

// The version kilnd reports in Info and ListWorkers. `version` is BuildKit-compatible
// semver ("v0.24.0+kiln.X.Y.Z") so that clients gating features on it treat kilnd as the
// BuildKit API level it implements.
moby::buildkit::v1::types::BuildkitVersion KilnBuildkitVersion();

}  // namespace kiln::server
