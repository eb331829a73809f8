#pragma once
// User and group resolution with the semantics of Docker's GetExecUser (moby/sys/user), which
// BuildKit uses for ExecOp's user: "name", "uid", "name:group", "uid:gid", ... looked up in the
// container's /etc/passwd and /etc/group. Pure functions over the files' contents; thread-safe.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace kiln::executor::internal {

struct ExecUser {
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::vector<uint32_t> additional_gids;  // supplementary groups, in /etc/group order
};

// Resolves `spec` against the contents of /etc/passwd and /etc/group (nullopt when the file
// does not exist). Errors read like Docker's: "unable to find user NAME: no matching entries in
// passwd file", "unable to find group NAME: no matching entries in group file".
[[nodiscard]] absl::StatusOr<ExecUser> ResolveUser(std::string_view spec,
                                                   const std::optional<std::string>& passwd,
                                                   const std::optional<std::string>& group);

}  // namespace kiln::executor::internal
