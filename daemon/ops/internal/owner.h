#pragma once
// Resolution of an action's ChownOpt to numeric ids, as BuildKit's readUser does: ids are taken
// as they are; names are looked up in /etc/passwd and /etc/group of a root directory (resolved
// inside that root, symlinks included). A name that is not found — or a missing passwd/group
// file — leaves the id at 0, exactly like BuildKit; a user name sets both uid and that user's
// primary gid, and a group then overrides the gid. Pure functions; thread-safe.

#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "daemon/ops/internal/root_fs.h"
#include "proto/pb/ops.pb.h"

namespace kiln::ops::internal {

// The owner for `chopt`, or nullopt when the action has no owner (`has_owner` false): then
// created entries stay owned by the daemon and copies keep their source's owner.
// `user_root` and `group_root` are host paths of the roots whose /etc/passwd and /etc/group
// resolve names; they are opened only when a name needs them.
[[nodiscard]] absl::StatusOr<std::optional<Owner>> ResolveOwner(bool has_owner,
                                                                const pb::ChownOpt& chopt,
                                                                const std::string& user_root,
                                                                const std::string& group_root);

// Looks `name` up in passwd-format `contents` (moby/sys/user's ParsePasswdFilter): the first
// matching line's uid and gid, or nullopt.
[[nodiscard]] std::optional<Owner> FindPasswdEntry(std::string_view contents,
                                                   std::string_view name);

// Looks `name` up in group-format `contents` (ParseGroupFilter: '#' comments are skipped): the
// first matching line's gid, or nullopt.
[[nodiscard]] std::optional<gid_t> FindGroupEntry(std::string_view contents, std::string_view name);

}  // namespace kiln::ops::internal
