#pragma once
// Host-side mount helpers for the executor's state directory: the per-run private tmpfs (and
// the mount-table helpers from daemon/util under their old names). Thread-compatible.

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "daemon/util/mounts.h"

namespace kiln::executor::internal {

using util::MountInfo;
using util::PathIsWithin;
using util::ReadMountInfo;
using util::UnmountAll;

// Mounts a tmpfs (nosuid, nodev, noexec, mode 0700) of at most `size` at `dir` and makes it
// private, so that nothing mounted below it propagates anywhere.
[[nodiscard]] absl::Status MountPrivateTmpfs(const std::string& dir, std::string_view size);

}  // namespace kiln::executor::internal
