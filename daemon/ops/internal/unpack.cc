#include "daemon/ops/internal/unpack.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "fsutil/paths.h"

namespace kiln::ops::internal {
namespace {

struct ArchiveFree {
  void operator()(struct archive* a) const { archive_read_free(a); }
};
using ArchivePtr = std::unique_ptr<struct archive, ArchiveFree>;

// A reader for tar, optionally compressed the ways moby/go-archive's DecompressStream knows.
// Filters that libarchive would implement by running an external program are refused: the
// daemon must not spawn decompressors on untrusted input behind our back.
absl::StatusOr<ArchivePtr> NewTarReader() {
  ArchivePtr a(archive_read_new());
  if (!a) return absl::ResourceExhaustedError("libarchive: out of memory");
  struct Filter {
    const char* name;
    int (*enable)(struct archive*);
  };
  const Filter filters[] = {{"gzip", archive_read_support_filter_gzip},
                            {"bzip2", archive_read_support_filter_bzip2},
                            {"xz", archive_read_support_filter_xz},
                            {"zstd", archive_read_support_filter_zstd}};
  for (const Filter& f : filters) {
    if (f.enable(a.get()) != ARCHIVE_OK) {
      return absl::FailedPreconditionError(
          absl::StrCat("libarchive cannot decompress ", f.name, " by itself"));
    }
  }
  if (archive_read_support_format_tar(a.get()) != ARCHIVE_OK) {
    return absl::FailedPreconditionError("libarchive has no tar support");
  }
  return a;
}

std::string ArchiveError(struct archive* a) {
  const char* msg = archive_error_string(a);
  return msg != nullptr ? msg : "unknown archive error";
}

// Prefers the UTF-8 form (pax headers) and falls back to the raw bytes (old ustar names in
// another encoding), as Go's archive/tar passes names through unchanged.
const char* EntryString(const char* utf8, const char* raw) { return utf8 != nullptr ? utf8 : raw; }

// An archive path as a path relative to the extraction root: cleaned as if the root were "/"
// (chrootarchive), so "../x", "/x" and "./x" are all "x"; "" is the root itself.
std::string RootRelative(std::string_view name) {
  std::string p = AbsClean(name);
  return p == "/" ? std::string() : p.substr(1);
}

// moby/go-archive's boundTime: times before the epoch become the epoch.
struct timespec Bound(int64_t sec, long nsec) {
  if (sec < 0) return {0, 0};
  return {static_cast<time_t>(sec), nsec};
}

bool Before(int64_t s1, long n1, int64_t s2, long n2) { return s1 < s2 || (s1 == s2 && n1 < n2); }

// Writes the entries of one archive below `root` (the extraction directory, used as the root of
// every path) and remembers directory times to set once everything is in place. Borrows all
// its arguments; one per ExtractTar call; not thread-safe.
class Extractor {
 public:
  Extractor(const Context& ctx, int root, const std::optional<Owner>& owner,
            std::string_view display)
      : ctx_(ctx), root_(root), owner_(owner), display_(display) {}

  absl::Status Entry(struct archive* a, struct archive_entry* e);
  absl::Status FinishDirs();

 private:
  struct DirTimes {
    std::string rel;
    struct timespec times[2];
  };

  std::string Shown(const std::string& rel) const {
    return rel.empty() ? display_ : fsutil::JoinPath({display_, rel});
  }
  absl::Status EnsureParent(const std::string& rel);
  absl::Status WriteData(struct archive* a, struct archive_entry* e, const Location& loc,
                         const std::string& shown);

