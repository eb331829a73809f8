#pragma once
// The built-in Dockerfile frontend (`dockerfile.v0`) inside a solve: reads the Dockerfile and
// .dockerignore from the client's local sources through the session, checks the `# syntax=`
// directive (docker/dockerfile is built in, so air-gapped builds work; other frontends are an
// error), converts with ::kiln::dockerfile (base image configs through the build's registry
// client), and solves the result. Thread-safe (no state between calls).

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "base/context.h"
#include "daemon/ops/worker.h"
#include "daemon/solver/solver.h"
#include "proto/pb/ops.pb.h"

namespace kiln::frontend {

inline constexpr char kDockerfileFrontend[] = "dockerfile.v0";

struct FrontendRequest {
  std::map<std::string, std::string> attrs;      // SolveRequest.FrontendAttrs (opt)
  std::map<std::string, pb::Definition> inputs;  // SolveRequest.FrontendInputs
  std::string session_id;
};

struct FrontendResult {
  solver::ResultPtr result;                     // the target stage's root (null: scratch)
  std::map<std::string, std::string> metadata;  // "containerimage.config", ...
  std::vector<std::string> warnings;            // one line each, "Dockerfile:3: ..."
};

// A log sink for the frontend's own messages (e.g. "using the built-in frontend for ...").
struct FrontendDeps {
  solver::Solver* solver = nullptr;
  solver::ProgressSink* progress = nullptr;
  const ops::Worker* worker = nullptr;  // the build's worker (session, registry client)
};

[[nodiscard]] absl::StatusOr<FrontendResult> SolveDockerfile(const Context& ctx,
                                                             const FrontendDeps& deps,
                                                             const FrontendRequest& request);

}  // namespace kiln::frontend
