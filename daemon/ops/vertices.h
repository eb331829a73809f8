#pragma once
// Turns a validated LLB graph into the solver's vertices, choosing the op implementation for
// each LLB op kind. The only place that maps LLB kinds to ops.

#include "daemon/ops/worker.h"
#include "daemon/solver/types.h"
#include "llb/load.h"

namespace kiln::ops {

struct BuildOptions {
  bool no_cache = false;  // ignore cached results for every vertex
};

// The vertex and output that produce the graph's result. An op kind this daemon cannot run
// is an error naming the op.
[[nodiscard]] absl::StatusOr<solver::Edge> BuildVertices(const llb::Graph& graph,
                                                         const Worker& worker,
                                                         const BuildOptions& options);

// A failed solve of `definition` with the source lines of the op that failed (the op named by
// the solver's vertex payload, looked up in Definition.source), as BuildKit reports them.
[[nodiscard]] absl::Status WithFailedOpSource(absl::Status st, const pb::Definition& definition);

}  // namespace kiln::ops
