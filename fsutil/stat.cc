#include "fsutil/stat.h"

#include <fcntl.h>
#include <sys/xattr.h>

#include <cerrno>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "fsutil/internal/fd.h"
#include "fsutil/internal/mkstat.h"
#include "fsutil/paths.h"

namespace kiln::fsutil {

uint32_t GoModeFromPosix(mode_t mode) {
  uint32_t m = mode & 0777;
  switch (mode & S_IFMT) {
    case S_IFBLK:
      m |= kModeDevice;
      break;
    case S_IFCHR:
      m |= kModeDevice | kModeCharDevice;
      break;
    case S_IFDIR:
      m |= kModeDir;
      break;
    case S_IFIFO:
      m |= kModeNamedPipe;
      break;
    case S_IFLNK:
      m |= kModeSymlink;
      break;
    case S_IFSOCK:
      m |= kModeSocket;
      break;
    default:
      break;
  }
  if ((mode & S_ISGID) != 0) m |= kModeSetgid;
  if ((mode & S_ISUID) != 0) m |= kModeSetuid;
  if ((mode & S_ISVTX) != 0) m |= kModeSticky;
  return m;
}

mode_t PosixPermFromGo(uint32_t go_mode) {
  mode_t m = go_mode & kModePerm;
  if ((go_mode & kModeSetuid) != 0) m |= S_ISUID;
  if ((go_mode & kModeSetgid) != 0) m |= S_ISGID;
  if ((go_mode & kModeSticky) != 0) m |= S_ISVTX;
  return m;
}

mode_t PosixModeFromGo(uint32_t go_mode) {
  mode_t type = S_IFREG;
  if ((go_mode & kModeDir) != 0) {
    type = S_IFDIR;
  } else if ((go_mode & kModeSymlink) != 0) {
    type = S_IFLNK;
  } else if ((go_mode & kModeDevice) != 0) {
    type = (go_mode & kModeCharDevice) != 0 ? S_IFCHR : S_IFBLK;
  } else if ((go_mode & kModeNamedPipe) != 0) {
    type = S_IFIFO;
  } else if ((go_mode & kModeSocket) != 0) {
    type = S_IFSOCK;
  }
  return type | PosixPermFromGo(go_mode);
}

int64_t DevMajor(uint64_t rdev) { return static_cast<int64_t>((rdev >> 8) & 0xfff); }
int64_t DevMinor(uint64_t rdev) {
  return static_cast<int64_t>((rdev & 0xff) | ((rdev >> 12) & 0xfff00));
}

namespace internal {
namespace {

// fsutil's loadXattr: all attributes except "com.apple.*"; unsupported filesystems have none,
// attributes that vanish or cannot be read are skipped.
absl::Status LoadXattrs(int dirfd, const std::string& name, ::fsutil::types::Stat* stat) {
  const std::string path = FdRelativePath(dirfd, name);
  std::vector<char> names;
  while (true) {
    ssize_t n = llistxattr(path.c_str(), nullptr, 0);
    if (n < 0) {
      if (errno == ENOTSUP || errno == ENOSYS) return absl::OkStatus();
      return ErrnoToStatus(errno, absl::StrCat("failed to xattr ", name));
    }
    if (n == 0) return absl::OkStatus();
    names.resize(static_cast<size_t>(n));
    n = llistxattr(path.c_str(), names.data(), names.size());
    if (n >= 0) {
      names.resize(static_cast<size_t>(n));
      break;
    }
    if (errno != ERANGE) return ErrnoToStatus(errno, absl::StrCat("failed to xattr ", name));
  }
  for (size_t i = 0; i < names.size();) {
    const std::string key(names.data() + i);
    i += key.size() + 1;
    if (key.empty() || absl::StartsWith(key, "com.apple.")) continue;
    std::string value;
    while (true) {
      ssize_t n = lgetxattr(path.c_str(), key.c_str(), nullptr, 0);
      if (n < 0) break;
      value.resize(static_cast<size_t>(n));
      n = lgetxattr(path.c_str(), key.c_str(), value.data(), value.size());
      if (n >= 0) {
        value.resize(static_cast<size_t>(n));
        (*stat->mutable_xattrs())[key] = value;
        break;
      }
      if (errno != ERANGE) break;
    }
  }
  return absl::OkStatus();
}

}  // namespace

const std::string* InodeMap::SeenOrRecord(const struct stat& st, const std::string& path) {
  const Key key{static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino)};
  if (st.st_nlink > 1) {
    if (auto it = paths_.find(key); it != paths_.end()) return &it->second;
  }
  paths_[key] = path;
  return nullptr;
}

absl::StatusOr<::fsutil::types::Stat> MakeStat(int dirfd, const std::string& name,
                                               const std::string& rel, const struct stat& st,
                                               const StatOptions& options, InodeMap* inodes) {
  ::fsutil::types::Stat stat;
  stat.set_path(rel);
  stat.set_mode(GoModeFromPosix(st.st_mode));
  stat.set_modtime(int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec);
  stat.set_uid(st.st_uid);
  stat.set_gid(st.st_gid);
  if (!S_ISDIR(st.st_mode)) {
    // fsutil tests the type bits with '&', not '==', so symlinks and sockets (whose st_rdev is
    // 0) take this branch too; the result is the same.
    if ((st.st_mode & S_IFBLK) != 0 || (st.st_mode & S_IFCHR) != 0) {
      stat.set_devmajor(DevMajor(st.st_rdev));
      stat.set_devminor(DevMinor(st.st_rdev));
    }
    if (inodes != nullptr) {
      if (const std::string* first = inodes->SeenOrRecord(st, rel)) stat.set_linkname(*first);
    }
    // Hard links keep their full size on the wire, as fsutil's mkstat leaves it.
    stat.set_size(st.st_size);
    if (S_ISLNK(st.st_mode)) {
      KILN_ASSIGN_OR_RETURN(std::string target, ReadLinkAt(dirfd, name));
      stat.set_linkname(std::move(target));
    }
  }
  if (options.xattrs) KILN_RETURN_IF_ERROR(LoadXattrs(dirfd, name, &stat));
  // archive/tar cannot represent sockets, so fsutil clears the bit (they travel as empty files).
  stat.set_mode(stat.mode() & ~kModeSocket);
  return stat;
}

}  // namespace internal

absl::StatusOr<::fsutil::types::Stat> StatPath(const std::string& root, std::string_view rel,
                                               const StatOptions& options) {
  const std::string clean = CleanPath(rel);
  if (clean == ".." || absl::StartsWith(clean, "../") || absl::StartsWith(clean, "/")) {
    return absl::InvalidArgumentError(absl::StrCat("path ", clean, " is outside ", root));
  }
  KILN_ASSIGN_OR_RETURN(internal::UniqueFd root_fd, internal::OpenDirectory(root));
  const bool is_root = clean == ".";
  internal::UniqueFd dir;
  if (is_root) {
    dir = std::move(root_fd);
  } else {
    const std::string parent = DirPath(clean);
    KILN_ASSIGN_OR_RETURN(dir, internal::OpenBeneath(root_fd.get(), parent == "." ? "" : parent,
                                                     O_RDONLY | O_DIRECTORY));
  }
  const std::string name = is_root ? "." : BasePath(clean);
  struct stat st;
  if (fstatat(dir.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    return ErrnoToStatus(errno, absl::StrCat("lstat ", clean));
  }
  return internal::MakeStat(dir.get(), name, is_root ? "." : clean, st, options, nullptr);
}

}  // namespace kiln::fsutil
