#include "daemon/ops/internal/copier.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "fsutil/paths.h"

namespace kiln::ops::internal {
namespace {

std::string Join(const std::string& a, const std::string& b) {
  if (b.empty()) return a;
  if (a.empty()) return b;
  return fsutil::JoinPath({a, b});
}

// "<what> <display>: <op> <display>: <errno text>", the shape of fsutil's wrapped PathErrors.
absl::Status Failed(int err, std::string_view what, std::string_view op,
                    const std::string& display) {
  return ErrnoStatus(
      err, absl::StrCat(AV(what), " ", display, ": ", AV(op), " ", display, ": ", ErrnoText(err)));
}

absl::Status CopyContents(int in, int out, const std::string& src, const std::string& dst) {
  bool first = true;
  for (;;) {
    ssize_t n = copy_file_range(in, nullptr, out, nullptr, size_t{1} << 30, 0);
    if (n > 0) {
      first = false;
      continue;
    }
    if (n == 0) return absl::OkStatus();
    if (errno == EINTR) continue;
    const int e = errno;
    // Like Go's copy_file_range use: fall back to read/write when the kernel or the filesystem
    // cannot do it, but only before anything was copied.
    if (!first ||
        (e != ENOSYS && e != EXDEV && e != EPERM && e != EIO && e != EOPNOTSUPP && e != EINVAL)) {
      return ErrnoStatus(
          e, absl::StrCat("failed to copy files: copy file range failed: ", ErrnoText(e)));
    }
    break;
  }
  char buf[64 * 1024];
  for (;;) {
    ssize_t n = read(in, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Failed(errno, "failed to copy files: userspace copy failed:", "read", src);
    }
    if (n == 0) return absl::OkStatus();
    for (ssize_t done = 0; done < n;) {
      ssize_t w = write(out, buf + done, static_cast<size_t>(n - done));
      if (w < 0) {
        if (errno == EINTR) continue;
        return Failed(errno, "failed to copy files: userspace copy failed:", "write", dst);
      }
      done += w;
    }
  }
}

}  // namespace

absl::Status Copier::Run(const Location& src, const std::string& src_display, int target_dir,
                         const std::string& target_name, const std::string& dst_display) {
  frames_.clear();
  inodes_.clear();
  dest_dirs_.clear();
  Frame anchor;
  int err = 0;
  anchor.dst_fd = UniqueFd(OpenDirAt(target_dir, "", O_PATH, &err));
  if (!anchor.dst_fd.valid()) return PathError(err, "open", dst_display);
  anchor.dst_state = DestState::kDir;
  anchor.copied = true;
  anchor.dst_display = dst_display;
  struct stat st;
  if (target_name.empty() && fstat(anchor.dst_fd.get(), &st) == 0) {
    dest_dirs_.insert({st.st_dev, st.st_ino});
  }
  frames_.push_back(std::move(anchor));
  const Names top{src_display, dst_display, target_name};
  absl::Status status = CopyEntry(src.dir.get(), src.name, "", target_name,
                                  /*overwrite_metadata=*/false, {}, {}, top);
  frames_.clear();
  return status;
}

void Copier::OpenDest(Frame& f) {
  const Frame& parent = frames_.back();
  if (parent.dst_state != DestState::kDir) {
    f.dst_state =
        parent.dst_state == DestState::kMissing ? DestState::kMissing : DestState::kNotDir;
    return;
  }
  int err = 0;
  int fd = OpenDirAt(parent.dst_fd.get(), f.name, O_PATH, &err);
  if (fd < 0) {
    f.dst_state = err == ENOENT ? DestState::kMissing : DestState::kNotDir;
    return;
  }
  f.dst_fd = UniqueFd(fd);
  f.dst_state = DestState::kDir;
  struct stat st;
  if (fstat(fd, &st) == 0) dest_dirs_.insert({st.st_dev, st.st_ino});
}

absl::Status Copier::CopyEntry(int src_dir, const std::string& src_name,
                               const std::string& components, const std::string& name,
                               bool overwrite_metadata, const fsutil::MatchInfo& parent_include,
                               const fsutil::MatchInfo& parent_exclude, const Names& n) {
  KILN_RETURN_IF_ERROR(ctx_.Check("copy"));
  struct stat st;
  if (int e = LstatAt(src_dir, src_name, &st); e != 0) {
    return Failed(e, "failed to stat", "lstat", n.src_display);
  }
  std::optional<struct stat> target;
  {
    const Frame& parent = frames_.back();
    struct stat tst;
    int e = ENOENT;
    if (parent.dst_state == DestState::kDir) e = LstatAt(parent.dst_fd.get(), name, &tst);
    if (parent.dst_state == DestState::kNotDir) e = ENOTDIR;
    if (e == 0) {
      target = tst;
    } else if (e != ENOENT) {
      return Failed(e, "failed to stat", "lstat", n.dst_display);
    }
  }
  if (target && !S_ISDIR(st.st_mode) && target->st_dev == st.st_dev &&
      target->st_ino == st.st_ino && name == src_name) {
    // Replacing the target would delete the source when both are the same directory entry
    // (possible only when the source and destination roots overlap).
    struct stat sd;
    struct stat dd;
    if (fstat(src_dir, &sd) == 0 && fstat(DestDir(), &dd) == 0 && sd.st_dev == dd.st_dev &&
        sd.st_ino == dd.st_ino) {
      return absl::FailedPreconditionError(absl::StrCat(
          "cannot copy ", n.src_display, " onto itself (", n.dst_display, " is the same file)"));
    }
  }

  bool include = true;
  fsutil::MatchInfo include_info;
  fsutil::MatchInfo exclude_info;
  if (!components.empty()) {
    if (opts_.include != nullptr) {
      absl::StatusOr<bool> m =
          opts_.include->MatchesUsingParentResults(components, parent_include, &include_info);
      if (!m.ok()) return Annotate(m.status(), "failed to match includepatterns");
      include = *m;
    }
    if (opts_.exclude != nullptr) {
      absl::StatusOr<bool> m =
          opts_.exclude->MatchesUsingParentResults(components, parent_exclude, &exclude_info);
      if (!m.ok()) return Annotate(m.status(), "failed to match excludepatterns");
      if (*m) {
        include = false;
        // Without "!" exceptions nothing below an excluded path can come back, and an excluded
        // entry changes nothing at the destination: skip the whole subtree.
        if (!opts_.exclude->Exclusions()) return absl::OkStatus();
      }
    }
  }

  if (include) {
    KILN_RETURN_IF_ERROR(RemoveTargetIfNeeded(name, st, target, n.dst_display));
    KILN_RETURN_IF_ERROR(CreateParentDirs(overwrite_metadata));
  }
  if (!S_ISDIR(st.st_mode)) {
    if (!include) return absl::OkStatus();
    KILN_RETURN_IF_ERROR(EnsureEmptyFileTarget(name, n.dst_display));
  }

  bool copy_info = include;
  bool restore_timestamp = false;
  switch (st.st_mode & S_IFMT) {
    case S_IFDIR: {
      KILN_ASSIGN_OR_RETURN(
          bool created, CopyDirectory(src_dir, src_name, components, name, st, overwrite_metadata,
                                      include, include_info, exclude_info, n));
      if (!overwrite_metadata) {
        // The top directory: its metadata is copied only if this copy created it; an existing
        // one keeps its own but takes the source's times.
        copy_info = created;
        restore_timestamp = !created;
      }
      break;
    }
    case S_IFREG:
      KILN_RETURN_IF_ERROR(CopyRegular(src_dir, src_name, st, name, n));
      break;
    case S_IFLNK: {
      std::string link;
      if (int e = ReadLinkAt(src_dir, src_name, &link); e != 0) {
        return Failed(e, "failed to read link:", "readlink", n.src_display);
      }
      // Stored verbatim, like cp -a: it is never followed by this copy.
      if (symlinkat(link.c_str(), DestDir(), name.c_str()) != 0) {
        return Failed(errno, "failed to create symlink:", "symlink", n.dst_display);
      }
      break;
    }
    case S_IFCHR:
    case S_IFBLK:
    case S_IFIFO:
    case S_IFSOCK: {
      mode_t mode = st.st_mode;
      dev_t rdev = 0;
      if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) rdev = st.st_rdev;
      // fsutil copies a socket as a stub: clearing S_IFSOCK leaves a regular (empty) file type.
      if (S_ISSOCK(st.st_mode)) mode &= ~static_cast<mode_t>(S_IFSOCK);
      if (mknodat(DestDir(), name.c_str(), mode, rdev) != 0) {
        return Failed(errno, "failed to create device", "mknod", n.dst_display);
      }
      break;
    }
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("failed to copy ", n.src_display, ": unsupported file type"));
  }

  if (copy_info) {
    KILN_RETURN_IF_ERROR(CopyFileInfo(st, DestDir(), name, n.dst_display));
    CopyXattrs(src_dir, src_name, DestDir(), name);
  } else if (restore_timestamp && target) {
    KILN_RETURN_IF_ERROR(CopyFileTimestamp(st, DestDir(), name, n.dst_display));
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> Copier::CopyDirectory(int src_dir, const std::string& src_name,
                                           const std::string& components, const std::string& name,
                                           const struct stat& st, bool overwrite_metadata,
                                           bool include, const fsutil::MatchInfo& include_info,
                                           const fsutil::MatchInfo& exclude_info, const Names& n) {
  if (dest_dirs_.count({st.st_dev, st.st_ino}) != 0) {
    return absl::FailedPreconditionError(absl::StrCat("cannot copy directory ", n.src_display,
                                                      " into itself (", n.dst_display, ")"));
  }
  Frame f;
  f.src_st = st;
  f.src_display = n.src_display;
  f.name = name;
  f.dst_display = n.dst_display;
  f.dst_rel = n.dst_rel;
  bool created = false;
  // An included directory is made now; otherwise only when something below it is included
  // (patterns like "a/*/c" must not create a/b for nothing).
  if (include) {
    KILN_ASSIGN_OR_RETURN(
        created, CopyDirectoryOnly(DestDir(), name, st, overwrite_metadata, n.dst_display));
    f.copied = true;
  }
  OpenDest(f);
  int err = 0;
  f.src_fd = UniqueFd(OpenDirAt(src_dir, src_name, O_RDONLY, &err));
  if (!f.src_fd.valid()) return Failed(err, "failed to read", "open", n.src_display);
  std::vector<std::string> names;
  if (int e = ReadDirNames(f.src_fd.get(), &names); e != 0) {
    return Failed(e, "failed to read", "readdirent", n.src_display);
  }
  const int src_fd = f.src_fd.get();
  frames_.push_back(std::move(f));
  absl::Status status;
  for (const std::string& child : names) {
    const Names cn{Join(n.src_display, child), Join(n.dst_display, child), Join(n.dst_rel, child)};
    status = CopyEntry(src_fd, child, Join(components, child), child,
                       /*overwrite_metadata=*/true, include_info, exclude_info, cn);
    if (!status.ok()) break;
  }
  frames_.pop_back();
  if (!status.ok()) return status;
  return created;
}

absl::StatusOr<bool> Copier::CopyDirectoryOnly(int parent_fd, const std::string& name,
                                               const struct stat& st, bool overwrite_metadata,
                                               const std::string& display) {
  struct stat dst;
  int e = LstatAt(parent_fd, name, &dst);
  if (e == ENOENT) {
    if (mkdirat(parent_fd, name.c_str(), st.st_mode & 07777) != 0) {
      return Failed(errno, "failed to mkdir", "mkdir", display);
    }
    return true;
  }
  if (e != 0) return Failed(e, "failed to stat", "lstat", display);
  if (!S_ISDIR(dst.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat("cannot copy to non-directory: ", display));
  }
  if (overwrite_metadata) {
    if (int ce = ChmodAt(parent_fd, name, st.st_mode & 07777); ce != 0) {
      return Failed(ce, "failed to chmod on", "chmod", display);
    }
  }
  return false;
}

absl::Status Copier::CreateParentDirs(bool overwrite_metadata) {
  for (size_t i = 1; i < frames_.size(); ++i) {
    if (frames_[i].copied) continue;
    const int parent_fd = frames_[i - 1].dst_fd.get();
    Frame& f = frames_[i];
    if (!S_ISDIR(f.src_st.st_mode)) {
      return absl::FailedPreconditionError(absl::StrCat(f.src_display, " is not a directory"));
    }
    KILN_ASSIGN_OR_RETURN(bool created, CopyDirectoryOnly(parent_fd, f.name, f.src_st,
                                                          overwrite_metadata, f.dst_display));
    int err = 0;
    f.dst_fd = UniqueFd(OpenDirAt(parent_fd, f.name, O_PATH, &err));
    if (!f.dst_fd.valid()) return Failed(err, "failed to open", "open", f.dst_display);
    f.dst_state = DestState::kDir;
    struct stat st;
    if (fstat(f.dst_fd.get(), &st) == 0) dest_dirs_.insert({st.st_dev, st.st_ino});
    if (created) {
      KILN_RETURN_IF_ERROR(CopyFileInfo(f.src_st, parent_fd, f.name, f.dst_display));
      CopyXattrs(f.src_fd.get(), "", parent_fd, f.name);
    }
    f.copied = true;
  }
  return absl::OkStatus();
}

absl::Status Copier::RemoveTargetIfNeeded(const std::string& name, const struct stat& src,
                                          const std::optional<struct stat>& target,
                                          const std::string& display) {
  if (!opts_.always_replace || !target) return absl::OkStatus();
  if (S_ISDIR(src.st_mode) && S_ISDIR(target->st_mode)) return absl::OkStatus();  // merged
  if (name.empty()) {
    return absl::FailedPreconditionError(absl::StrCat("cannot replace directory ", display));
  }
  if (int e = RemoveAllAt(DestDir(), name); e != 0) {
    return Failed(e, "failed to remove", "unlinkat", display);
  }
  return absl::OkStatus();
}

absl::Status Copier::EnsureEmptyFileTarget(const std::string& name, const std::string& display) {
  struct stat st;
  int e = name.empty() ? 0 : LstatAt(DestDir(), name, &st);
  if (e == ENOENT) return absl::OkStatus();
  if (e != 0) return Failed(e, "failed to lstat file target:", "lstat", display);
  if (name.empty() || S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot replace to directory ", display, " with file"));
  }
  if (unlinkat(DestDir(), name.c_str(), 0) != 0 && errno != ENOENT) {
    return Failed(errno, "failed to remove", "unlinkat", display);
  }
  return absl::OkStatus();
}

absl::Status Copier::CopyRegular(int src_dir, const std::string& src_name, const struct stat& st,
                                 const std::string& name, const Names& n) {
  if (st.st_nlink > 1) {
    const std::pair<dev_t, ino_t> key{st.st_dev, st.st_ino};
    auto it = inodes_.find(key);
    if (it != inodes_.end()) {
      // A later name of a multiply-linked file: link it to the first copy. That copy lives in
      // directories this copy made or merged into, so no symlink may be on the way.
      const std::string dir = fsutil::DirPath(it->second);
      const std::string base = fsutil::BasePath(it->second);
      int err = 0;
      UniqueFd pd(OpenBeneathNoSymlinks(frames_[0].dst_fd.get(), dir == "." ? "" : dir,
                                        O_PATH | O_DIRECTORY, &err));
      if (pd.valid() && linkat(pd.get(), base.c_str(), DestDir(), name.c_str(), 0) == 0) {
        return absl::OkStatus();
      }
      if (pd.valid()) err = errno;
      return ErrnoStatus(err, absl::StrCat("failed to create hard link: link ", it->second, " ",
                                           n.dst_display, ": ", ErrnoText(err)));
    }
    inodes_.emplace(key, n.dst_rel);
  }

  UniqueFd in(
      openat(src_dir, src_name.c_str(), O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK | O_CLOEXEC));
  if (!in.valid()) return Failed(errno, "failed to open source", "open", n.src_display);
  struct stat ist;
  if (fstat(in.get(), &ist) != 0 || !S_ISREG(ist.st_mode) || ist.st_ino != st.st_ino) {
    return absl::AbortedError(
        absl::StrCat("failed to copy files: ", n.src_display, " changed during the copy"));
  }
  UniqueFd out(
      openat(DestDir(), name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!out.valid()) return Failed(errno, "failed to open target", "open", n.dst_display);
  return CopyContents(in.get(), out.get(), n.src_display, n.dst_display);
}

absl::Status Copier::CopyFileInfo(const struct stat& st, int dir, const std::string& name,
                                  const std::string& display) {
  const uid_t uid = opts_.owner ? opts_.owner->uid : st.st_uid;
  const gid_t gid = opts_.owner ? opts_.owner->gid : st.st_gid;
  if (int e = ChownAt(dir, name, uid, gid); e != 0) {
    return Failed(e, "failed to chown", "lchown", display);
  }
  mode_t mode = st.st_mode & 07777;
  if (opts_.mode_set) {
    mode = opts_.mode_set->Apply(st.st_mode);
  } else if (opts_.mode) {
    mode = static_cast<mode_t>(*opts_.mode) & 07777;
  }
  if (!S_ISLNK(st.st_mode)) {
    // After chown, which clears set-id bits.
    if (int e = ChmodAt(dir, name, mode); e != 0) {
      return Failed(e, "failed to chmod", "chmod", display);
    }
  }
  return CopyFileTimestamp(st, dir, name, display);
}

absl::Status Copier::CopyFileTimestamp(const struct stat& st, int dir, const std::string& name,
                                       const std::string& display) {
  struct timespec times[2] = {st.st_atim, st.st_mtim};
  if (opts_.time) {
    times[0] = *opts_.time;
    times[1] = *opts_.time;
  }
  if (int e = UtimesAt(dir, name, times); e != 0) {
    return Failed(e, "failed to utime", "utimensat", display);
  }
  return absl::OkStatus();
}

}  // namespace kiln::ops::internal
