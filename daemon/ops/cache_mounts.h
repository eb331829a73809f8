#pragma once
// Persistent directories for RUN --mount=type=cache, kept under <state root>/cache-mounts and
// shared across builds. A cache is named by a key (its id, plus the base it starts from);
// each key has one or more instances (directories), each guarded by a lock file:
//   shared   every user gets instance 0 at once (a shared flock);
//   locked   users of instance 0 take turns (an exclusive flock, waited for);
//   private  a user takes the first instance nobody holds, creating a new one if all are busy.
// A new instance is filled by the caller's init function in a scratch directory first and
// renamed into place, so a half-initialized cache is never seen. Thread-safe; the locks also
// hold between processes.

#include <filesystem>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "base/context.h"

namespace kiln::ops {

enum class CacheSharing { kShared, kPrivate, kLocked };

// One held cache instance. Releases its lock when destroyed. Move-only.
class CacheMountLease {
 public:
  CacheMountLease() = default;
  CacheMountLease(std::filesystem::path dir, int lock_fd) : dir_(std::move(dir)), fd_(lock_fd) {}
  CacheMountLease(CacheMountLease&& o) noexcept;
  CacheMountLease& operator=(CacheMountLease&& o) noexcept;
  CacheMountLease(const CacheMountLease&) = delete;
  CacheMountLease& operator=(const CacheMountLease&) = delete;
  ~CacheMountLease();

  const std::filesystem::path& dir() const { return dir_; }

 private:
  std::filesystem::path dir_;
  int fd_ = -1;
};

class CacheMounts {
 public:
  explicit CacheMounts(std::filesystem::path root) : root_(std::move(root)) {}

  using InitFn = std::function<absl::Status(const std::filesystem::path& empty_dir)>;
  // Takes an instance of cache `key` with `sharing`, waiting (while `ctx` lives) when the mode
  // requires it. `init` fills a new instance (may be null: it starts empty, mode 0755).
  [[nodiscard]] absl::StatusOr<CacheMountLease> Acquire(const Context& ctx, const std::string& key,
                                                        CacheSharing sharing, const InitFn& init);

 private:
  std::filesystem::path root_;
};

}  // namespace kiln::ops
