#pragma once
// SourceOp local://NAME: the client's directory NAME, synced through the build's session.
// The daemon keeps the latest synced copy per (shared key, name) as a cache record; a new sync
// writes a layer on top of it, so only changed files move. The cache key is the content
// checksum of what was synced (plus the filters), so an unchanged context is a pure cache hit.

#include <string>
#include <vector>

#include "daemon/ops/worker.h"
#include "daemon/session/filesync.h"
#include "daemon/solver/types.h"

namespace kiln::ops {

struct LocalSourceAttrs {
  std::string name;
  std::string session_id;       // local.session; empty = the build's session
  std::string shared_key_hint;  // local.sharedkeyhint
  std::vector<std::string> include_patterns;
  std::vector<std::string> exclude_patterns;
  std::vector<std::string> follow_paths;
};

// Parses the attrs of a local:// SourceOp (JSON arrays for the pattern lists, as BuildKit).
[[nodiscard]] absl::StatusOr<LocalSourceAttrs> ParseLocalSource(
    const std::string& identifier, const google::protobuf::Map<std::string, std::string>& attrs);

class LocalSourceOp final : public solver::Op {
 public:
  LocalSourceOp(Worker worker, LocalSourceAttrs attrs)
      : worker_(worker), attrs_(std::move(attrs)) {}
  absl::StatusOr<solver::CacheMap> GetCacheMap(const Context& ctx) override;
  absl::StatusOr<std::vector<solver::ResultPtr>> Exec(
      const Context& ctx, const std::vector<solver::ResultPtr>& inputs) override;

  // Bytes and files moved by the last sync, for progress and benchmarks.
  const fsutil::ReceiveStats& stats() const { return stats_; }

 private:
  // Makes `ref` (with its stored index) this op's result and returns the cache map.
  absl::StatusOr<solver::CacheMap> UseSynced(cache::Manager& cache, cache::ImmutableRef ref);

  Worker worker_;
  LocalSourceAttrs attrs_;
  solver::ResultPtr synced_;
  fsutil::ReceiveStats stats_;
};

}  // namespace kiln::ops
