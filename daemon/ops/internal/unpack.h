#pragma once
// Local archive extraction for FileActionCopy.attemptUnpackDockerCompatibility (Dockerfile ADD of
// a local tar), with the semantics of BuildKit's unpack + moby/go-archive's chrootarchive.Untar:
// the file is a tar archive, plain or compressed with gzip, bzip2, xz or zstd; it is extracted
// into a directory that acts as the archive's root, as if chrooted there. Entry names, symlinks
// met on the way and hardlink targets are resolved inside that directory ("../x" and "/x" both
// land at <dir>/x; a symlink to "/etc" means <dir>/etc), so nothing can be written or linked
// outside it. libarchive only reads and decompresses; every write is an *at() call on
// descriptors opened with RESOLVE_IN_ROOT. Thread-compatible.

#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/context.h"
#include "daemon/ops/internal/root_fs.h"

namespace kiln::ops::internal {

// Whether the regular file open at `fd` is a tar archive whose first header reads (BuildKit's
// isArchivePath). Reads from offset 0; the offset is left undefined. An error only for a
// libarchive that cannot decompress without running an external program.
[[nodiscard]] absl::StatusOr<bool> IsTarArchive(int fd);

// Extracts the archive open at `fd` (from offset 0) into the directory `dest_dir` (an O_PATH
// descriptor), which acts as the root for every path in the archive. Entries keep their uid/gid
// unless `owner` is given; implied parent directories are created 0755 and owned by 0:0; an
// existing entry is replaced unless both are directories. `display` names the destination in
// errors.
[[nodiscard]] absl::Status ExtractTar(const Context& ctx, int fd, int dest_dir,
                                      const std::optional<Owner>& owner, std::string_view display);

}  // namespace kiln::ops::internal
