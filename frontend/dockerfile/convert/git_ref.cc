#include "frontend/dockerfile/convert/git_ref.h"

#include <map>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "llb/git_url.h"

namespace kiln::dockerfile {
namespace {

// Go's strconv.ParseBool.
std::optional<bool> ParseBool(const std::string& v) {
  if (v == "1" || v == "t" || v == "T" || v == "true" || v == "TRUE" || v == "True") return true;
  if (v == "0" || v == "f" || v == "F" || v == "false" || v == "FALSE" || v == "False") {
    return false;
  }
  return std::nullopt;
}

absl::Status LoadQuery(const std::vector<std::pair<std::string, std::string>>& query, GitRef& ref) {
  std::map<std::string, std::vector<std::string>> values;
  for (const auto& [k, v] : query) values[k].push_back(v);
  std::string tag, branch;
  for (const auto& [k, vs] : values) {
    if (vs.size() > 1)
      return absl::InvalidArgumentError(absl::StrCat("query \"", k, "\" has multiple values"));
    const std::string& v = vs[0];
    const bool flag = k == "submodules" || k == "keep-git-dir" || k == "fetch-by-commit";
    if (v.empty() && !flag) {
      return absl::InvalidArgumentError(absl::StrCat("query \"", k, "\" has no value"));
    }
    auto boolean = [&]() -> absl::StatusOr<bool> {
      if (v.empty()) return true;
      std::optional<bool> b = ParseBool(v);
      if (!b) return absl::InvalidArgumentError(absl::StrCat("invalid ", k, " value: \"", v, "\""));
      return *b;
    };
    if (k == "ref") {
      if (!ref.ref.empty() && ref.ref != v) {
        return absl::InvalidArgumentError(
            absl::StrCat("ref conflicts: \"", ref.ref, "\" vs \"", v, "\""));
      }
      ref.ref = v;
    } else if (k == "tag") {
      tag = v;
    } else if (k == "branch") {
      branch = v;
    } else if (k == "subdir") {
      if (!ref.subdir.empty() && ref.subdir != v) {
        return absl::InvalidArgumentError(
            absl::StrCat("subdir conflicts: \"", ref.subdir, "\" vs \"", v, "\""));
      }
      ref.subdir = v;
    } else if (k == "checksum" || k == "commit") {
      ref.checksum = v;
    } else if (k == "keep-git-dir") {
      KILN_ASSIGN_OR_RETURN(bool b, boolean());
      ref.keep_git_dir = b;
    } else if (k == "submodules") {
      KILN_ASSIGN_OR_RETURN(bool b, boolean());
      ref.submodules = b;
    } else if (k == "mtime") {
      if (v != "checkout" && v != "commit") {
        return absl::InvalidArgumentError(
            absl::StrCat("invalid mtime value: \"", v, "\" (must be \"checkout\" or \"commit\")"));
      }
      ref.mtime = v;
    } else if (k == "fetch-by-commit") {
      KILN_ASSIGN_OR_RETURN(bool b, boolean());
      if (b) {
        return absl::UnimplementedError("git query \"fetch-by-commit\" is not supported by kiln");
      }
    } else {
      return absl::InvalidArgumentError(absl::StrCat("unexpected query \"", k, "\""));
    }
  }
  auto set_ref = [&](std::string want, const char* prefix) -> absl::Status {
    if (!absl::StartsWith(want, prefix)) want = absl::StrCat(prefix, want);
    if (!ref.ref.empty() && ref.ref != want) {
      return absl::InvalidArgumentError(
          absl::StrCat("ref conflicts: \"", ref.ref, "\" vs \"", want, "\""));
    }
    ref.ref = want;
    return absl::OkStatus();
  };
  if (!tag.empty()) KILN_RETURN_IF_ERROR(set_ref(tag, "refs/tags/"));
  if (!branch.empty()) {
    if (!tag.empty()) return absl::InvalidArgumentError("branch conflicts with tag");
    KILN_RETURN_IF_ERROR(set_ref(branch, "refs/heads/"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::optional<GitRef>> ParseGitRef(std::string_view source) {
  // Relative paths, and the deprecated "github.com/..." form that a path could also be.
  if (source.starts_with("./") || source.starts_with("../") || source.starts_with("github.com/")) {
    return std::nullopt;
  }
  absl::StatusOr<llb::GitUrl> url = llb::ParseGitUrl(source);
  if (!url.ok()) return std::nullopt;
  // An http(s) URL is a repository only when its path ends in ".git".
  if ((url->scheme == "http" || url->scheme == "https") && !url->path.ends_with(".git")) {
    return std::nullopt;
  }
  GitRef ref;
  ref.remote = url->remote;
  ref.ref = url->ref;
  ref.subdir = url->subdir;
  ref.unencrypted = url->scheme == "http" || url->scheme == "git";
  KILN_RETURN_IF_ERROR(LoadQuery(url->query, ref));
  return ref;
}

}  // namespace kiln::dockerfile
