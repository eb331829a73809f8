#include "daemon/ops/cache_mounts.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "absl/strings/str_cat.h"
#include "base/digest.h"
#include "base/ids.h"
#include "base/status.h"
#include "daemon/util/fs.h"

namespace kiln::ops {
namespace fs = std::filesystem;
namespace {

absl::StatusOr<int> OpenLock(const fs::path& path) {
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return ErrnoToStatus(errno, absl::StrCat("open ", path.string()));
  return fd;
}

// flock(op) on `fd`, polling so that a cancelled build stops waiting.
absl::Status LockWaiting(const Context& ctx, int fd, int op, const std::string& what) {
  for (;;) {
    if (flock(fd, op | LOCK_NB) == 0) return absl::OkStatus();
    if (errno != EWOULDBLOCK && errno != EINTR) return ErrnoToStatus(errno, "flock " + what);
    KILN_RETURN_IF_ERROR(ctx.Check("waiting for a cache mount"));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace

CacheMountLease::CacheMountLease(CacheMountLease&& o) noexcept
    : dir_(std::move(o.dir_)), fd_(std::exchange(o.fd_, -1)) {}

CacheMountLease& CacheMountLease::operator=(CacheMountLease&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) close(fd_);
    dir_ = std::move(o.dir_);
    fd_ = std::exchange(o.fd_, -1);
  }
  return *this;
}

CacheMountLease::~CacheMountLease() {
  if (fd_ >= 0) close(fd_);  // releases the flock
}

absl::StatusOr<CacheMountLease> CacheMounts::Acquire(const Context& ctx, const std::string& key,
                                                     CacheSharing sharing, const InitFn& init) {
  // Keys are user-chosen strings: hash them into safe directory names.
  std::string hex = Sha256Digest(key).substr(7);
  fs::path base = root_ / hex;
  KILN_RETURN_IF_ERROR(util::EnsureDir(base, 0700));
  int instance = 0;
  int fd = -1;
  if (sharing == CacheSharing::kPrivate) {
    for (;; ++instance) {
      KILN_ASSIGN_OR_RETURN(fd, OpenLock(base / absl::StrCat(instance, ".lock")));
      if (flock(fd, LOCK_EX | LOCK_NB) == 0) break;
      close(fd);
      if (instance > 1000) return absl::ResourceExhaustedError("too many private cache mounts");
    }
  } else {
    KILN_ASSIGN_OR_RETURN(fd, OpenLock(base / "0.lock"));
    absl::Status st = LockWaiting(ctx, fd, sharing == CacheSharing::kLocked ? LOCK_EX : LOCK_SH,
                                  absl::StrCat("\"", key, "\""));
    if (!st.ok()) {
      close(fd);
      return st;
    }
  }
  CacheMountLease lease(base / absl::StrCat(instance), fd);
  std::error_code ec;
  if (fs::exists(lease.dir(), ec)) return lease;

  // A new instance: one initializer at a time (shared users may arrive together).
  KILN_ASSIGN_OR_RETURN(int init_fd, OpenLock(base / absl::StrCat(instance, ".init")));
  CacheMountLease init_lock(fs::path(), init_fd);
  KILN_RETURN_IF_ERROR(LockWaiting(ctx, init_fd, LOCK_EX, "initialization"));
  if (fs::exists(lease.dir(), ec)) return lease;
  fs::path scratch = base / absl::StrCat(instance, ".new-", NewRandomId());
  if (mkdir(scratch.c_str(), 0755) != 0) {
    return ErrnoToStatus(errno, absl::StrCat("mkdir ", scratch.string()));
  }
  chmod(scratch.c_str(), 0755);  // exact, whatever the umask
  absl::Status st = init ? init(scratch) : absl::OkStatus();
  if (st.ok() && rename(scratch.c_str(), lease.dir().c_str()) != 0) {
    st = ErrnoToStatus(errno, absl::StrCat("rename ", scratch.string()));
  }
  if (!st.ok()) {
    fs::remove_all(scratch, ec);
    return Annotate(st, absl::StrCat("initialize cache mount \"", key, "\""));
  }
  return lease;
}

}  // namespace kiln::ops
