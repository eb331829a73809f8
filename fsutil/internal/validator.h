#pragma once
// Checks on the STAT sequence a receiver gets from an untrusted sender, ported from fsutil's
// Validator and Hardlinks: every path is clean, relative and inside the destination, arrives in
// walk order, and lies in a directory announced earlier in the stream; hard links point to an
// earlier non-directory entry. Internal to fsutil. Not thread-safe.

#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "absl/status/status.h"
#include "proto/fsutil/types/stat.pb.h"

namespace kiln::fsutil::internal {

class StatValidator {
 public:
  StatValidator();

  // INVALID_ARGUMENT if `stat` may not follow the entries seen so far.
  [[nodiscard]] absl::Status Check(const ::fsutil::types::Stat& stat);

 private:
  struct Parent {
    std::string dir;
    std::string last;
  };
  std::vector<Parent> parents_;
  std::unordered_set<std::string> linkable_;  // non-directory, non-symlink, non-link paths
};

// Validates a path received from the wire: non-empty, no NUL, clean, relative, not ".", and not
// climbing with "..". INVALID_ARGUMENT naming `what` otherwise.
[[nodiscard]] absl::Status ValidateWirePath(std::string_view path, std::string_view what);

}  // namespace kiln::fsutil::internal
