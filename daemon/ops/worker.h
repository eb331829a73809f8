#pragma once
// The worker side of the solver: results are cache refs, the cache store is the cache
// manager's key table, and content checksums come from a tree's index (synced local
// contexts) or from reading the tree. Everything LLB-specific the solver must not know.

#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "base/context.h"
#include "daemon/cache/manager.h"
#include "daemon/content/store.h"
#include "daemon/executor/executor.h"
#include "daemon/ops/cache_mounts.h"
#include "daemon/registry/registry.h"
#include "daemon/session/manager.h"
#include "daemon/solver/solver.h"
#include "daemon/solver/types.h"
#include "fsutil/index.h"

namespace kiln::ops {

// A solver result holding a committed cache record (null ref = scratch, the empty tree) and,
// for synced local contexts, the content index of its tree. Immutable; thread-safe.
class RefResult final : public solver::Result {
 public:
  explicit RefResult(std::optional<cache::ImmutableRef> ref,
                     std::shared_ptr<const fsutil::ContentIndex> index = nullptr)
      : ref_(std::move(ref)), index_(std::move(index)) {}
  std::string id() const override { return ref_ ? ref_->id() : std::string(); }
  // Null for scratch.
  const cache::ImmutableRef* ref() const { return ref_ ? &*ref_ : nullptr; }
  const fsutil::ContentIndex* index() const { return index_.get(); }

 private:
  std::optional<cache::ImmutableRef> ref_;
  std::shared_ptr<const fsutil::ContentIndex> index_;
};

const RefResult& AsRef(const solver::ResultPtr& r);

// The secret ids a build's RUN steps mount (as files or environment variables), gathered as
// its definitions are loaded, for the secret leak guard. Thread-safe.
class SecretIds {
 public:
  void Add(const std::string& id) {
    std::lock_guard lock(mu_);
    ids_.insert(id);
  }
  std::set<std::string> Get() const {
    std::lock_guard lock(mu_);
    return ids_;
  }

 private:
  mutable std::mutex mu_;
  std::set<std::string> ids_;  // guarded by mu_
};

// Everything an op needs from the daemon for one build. Not owned; outlives the build.
struct Worker {
  cache::Manager* cache = nullptr;
  session::Manager* sessions = nullptr;
  std::string session_id;  // the build's session (SolveRequest.session)
  // For ExecOp: the container runner (null: RUN steps fail, naming the missing runtime) and
  // the persistent RUN --mount=type=cache directories.
  executor::Executor* executor = nullptr;
  CacheMounts* cache_mounts = nullptr;
  // For images: blobs, and the registry as this build's client may authenticate to it.
  content::Store* content = nullptr;
  std::shared_ptr<registry::Registry> registry;
  // Entitlements granted to this build: asked for in the request and allowed by the daemon.
  bool allow_insecure = false;      // security.insecure
  bool allow_network_host = false;  // network.host
  // This build's per-solve additions (cache key recorder, imported cache); every solve the
  // build makes passes them to the solver.
  solver::Solver::SolveOptions solve;
  // Where BuildVertices records the secret ids of exec ops (may be null).
  std::shared_ptr<SecretIds> secret_ids;
};

// solver::CacheStore over the cache manager's key table.
class CacheStore final : public solver::CacheStore {
 public:
  explicit CacheStore(cache::Manager& cache) : cache_(cache) {}
  absl::StatusOr<std::vector<solver::ResultPtr>> Load(const Context& ctx,
                                                      const std::string& key) override;
  absl::Status Save(const std::string& key, const std::vector<solver::ResultPtr>& results) override;
  // Aliases are named values of the cache metadata ("key-alias\n" + fast key, JSON).
  absl::StatusOr<std::optional<Alias>> LoadAlias(const Context& ctx,
                                                 const std::string& fast) override;
  absl::Status SaveAlias(const std::string& fast, const Alias& alias) override;

 private:
  cache::Manager& cache_;
};

// Checksum of the content at `selectors` (relative or absolute paths) in `result`'s tree,
// using its index when it has one and reading the tree otherwise. A selector that does not
// exist contributes a fixed marker, so the op itself reports the missing path.
[[nodiscard]] absl::StatusOr<std::string> ContentChecksum(
    const Context& ctx, cache::Manager& cache, const solver::ResultPtr& result,
    const std::vector<std::string>& selectors);

}  // namespace kiln::ops
