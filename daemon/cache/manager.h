#pragma once
// Manager: the build cache's bookkeeping over a state root: records in kiln.db, their data
// under snapshots/<id>, disk usage and pruning (BuildKit's `du` and `prune` semantics).
// Thread-safe: the store serializes its own access; prune runs are serialized by a mutex.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "daemon/cache/metadata.h"

namespace kiln::cache {

struct UsageInfo {
  Record record;
  bool in_use = false;
};

// BuildKit's PruneRequest / GC policy fields.
struct PruneOptions {
  std::vector<std::string> filters;
  bool all = false;              // also internal/frontend/shared records
  int64_t keep_duration_ns = 0;  // keep records used more recently than this
  int64_t reserved_space = 0;    // never prune the total below this
  int64_t max_used_space = 0;    // prune until the total is at most this
  int64_t min_free_space = 0;    // prune until the filesystem has this much free
};

// buildkitd's default GC policy: four rules, the first for easily reproduced data. With
// `keep_bytes` 0 the caps derive from the filesystem size, as buildkitd's do.
std::vector<PruneOptions> DefaultGcPolicy(int64_t keep_bytes, int64_t fs_total_bytes);

struct ManagerOptions {
  std::filesystem::path root;  // the state root; kiln.db and snapshots/ live inside
  // Wall clock in Unix nanoseconds; tests replace it.
  std::function<int64_t()> now_ns;
};

class Manager {
 public:
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<Manager>> Open(ManagerOptions options);

  // Records matching `filters`, with sizes measured on first use.
  [[nodiscard]] absl::StatusOr<std::vector<UsageInfo>> DiskUsage(
      const std::vector<std::string>& filters);

  // Removes unreferenced records that match `options`, least recently used first, calling
  // `on_removed` for each (after its data is gone). Children go before their parents.
  [[nodiscard]] absl::Status Prune(const PruneOptions& options,
                                   const std::function<void(const UsageInfo&)>& on_removed);

  MetadataStore& store() { return *store_; }
  const std::filesystem::path& root() const { return options_.root; }
  std::filesystem::path SnapshotDir(const std::string& id) const;

 private:
  Manager(ManagerOptions options, std::unique_ptr<MetadataStore> store)
      : options_(std::move(options)), store_(std::move(store)) {}
  absl::StatusOr<std::vector<UsageInfo>> AllRecords();
  // Removes snapshot directories that have no record (left by a crash mid-write or mid-prune).
  absl::Status SweepOrphans();

  const ManagerOptions options_;
  const std::unique_ptr<MetadataStore> store_;
  std::mutex prune_mu_;
};

}  // namespace kiln::cache
