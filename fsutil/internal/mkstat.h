#pragma once
// Builds wire Stats from lstat results, the way fsutil's mkstat does. Internal to fsutil.

#include <sys/stat.h>

#include <cstdint>
#include <string>
#include <unordered_map>

#include "absl/status/statusor.h"
#include "fsutil/stat.h"
#include "proto/fsutil/types/stat.pb.h"

namespace kiln::fsutil::internal {

// First path seen for each (device, inode) of a non-directory, for hard-link detection during a
// single walk. Not thread-safe.
class InodeMap {
 public:
  // Returns the earlier path for a file with several links, or records `path` and returns
  // nullptr.
  const std::string* SeenOrRecord(const struct stat& st, const std::string& path);

 private:
  struct Key {
    uint64_t dev, ino;
    bool operator==(const Key&) const = default;
  };
  struct KeyHash {
    size_t operator()(const Key& k) const { return k.ino * 31 + k.dev; }
  };
  std::unordered_map<Key, std::string, KeyHash> paths_;
};

// The Stat of entry `name` in the open directory `dirfd`, whose lstat result is `st`, recorded
// under the wire path `rel`. With an InodeMap, later links to an inode get linkname = the
// first path. Reads the symlink target and (optionally) xattrs.
[[nodiscard]] absl::StatusOr<::fsutil::types::Stat> MakeStat(int dirfd, const std::string& name,
                                                             const std::string& rel,
                                                             const struct stat& st,
                                                             const StatOptions& options,
                                                             InodeMap* inodes);

}  // namespace kiln::fsutil::internal
