#pragma once
// Walks a directory tree the way fsutil's filtered FS does for BuildKit's local sources and the
// FileSync sender: depth first with names sorted bytewise per directory, paths relative with
// '/' and no leading "./", the root itself not reported. Include patterns keep only matching
// paths (and the directories above them); exclude patterns drop matching paths, with "!"
// exceptions; followpaths adds the targets of the named symlinks to the include patterns.
// Symlinks are reported as symlinks and never followed, and the walk never leaves the root.
//
//   WalkOptions opts;
//   opts.exclude_patterns = {"node_modules", "*.log"};
//   KILN_RETURN_IF_ERROR(Walk("/src", opts, [&](::fsutil::types::Stat& st) {
//     paths.push_back(st.path());
//     return absl::OkStatus();
//   }));

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "proto/fsutil/types/stat.pb.h"

namespace kiln::fsutil {

struct WalkOptions {
  // patternmatcher patterns (see patterns.h). A path is reported if it matches an include
  // pattern (or no include patterns are given) and matches no exclude pattern.
  std::vector<std::string> include_patterns;
  std::vector<std::string> exclude_patterns;
  // Paths (possibly through symlinks, globs allowed in the last element of each step) whose
  // resolved targets are added to the include patterns (BuildKit's "followpaths").
  std::vector<std::string> follow_paths;
  // Read extended attributes into Stat.xattrs, as fsutil does.
  bool xattrs = true;
};

// Called once per entry, in walk order, with the entry's wire Stat (the callee may move from
// it). Hard links are detected within the walk: later links to an inode carry
// linkname = the first reported path. A non-OK return stops the walk and is returned.
using WalkFn = std::function<absl::Status(::fsutil::types::Stat& stat)>;

// Walks `root` (a directory; a symlink to one is followed). INVALID_ARGUMENT for malformed
// patterns; unreadable directories fail the walk unless they are themselves filtered out.
[[nodiscard]] absl::Status Walk(const std::string& root, const WalkOptions& options,
                                const WalkFn& fn);

// fsutil.FollowLinks: resolves `paths` below `root` component by component; each symlink met
// on the way is recorded and its target (absolute targets taken relative to `root`) is
// followed in turn. Returns the sorted, de-duplicated set of paths and symlinks to include,
// or nullopt when one of them is the root itself (meaning: no filtering). Never looks outside
// `root`: ".." cannot climb above it.
[[nodiscard]] absl::StatusOr<std::optional<std::vector<std::string>>> FollowLinks(
    const std::string& root, const std::vector<std::string>& paths);

}  // namespace kiln::fsutil
