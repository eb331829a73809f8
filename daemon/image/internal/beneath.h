#pragma once
// Descriptor-based filesystem access below a root directory that never follows a symlink:
// openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS), or a walk with O_NOFOLLOW per component where
// the kernel lacks openat2. Thread-compatible; descriptors are owned by UniqueFd.

#include <string>
#include <utility>

#include "base/unique_fd.h"

namespace kiln::image::internal {

using ::kiln::UniqueFd;

// Opens the directory `rel` ("a/b"; "" is `root` itself) below the directory `root` with
// `flags` (O_PATH or O_RDONLY; O_DIRECTORY and O_CLOEXEC are added). Fails with ELOOP when a
// component is a symlink, ENOTDIR when it is not a directory. Returns -errno on failure.
int OpenDirBeneath(int root, const std::string& rel, int flags);

// Removes `name` in the directory `dir` and, for a directory, everything below it, without
// following symlinks. Returns 0 or an errno value (ENOENT when missing).
int RemoveAllAt(int dir, const std::string& name);

}  // namespace kiln::image::internal
