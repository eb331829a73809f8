#include "daemon/snapshot/diff.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <functional>
#include <map>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "base/status.h"

namespace kiln::snapshot {
namespace fs = std::filesystem;
namespace {

bool Stat(const fs::path& p, struct stat* st) { return ::lstat(p.c_str(), st) == 0; }

std::string LinkTarget(const fs::path& p) {
  std::error_code ec;
  return fs::read_symlink(p, ec).string();
}

bool Same(const fs::path& a, const struct stat& sa, const fs::path& b, const struct stat& sb) {
  if ((sa.st_mode & S_IFMT) != (sb.st_mode & S_IFMT)) return false;
  if ((sa.st_mode & 07777) != (sb.st_mode & 07777)) return false;
  if (sa.st_uid != sb.st_uid || sa.st_gid != sb.st_gid) return false;
  if (S_ISDIR(sa.st_mode)) return true;  // a directory's contents are compared entry by entry
  if (sa.st_size != sb.st_size) return false;
  if (sa.st_mtim.tv_sec != sb.st_mtim.tv_sec || sa.st_mtim.tv_nsec != sb.st_mtim.tv_nsec) {
    return false;
  }
  if (S_ISLNK(sa.st_mode)) return LinkTarget(a) == LinkTarget(b);
  if (S_ISCHR(sa.st_mode) || S_ISBLK(sa.st_mode)) return sa.st_rdev == sb.st_rdev;
  return true;
}

absl::Status CopyOne(const fs::path& src, const fs::path& dst, const struct stat& st) {
  std::error_code ec;
  if (S_ISDIR(st.st_mode)) {
    if (::mkdir(dst.c_str(), st.st_mode & 07777) != 0 && errno != EEXIST) {
      return ErrnoToStatus(errno, absl::StrCat("mkdir ", dst.string()));
    }
    ::chmod(dst.c_str(), st.st_mode & 07777);
  } else if (S_ISLNK(st.st_mode)) {
    if (::symlink(LinkTarget(src).c_str(), dst.c_str()) != 0) {
      return ErrnoToStatus(errno, absl::StrCat("symlink ", dst.string()));
    }
  } else if (S_ISREG(st.st_mode)) {
    fs::copy_file(src, dst, fs::copy_options::overwrite_existing, ec);
    if (ec) return absl::InternalError(absl::StrCat("copy ", src.string(), ": ", ec.message()));
    ::chmod(dst.c_str(), st.st_mode & 07777);
  } else if (::mknod(dst.c_str(), st.st_mode, st.st_rdev) != 0) {
    return ErrnoToStatus(errno, absl::StrCat("mknod ", dst.string()));
  }
  ::lchown(dst.c_str(), st.st_uid, st.st_gid);
  struct timespec times[2] = {st.st_atim, st.st_mtim};
  ::utimensat(AT_FDCWD, dst.c_str(), times, AT_SYMLINK_NOFOLLOW);
  return absl::OkStatus();
}

std::set<std::string> Names(const fs::path& dir) {
  std::set<std::string> out;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    out.insert(it->path().filename().string());
  }
  return out;
}

// Diffs directory `rel`, which exists in upper. The layer gets its own copy of `rel` only
// when something below it changed; `ensure_parent` creates the layer's copies of the
// directories above first. Returns whether anything changed.
absl::StatusOr<bool> DiffDir(const fs::path& lower, const fs::path& upper, const fs::path& layer,
                             const fs::path& rel, bool lower_exists,
                             const std::function<absl::Status()>& ensure_parent) {
  bool created = false;
  auto ensure_dir = [&]() -> absl::Status {
    if (created) return absl::OkStatus();
    KILN_RETURN_IF_ERROR(ensure_parent());
    created = true;
    if (rel.empty()) return absl::OkStatus();  // the layer root itself
    struct stat st;
    if (!Stat(upper / rel, &st)) return ErrnoToStatus(errno, absl::StrCat("stat ", rel.string()));
    return CopyOne(upper / rel, layer / rel, st);
  };
  std::set<std::string> up = Names(upper / rel);
  std::set<std::string> low = lower_exists ? Names(lower / rel) : std::set<std::string>{};
  for (const std::string& name : low) {
    if (up.contains(name)) continue;
    KILN_RETURN_IF_ERROR(ensure_dir());
    fs::path w = layer / rel / name;
    if (::mknod(w.c_str(), S_IFCHR | 0, makedev(0, 0)) != 0) {
      return ErrnoToStatus(errno, absl::StrCat("whiteout ", w.string()));
    }
  }
  for (const std::string& name : up) {
    fs::path child = rel / name;
    struct stat su, sl;
    if (!Stat(upper / child, &su)) {
      return ErrnoToStatus(errno, absl::StrCat("stat ", child.string()));
    }
    bool in_lower = low.contains(name) && Stat(lower / child, &sl);
    if (in_lower && Same(lower / child, sl, upper / child, su)) {
      if (S_ISDIR(su.st_mode)) {
        KILN_RETURN_IF_ERROR(DiffDir(lower, upper, layer, child, true, ensure_dir).status());
      }
      continue;
    }
    KILN_RETURN_IF_ERROR(ensure_dir());
    KILN_RETURN_IF_ERROR(CopyOne(upper / child, layer / child, su));
    if (S_ISDIR(su.st_mode)) {
      // A directory that replaces a non-directory (or is new) brings everything below it.
      bool compare_below = in_lower && S_ISDIR(sl.st_mode);
      auto exists = []() { return absl::OkStatus(); };
      KILN_RETURN_IF_ERROR(DiffDir(lower, upper, layer, child, compare_below, exists).status());
      struct timespec times[2] = {su.st_atim, su.st_mtim};
      ::utimensat(AT_FDCWD, (layer / child).c_str(), times, AT_SYMLINK_NOFOLLOW);
    }
  }
  if (created && !rel.empty()) {
    struct stat st;
    if (Stat(upper / rel, &st)) {
      struct timespec times[2] = {st.st_atim, st.st_mtim};
      ::utimensat(AT_FDCWD, (layer / rel).c_str(), times, AT_SYMLINK_NOFOLLOW);
    }
  }
  return created;
}

}  // namespace

absl::Status ComputeDiff(const fs::path& lower, const fs::path& upper, const fs::path& layer) {
  auto root = []() { return absl::OkStatus(); };
  return DiffDir(lower, upper, layer, "", true, root).status();
}

}  // namespace kiln::snapshot