  const Context& ctx_;
  const int root_;
  const std::optional<Owner>& owner_;
  const std::string display_;
  std::vector<DirTimes> dirs_;
};

absl::Status Extractor::EnsureParent(const std::string& rel) {
  const std::string parent = fsutil::DirPath(rel);
  if (parent == ".") return absl::OkStatus();
  Resolved r = ResolveRaw(root_, parent, /*follow_final=*/false);
  struct stat st;
  const int err = r.err != 0 ? r.err : LstatAt(r.loc.dir.get(), r.loc.name, &st);
  if (err != ENOENT) return absl::OkStatus();  // other problems surface when the entry is made
  // Implied directories (tar allows files without entries for their parents): 0755, root-owned,
  // only the new ones, like go-archive's createImpliedDirectories.
  MkdirOptions opts;
  opts.mode = 0755;
  opts.owner = Owner{0, 0};
  return MkdirAll(root_, parent, opts, nullptr).status();
}

absl::Status Extractor::WriteData(struct archive* a, struct archive_entry* e, const Location& loc,
                                  const std::string& shown) {
  UniqueFd fd(openat(loc.dir.get(), loc.name.c_str(),
                     O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd.valid()) return PathError(errno, "open", shown);
  int64_t end = 0;
  for (;;) {
    const void* buf = nullptr;
    size_t size = 0;
    la_int64_t offset = 0;
    const int rc = archive_read_data_block(a, &buf, &size, &offset);
    if (rc == ARCHIVE_EOF) break;
    if (rc != ARCHIVE_OK && rc != ARCHIVE_WARN) {
      return absl::DataLossError(absl::StrCat("read ", shown, ": ", ArchiveError(a)));
    }
    const char* p = static_cast<const char*>(buf);
    size_t left = size;
    off_t at = offset;
    while (left > 0) {
      ssize_t n = pwrite(fd.get(), p, left, at);
      if (n < 0) {
        if (errno == EINTR) continue;
        return PathError(errno, "write", shown);
      }
      p += n;
      left -= static_cast<size_t>(n);
      at += n;
    }
    end = std::max<int64_t>(end, offset + static_cast<int64_t>(size));
  }
  // Sparse entries may end in a hole.
  if (archive_entry_size_is_set(e) && archive_entry_size(e) > end) {
    if (ftruncate(fd.get(), archive_entry_size(e)) != 0) return PathError(errno, "truncate", shown);
  }
  return absl::OkStatus();
}

absl::Status Extractor::Entry(struct archive* a, struct archive_entry* e) {
  const char* raw_name = EntryString(archive_entry_pathname_utf8(e), archive_entry_pathname(e));
  if (raw_name == nullptr) return absl::DataLossError("archive entry without a name");
  const std::string rel = RootRelative(raw_name);
  const std::string shown = Shown(rel);
  const char* hardlink = EntryString(archive_entry_hardlink_utf8(e), archive_entry_hardlink(e));
  const mode_t type = archive_entry_filetype(e);
  const bool is_dir = hardlink == nullptr && type == AE_IFDIR;
  const mode_t perm = archive_entry_perm(e) & 07777;

  if (rel.empty()) {
    // The archive's own root ("./"): the extraction directory exists and is kept as it is.
    if (is_dir) return absl::OkStatus();
    return absl::InvalidArgumentError(
        absl::StrCat("archive entry \"", raw_name, "\" would replace the directory ", display_));
  }

  KILN_RETURN_IF_ERROR(EnsureParent(rel));
  Resolved r = ResolveRaw(root_, rel, /*follow_final=*/false);
  if (r.err != 0) return Annotate(ResolveError(r), absl::StrCat("extract ", shown));
  if (r.loc.IsSelf()) {
    return absl::InvalidArgumentError(absl::StrCat("extract ", shown, ": invalid entry name"));
  }
  const int dir = r.loc.dir.get();
  const std::string& name = r.loc.name;

  // An existing entry is replaced, unless both are directories: those merge.
  struct stat st;
  const bool exists = LstatAt(dir, name, &st) == 0;
  if (exists && !(S_ISDIR(st.st_mode) && is_dir)) {
    if (int err = RemoveAllAt(dir, name); err != 0) return PathError(err, "remove", shown);
  }

  bool is_symlink = false;
  if (hardlink != nullptr) {
    const std::string target_rel = RootRelative(hardlink);
    Resolved t = ResolveRaw(root_, target_rel, /*follow_final=*/false);
    const std::string target_shown = Shown(target_rel);
    if (t.err != 0) {
      return ErrnoStatus(t.err,
                         absl::StrCat("link ", target_shown, " ", shown, ": ", ErrnoText(t.err)));
    }
    const int err =
        t.loc.IsSelf()
            ? EPERM
            : (linkat(t.loc.dir.get(), t.loc.name.c_str(), dir, name.c_str(), 0) == 0 ? 0 : errno);
    if (err != 0) {
      return ErrnoStatus(err,
                         absl::StrCat("link ", target_shown, " ", shown, ": ", ErrnoText(err)));
    }
    struct stat lst;
    is_symlink = LstatAt(dir, name, &lst) == 0 && S_ISLNK(lst.st_mode);
  } else {
    switch (type) {
      case AE_IFDIR:
        if (!exists || !S_ISDIR(st.st_mode)) {
          if (mkdirat(dir, name.c_str(), perm) != 0) return PathError(errno, "mkdir", shown);
        }
        break;
      case AE_IFREG:
        KILN_RETURN_IF_ERROR(WriteData(a, e, r.loc, shown));
        break;
      case AE_IFLNK: {
        const char* target = EntryString(archive_entry_symlink_utf8(e), archive_entry_symlink(e));
        if (target == nullptr) return absl::DataLossError(absl::StrCat(shown, ": empty symlink"));
        // Stored verbatim: wherever it points, it is only ever resolved inside a root.
        if (symlinkat(target, dir, name.c_str()) != 0) return PathError(errno, "symlink", shown);
        is_symlink = true;
        break;
      }
      case AE_IFCHR:
      case AE_IFBLK:
      case AE_IFIFO:
        if (mknodat(dir, name.c_str(), perm | type, archive_entry_rdev(e)) != 0) {
          return PathError(errno, "mknod", shown);
        }
        break;
      default:
        return absl::InvalidArgumentError(absl::StrCat(
            "unhandled tar header type ", static_cast<unsigned>(type), " for ", shown));
    }
  }

  const auto uid = static_cast<uid_t>(owner_ ? owner_->uid : archive_entry_uid(e));
  const auto gid = static_cast<gid_t>(owner_ ? owner_->gid : archive_entry_gid(e));
  if (int err = ChownAt(dir, name, uid, gid); err != 0) {
    return ErrnoStatus(err, absl::StrCat("failed to Lchown \"", shown, "\" for UID ", uid, ", GID ",
                                         gid, ": ", ErrnoText(err)));
  }

  archive_entry_xattr_reset(e);
  const char* key = nullptr;
  const void* value = nullptr;
  size_t size = 0;
  while (archive_entry_xattr_next(e, &key, &value, &size) == ARCHIVE_OK) {
    if (key == nullptr) continue;
    const int err = SetXattrAt(dir, name, key, value, size);
    // Best effort where the filesystem or our privileges do not allow them (BestEffortXattrs).
    if (err != 0 && err != ENOTSUP && err != EPERM) {
      return ErrnoStatus(err, absl::StrCat("lsetxattr ", key, " ", shown, ": ", ErrnoText(err)));
    }
  }

  if (!is_symlink) {
    // After chown, which may clear set-id bits.
    if (int err = ChmodAt(dir, name, perm); err != 0) return PathError(err, "chmod", shown);
  }

  int64_t msec = archive_entry_mtime_is_set(e) ? archive_entry_mtime(e) : 0;
  long mnsec = archive_entry_mtime_is_set(e) ? archive_entry_mtime_nsec(e) : 0;
  int64_t asec = msec;
  long ansec = mnsec;
  if (archive_entry_atime_is_set(e) &&
      !Before(archive_entry_atime(e), archive_entry_atime_nsec(e), msec, mnsec)) {
    asec = archive_entry_atime(e);
    ansec = archive_entry_atime_nsec(e);
  }
  const struct timespec times[2] = {Bound(asec, ansec), Bound(msec, mnsec)};
  if (!(hardlink != nullptr && is_symlink)) {
    if (int err = UtimesAt(dir, name, times); err != 0) return PathError(err, "chtimes", shown);
  }
  // Directory times are set again at the end: creating entries inside changes them.
  if (is_dir) dirs_.push_back(DirTimes{rel, {times[0], times[1]}});
  return absl::OkStatus();
}

absl::Status Extractor::FinishDirs() {
  for (const DirTimes& d : dirs_) {
    KILN_RETURN_IF_ERROR(ctx_.Check("unpack"));
    Resolved r = ResolveRaw(root_, d.rel, /*follow_final=*/true);
    if (r.err != 0) return Annotate(ResolveError(r), absl::StrCat("chtimes ", Shown(d.rel)));
    if (int err = UtimesAt(r.loc.dir.get(), r.loc.name, d.times); err != 0) {
      return PathError(err, "chtimes", Shown(d.rel));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<bool> IsTarArchive(int fd) {
  KILN_ASSIGN_OR_RETURN(ArchivePtr a, NewTarReader());
  if (lseek(fd, 0, SEEK_SET) < 0) return false;
  if (archive_read_open_fd(a.get(), fd, 64 * 1024) != ARCHIVE_OK) return false;
  struct archive_entry* e = nullptr;
  const int rc = archive_read_next_header(a.get(), &e);
  return rc == ARCHIVE_OK || rc == ARCHIVE_WARN;
}

absl::Status ExtractTar(const Context& ctx, int fd, int dest_dir, const std::optional<Owner>& owner,
                        std::string_view display) {
  KILN_ASSIGN_OR_RETURN(ArchivePtr a, NewTarReader());
  if (lseek(fd, 0, SEEK_SET) < 0) return PathError(errno, "seek", "archive");
  if (archive_read_open_fd(a.get(), fd, 64 * 1024) != ARCHIVE_OK) {
    return absl::DataLossError(absl::StrCat("failed to read archive: ", ArchiveError(a.get())));
  }
  Extractor x(ctx, dest_dir, owner, display);
  for (;;) {
    KILN_RETURN_IF_ERROR(ctx.Check("unpack"));
    struct archive_entry* e = nullptr;
    const int rc = archive_read_next_header(a.get(), &e);
    if (rc == ARCHIVE_EOF) break;
    if (rc != ARCHIVE_OK && rc != ARCHIVE_WARN) {
      return absl::DataLossError(absl::StrCat("failed to read archive: ", ArchiveError(a.get())));
    }
    KILN_RETURN_IF_ERROR(x.Entry(a.get(), e));
  }
  return x.FinishDirs();
}

}  // namespace kiln::ops::internal
