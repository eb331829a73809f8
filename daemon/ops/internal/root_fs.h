#pragma once
// Root-confined filesystem primitives for the FileOp actions. Every path that comes from an LLB
// action is resolved inside a root directory with chroot semantics: ".." stops at the root,
// absolute symlink targets are taken relative to the root, and symlinks anywhere along the way
// cannot lead outside it. Directories are opened with openat2(2) and RESOLVE_IN_ROOT; everything
// after that is done with *at() syscalls relative to the descriptors obtained, never with a host
// path string to a user-controlled location. Without openat2 (ENOSYS) resolution fails with
// UNIMPLEMENTED: there is deliberately no unsafe fallback.
//
// Paths here are slash-separated and interpreted as absolute within the root ("a/b" and "/a/b"
// are the same). All functions are thread-compatible; descriptors are owned by UniqueFd.

#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/unique_fd.h"

namespace kiln::ops::internal {

using ::kiln::UniqueFd;

// An entry inside a root: the directory `dir` (an O_PATH descriptor) and a single name in it.
// An empty `name` means the directory itself; this happens only for the root and for paths whose
// resolution ends in "." or ".." through a symlink target.
struct Location {
  UniqueFd dir;
  std::string name;

  bool IsSelf() const { return name.empty(); }
};

// Go's syscall.Errno text: strerror(err) with a lower-case first letter ("no such file or
// directory"), so that messages read like BuildKit's.
[[nodiscard]] std::string ErrnoText(int err);

// "<op> <path>: <errno text>" with the canonical code for `err`, like Go's *os.PathError.
[[nodiscard]] absl::Status PathError(int err, std::string_view op, std::string_view path);

// A Status with the canonical code for `err` and the given message.
[[nodiscard]] absl::Status ErrnoStatus(int err, std::string message);

// Opens a trusted host directory (a snapshot mount chosen by the daemon) as a root.
[[nodiscard]] absl::StatusOr<UniqueFd> OpenRoot(const std::string& host_path);

// Go's filepath.Join("/", p): the cleaned absolute form of an action path ("a/../b" → "/b").
[[nodiscard]] std::string AbsClean(std::string_view path);

// openat2(root_fd, rel, flags, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS) with O_CLOEXEC added,
// retrying EAGAIN. Returns the descriptor, or -1 with *err set (ENOSYS when openat2 is missing).
[[nodiscard]] int OpenInRoot(int root_fd, std::string_view rel, int flags, mode_t mode, int* err);

// The outcome of ResolveRaw: either `loc`, or `err` with the logical directory that could not be
// opened (`failed_dir`, absolute form) when the failure was on the way to the last component.
struct Resolved {
  Location loc;
  int err = 0;
  std::string failed_dir;
};

// openat2(dir, rel, flags, RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS) with
// O_CLOEXEC: for trees this code created itself, where no symlink may be on the way. Returns the
// descriptor, or -1 with *err set.
[[nodiscard]] int OpenBeneathNoSymlinks(int dir, std::string_view rel, int flags, int* err);

// Resolves `path` inside the root: every directory component is followed (symlinks included,
// confined to the root); the last component is followed only if `follow_final` is set. A
// nonexistent last component is not an error: the caller gets its parent and name.
[[nodiscard]] Resolved ResolveRaw(int root_fd, std::string_view path, bool follow_final);

// The status for a failed ResolveRaw, e.g. "parent directory /etc does not exist".
[[nodiscard]] absl::Status ResolveError(const Resolved& r);

// ResolveRaw with failures turned into a Status (see ResolveError).
[[nodiscard]] absl::StatusOr<Location> Resolve(int root_fd, std::string_view path,
                                               bool follow_final);

// fstatat(AT_SYMLINK_NOFOLLOW) of a location (fstat of the directory itself when IsSelf).
// Returns 0 or an errno.
[[nodiscard]] int LstatAt(int dir, const std::string& name, struct stat* st);

// Opens the directory `name` in `dir` (or `dir` itself for an empty name) without following a
// symlink in its place. `flags` is ORed with O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC; pass O_PATH
// for a handle used only as a dirfd, O_RDONLY to read entries or change metadata.
// Returns the descriptor, or -1 with *err set.
[[nodiscard]] int OpenDirAt(int dir, const std::string& name, int flags, int* err);

// Metadata changes on a location without following a symlink in its place; each returns 0 or an
// errno. ChmodAt is not valid on symlinks (Linux has no symlink modes).
[[nodiscard]] int ChownAt(int dir, const std::string& name, uid_t uid, gid_t gid);
[[nodiscard]] int ChmodAt(int dir, const std::string& name, mode_t mode);
[[nodiscard]] int UtimesAt(int dir, const std::string& name, const struct timespec times[2]);

// Removes `name` in `dir` recursively without following symlinks (Go's os.RemoveAll). A missing
// entry is fine. Returns 0 or an errno.
[[nodiscard]] int RemoveAllAt(int dir, const std::string& name);

// The target of the symlink `name` in `dir`, or an errno.
[[nodiscard]] int ReadLinkAt(int dir, const std::string& name, std::string* target);

// Names in the directory `fd` (without "." and ".."), sorted bytewise like Go's os.ReadDir.
// Returns 0 or an errno.
[[nodiscard]] int ReadDirNames(int fd, std::vector<std::string>* names);

// Copies every extended attribute of the source entry to the destination entry, best effort
// (BuildKit logs and ignores xattr errors; so do we). Entries are (dir, name) pairs.
void CopyXattrs(int src_dir, const std::string& src_name, int dst_dir, const std::string& dst_name);

// Sets one extended attribute on a location without following a symlink. Returns 0 or an errno.
[[nodiscard]] int SetXattrAt(int dir, const std::string& name, const std::string& key,
                             const void* value, size_t size);

// Owner applied to created or copied entries.
struct Owner {
  uid_t uid = 0;
  gid_t gid = 0;
};

// How MkdirAll treats the directories it creates: mode (exact, independent of the umask), an
// optional owner (BuildKit leaves new directories owned by the daemon when there is none) and an
// optional timestamp for atime and mtime.
struct MkdirOptions {
  mode_t mode = 0755;
  std::optional<Owner> owner;
  std::optional<struct timespec> time;
};

// A directory created by MkdirAll, for re-applying its timestamp after its children were made.
struct CreatedDir {
  UniqueFd parent;
  std::string name;
};

// Go's os.MkdirAll (as forked by fsutil/copy) inside the root: creates `path` and any missing
// parents, applying `opts` to each directory it creates (and only to those). Symlinks are
// followed within the root, so a dangling symlink gets its target created. Appends what it
// created to *created (if given) and returns an O_PATH descriptor of the directory. Errors read
// like Go's: "mkdir /a/b: not a directory".
[[nodiscard]] absl::StatusOr<UniqueFd> MkdirAll(int root_fd, std::string_view path,
                                                const MkdirOptions& opts,
                                                std::vector<CreatedDir>* created);

// Re-applies `time` to `dirs` in reverse creation order (fsutil's fixCreatedParentDirs).
void FixCreatedDirTimes(const std::vector<CreatedDir>& dirs, const struct timespec& time);

}  // namespace kiln::ops::internal
