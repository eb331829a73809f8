#pragma once
// Git remote URLs as BuildKit's gitutil reads them: standard URLs with the schemes git accepts
// over the network (http, https, ssh, git) and scp-like "user@host:path" (ssh), each with an
// optional "?query" and a "#REF[:SUBDIR]" fragment that BuildKit uses to pick what to check out.

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace kiln::llb {

struct GitUrl {
  std::string scheme;  // "http", "https", "ssh" or "git" (scp-like URLs are "ssh")
  std::string user;    // userinfo as written ("git", "user:token"); may be empty
  std::string host;    // with ":port" when given
  std::string path;    // as written, e.g. "/org/repo.git" or "org/repo.git" (scp-like)
  std::vector<std::pair<std::string, std::string>> query;  // decoded, in order
  std::string ref;                                         // fragment before ':'
  std::string subdir;  // fragment after ':', cleaned, without leading '/'
  std::string remote;  // the URL without query and fragment: what git fetches from
};

// NOT_FOUND when `url` has no scheme and is not scp-like (BuildKit's ErrUnknownProtocol: it may
// be a path or a bare "host/path"); INVALID_ARGUMENT for another scheme or a malformed URL.
[[nodiscard]] absl::StatusOr<GitUrl> ParseGitUrl(std::string_view url);

// True when `url` names a git transport by its scheme or is scp-like.
bool IsGitTransport(std::string_view url);

// A full commit id: 40 (SHA-1) or 64 (SHA-256) lowercase hex digits.
bool IsCommitSha(std::string_view s);

}  // namespace kiln::llb
