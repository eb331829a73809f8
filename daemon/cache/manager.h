#pragma once
// Manager: the build cache's bookkeeping over a state root: records in kiln.db, their data
// under snapshots/<id>, disk usage and pruning (BuildKit's `du` and `prune` semantics).
// Thread-safe: the store serializes its own access; prune runs are serialized by a mutex.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "daemon/cache/metadata.h"
#include "daemon/snapshot/snapshotter.h"

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
  // Mounts layer stacks; null picks overlayfs when it works under `root`, else native.
  std::shared_ptr<snapshot::Snapshotter> snapshotter;
  // Stacks deeper than this are flattened into one layer when built upon.
  size_t max_stack_depth = 40;
};

class Manager;

// A committed, read-only cache record held in use: prune leaves it alone while any ref to it
// lives. Move-only; Clone() for another holder. Not thread-safe (one owner at a time); the
// Manager it came from must outlive it.
class ImmutableRef {
 public:
  ImmutableRef(ImmutableRef&& other) noexcept;
  ImmutableRef& operator=(ImmutableRef&& other) noexcept;
  ImmutableRef(const ImmutableRef&) = delete;
  ImmutableRef& operator=(const ImmutableRef&) = delete;
  ~ImmutableRef();

  const std::string& id() const { return id_; }
  // Record ids of the layers, bottom to top, ending with this record's own layer.
  const std::vector<std::string>& stack() const { return stack_; }
  std::vector<std::filesystem::path> LayerPaths() const;
  ImmutableRef Clone() const;

  // A read-only view of the tree under a fresh directory in the state root's tmp/.
  [[nodiscard]] absl::StatusOr<snapshot::MountPtr> Mount() const;

 private:
  friend class Manager;
  friend class MutableRef;
  ImmutableRef(Manager* manager, std::string id, std::vector<std::string> stack);
  Manager* manager_ = nullptr;
  std::string id_;
  std::vector<std::string> stack_;
};

// A new layer being written through a writable mount at root(). Commit() turns it into a
// record; destroying it uncommitted discards the layer. Move-only, one owner.
class MutableRef {
 public:
  // An empty handle (holds nothing; destroying it does nothing).
  MutableRef() = default;
  MutableRef(MutableRef&& other) noexcept;
  MutableRef& operator=(MutableRef&& other) noexcept;
  MutableRef(const MutableRef&) = delete;
  MutableRef& operator=(const MutableRef&) = delete;
  ~MutableRef();

  const std::filesystem::path& root() const { return mount_->root(); }
  // Unmounts, syncs the layer to disk and records it; only then is it visible to others.
  [[nodiscard]] absl::StatusOr<ImmutableRef> Commit(const std::string& description);

 private:
  friend class Manager;
  void Discard();
  Manager* manager_ = nullptr;  // null once moved from
  std::string id_;
  std::string record_type_;
  std::vector<std::string> parents_;
  snapshot::MountPtr mount_;
  std::filesystem::path scratch_;  // mountpoint and work dirs, removed after commit
  bool committed_ = false;
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

  // A new writable layer on top of `parent` (or on nothing), mounted and ready to write.
  [[nodiscard]] absl::StatusOr<MutableRef> New(const ImmutableRef* parent,
                                               const std::string& record_type = kTypeRegular);
  // The committed record `id`, now in use.
  [[nodiscard]] absl::StatusOr<ImmutableRef> Get(const std::string& id);
  // A record whose tree is its inputs' layers stacked in order (a layer present in several
  // inputs is kept at its first position).
  [[nodiscard]] absl::StatusOr<ImmutableRef> Merge(const std::vector<const ImmutableRef*>& inputs,
                                                   const std::string& description);

  // A record holding what changes `lower` (null = empty) into `upper`. When `lower`'s layers
  // are the bottom of `upper`'s stack this only references the layers above; otherwise the
  // trees are compared and the differences written as a new layer.
  [[nodiscard]] absl::StatusOr<ImmutableRef> Diff(const ImmutableRef* lower,
                                                  const ImmutableRef& upper,
                                                  const std::string& description);

  // A record whose layer `fill` writes directly, in overlay upperdir form (whiteouts as 0:0
  // character devices, opaque directories marked), on top of `parent` (null = nothing): for
  // image layers unpacked from tarballs and computed diffs, which must not pass through an
  // overlay mount. The layer reaches the disk before the record is committed; on failure
  // nothing is left.
  using LayerFillFn = std::function<absl::Status(const std::filesystem::path& layer_dir)>;
  // `created_at_ns` (when nonzero) is the record's creation time, e.g. a layer imported from a
  // remote cache keeps the time it was first made.
  [[nodiscard]] absl::StatusOr<ImmutableRef> ImportLayer(const ImmutableRef* parent,
                                                         const LayerFillFn& fill,
                                                         const std::string& record_type,
                                                         const std::string& description,
                                                         int64_t created_at_ns = 0);

  // Cache keys: `key` → one record per output.
  [[nodiscard]] absl::Status SaveCacheKey(const std::string& key,
                                          const std::vector<const ImmutableRef*>& outputs);
  // The records for `key`, in use; empty when none are recorded (or one is gone).
  [[nodiscard]] absl::StatusOr<std::vector<ImmutableRef>> LoadCacheKey(const std::string& key);

  MetadataStore& store() { return *store_; }
  const std::filesystem::path& root() const { return options_.root; }
  std::filesystem::path SnapshotDir(const std::string& id) const;
  snapshot::Snapshotter& snapshotter() { return *options_.snapshotter; }
  // A fresh directory under tmp/ for the caller to use and remove.
  [[nodiscard]] absl::StatusOr<std::filesystem::path> TempDir(const std::string& prefix);
  bool InUse(const std::string& id) const;

 private:
  friend class ImmutableRef;
  friend class MutableRef;
  Manager(ManagerOptions options, std::unique_ptr<MetadataStore> store)
      : options_(std::move(options)), store_(std::move(store)) {}
  void Acquire(const std::string& id);
  void Release(const std::string& id);
  std::string NewId();
  absl::StatusOr<std::vector<UsageInfo>> AllRecords();
  // Removes snapshot directories that have no record (left by a crash mid-write or mid-prune).
  absl::Status SweepOrphans();

  ManagerOptions options_;  // snapshotter filled in by Open
  const std::unique_ptr<MetadataStore> store_;
  std::mutex prune_mu_;
  mutable std::mutex refs_mu_;
  std::map<std::string, int> refs_;  // in-use counts, guarded by refs_mu_
};

}  // namespace kiln::cache
