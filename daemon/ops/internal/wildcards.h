#pragma once
// Wildcard source paths ("/src/*.txt", "/a*/b/?.go") resolved inside a root, with the semantics
// of fsutil's copy.ResolveWildcards: the path is split at its first component that contains
// '*', '?' or '[' (a backslash escapes the next character); the part before names a directory
// (its last component followed only when following symlinks), and the rest is matched with Go's
// filepath.Match against paths relative to it, in a walk that never follows symlinks, visits
// names in byte order, and does not descend into a directory that matched. Thread-compatible.

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace kiln::ops::internal {

// True if a path component contains an unescaped '*', '?' or '['.
[[nodiscard]] bool ContainsWildcards(std::string_view component);

// Matches of `pattern` (an absolute, cleaned path) inside the root `root_fd`, as absolute
// logical paths ("/src/a.txt") in walk order. A pattern without wildcards is returned as it is,
// cleaned, without checking that it exists. Errors read like Go's ("lstat /src: no such file or
// directory").
[[nodiscard]] absl::StatusOr<std::vector<std::string>> ResolveWildcards(int root_fd,
                                                                        std::string_view pattern,
                                                                        bool follow_links);

}  // namespace kiln::ops::internal
