#pragma once
// The tree walk behind BuildIndex, shared with Receive (which verifies the destination and
// rebuilds its index in the same pass). Internal to fsutil.

#include <cstdint>
#include <functional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "fsutil/index.h"

namespace kiln::fsutil::internal {

// Digests already known for some paths (e.g. computed while receiving), valid while the path
// still has the given inode number.
struct KnownDigest {
  uint64_t ino = 0;
  std::string sha256;
};
using KnownDigests = std::unordered_map<std::string, KnownDigest>;

// Walks the directory `root_fd` and returns a record per entry. With `digests`, regular files
// get a SHA-256: from `known`, from `previous` when size, mtime, ctime and inode match, from an
// earlier hard link to the same inode, or by reading the file. `visit` (optional) sees each
// record as it is made (before its digest is filled in); an error from it stops the walk.
[[nodiscard]] absl::StatusOr<std::vector<IndexRecord>> IndexTree(
    int root_fd, bool digests, const ContentIndex* previous, const KnownDigests* known,
    IndexBuildStats* stats, const std::function<absl::Status(const IndexRecord&)>& visit);

}  // namespace kiln::fsutil::internal
