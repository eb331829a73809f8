#pragma once
// Which ADD sources are git repositories, as BuildKit's dfgitutil.ParseGitRef decides:
// "git@host:path", "ssh://", "git://", and http(s) URLs whose path ends in ".git", each with an
// optional "#REF[:SUBDIR]" fragment and query options (?ref=, ?tag=, ?branch=, ?subdir=,
// ?checksum= / ?commit=, ?keep-git-dir=, ?submodules=, ?mtime=).

#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace kiln::dockerfile {

struct GitRef {
  std::string remote;  // what git fetches from, without fragment and query
  std::string ref;     // branch, tag ("refs/tags/..." from ?tag=), commit; empty: default branch
  std::string subdir;
  std::string checksum;  // the expected commit (or a prefix)
  std::optional<bool> keep_git_dir;
  std::optional<bool> submodules;
  std::string mtime;         // "checkout" or "commit"
  bool unencrypted = false;  // git:// and http://
};

// nullopt when `source` is not a git reference (a local path or a plain URL); an error when it
// is one but its options are wrong.
[[nodiscard]] absl::StatusOr<std::optional<GitRef>> ParseGitRef(std::string_view source);

}  // namespace kiln::dockerfile
