#include "daemon/ops/read_ref.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "daemon/ops/internal/root_fs.h"
#include "fsutil/patterns.h"
#include "fsutil/stat.h"

namespace kiln::ops {
namespace {

using internal::Location;
using internal::UniqueFd;

absl::Status NotExist(const std::string& path) {
  return absl::NotFoundError(absl::StrCat(path, ": file does not exist"));
}

std::string FdPath(int fd) { return absl::StrCat("/proc/self/fd/", fd); }

// Runs `fn` with the root of a read-only view of `ref`'s tree.
template <typename T, typename Fn>
absl::StatusOr<T> WithRoot(const cache::ImmutableRef* ref, const std::string& path, Fn fn) {
  if (ref == nullptr) return NotExist(path);
  KILN_ASSIGN_OR_RETURN(snapshot::MountPtr mount, ref->Mount());
  absl::StatusOr<T> out = [&]() -> absl::StatusOr<T> {
    // Closed before the unmount, which it would otherwise keep busy.
    KILN_ASSIGN_OR_RETURN(UniqueFd root, internal::OpenRoot(mount->root().string()));
    return fn(root.get());
  }();
  absl::Status st = mount->Unmount();
  if (!out.ok()) return out;
  KILN_RETURN_IF_ERROR(st);
  return out;
}

absl::StatusOr<Location> Find(int root, const std::string& path) {
  internal::Resolved r = internal::ResolveRaw(root, path, /*follow_final=*/true);
  if (r.err == ENOENT) return NotExist(path);
  if (r.err != 0) return internal::ResolveError(r);
  return std::move(r.loc);
}

absl::StatusOr<::fsutil::types::Stat> StatLocation(const Location& loc, const std::string& path) {
  if (!loc.IsSelf()) {
    struct stat st;
    int err = internal::LstatAt(loc.dir.get(), loc.name, &st);
    if (err == ENOENT) return NotExist(path);
    if (err != 0) return internal::PathError(err, "lstat", path);
  }
  // The located entry, named relative to its (already confined) directory.
  return fsutil::StatPath(FdPath(loc.dir.get()), loc.IsSelf() ? "." : loc.name);
}

}  // namespace

absl::StatusOr<std::string> ReadFileInRef(const cache::ImmutableRef* ref, const std::string& path,
                                          std::optional<ByteRange> range, int64_t max_bytes) {
  if (range && (range->offset < 0 || range->length < 0)) {
    return absl::InvalidArgumentError(absl::StrCat("invalid range for ", path, ": offset ",
                                                   range->offset, ", length ", range->length));
  }
  return WithRoot<std::string>(ref, path, [&](int root) -> absl::StatusOr<std::string> {
    KILN_ASSIGN_OR_RETURN(Location loc, Find(root, path));
    int fd = loc.IsSelf() ? openat(loc.dir.get(), ".", O_RDONLY | O_CLOEXEC)
                          : openat(loc.dir.get(), loc.name.c_str(),
                                   O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
      if (errno == ENOENT) return NotExist(path);
      return internal::PathError(errno == ELOOP ? ENOENT : errno, "open", path);
    }
    UniqueFd file(fd);
    struct stat st;
    if (fstat(fd, &st) != 0) return internal::PathError(errno, "stat", path);
    if (S_ISDIR(st.st_mode)) return internal::PathError(EISDIR, "read", path);
    if (!S_ISREG(st.st_mode)) {
      return absl::FailedPreconditionError(absl::StrCat("read ", path, ": not a regular file"));
    }
    int64_t offset = range ? range->offset : 0;
    int64_t want = range ? range->length : st.st_size;
    if (offset >= st.st_size) return std::string();
    want = std::min<int64_t>(want, st.st_size - offset);
    if (want > max_bytes) {
      return absl::ResourceExhaustedError(absl::StrCat("read ", path, ": ", want,
                                                       " bytes is more than the limit of ",
                                                       max_bytes, "; ask for a range"));
    }
    std::string out(static_cast<size_t>(want), '\0');
    size_t got = 0;
    while (got < out.size()) {
      ssize_t n = pread(fd, out.data() + got, out.size() - got, offset + static_cast<off_t>(got));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return internal::PathError(errno, "read", path);
      if (n == 0) break;  // the file shrank
      got += static_cast<size_t>(n);
    }
    out.resize(got);
    return out;
  });
}

absl::StatusOr<std::vector<::fsutil::types::Stat>> ReadDirInRef(const cache::ImmutableRef* ref,
                                                                const std::string& path,
                                                                const std::string& include) {
  fsutil::PatternMatcher matcher;
  if (!include.empty()) {
    KILN_ASSIGN_OR_RETURN(matcher, fsutil::PatternMatcher::Create({include}));
  }
  using Stats = std::vector<::fsutil::types::Stat>;
  return WithRoot<Stats>(ref, path, [&](int root) -> absl::StatusOr<Stats> {
    KILN_ASSIGN_OR_RETURN(Location loc, Find(root, path));
    int err = 0;
    int fd = internal::OpenDirAt(loc.dir.get(), loc.name, O_RDONLY, &err);
    if (fd < 0) return internal::PathError(err, "open", path);
    UniqueFd dir(fd);
    std::vector<std::string> names;
    err = internal::ReadDirNames(dir.get(), &names);
    if (err != 0) return internal::PathError(err, "readdir", path);
    Stats out;
    for (const std::string& name : names) {
      if (!matcher.empty()) {
        KILN_ASSIGN_OR_RETURN(bool keep, matcher.MatchesOrParentMatches(name));
        if (!keep) continue;
      }
      absl::StatusOr<::fsutil::types::Stat> st = fsutil::StatPath(FdPath(dir.get()), name);
      if (absl::IsNotFound(st.status())) continue;  // removed meanwhile (cannot happen: ro view)
      if (!st.ok()) return st.status();
      out.push_back(*std::move(st));
    }
    return out;
  });
}

absl::StatusOr<::fsutil::types::Stat> StatFileInRef(const cache::ImmutableRef* ref,
                                                    const std::string& path) {
  using Stat = ::fsutil::types::Stat;
  return WithRoot<Stat>(ref, path, [&](int root) -> absl::StatusOr<Stat> {
    KILN_ASSIGN_OR_RETURN(Location loc, Find(root, path));
    KILN_ASSIGN_OR_RETURN(Stat st, StatLocation(loc, path));
    std::string clean = internal::AbsClean(path);
    st.set_path(clean == "/" ? "/" : clean.substr(clean.rfind('/') + 1));
    return st;
  });
}

}  // namespace kiln::ops
