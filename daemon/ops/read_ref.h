#pragma once
// Reading inside a result's tree for the gateway's ReadFile, ReadDir and StatFile, with
// BuildKit's semantics (cache/util: ReadFile, ReadDir, StatFile). Paths are resolved inside the
// tree with chroot semantics: symlinks are followed but never out of the root, ".." stops at the
// root. A null ref is scratch, the empty tree. Thread-safe (each call mounts its own view).

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "daemon/cache/manager.h"
#include "proto/fsutil/types/stat.pb.h"

namespace kiln::ops {

struct ByteRange {
  int64_t offset = 0;
  int64_t length = 0;
};

// The contents of `path`, or `range` of it. Files larger than `max_bytes` (without a range)
// fail with RESOURCE_EXHAUSTED naming the file.
[[nodiscard]] absl::StatusOr<std::string> ReadFileInRef(const cache::ImmutableRef* ref,
                                                        const std::string& path,
                                                        std::optional<ByteRange> range,
                                                        int64_t max_bytes);

// The entries directly inside the directory `path` (sorted by name), keeping only those whose
// name matches `include_pattern` when it is not empty. Stat.path is the entry's name.
[[nodiscard]] absl::StatusOr<std::vector<::fsutil::types::Stat>> ReadDirInRef(
    const cache::ImmutableRef* ref, const std::string& path, const std::string& include_pattern);

// The Stat of `path` (a final symlink is followed inside the root); Stat.path is its base name.
[[nodiscard]] absl::StatusOr<::fsutil::types::Stat> StatFileInRef(const cache::ImmutableRef* ref,
                                                                  const std::string& path);

}  // namespace kiln::ops
