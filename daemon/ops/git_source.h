#pragma once
// SourceOp "git://HOST/PATH[#REF[:SUBDIR]]": a git repository checked out at one commit, as
// BuildKit's git source gives it, using the host's `git` binary.
// - Cache key: the commit (from `git ls-remote`, or the ref itself when it is a full commit id)
//   plus the options that change the tree (keep-git-dir, subdir, submodules, mtime), so an
//   unchanged branch costs one ls-remote and no download.
// - Each remote has a bare repository kept under the daemon's cache-mount root (one user at a
//   time, also across processes); fetches into it are shallow (--depth=1) where possible.
// - The checkout is a new cache record: the work tree without .git (unless git.keepgitdir: then
//   a repository of its own whose origin is the remote, credentials redacted), submodules
//   initialized unless git.skipsubmodules, the SUBDIR's contents at the root when one is given.
// - Credentials: the session's secrets GIT_AUTH_TOKEN[.HOST] / GIT_AUTH_HEADER[.HOST] (names
//   from the attrs) reach git as an http.extraHeader through its environment, never its argv;
//   ssh remotes use the client's forwarded agent (git.mountsshsock) and git.knownsshhosts.
//   Passwords in URLs are redacted from every message.

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "daemon/ops/worker.h"
#include "daemon/solver/types.h"

namespace kiln::ops {

struct GitSourceAttrs {
  std::string remote;  // the URL git fetches from (git.fullurl, else https://HOST/PATH)
  std::string ref;     // empty: the remote's default branch
  std::string subdir;  // cleaned, relative; empty: the whole repository
  bool keep_git_dir = false;
  bool skip_submodules = false;
  std::string checksum;  // expected commit (hex, may be a prefix)
  std::string mtime;     // "" / "checkout": checkout time; "commit": the commit's time
  std::string auth_token_secret;
  std::string auth_header_secret;
  std::string known_ssh_hosts;
  std::string mount_ssh_sock;  // ssh agent id forwarded by the client ("" = none)
};

// Parses "git://..." and its attrs. INVALID_ARGUMENT names what is wrong.
[[nodiscard]] absl::StatusOr<GitSourceAttrs> ParseGitSource(
    const std::string& identifier, const google::protobuf::Map<std::string, std::string>& attrs);

// `url` with the password of its userinfo replaced by "xxxxx" (BuildKit's RedactCredentials).
std::string RedactGitUrl(const std::string& url);

class GitSourceOp final : public solver::Op {
 public:
  GitSourceOp(Worker worker, GitSourceAttrs attrs)
      : worker_(std::move(worker)), attrs_(std::move(attrs)) {}
  absl::StatusOr<solver::CacheMap> GetCacheMap(const Context& ctx) override;
  absl::StatusOr<std::vector<solver::ResultPtr>> Exec(
      const Context& ctx, const std::vector<solver::ResultPtr>& inputs) override;

 private:
  class Git;
  // The environment additions git needs for this remote (auth header, ssh agent), set up once.
  absl::Status PrepareAuth(const Context& ctx);
  // git's environment: no system or global config, no prompts, proxies, the auth additions.
  std::vector<std::string> BaseEnv() const;

  Worker worker_;
  GitSourceAttrs attrs_;
  // Resolved by GetCacheMap.
  std::string commit_;    // what to check out (a commit or an annotated tag object)
  std::string used_ref_;  // the full ref it came from (refs/heads/main), or the commit itself
  std::string key_sha_;   // the commit the cache key names (an annotated tag's commit)
  // Set up by PrepareAuth.
  bool auth_ready_ = false;
  std::vector<std::string> auth_env_;
  std::shared_ptr<void> ssh_agent_;  // keeps the agent proxy (and its socket dir) alive
};

}  // namespace kiln::ops
