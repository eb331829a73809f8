#include "daemon/ops/internal/root_fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "fsutil/paths.h"

namespace kiln::ops::internal {
namespace {

// Linux follows at most 40 symlinks in one lookup; continuity's RootPath allows 255. We count
// the hops we make ourselves (the last component) and let the kernel count the rest.
constexpr int kMaxSymlinkHops = 255;
// Bound on MkdirAll recursion (one level per missing ancestor or symlink hop).
constexpr int kMaxMkdirDepth = 4096;

std::string_view TrimSlashes(std::string_view p) {
  while (!p.empty() && p.front() == '/') p.remove_prefix(1);
  while (!p.empty() && p.back() == '/') p.remove_suffix(1);
  return p;
}

std::string ProcPath(int dir, const std::string& name) {
  // "/proc/self/fd/N/." names the directory itself; with the l*xattr calls the last component
  // is never followed, so "/proc/self/fd/N/name" cannot leave the directory.
  return absl::StrCat("/proc/self/fd/", dir, "/", name.empty() ? std::string(".") : name);
}

int ReopenSelf(int dir, int* err) {
  int fd = openat(dir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) *err = errno;
  return fd;
}

}  // namespace

std::string ErrnoText(int err) {
  std::string s = strerror(err);
  if (!s.empty() && s[0] >= 'A' && s[0] <= 'Z') s[0] = static_cast<char>(s[0] - 'A' + 'a');
  return s;
}

absl::Status ErrnoStatus(int err, std::string message) {
  if (err == ENOSYS) {
    return absl::UnimplementedError(
        absl::StrCat(message,
                     " (openat2(2) is required: Linux 5.6 or newer, and not blocked by "
                     "seccomp; refusing to resolve paths without it)"));
  }
  // A symlink loop is a property of the tree, not an unknown failure.
  const absl::StatusCode code =
      err == ELOOP ? absl::StatusCode::kFailedPrecondition : absl::ErrnoToStatusCode(err);
  return absl::Status(code, message);
}

absl::Status PathError(int err, std::string_view op, std::string_view path) {
  return ErrnoStatus(err, absl::StrCat(AV(op), " ", AV(path), ": ", ErrnoText(err)));
}

absl::StatusOr<UniqueFd> OpenRoot(const std::string& host_path) {
  if (host_path.empty() || host_path[0] != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("root directory must be an absolute path: \"", host_path, "\""));
  }
  int fd = open(host_path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return PathError(errno, "open root", host_path);
  return UniqueFd(fd);
}

std::string AbsClean(std::string_view path) {
  return fsutil::CleanPath(absl::StrCat("/", AV(path)));
}

int OpenInRoot(int root_fd, std::string_view rel, int flags, mode_t mode, int* err) {
  std::string p(TrimSlashes(rel));
  if (p.empty()) p = ".";
  struct open_how how;
  std::memset(&how, 0, sizeof(how));
  how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
  how.mode = (flags & O_CREAT) != 0 ? mode : 0;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  for (int attempt = 0; attempt < 32; ++attempt) {
    long fd = syscall(SYS_openat2, root_fd, p.c_str(), &how, sizeof(how));
    if (fd >= 0) return static_cast<int>(fd);
    // EAGAIN: a concurrent rename or mount raced with a ".." lookup; the kernel asks us to retry.
    if (errno == EAGAIN || errno == EINTR) continue;
    // E2BIG: a kernel that does not know this open_how layout; as unusable as no openat2.
    *err = errno == E2BIG ? ENOSYS : errno;
    return -1;
  }
  *err = EAGAIN;
  return -1;
}

int OpenBeneathNoSymlinks(int dir, std::string_view rel, int flags, int* err) {
  std::string p(TrimSlashes(rel));
  if (p.empty()) p = ".";
  struct open_how how;
  std::memset(&how, 0, sizeof(how));
  how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  for (int attempt = 0; attempt < 32; ++attempt) {
    long fd = syscall(SYS_openat2, dir, p.c_str(), &how, sizeof(how));
    if (fd >= 0) return static_cast<int>(fd);
    if (errno == EAGAIN || errno == EINTR) continue;
    *err = errno == E2BIG ? ENOSYS : errno;
    return -1;
  }
  *err = EAGAIN;
  return -1;
}

Resolved ResolveRaw(int root_fd, std::string_view path_in, bool follow_final) {
  Resolved out;
  std::string path(path_in);
  int hops = 0;
  for (;;) {
    const std::string_view p = TrimSlashes(path);
    const size_t slash = p.rfind('/');
    const std::string dir_part(slash == std::string_view::npos ? std::string_view()
                                                               : p.substr(0, slash));
    const std::string name(slash == std::string_view::npos ? p : p.substr(slash + 1));
    int err = 0;
    if (name.empty() || name == "." || name == "..") {
      // The path names a directory through "." or ".." (or is the root): open it as a whole.
      int fd = OpenInRoot(root_fd, p, O_PATH | O_DIRECTORY, 0, &err);
      if (fd < 0) {
        out.err = err;
        out.failed_dir = absl::StrCat("/", AV(p));
        return out;
      }
      out.loc = Location{UniqueFd(fd), ""};
      return out;
    }
    int fd = OpenInRoot(root_fd, dir_part, O_PATH | O_DIRECTORY, 0, &err);
    if (fd < 0) {
      out.err = err;
      out.failed_dir = absl::StrCat("/", dir_part);
      return out;
    }
    UniqueFd dfd(fd);
    if (follow_final) {
      struct stat st;
      if (fstatat(dfd.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode)) {
        std::string target;
        if (++hops > kMaxSymlinkHops) {
          err = ELOOP;
        } else {
          err = ReadLinkAt(dfd.get(), name, &target);
          if (err == 0 && target.empty()) err = ENOENT;
        }
        if (err != 0) {
          out.err = err;
          out.failed_dir = absl::StrCat("/", AV(p));
          return out;
        }
        // Splice the target in. A relative target is resolved from the link's directory: we
        // keep that directory's unresolved path, which the kernel resolves to the same place,
        // so ".." in the target is physical, as in any lookup. An absolute one restarts at the
        // root because RESOLVE_IN_ROOT treats the root as "/".
        path = target[0] == '/' || dir_part.empty() ? target : absl::StrCat(dir_part, "/", target);
        continue;
      }
    }
    out.loc = Location{std::move(dfd), name};
    return out;
  }
}

absl::Status ResolveError(const Resolved& r) {
  switch (r.err) {
    case ENOENT:
      return ErrnoStatus(r.err, absl::StrCat("parent directory ", r.failed_dir, " does not exist"));
    case ENOTDIR:
      return ErrnoStatus(r.err, absl::StrCat(r.failed_dir, " is not a directory"));
    case ELOOP:
      return ErrnoStatus(r.err, absl::StrCat(r.failed_dir, ": too many levels of symbolic links"));
    default:
      return PathError(r.err, "open", r.failed_dir);
  }
}

absl::StatusOr<Location> Resolve(int root_fd, std::string_view path, bool follow_final) {
  Resolved r = ResolveRaw(root_fd, path, follow_final);
  if (r.err != 0) return ResolveError(r);
  return std::move(r.loc);
}

int LstatAt(int dir, const std::string& name, struct stat* st) {
  int rc = name.empty() ? fstat(dir, st) : fstatat(dir, name.c_str(), st, AT_SYMLINK_NOFOLLOW);
  return rc == 0 ? 0 : errno;
}

int OpenDirAt(int dir, const std::string& name, int flags, int* err) {
  int fd = name.empty() ? openat(dir, ".", flags | O_DIRECTORY | O_CLOEXEC)
                        : openat(dir, name.c_str(), flags | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) *err = errno;
  return fd;
}

int ChownAt(int dir, const std::string& name, uid_t uid, gid_t gid) {
  int rc = fchownat(dir, name.c_str(), uid, gid,
                    AT_SYMLINK_NOFOLLOW | (name.empty() ? AT_EMPTY_PATH : 0));
  return rc == 0 ? 0 : errno;
}

int ChmodAt(int dir, const std::string& name, mode_t mode) {
  if (name.empty()) {
    int err = 0;
    UniqueFd self(ReopenSelf(dir, &err));
    if (!self.valid()) return err;
    return fchmod(self.get(), mode) == 0 ? 0 : errno;
  }
  // glibc implements AT_SYMLINK_NOFOLLOW through an O_PATH|O_NOFOLLOW descriptor, so a symlink
  // swapped in cannot redirect the chmod.
  return fchmodat(dir, name.c_str(), mode, AT_SYMLINK_NOFOLLOW) == 0 ? 0 : errno;
}

int UtimesAt(int dir, const std::string& name, const struct timespec times[2]) {
  if (name.empty()) {
    int err = 0;
    UniqueFd self(ReopenSelf(dir, &err));
    if (!self.valid()) return err;
    return futimens(self.get(), times) == 0 ? 0 : errno;
  }
  return utimensat(dir, name.c_str(), times, AT_SYMLINK_NOFOLLOW) == 0 ? 0 : errno;
}

int RemoveAllAt(int dir, const std::string& name) {
  if (name.empty() || name == "." || name == "..") return EINVAL;
  if (unlinkat(dir, name.c_str(), 0) == 0 || errno == ENOENT) return 0;
  struct stat st;
  if (fstatat(dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    return errno == ENOENT ? 0 : errno;
  }
  if (!S_ISDIR(st.st_mode)) {
    if (unlinkat(dir, name.c_str(), 0) == 0 || errno == ENOENT) return 0;
    return errno;
  }
  int err = 0;
  UniqueFd fd(OpenDirAt(dir, name, O_RDONLY, &err));
  if (!fd.valid()) return err == ENOENT ? 0 : err;
  std::vector<std::string> names;
  if (int e = ReadDirNames(fd.get(), &names); e != 0) return e;
  int first_err = 0;
  for (const std::string& child : names) {
    if (int e = RemoveAllAt(fd.get(), child); e != 0 && first_err == 0) first_err = e;
  }
  if (unlinkat(dir, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) {
    return first_err != 0 ? first_err : errno;
  }
  return 0;
}

int ReadLinkAt(int dir, const std::string& name, std::string* target) {
  std::string buf(256, '\0');
  for (;;) {
    ssize_t n = readlinkat(dir, name.c_str(), buf.data(), buf.size());
    if (n < 0) return errno;
    if (static_cast<size_t>(n) < buf.size()) {
      buf.resize(static_cast<size_t>(n));
      *target = std::move(buf);
      return 0;
    }
    if (buf.size() >= (1u << 20)) return ENAMETOOLONG;
    buf.resize(buf.size() * 2);
  }
}

int ReadDirNames(int fd, std::vector<std::string>* names) {
  names->clear();
  int dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (dup_fd < 0) return errno;
  DIR* d = fdopendir(dup_fd);
  if (d == nullptr) {
    int err = errno;
    close(dup_fd);
    return err;
  }
  rewinddir(d);
  int err = 0;
  for (;;) {
    errno = 0;
    struct dirent* e = readdir(d);
    if (e == nullptr) {
      err = errno;
      break;
    }
    if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
    names->emplace_back(e->d_name);
  }
  closedir(d);
  std::sort(names->begin(), names->end());
  return err;
}

void CopyXattrs(int src_dir, const std::string& src_name, int dst_dir,
                const std::string& dst_name) {
  const std::string src = ProcPath(src_dir, src_name);
  const std::string dst = ProcPath(dst_dir, dst_name);
  ssize_t n = llistxattr(src.c_str(), nullptr, 0);
  if (n <= 0) return;
  std::string keys(static_cast<size_t>(n), '\0');
  n = llistxattr(src.c_str(), keys.data(), keys.size());
  if (n <= 0) return;
  keys.resize(static_cast<size_t>(n));
  std::string value;
  for (size_t pos = 0; pos < keys.size();) {
    const std::string key(keys.c_str() + pos);
    pos += key.size() + 1;
    if (key.empty()) continue;
    ssize_t len = lgetxattr(src.c_str(), key.c_str(), nullptr, 0);
    if (len < 0) continue;
    value.assign(static_cast<size_t>(len), '\0');
    len = lgetxattr(src.c_str(), key.c_str(), value.data(), value.size());
    if (len < 0) continue;
    // Best effort, like BuildKit's xattr error handler: unsupported or forbidden keys are skipped.
    (void)lsetxattr(dst.c_str(), key.c_str(), value.data(), static_cast<size_t>(len), 0);
  }
}

int SetXattrAt(int dir, const std::string& name, const std::string& key, const void* value,
               size_t size) {
  const std::string path = ProcPath(dir, name);
  return lsetxattr(path.c_str(), key.c_str(), value, size, 0) == 0 ? 0 : errno;
}

namespace {

absl::StatusOr<UniqueFd> OpenCreatedDir(const Location& loc, const std::string& display) {
  int err = 0;
  int fd = OpenDirAt(loc.dir.get(), loc.name, O_PATH, &err);
  if (fd < 0) return PathError(err == ELOOP ? ENOTDIR : err, "mkdir", display);
  return UniqueFd(fd);
}

absl::StatusOr<UniqueFd> MkdirAllImpl(int root_fd, const std::string& path,
                                      const MkdirOptions& opts, std::vector<CreatedDir>* created,
                                      int depth) {
  const std::string display = absl::StrCat("/", AV(TrimSlashes(path)));
  if (depth > kMaxMkdirDepth) return PathError(ELOOP, "mkdir", display);
  int err = 0;
  int fd = OpenInRoot(root_fd, path, O_PATH | O_DIRECTORY, 0, &err);
  if (fd >= 0) return UniqueFd(fd);
  if (err != ENOENT && err != ENOTDIR) return PathError(err, "mkdir", display);

  for (int attempt = 0;; ++attempt) {
    Resolved r = ResolveRaw(root_fd, path, /*follow_final=*/true);
    if ((r.err == ENOENT || r.err == ENOTDIR) && attempt == 0) {
      // A parent is missing (create it) or is not a directory (the recursion reports it where it
      // is, as Go's MkdirAll does).
      KILN_ASSIGN_OR_RETURN(UniqueFd parent,
                            MkdirAllImpl(root_fd, r.failed_dir, opts, created, depth + 1));
      continue;
    }
    if (r.err != 0) return PathError(r.err, "mkdir", r.failed_dir);
    if (r.loc.IsSelf()) return OpenCreatedDir(r.loc, display);

    struct stat st;
    if (LstatAt(r.loc.dir.get(), r.loc.name, &st) == 0) {
      if (S_ISDIR(st.st_mode)) return OpenCreatedDir(r.loc, display);
      return PathError(ENOTDIR, "mkdir", display);
    }
    if (mkdirat(r.loc.dir.get(), r.loc.name.c_str(), opts.mode & 07777) != 0) {
      const int e = errno;
      if (e == EEXIST && attempt < 4) continue;  // raced with another creator; look again
      return PathError(e, "mkdir", display);
    }
    // The mode is exact, whatever the daemon's umask (buildkitd runs with umask 0).
    if (int e = ChmodAt(r.loc.dir.get(), r.loc.name, opts.mode & 07777); e != 0) {
      return PathError(e, "chmod", display);
    }
    if (opts.owner) {
      if (int e = ChownAt(r.loc.dir.get(), r.loc.name, opts.owner->uid, opts.owner->gid); e != 0) {
        return PathError(e, "lchown", display);
      }
    }
    if (opts.time) {
      const struct timespec times[2] = {*opts.time, *opts.time};
      if (int e = UtimesAt(r.loc.dir.get(), r.loc.name, times); e != 0) {
        return ErrnoStatus(e, absl::StrCat("failed to utime ", display, ": ", ErrnoText(e)));
      }
    }
    if (created != nullptr) {
      int dup_fd = fcntl(r.loc.dir.get(), F_DUPFD_CLOEXEC, 0);
      if (dup_fd >= 0) created->push_back(CreatedDir{UniqueFd(dup_fd), r.loc.name});
    }
    return OpenCreatedDir(r.loc, display);
  }
}

}  // namespace

absl::StatusOr<UniqueFd> MkdirAll(int root_fd, std::string_view path, const MkdirOptions& opts,
                                  std::vector<CreatedDir>* created) {
  return MkdirAllImpl(root_fd, std::string(path), opts, created, 0);
}

void FixCreatedDirTimes(const std::vector<CreatedDir>& dirs, const struct timespec& time) {
  const struct timespec times[2] = {time, time};
  for (auto it = dirs.rbegin(); it != dirs.rend(); ++it) {
    (void)UtimesAt(it->parent.get(), it->name, times);
  }
}

}  // namespace kiln::ops::internal
