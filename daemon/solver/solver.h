#pragma once
// Solver: turns a build graph into results through the cache. For each vertex it computes a
// cache key bottom-up (the op's cache map, its inputs' keys, and content checksums where the
// op asks for them), loads a cached result when one is recorded, and otherwise runs the op —
// at most once per cache key across all concurrent solves. Only what the target needs is
// run: ancestors of a cached vertex are keyed but not executed. Scheduling never blocks a pool
// thread. Thread-safe; one Solver serves every job of the daemon.

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "base/context.h"
#include "daemon/solver/flight_group.h"
#include "daemon/solver/types.h"

namespace kiln::solver {

// Status payload naming the vertex (its digest) that caused a failure.
inline constexpr char kVertexPayload[] = "kiln.dev/vertex";

class Solver {
 public:
  struct Options {
    std::function<void(std::function<void()>)> post;  // runs work on the pool
    CacheStore* cache = nullptr;                      // not owned
    // Called just before an op runs (not when its result comes from the cache or is shared
    // with another job's run): for logs and metrics.
    std::function<void(const Vertex&, const std::string& key)> on_exec;
  };
  explicit Solver(Options options) : options_(std::move(options)) {}

  // Per-solve additions; may be null. Shared: work of a failed solve may still be running
  // when Solve returns, and keeps them alive.
  struct SolveOptions {
    std::shared_ptr<KeyRecorder> recorder;  // learns every key and result of the solve
    // Asked when the daemon's cache has no result for a key (e.g. an imported remote cache);
    // what it returns is used as a cache hit.
    std::shared_ptr<CacheStore> fallback;
  };

  // Solves `target` and returns its result. Blocks the calling thread, which must not be a
  // pool thread. `progress` may be null.
  [[nodiscard]] absl::StatusOr<ResultPtr> Solve(const Context& ctx, const Edge& target,
                                                ProgressSink* progress,
                                                const SolveOptions& options);
  [[nodiscard]] absl::StatusOr<ResultPtr> Solve(const Context& ctx, const Edge& target,
                                                ProgressSink* progress) {
    return Solve(ctx, target, progress, SolveOptions{});
  }

  // The cache key of `target` (computing its ancestors' keys, never running non-source ops).
  [[nodiscard]] absl::StatusOr<std::string> CacheKey(const Context& ctx, const Edge& target);

  // Number of executions in flight (for tests and metrics).
  size_t executions_in_flight() const { return flights_.in_flight(); }

 private:
  class Job;
  const Options options_;
  FlightGroup<std::vector<ResultPtr>> flights_;
};

}  // namespace kiln::solver
