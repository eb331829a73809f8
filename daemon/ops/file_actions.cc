#include "daemon/ops/file_actions.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <optional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status.h"
#include "daemon/ops/internal/copier.h"
#include "daemon/ops/internal/mode_set.h"
#include "daemon/ops/internal/owner.h"
#include "daemon/ops/internal/root_fs.h"
#include "daemon/ops/internal/unpack.h"
#include "daemon/ops/internal/wildcards.h"
#include "fsutil/paths.h"
#include "fsutil/patterns.h"

namespace kiln::ops {
namespace {

using internal::AbsClean;
using internal::ChmodAt;
using internal::ChownAt;
using internal::CopyOptions;
using internal::CreatedDir;
using internal::ErrnoStatus;
using internal::ErrnoText;
using internal::Location;
using internal::MkdirOptions;
using internal::Owner;
using internal::PathError;
using internal::Resolved;
using internal::ResolveRaw;
using internal::UniqueFd;
using internal::UtimesAt;

// BuildKit's timestampToTime: -1 is unset, anything else unix nanoseconds.
std::optional<struct timespec> Timestamp(int64_t ts) {
  if (ts == -1) return std::nullopt;
  int64_t sec = ts / 1000000000;
  int64_t nsec = ts % 1000000000;
  if (nsec < 0) {
    nsec += 1000000000;
    sec -= 1;
  }
  return timespec{static_cast<time_t>(sec), static_cast<long>(nsec)};
}

// BuildKit's cleanPath: absolute and cleaned, but a trailing "/" or "/." survives, because it
// changes what a copy means ("dir/." is the directory's contents).
std::string CleanKeepTrailing(std::string_view s) {
  std::string out = AbsClean(s);
  if (s.size() >= 2 && s.substr(s.size() - 2) == "/.") {
    if (out != "/") out += "/";
    out += ".";
  } else if (!s.empty() && s.back() == '/' && out != "/") {
    out += "/";
  }
  return out;
}

absl::StatusOr<std::optional<Owner>> OwnerFor(bool has_owner, const pb::ChownOpt& chopt,
                                              const std::string& root, const OwnerRoots& roots) {
  return internal::ResolveOwner(has_owner, chopt, roots.user_root.empty() ? root : roots.user_root,
                                roots.group_root.empty() ? root : roots.group_root);
}

// Owner and timestamp for an entry just made by mkdir/mkfile/symlink.
absl::Status ApplyOwnerAndTime(int dir, const std::string& name, const std::string& display,
                               const std::optional<Owner>& owner,
                               const std::optional<struct timespec>& time) {
  if (owner) {
    if (int e = ChownAt(dir, name, owner->uid, owner->gid); e != 0) {
      return PathError(e, "lchown", display);
    }
  }
  if (time) {
    const struct timespec times[2] = {*time, *time};
    if (int e = UtimesAt(dir, name, times); e != 0) {
      return ErrnoStatus(e, absl::StrCat("failed to utime ", display, ": ", ErrnoText(e)));
    }
  }
  return absl::OkStatus();
}

absl::Status MkdirImpl(const std::string& root, const std::string& path,
                       const pb::FileActionMkDir& a, const OwnerRoots& roots) {
  KILN_ASSIGN_OR_RETURN(UniqueFd root_fd, internal::OpenRoot(root));
  KILN_ASSIGN_OR_RETURN(std::optional<Owner> owner,
                        OwnerFor(a.has_owner(), a.owner(), root, roots));
  const std::optional<struct timespec> time = Timestamp(a.timestamp());
  const mode_t mode = static_cast<mode_t>(a.mode()) & 0777;
  if (a.makeparents()) {
    MkdirOptions opts;
    opts.mode = mode;
    opts.owner = owner;
    opts.time = time;
    return internal::MkdirAll(root_fd.get(), path, opts, nullptr).status();
  }
  Resolved r = ResolveRaw(root_fd.get(), path, /*follow_final=*/true);
  if (r.err != 0) return internal::ResolveError(r);
  if (r.loc.IsSelf()) return absl::OkStatus();  // exists; BuildKit ignores EEXIST
  const int dir = r.loc.dir.get();
  if (mkdirat(dir, r.loc.name.c_str(), mode) != 0) {
    if (errno == EEXIST) return absl::OkStatus();
    return PathError(errno, "mkdir", path);
  }
  if (int e = ChmodAt(dir, r.loc.name, mode); e != 0) return PathError(e, "chmod", path);
  return ApplyOwnerAndTime(dir, r.loc.name, path, owner, time);
}

absl::Status WriteAll(int fd, const std::string& data, const std::string& display) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return PathError(errno, "write", display);
    }
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::Status MkfileImpl(const std::string& root, const std::string& path,
                        const pb::FileActionMkFile& a, const OwnerRoots& roots) {
  KILN_ASSIGN_OR_RETURN(UniqueFd root_fd, internal::OpenRoot(root));
  KILN_ASSIGN_OR_RETURN(std::optional<Owner> owner,
                        OwnerFor(a.has_owner(), a.owner(), root, roots));
  const std::optional<struct timespec> time = Timestamp(a.timestamp());
  Resolved r = ResolveRaw(root_fd.get(), path, /*follow_final=*/true);
  if (r.err != 0) return internal::ResolveError(r);
  if (r.loc.IsSelf()) return PathError(EISDIR, "open", path);
  const int dir = r.loc.dir.get();
  const char* name = r.loc.name.c_str();

  bool created = true;
  UniqueFd fd(openat(dir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd.valid() && errno == EEXIST) {
    // os.WriteFile on an existing file: truncate it, keep its mode. Only regular files: opening
    // a device node or FIFO found in a snapshot could block or reach host hardware.
    created = false;
    struct stat st;
    if (fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) != 0) return PathError(errno, "open", path);
    if (S_ISDIR(st.st_mode)) return PathError(EISDIR, "open", path);
    if (!S_ISREG(st.st_mode)) {
      return absl::FailedPreconditionError(absl::StrCat("open ", path, ": not a regular file"));
    }
    fd = UniqueFd(openat(dir, name, O_WRONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
    if (!fd.valid()) return PathError(errno, "open", path);
    struct stat fst;
    if (fstat(fd.get(), &fst) != 0 || !S_ISREG(fst.st_mode) || fst.st_ino != st.st_ino) {
      return absl::AbortedError(absl::StrCat("open ", path, ": changed while opening"));
    }
    if (ftruncate(fd.get(), 0) != 0) return PathError(errno, "truncate", path);
  } else if (!fd.valid()) {
    return PathError(errno, "open", path);
  }
  KILN_RETURN_IF_ERROR(WriteAll(fd.get(), a.data(), path));
  if (created && fchmod(fd.get(), static_cast<mode_t>(a.mode()) & 0777) != 0) {
    return PathError(errno, "chmod", path);
  }
  if (owner && fchown(fd.get(), owner->uid, owner->gid) != 0) {
    return PathError(errno, "lchown", path);
  }
  if (time) {
    const struct timespec times[2] = {*time, *time};
    if (futimens(fd.get(), times) != 0) {
      return ErrnoStatus(errno, absl::StrCat("failed to utime ", path, ": ", ErrnoText(errno)));
    }
  }
  return absl::OkStatus();
}

// BuildKit's rmPath for one (cleaned, absolute) path.
absl::Status RmPath(int root_fd, const std::string& path, bool allow_not_found) {
  if (path == "/") {
    return absl::InvalidArgumentError("invalid empty path: the root directory cannot be removed");
  }
  Resolved r = ResolveRaw(root_fd, path, /*follow_final=*/false);
  if (r.err == ENOENT) {
    if (allow_not_found) return absl::OkStatus();
    return PathError(ENOENT, "stat", path);
  }
  if (r.err != 0) return PathError(r.err, "stat", path);
  if (!allow_not_found) {
    // os.Stat: the last component is followed, so a dangling symlink counts as not found.
    Resolved f = ResolveRaw(root_fd, path, /*follow_final=*/true);
    struct stat st;
    const int e = f.err != 0 ? f.err : internal::LstatAt(f.loc.dir.get(), f.loc.name, &st);
    if (e == ENOENT) return PathError(ENOENT, "stat", path);
  }
  if (int e = internal::RemoveAllAt(r.loc.dir.get(), r.loc.name); e != 0) {
    return PathError(e, "unlinkat", path);
  }
  return absl::OkStatus();
}

absl::Status RmImpl(const std::string& root, const pb::FileActionRm& a) {
  KILN_ASSIGN_OR_RETURN(UniqueFd root_fd, internal::OpenRoot(root));
  if (!a.allowwildcard()) return RmPath(root_fd.get(), AbsClean(a.path()), a.allownotfound());
  KILN_ASSIGN_OR_RETURN(
      std::vector<std::string> matches,
      internal::ResolveWildcards(root_fd.get(), CleanKeepTrailing(a.path()), false));
  for (const std::string& m : matches) {
    KILN_RETURN_IF_ERROR(RmPath(root_fd.get(), AbsClean(m), a.allownotfound()));
  }
  return absl::OkStatus();
}

absl::Status SymlinkImpl(const std::string& root, const std::string& newpath,
                         const pb::FileActionSymlink& a, const OwnerRoots& roots) {
  KILN_ASSIGN_OR_RETURN(UniqueFd root_fd, internal::OpenRoot(root));
  KILN_ASSIGN_OR_RETURN(std::optional<Owner> owner,
                        OwnerFor(a.has_owner(), a.owner(), root, roots));
  const std::optional<struct timespec> time = Timestamp(a.timestamp());
  Resolved r = ResolveRaw(root_fd.get(), newpath, /*follow_final=*/true);
  if (r.err != 0) return internal::ResolveError(r);
  const int err =
      r.loc.IsSelf()
          ? EEXIST
          : (symlinkat(a.oldpath().c_str(), r.loc.dir.get(), r.loc.name.c_str()) == 0 ? 0 : errno);
  if (err != 0) {
    return ErrnoStatus(err,
                       absl::StrCat("symlink ", a.oldpath(), " ", newpath, ": ", ErrnoText(err)));
  }
  return ApplyOwnerAndTime(r.loc.dir.get(), r.loc.name, newpath, owner, time);
}

// Everything one copy needs that is derived from the action once.
struct CopyPlan {
  CopyOptions opts;
  std::optional<fsutil::PatternMatcher> include;
  std::optional<fsutil::PatternMatcher> exclude;
  bool follow = false;
  bool contents = false;
  // Directories created for the destination path get this mode: the numeric override if
  // there is one (fsutil passes ci.Mode to MkdirAll), else 0755.
  MkdirOptions dir_opts;
};

std::string GoListString(const google::protobuf::RepeatedPtrField<std::string>& items) {
  return absl::StrCat("[", absl::StrJoin(items, " "), "]");
}

// Go's filepath.Split: everything up to and including the last '/', and the rest.
std::pair<std::string, std::string> SplitLast(const std::string& p) {
  const size_t i = p.rfind('/');
  if (i == std::string::npos) return {"", p};
  return {p.substr(0, i + 1), p.substr(i + 1)};
}

// BuildKit's unpack: if `s` names a tar archive in the source root, extracts it into the
// destination directory (created like MkdirAll(dest, 0755)) and returns true.
absl::StatusOr<bool> MaybeUnpack(const Context& ctx, int src_root, const std::string& s,
                                 int dst_root, const std::string& dest_path, const CopyPlan& plan) {
  Resolved r = ResolveRaw(src_root, AbsClean(s), /*follow_final=*/true);
  if (r.err != 0 || r.loc.IsSelf()) return false;
  struct stat st;
  if (internal::LstatAt(r.loc.dir.get(), r.loc.name, &st) != 0 || !S_ISREG(st.st_mode)) {
    return false;
  }
  UniqueFd file(openat(r.loc.dir.get(), r.loc.name.c_str(),
                       O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
  if (!file.valid()) return false;
  struct stat fst;
  if (fstat(file.get(), &fst) != 0 || !S_ISREG(fst.st_mode)) return false;
  KILN_ASSIGN_OR_RETURN(bool is_tar, internal::IsTarArchive(file.get()));
  if (!is_tar) return false;

  const std::string dest = fsutil::CleanPath(dest_path);
  MkdirOptions opts;
  opts.mode = 0755;
  opts.owner = plan.opts.owner;
  opts.time = plan.opts.time;
  KILN_ASSIGN_OR_RETURN(UniqueFd dest_dir, internal::MkdirAll(dst_root, dest, opts, nullptr));
  KILN_RETURN_IF_ERROR(
      internal::ExtractTar(ctx, file.get(), dest_dir.get(), plan.opts.owner, dest));
  return true;
}

// fsutil's copy.Copy for one source path `s` (already wildcard-expanded) to `dest_path`.
absl::Status CopyOne(const Context& ctx, int src_root, const std::string& s, int dst_root,
                     const std::string& dest_path, const CopyPlan& plan,
                     std::vector<CreatedDir>* created) {
  // The destination's directory (or the destination itself for "dir/" and "dir/.") is made
  // first, with createDestPath or not.
  {
    auto [d, f] = SplitLast(dest_path);
    const std::string ensure = (!f.empty() && f != ".") ? d : dest_path;
    KILN_RETURN_IF_ERROR(
        internal::MkdirAll(dst_root, fsutil::CleanPath(ensure), plan.dir_opts, created).status());
  }
  const std::string dest = fsutil::CleanPath(dest_path);
  Resolved dr = ResolveRaw(dst_root, dest, /*follow_final=*/true);

  const std::string src_display = AbsClean(s);
  Resolved sr = ResolveRaw(src_root, src_display, plan.follow);
  struct stat src_st;
  int src_err = sr.err;
  if (src_err == 0) src_err = internal::LstatAt(sr.loc.dir.get(), sr.loc.name, &src_st);
  if (src_err != 0) {
    // A source that is a symlink to something missing: say so, since links are resolved
    // inside the source (a context's link out of it leads nowhere).
    Resolved link = ResolveRaw(src_root, src_display, /*follow_final=*/false);
    struct stat lst;
    std::string target;
    if (src_err == ENOENT && plan.follow && link.err == 0 &&
        internal::LstatAt(link.loc.dir.get(), link.loc.name, &lst) == 0 && S_ISLNK(lst.st_mode) &&
        internal::ReadLinkAt(link.loc.dir.get(), link.loc.name, &target) == 0) {
      return absl::NotFoundError(absl::StrCat(src_display, " is a symlink to ", target,
                                              ", which is not in the source (links are "
                                              "followed only inside it)"));
    }
    return PathError(src_err, "lstat", src_display);
  }

  std::optional<struct stat> dest_st;
  if (dr.err == 0) {
    struct stat st;
    int e = internal::LstatAt(dr.loc.dir.get(), dr.loc.name, &st);
    if (e == 0) {
      dest_st = st;
    } else if (e != ENOENT) {
      return ErrnoStatus(
          e, absl::StrCat("failed to lstat destination path: stat ", dest, ": ", ErrnoText(e)));
    }
  } else if (dr.err != ENOENT) {
    return ErrnoStatus(dr.err, absl::StrCat("failed to lstat destination path: stat ", dest, ": ",
                                            ErrnoText(dr.err)));
  }

  const bool src_dir = S_ISDIR(src_st.st_mode);
  const bool into =
      (!plan.contents && src_dir && dest_st) || (!src_dir && dest_st && S_ISDIR(dest_st->st_mode));
  std::string dst_display = dest;
  Location target;
  if (into) {
    // Copy into the existing destination directory, under the source's base name; "dir/." and
    // "/" have none and land in the directory itself.
    if (!S_ISDIR(dest_st->st_mode)) return PathError(ENOTDIR, "mkdir", dest);
    const std::string base = fsutil::BasePath(s);
    int err = 0;
    UniqueFd dir(internal::OpenDirAt(dr.loc.dir.get(), dr.loc.name, O_PATH, &err));
    if (!dir.valid()) return PathError(err, "open", dest);
    if (base == "." || base == "/") {
      target = Location{std::move(dir), ""};
    } else {
      target = Location{std::move(dir), base};
      dst_display = fsutil::JoinPath({dest, base});
    }
  } else {
    if (plan.contents && src_dir && !dest_st) {
      // The destination becomes the directory whose contents are copied.
      KILN_RETURN_IF_ERROR(internal::MkdirAll(dst_root, dest, plan.dir_opts, created).status());
      dr = ResolveRaw(dst_root, dest, /*follow_final=*/true);
    } else if (dr.err == ENOENT) {
      // The destination's parent is missing (it sits behind a dangling symlink): make it.
      KILN_RETURN_IF_ERROR(
          internal::MkdirAll(dst_root, dr.failed_dir, plan.dir_opts, created).status());
      dr = ResolveRaw(dst_root, dest, /*follow_final=*/true);
    }
    if (dr.err != 0) return internal::ResolveError(dr);
    target = std::move(dr.loc);
  }

  internal::Copier copier(ctx, plan.opts);
  return copier.Run(sr.loc, src_display, target.dir.get(), target.name, dst_display);
}

absl::Status CopyImpl(const Context& ctx, const std::string& src_root, const std::string& dest_root,
                      const pb::FileActionCopy& a, const OwnerRoots& roots) {
  KILN_ASSIGN_OR_RETURN(UniqueFd src_fd, internal::OpenRoot(src_root));
  KILN_ASSIGN_OR_RETURN(UniqueFd dst_fd, internal::OpenRoot(dest_root));
  const std::string src_path = CleanKeepTrailing(a.src());
  const std::string dest_path = CleanKeepTrailing(a.dest());

  // Everything that can be rejected is checked before the destination is touched.
  CopyPlan plan;
  KILN_ASSIGN_OR_RETURN(plan.opts.owner, OwnerFor(a.has_owner(), a.owner(), dest_root, roots));
  plan.opts.time = Timestamp(a.timestamp());
  if (!a.modestr().empty()) {
    KILN_ASSIGN_OR_RETURN(plan.opts.mode_set, internal::ModeSet::Parse(a.modestr()));
  } else if (a.mode() != -1) {
    plan.opts.mode = a.mode();
  }
  plan.opts.always_replace = a.alwaysreplaceexistingdestpaths();
  if (a.include_patterns_size() > 0) {
    std::vector<std::string> patterns(a.include_patterns().begin(), a.include_patterns().end());
    absl::StatusOr<fsutil::PatternMatcher> m = fsutil::PatternMatcher::Create(patterns);
    if (!m.ok()) {
      return Annotate(m.status(), absl::StrCat("invalid includepatterns: ",
                                               GoListString(a.include_patterns())));
    }
    plan.include = std::move(*m);
    plan.opts.include = &*plan.include;
  }
  if (a.exclude_patterns_size() > 0) {
    std::vector<std::string> patterns(a.exclude_patterns().begin(), a.exclude_patterns().end());
    absl::StatusOr<fsutil::PatternMatcher> m = fsutil::PatternMatcher::Create(patterns);
    if (!m.ok()) {
      return Annotate(m.status(), absl::StrCat("invalid excludepatterns: ",
                                               GoListString(a.exclude_patterns())));
    }
    plan.exclude = std::move(*m);
    plan.opts.exclude = &*plan.exclude;
  }
  plan.follow = a.followsymlink();
  plan.contents = a.dircopycontents();
  plan.dir_opts.mode = plan.opts.mode ? static_cast<mode_t>(*plan.opts.mode) & 0777 : 0755;
  plan.dir_opts.owner = plan.opts.owner;
  plan.dir_opts.time = plan.opts.time;

  if (!a.createdestpath()) {
    Resolved r = ResolveRaw(dst_fd.get(), AbsClean(a.dest()), /*follow_final=*/true);
    if (r.err != 0) {
      return ErrnoStatus(r.err, absl::StrCat("failed to stat ", a.dest(), ": lstat ", r.failed_dir,
                                             ": ", ErrnoText(r.err)));
    }
  }

  for (const std::string& required : a.required_paths()) {
    const std::string path = AbsClean(required);
    Resolved r = ResolveRaw(src_fd.get(), path, a.followsymlink());
    struct stat st;
    int err = r.err;
    if (err == 0 && !r.loc.IsSelf() &&
        ::fstatat(r.loc.dir.get(), r.loc.name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      err = errno;
    }
    if (err != 0) {
      return ErrnoStatus(err, absl::StrCat("\"", path, "\": not found (", ErrnoText(err), ")"));
    }
  }

  std::vector<std::string> sources;
  if (!a.allowwildcard()) {
    sources.push_back(src_path);
  } else {
    KILN_ASSIGN_OR_RETURN(sources,
                          internal::ResolveWildcards(src_fd.get(), src_path, a.followsymlink()));
    if (sources.empty()) {
      if (a.allowemptywildcard()) return absl::OkStatus();
      return absl::NotFoundError("no source files were specified");
    }
  }

  for (const std::string& s : sources) {
    if (a.attemptunpackdockercompatibility()) {
      KILN_ASSIGN_OR_RETURN(bool unpacked,
                            MaybeUnpack(ctx, src_fd.get(), s, dst_fd.get(), dest_path, plan));
      if (unpacked) continue;
    }
    std::vector<CreatedDir> created;
    absl::Status status = CopyOne(ctx, src_fd.get(), s, dst_fd.get(), dest_path, plan, &created);
    // Creating entries inside the directories made for the destination changed their times;
    // fsutil puts the requested timestamp back (even when the copy failed).
    if (plan.opts.time) internal::FixCreatedDirTimes(created, *plan.opts.time);
    KILN_RETURN_IF_ERROR(status);
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status Mkdir(const std::string& root, const pb::FileActionMkDir& a,
                   const OwnerRoots& owner_roots) {
  const std::string path = AbsClean(a.path());
  return Annotate(MkdirImpl(root, path, a, owner_roots), absl::StrCat("mkdir ", path));
}

absl::Status Mkfile(const std::string& root, const pb::FileActionMkFile& a,
                    const OwnerRoots& owner_roots) {
  const std::string path = AbsClean(a.path());
  return Annotate(MkfileImpl(root, path, a, owner_roots), absl::StrCat("mkfile ", path));
}

absl::Status Rm(const std::string& root, const pb::FileActionRm& a) {
  return Annotate(RmImpl(root, a), absl::StrCat("rm ", AbsClean(a.path())));
}

absl::Status Symlink(const std::string& root, const pb::FileActionSymlink& a,
                     const OwnerRoots& owner_roots) {
  const std::string newpath = AbsClean(a.newpath());
  return Annotate(SymlinkImpl(root, newpath, a, owner_roots), absl::StrCat("symlink ", newpath));
}

absl::Status Copy(const Context& ctx, const std::string& src_root, const std::string& dest_root,
                  const pb::FileActionCopy& a, const OwnerRoots& owner_roots) {
  return Annotate(CopyImpl(ctx, src_root, dest_root, a, owner_roots),
                  absl::StrCat("copy ", CleanKeepTrailing(a.src())));
}

}  // namespace kiln::ops
