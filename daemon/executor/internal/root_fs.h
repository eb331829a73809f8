#pragma once
// Root-confined file access for the executor: reading /etc/passwd and /etc/group, creating the
// working directory and cleaning up mount stubs inside a container's rootfs without letting a
// symlink in that (untrusted) tree lead outside it. Paths are resolved with openat2(2) and
// RESOLVE_IN_ROOT, i.e. with chroot semantics: ".." stops at the root and absolute symlinks are
// taken relative to it. Without openat2 the functions fail (UNIMPLEMENTED); there is no unsafe
// fallback. All functions are thread-compatible.

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/unique_fd.h"

namespace kiln::executor::internal {

using ::kiln::UniqueFd;

// Go's strerror text ("no such file or directory").
[[nodiscard]] std::string ErrnoText(int err);

// The cleaned absolute form of a container path ("a/../b" → "/b").
[[nodiscard]] std::string CleanAbs(std::string_view path);

// Opens a trusted host directory as a root (O_PATH).
[[nodiscard]] absl::StatusOr<UniqueFd> OpenRoot(const std::string& host_path);

// openat2(root_fd, path, flags, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS) with O_CLOEXEC added.
// `path` is a container path (absolute or not). Returns the descriptor, or -1 with *err set.
[[nodiscard]] int OpenInRoot(int root_fd, std::string_view path, int flags, int* err);

// Reads the regular file at `path` inside the root (symlinks followed within it). nullopt when
// it does not exist; FAILED_PRECONDITION when it is not a regular file or larger than max_size.
[[nodiscard]] absl::StatusOr<std::optional<std::string>> ReadFileInRoot(int root_fd,
                                                                        std::string_view path,
                                                                        size_t max_size);

// mkdir -p of `path` inside the root: missing directories are created with `mode` (exactly,
// regardless of the umask) and owned by root when running as root. A dangling symlink on the
// way gets its target created (resolved inside the root).
[[nodiscard]] absl::Status MkdirAllInRoot(int root_fd, std::string_view path, mode_t mode);

// Container paths among `destinations` that do not exist in the root yet (and, if `recursive`,
// their missing parents, deepest first): the stubs the runtime is about to create as mount
// targets. Call before the run; pass the result to RemoveMountStubs afterwards.
[[nodiscard]] std::vector<std::string> FindMountStubs(int root_fd,
                                                      const std::vector<std::string>& destinations,
                                                      bool recursive);

// Removes each stub that is still an empty regular file or an empty directory, restoring the
// timestamps of its parent directory (BuildKit's MountStubsCleaner). Best effort.
void RemoveMountStubs(int root_fd, const std::vector<std::string>& stubs);

}  // namespace kiln::executor::internal
