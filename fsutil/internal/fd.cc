#include "fsutil/internal/fd.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/status.h"

namespace kiln::fsutil::internal {
namespace {

std::atomic<bool> g_no_openat2{false};

int OpenBeneathByComponents(int dirfd, std::string_view rel, int flags, mode_t mode, int* err) {
  if (!rel.empty() && rel[0] == '/') {
    *err = EXDEV;
    return -1;
  }
  UniqueFd cur;
  int at = dirfd;
  while (true) {
    const size_t slash = rel.find('/');
    const std::string comp(rel.substr(0, slash));
    if (comp == "..") {
      *err = EXDEV;
      return -1;
    }
    if (slash == std::string_view::npos) {
      const int fd =
          openat(at, comp.empty() ? "." : comp.c_str(), flags | O_NOFOLLOW | O_CLOEXEC, mode);
      if (fd < 0) *err = errno;
      return fd;
    }
    rel.remove_prefix(slash + 1);
    if (comp.empty() || comp == ".") continue;
    const int fd = openat(at, comp.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
      *err = errno;
      return -1;
    }
    cur = UniqueFd(fd);
    at = fd;
  }
}

}  // namespace

void UseOpenBeneathFallbackForTesting(bool fallback) {
  g_no_openat2.store(fallback, std::memory_order_relaxed);
}

absl::StatusOr<UniqueFd> OpenDirectory(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoToStatus(errno, absl::StrCat("open ", path));
  return UniqueFd(fd);
}

int OpenBeneathRaw(int dirfd, std::string_view rel, int flags, mode_t mode, int* err) {
  if (rel.empty() || rel == ".") {
    const int fd = openat(dirfd, ".", flags | O_CLOEXEC, mode);
    if (fd < 0) *err = errno;
    return fd;
  }
  if (!g_no_openat2.load(std::memory_order_relaxed)) {
    const std::string path(rel);
    open_how how{};
    how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
    if ((flags & O_CREAT) != 0 || (flags & O_TMPFILE) == O_TMPFILE) how.mode = mode;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS;
    long fd;
    do {
      fd = syscall(SYS_openat2, dirfd, path.c_str(), &how, sizeof(how));
    } while (fd < 0 && (errno == EINTR || errno == EAGAIN));
    if (fd >= 0) return static_cast<int>(fd);
    if (errno != ENOSYS) {
      *err = errno;
      return -1;
    }
    g_no_openat2.store(true, std::memory_order_relaxed);
  }
  return OpenBeneathByComponents(dirfd, rel, flags, mode, err);
}

absl::StatusOr<UniqueFd> OpenBeneath(int dirfd, std::string_view rel, int flags, mode_t mode) {
  int err = 0;
  const int fd = OpenBeneathRaw(dirfd, rel, flags, mode, &err);
  if (fd >= 0) return UniqueFd(fd);
  if (err == ELOOP || err == EXDEV) {
    return absl::FailedPreconditionError(
        absl::StrFormat("open %s: path crosses a symlink or leaves its root", AV(rel)));
  }
  return ErrnoToStatus(err, absl::StrCat("open ", AV(rel)));
}

int ReadDirSortedRaw(int dirfd, std::vector<DirName>* out) {
  out->clear();
  const int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errno;
  DIR* dir = fdopendir(fd);
  if (dir == nullptr) {
    const int err = errno;
    close(fd);
    return err;
  }
  int err = 0;
  while (true) {
    errno = 0;
    dirent* ent = readdir(dir);
    if (ent == nullptr) {
      err = errno;
      break;
    }
    const std::string_view name(ent->d_name);
    if (name == "." || name == "..") continue;
    out->push_back(DirName{std::string(name), ent->d_type});
  }
  closedir(dir);
  if (err != 0) return err;
  std::sort(out->begin(), out->end(),
            [](const DirName& a, const DirName& b) { return a.name < b.name; });
  return 0;
}

absl::StatusOr<std::vector<DirName>> ReadDirSorted(int dirfd) {
  std::vector<DirName> names;
  if (int err = ReadDirSortedRaw(dirfd, &names); err != 0) return ErrnoToStatus(err, "readdir");
  return names;
}

absl::Status RemoveAllAt(int dirfd, const std::string& name) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (unlinkat(dirfd, name.c_str(), 0) == 0 || errno == ENOENT) return absl::OkStatus();
    if (errno != EISDIR && errno != EPERM)
      return ErrnoToStatus(errno, absl::StrCat("remove ", name));
    const int fd = openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT) return absl::OkStatus();
      if (errno == ENOTDIR || errno == ELOOP) continue;  // replaced meanwhile: unlink again
      return ErrnoToStatus(errno, absl::StrCat("open ", name));
    }
    UniqueFd dir(fd);
    struct stat st;
    if (fstat(dir.get(), &st) == 0 && (st.st_mode & 0700) != 0700) {
      (void)fchmod(dir.get(), (st.st_mode & 07777) | 0700);  // best effort; root needs none
    }
    KILN_ASSIGN_OR_RETURN(std::vector<DirName> names, ReadDirSorted(dir.get()));
    for (const DirName& child : names) {
      KILN_RETURN_IF_ERROR(Annotate(RemoveAllAt(dir.get(), child.name), name));
    }
    if (unlinkat(dirfd, name.c_str(), AT_REMOVEDIR) == 0 || errno == ENOENT) {
      return absl::OkStatus();
    }
    return ErrnoToStatus(errno, absl::StrCat("remove ", name));
  }
  return absl::AbortedError(absl::StrCat("remove ", name, ": entry keeps changing"));
}

absl::StatusOr<std::string> ReadLinkAt(int dirfd, const std::string& name) {
  std::string buf(256, '\0');
  while (true) {
    const ssize_t n = readlinkat(dirfd, name.c_str(), buf.data(), buf.size());
    if (n < 0) return ErrnoToStatus(errno, absl::StrCat("readlink ", name));
    if (static_cast<size_t>(n) < buf.size()) {
      buf.resize(static_cast<size_t>(n));
      return buf;
    }
    buf.resize(buf.size() * 2);
  }
}

std::string FdRelativePath(int dirfd, std::string_view name) {
  return absl::StrCat("/proc/self/fd/", dirfd, "/", AV(name));
}

std::string TempName() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return absl::StrFormat(".kiln-tmp-%016x", rng());
}

}  // namespace kiln::fsutil::internal
