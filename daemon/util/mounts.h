#pragma once
// The mount table: reading /proc/self/mountinfo and removing every mount below a directory
// (for work directories a crashed daemon left mounted). Thread-compatible.

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace kiln::util {

struct MountInfo {
  std::string mount_point;  // unescaped
  std::string fs_type;
  std::string super_options;  // e.g. "rw,devices" for a cgroup v1 hierarchy
  bool shared = false;        // propagation peer group ("shared:N")
};

// The calling process's mount table (/proc/self/mountinfo), in mount order.
[[nodiscard]] absl::StatusOr<std::vector<MountInfo>> ReadMountInfo();

// True when `path` is `dir` or lies below it (purely lexical; both absolute and clean).
bool PathIsWithin(std::string_view path, std::string_view dir);

// Unmounts every mount at or below `dir`, deepest first (lazily when busy).
[[nodiscard]] absl::Status UnmountAll(const std::string& dir);

}  // namespace kiln::util
