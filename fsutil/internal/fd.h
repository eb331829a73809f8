#pragma once
// File-descriptor helpers for walking and writing trees without following symlinks out of a
// root: every path below a root is resolved with openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS)
// (or, on kernels without openat2, one O_NOFOLLOW component at a time). Internal to fsutil.
// All functions are thread-compatible.

#include <sys/stat.h>
#include <sys/types.h>

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/unique_fd.h"

namespace kiln::fsutil::internal {

using ::kiln::UniqueFd;

// Opens a directory given by a trusted host path (symlinks in it are followed).
[[nodiscard]] absl::StatusOr<UniqueFd> OpenDirectory(const std::string& path);

// Opens `rel` (relative, '/'-separated) beneath the directory `dirfd` with `flags`
// (O_CLOEXEC is added). Any symlink on the way, including the last component, ".." above
// `dirfd` and absolute paths fail (ELOOP/EXDEV map to FAILED_PRECONDITION). "" and "." open
// `dirfd` itself.
[[nodiscard]] absl::StatusOr<UniqueFd> OpenBeneath(int dirfd, std::string_view rel, int flags,
                                                   mode_t mode = 0);

// Makes OpenBeneath use its per-component fallback, as on kernels without openat2 (tests).
void UseOpenBeneathFallbackForTesting(bool fallback);

// The errno of the last failed OpenBeneath-style call is lost in a Status; this variant reports
// it instead: returns -1 and sets *err on failure.
int OpenBeneathRaw(int dirfd, std::string_view rel, int flags, mode_t mode, int* err);

// A directory entry name and its d_type (DT_UNKNOWN when the filesystem does not say).
struct DirName {
  std::string name;
  unsigned char type;
};

// Names in the directory `dirfd` (without "." and ".."), sorted bytewise like Go's os.ReadDir.
// `dirfd` is not consumed; its offset is rewound.
[[nodiscard]] absl::StatusOr<std::vector<DirName>> ReadDirSorted(int dirfd);
// Same, returning the errno instead of a Status (0 on success).
int ReadDirSortedRaw(int dirfd, std::vector<DirName>* out);

// Removes `name` in `dirfd` recursively without following symlinks. A missing entry is fine.
// Read-only directories owned by the caller are made writable first.
[[nodiscard]] absl::Status RemoveAllAt(int dirfd, const std::string& name);

// The target of the symlink `name` in `dirfd`.
[[nodiscard]] absl::StatusOr<std::string> ReadLinkAt(int dirfd, const std::string& name);

// A path naming `name` inside the open directory `dirfd` for path-only syscalls such as
// l*xattr: "/proc/self/fd/<dirfd>/<name>", which the kernel resolves through the descriptor.
[[nodiscard]] std::string FdRelativePath(int dirfd, std::string_view name);

// A fresh name for a temporary entry, ".kiln-tmp-<random>".
[[nodiscard]] std::string TempName();

}  // namespace kiln::fsutil::internal
