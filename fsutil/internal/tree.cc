#include "fsutil/internal/tree.h"

#include <dirent.h>
#include <fcntl.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "base/status.h"

namespace kiln::fsutil::internal {

int TreeIterator::parent_fd() const { return frames_.back().fd.get(); }

absl::StatusOr<bool> TreeIterator::Next() {
  if (!started_) {
    started_ = true;
    Frame root;
    const int fd = openat(root_fd_, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return ErrnoToStatus(errno, "open walk root");
    root.fd = UniqueFd(fd);
    if (int err = ReadDirSortedRaw(root.fd.get(), &root.names); err != 0) {
      return ErrnoToStatus(err, "read walk root");
    }
    frames_.push_back(std::move(root));
  } else if (descend_ && is_dir_ && dir_error_.ok()) {
    descend_ = false;
    Frame frame;
    const int fd =
        openat(parent_fd(), name_.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int err = fd < 0 ? errno : 0;
    if (fd >= 0) {
      frame.fd = UniqueFd(fd);
      err = ReadDirSortedRaw(frame.fd.get(), &frame.names);
    }
    if (err == 0) {
      frame.path = path_;
      frames_.push_back(std::move(frame));
    } else if (err != ENOENT && err != ENOTDIR && err != ELOOP) {
      // Report the unreadable directory once more; vanished or replaced ones are just skipped.
      dir_error_ = ErrnoToStatus(err, absl::StrCat("read directory ", path_));
      return true;
    }
  }
  dir_error_ = absl::OkStatus();
  descend_ = false;
  while (!frames_.empty()) {
    Frame& top = frames_.back();
    if (top.next >= top.names.size()) {
      frames_.pop_back();
      continue;
    }
    const DirName& entry = top.names[top.next++];
    bool is_dir = entry.type == DT_DIR;
    if (entry.type == DT_UNKNOWN) {
      struct stat st;
      if (fstatat(top.fd.get(), entry.name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT) continue;
        return ErrnoToStatus(errno, absl::StrCat("lstat ", top.path, "/", entry.name));
      }
      is_dir = S_ISDIR(st.st_mode);
    }
    name_ = entry.name;
    path_ = top.path.empty() ? entry.name : absl::StrCat(top.path, "/", entry.name);
    is_dir_ = is_dir;
    descend_ = is_dir;
    return true;
  }
  return false;
}

absl::StatusOr<struct stat> TreeIterator::Lstat() const {
  struct stat st;
  if (fstatat(parent_fd(), name_.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    return ErrnoToStatus(errno, absl::StrCat("lstat ", path_));
  }
  return st;
}

absl::StatusOr<::fsutil::types::Stat> TreeIterator::Stat(const StatOptions& options,
                                                         struct stat* raw) {
  KILN_ASSIGN_OR_RETURN(struct stat st, Lstat());
  if (raw != nullptr) *raw = st;
  return MakeStat(parent_fd(), name_, path_, st, options, &inodes_);
}

absl::StatusOr<::fsutil::types::Stat> TreeIterator::StatInDir(size_t index, const std::string& name,
                                                              const std::string& path,
                                                              const StatOptions& options) {
  const int dirfd = frames_.at(index).fd.get();
  struct stat st;
  if (fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    return ErrnoToStatus(errno, absl::StrCat("lstat ", path));
  }
  return MakeStat(dirfd, name, path, st, options, &inodes_);
}

}  // namespace kiln::fsutil::internal
