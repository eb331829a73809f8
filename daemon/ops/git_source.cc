#include "daemon/ops/git_source.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "base/digest.h"
#include "base/ids.h"
#include "base/status.h"
#include "daemon/session/secrets.h"
#include "daemon/session/ssh.h"
#include "daemon/util/process.h"
#include "llb/git_url.h"

namespace kiln::ops {
namespace fs = std::filesystem;
namespace {

constexpr auto kGitTimeout = std::chrono::hours(1);

// The git binary, found once in PATH.
absl::StatusOr<std::string> GitBinary() {
  static const std::string found = [] {
    const char* path = getenv("PATH");
    for (absl::string_view dir :
         absl::StrSplit(path ? path : "/usr/local/bin:/usr/bin:/bin", ':')) {
      std::string candidate = absl::StrCat(dir, "/git");
      if (!dir.empty() && access(candidate.c_str(), X_OK) == 0) return candidate;
    }
    return std::string();
  }();
  if (found.empty()) {
    return absl::FailedPreconditionError(
        "git sources need the git binary, and kilnd found none in PATH; install git");
  }
  return found;
}

// The password of a URL's userinfo, when it has one.
std::string UrlPassword(const std::string& url) {
  const size_t scheme = url.find("://");
  if (scheme == std::string::npos) return "";
  const size_t start = scheme + 3;
  const size_t end = url.find_first_of("/?#", start);
  const std::string authority = url.substr(start, end == std::string::npos ? end : end - start);
  const size_t at = authority.rfind('@');
  if (at == std::string::npos) return "";
  const size_t colon = authority.find(':');
  if (colon == std::string::npos || colon > at) return "";
  return authority.substr(colon + 1, at - colon - 1);
}

// The full ref names ls-remote reports for `ref`, in BuildKit's order of preference.
struct RefNames {
  std::string partial, head, tag, peeled_tag;
};
RefNames NamesFor(const std::string& ref) {
  absl::string_view r = ref;
  RefNames n;
  absl::string_view bare = r;
  absl::ConsumePrefix(&bare, "refs/");
  n.partial = absl::StrCat("refs/", bare);
  absl::string_view head = r;
  absl::ConsumePrefix(&head, "refs/heads/");
  n.head = absl::StrCat("refs/heads/", head);
  absl::string_view tag = r;
  absl::ConsumePrefix(&tag, "refs/tags/");
  n.tag = absl::StrCat("refs/tags/", tag);
  n.peeled_tag = n.tag + "^{}";
  return n;
}

// Sets the modification time of everything below `dir` (not following symlinks).
absl::Status SetMtimes(const fs::path& dir, time_t when) {
  const timespec times[2] = {{when, 0}, {when, 0}};
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    if (utimensat(AT_FDCWD, it->path().c_str(), times, AT_SYMLINK_NOFOLLOW) != 0) {
      return ErrnoToStatus(errno, absl::StrCat("set mtime of ", it->path().string()));
    }
  }
  if (ec) return absl::InternalError(absl::StrCat("walk ", dir.string(), ": ", ec.message()));
  if (utimensat(AT_FDCWD, dir.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0) {
    return ErrnoToStatus(errno, absl::StrCat("set mtime of ", dir.string()));
  }
  return absl::OkStatus();
}

// Removes the ".git" files submodule checkouts leave behind: they point into the daemon's
// bare repository, which is not part of the result. (Git never records ".git" in a tree.)
absl::Status RemoveGitLinks(const fs::path& dir) {
  std::vector<fs::path> links;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    if (it->path().filename() == ".git") {
      links.push_back(it->path());
      it.disable_recursion_pending();
    }
  }
  if (ec) return absl::InternalError(absl::StrCat("walk ", dir.string(), ": ", ec.message()));
  for (const fs::path& p : links) {
    fs::remove_all(p, ec);
    if (ec) return absl::InternalError(absl::StrCat("remove ", p.string(), ": ", ec.message()));
  }
  return absl::OkStatus();
}

// Checks that every component of `subdir` below `root` is a real directory (no symlink, no
// file), so moving its contents up cannot reach outside the checkout.
absl::Status CheckDirsOnly(const fs::path& root, const std::string& subdir) {
  fs::path p = root;
  for (absl::string_view part : absl::StrSplit(subdir, '/', absl::SkipEmpty())) {
    p /= std::string(part);
    struct stat st;
    if (lstat(p.c_str(), &st) != 0) {
      return absl::NotFoundError(
          absl::StrCat("git subdir \"", subdir, "\" does not exist in the repository"));
    }
    if (!S_ISDIR(st.st_mode)) {
      return absl::InvalidArgumentError(
          absl::StrCat("git subpath \"", subdir, "\" contains non-directory \"", part, "\""));
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::string RedactGitUrl(const std::string& url) {
  const std::string password = UrlPassword(url);
  if (password.empty()) return url;
  const size_t scheme = url.find("://");
  const size_t colon = url.find(':', scheme + 3);
  return absl::StrCat(url.substr(0, colon + 1), "xxxxx", url.substr(colon + 1 + password.size()));
}

absl::StatusOr<GitSourceAttrs> ParseGitSource(
    const std::string& identifier, const google::protobuf::Map<std::string, std::string>& attrs) {
  absl::string_view id = identifier;
  if (!absl::ConsumePrefix(&id, "git://") || id.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("git source \"", identifier, "\": want git://HOST/PATH[#REF[:SUBDIR]]"));
  }
  std::string url(id);
  if (!llb::IsGitTransport(url)) url = absl::StrCat("https://", url);
  absl::StatusOr<llb::GitUrl> parsed = llb::ParseGitUrl(url);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("git source \"", identifier, "\": ", parsed.status().message()));
  }
  GitSourceAttrs out;
  out.remote = parsed->remote;
  out.ref = parsed->ref;
  out.subdir = parsed->subdir;
  for (const auto& [k, v] : attrs) {
    if (k == "git.keepgitdir") {
      out.keep_git_dir = v == "true";
    } else if (k == "git.fullurl") {
      // A bare host/path means https; another scheme (file://, ext::) is refused.
      absl::StatusOr<llb::GitUrl> remote = llb::ParseGitUrl(v);
      if (absl::IsNotFound(remote.status())) remote = llb::ParseGitUrl(absl::StrCat("https://", v));
      if (!remote.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("git source attr git.fullurl: ", remote.status().message()));
      }
      out.remote = remote->remote;
    } else if (k == "git.authtokensecret") {
      out.auth_token_secret = v;
    } else if (k == "git.authheadersecret") {
      out.auth_header_secret = v;
    } else if (k == "git.knownsshhosts") {
      out.known_ssh_hosts = v;
    } else if (k == "git.mountsshsock") {
      out.mount_ssh_sock = v;
    } else if (k == "git.checksum") {
      out.checksum = v;
    } else if (k == "git.skipsubmodules") {
      out.skip_submodules = v == "true";
    } else if (k == "git.mtime") {
      if (!v.empty() && v != "checkout" && v != "commit") {
        return absl::InvalidArgumentError(absl::StrCat(
            "git source attr git.mtime: want \"checkout\" or \"commit\", got \"", v, "\""));
      }
      out.mtime = v;
    } else if (absl::StartsWith(k, "git.")) {
      return absl::UnimplementedError(
          absl::StrCat("git source attr ", k, " is not supported by this kilnd"));
    }
  }
  if (absl::StartsWith(out.ref, "-")) {
    return absl::InvalidArgumentError(absl::StrCat("invalid git ref \"", out.ref, "\""));
  }
  if (!out.checksum.empty()) {
    for (char c : out.checksum) {
      if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) {
        return absl::InvalidArgumentError(absl::StrCat("invalid checksum ", out.checksum,
                                                       " for Git URL, expected hex commit hash"));
      }
    }
    out.checksum = absl::AsciiStrToLower(out.checksum);
  }
  return out;
}

// Runs git for one remote: a fixed environment (no system or global config, no prompts, the
// auth additions), errors naming the subcommand with git's own message, passwords redacted.
class GitSourceOp::Git {
 public:
  Git(const Context& ctx, std::string binary, std::vector<std::string> env, std::string password)
      : ctx_(ctx),
        binary_(std::move(binary)),
        env_(std::move(env)),
        password_(std::move(password)) {}

  absl::StatusOr<std::string> Run(std::vector<std::string> args,
                                  std::vector<std::string> extra_env = {}) const {
    util::SpawnOptions so;
    so.argv = {binary_};
    so.argv.insert(so.argv.end(), args.begin(), args.end());
    so.env = env_;
    so.env.insert(so.env.end(), extra_env.begin(), extra_env.end());
    so.umask = 022;
    KILN_ASSIGN_OR_RETURN(
        util::CommandResult r,
        util::RunCommand(so, {.timeout = kGitTimeout, .ctx = &ctx_, .separate_stderr = true}));
    if (r.exit_code != 0) {
      // Name the subcommand, after the global options that take a value.
      size_t i = 0;
      while (i + 1 < args.size() && (args[i] == "--git-dir" || args[i] == "--work-tree" ||
                                     args[i] == "-c" || args[i] == "-C")) {
        i += 2;
      }
      return absl::UnavailableError(Redact(
          absl::StrCat("git ", args[i], " failed (exit ", r.exit_code,
                       "): ", absl::StripAsciiWhitespace(r.errors.empty() ? r.output : r.errors))));
    }
    return r.output;
  }

  std::string Redact(std::string s) const {
    if (!password_.empty()) absl::StrReplaceAll({{password_, "xxxxx"}}, &s);
    return s;
  }

 private:
  const Context& ctx_;
  const std::string binary_;
  const std::vector<std::string> env_;
  const std::string password_;
};

absl::Status GitSourceOp::PrepareAuth(const Context& ctx) {
  if (auth_ready_) return absl::OkStatus();
  absl::StatusOr<llb::GitUrl> url = llb::ParseGitUrl(attrs_.remote);
  if (!url.ok()) return url.status();
  std::shared_ptr<session::Session> session;
  if (worker_.sessions != nullptr && !worker_.session_id.empty()) {
    auto s = worker_.sessions->Get(ctx, worker_.session_id, std::chrono::milliseconds(5000));
    if (s.ok()) session = *std::move(s);
  }
  if (session && (url->scheme == "http" || url->scheme == "https")) {
    // BuildKit's order: the host-specific names first, the header before the token.
    struct Candidate {
      std::string name;
      bool token;
    };
    std::vector<Candidate> names;
    const std::string host = url->host;
    if (!attrs_.auth_header_secret.empty()) {
      names.push_back({absl::StrCat(attrs_.auth_header_secret, ".", host), false});
    }
    if (!attrs_.auth_token_secret.empty()) {
      names.push_back({absl::StrCat(attrs_.auth_token_secret, ".", host), true});
    }
    if (!attrs_.auth_header_secret.empty()) names.push_back({attrs_.auth_header_secret, false});
    if (!attrs_.auth_token_secret.empty()) names.push_back({attrs_.auth_token_secret, true});
    for (const Candidate& c : names) {
      absl::StatusOr<std::string> value = session::GetSecret(ctx, *session, c.name);
      if (absl::IsNotFound(value.status())) continue;
      if (!value.ok()) return value.status();
      std::string header =
          c.token
              ? absl::StrCat("basic ", absl::Base64Escape(absl::StrCat("x-access-token:", *value)))
              : *value;
      // github.com tokens serve every repository there, as actions/checkout does.
      std::string scope = attrs_.remote;
      for (const char* prefix : {"https://github.com/", "https://www.github.com/"}) {
        if (absl::StartsWith(attrs_.remote, prefix)) scope = prefix;
      }
      // Through the environment, so the header is not in any process's argv.
      auth_env_ = {"GIT_CONFIG_COUNT=1",
                   absl::StrCat("GIT_CONFIG_KEY_0=http.", scope, ".extraheader"),
                   absl::StrCat("GIT_CONFIG_VALUE_0=Authorization: ", header)};
      break;
    }
  }
  std::string ssh = "ssh -F /dev/null -o BatchMode=yes";
  if (url->scheme == "ssh") {
    char tmpl[] = "/tmp/kiln-git-ssh-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) return ErrnoToStatus(errno, "mkdtemp for git ssh");
    const std::string dir = tmpl;
    auto cleanup = std::shared_ptr<void>(nullptr, [dir](void*) {
      std::error_code ec;
      fs::remove_all(dir, ec);
    });
    if (!attrs_.known_ssh_hosts.empty()) {
      const std::string file = dir + "/known_hosts";
      std::ofstream(file) << attrs_.known_ssh_hosts;
      absl::StrAppend(&ssh, " -o UserKnownHostsFile=", file);
    } else {
      absl::StrAppend(&ssh, " -o StrictHostKeyChecking=no");
    }
    if (!attrs_.mount_ssh_sock.empty()) {
      if (!session) {
        return absl::FailedPreconditionError(absl::StrCat("git remote ",
                                                          RedactGitUrl(attrs_.remote),
                                                          " needs the client's SSH agent, and "
                                                          "this build has no session"));
      }
      absl::StatusOr<std::unique_ptr<session::SshAgentProxy>> agent = session::SshAgentProxy::Start(
          ctx, session, {.id = attrs_.mount_ssh_sock, .dir = dir, .mode = 0600});
      if (!agent.ok()) return agent.status();
      auth_env_.push_back(absl::StrCat("SSH_AUTH_SOCK=", (*agent)->socket_path()));
      std::shared_ptr<session::SshAgentProxy> proxy = *std::move(agent);
      // The proxy stops before its directory goes.
      ssh_agent_ = std::shared_ptr<void>(nullptr, [proxy, cleanup](void*) mutable {
        proxy->Stop();
        proxy.reset();
        cleanup.reset();
      });
    } else {
      ssh_agent_ = cleanup;
    }
  }
  auth_env_.push_back(absl::StrCat("GIT_SSH_COMMAND=", ssh));
  auth_ready_ = true;
  return absl::OkStatus();
}

absl::StatusOr<solver::CacheMap> GitSourceOp::GetCacheMap(const Context& ctx) {
  const std::string remote = RedactGitUrl(attrs_.remote);
  if (llb::IsCommitSha(attrs_.ref)) {
    if (!attrs_.checksum.empty() && !absl::StartsWith(attrs_.ref, attrs_.checksum)) {
      return absl::FailedPreconditionError(
          absl::StrCat("expected checksum to match ", attrs_.checksum, ", got ", attrs_.ref));
    }
    commit_ = used_ref_ = attrs_.ref;
  } else {
    KILN_RETURN_IF_ERROR(PrepareAuth(ctx));
    KILN_ASSIGN_OR_RETURN(std::string binary, GitBinary());
    Git git(ctx, binary, BaseEnv(), UrlPassword(attrs_.remote));
    std::string ref = attrs_.ref;
    if (ref.empty()) {
      KILN_ASSIGN_OR_RETURN(std::string out,
                            git.Run({"ls-remote", "--symref", "--", attrs_.remote, "HEAD"}));
      for (absl::string_view line : absl::StrSplit(out, '\n')) {
        // "ref: refs/heads/main\tHEAD"
        if (absl::ConsumePrefix(&line, "ref: ") && absl::EndsWith(line, "\tHEAD")) {
          ref = std::string(line.substr(0, line.size() - 5));
          break;
        }
      }
      if (ref.empty() || absl::StartsWith(ref, "-")) {
        return absl::NotFoundError(
            absl::StrCat("could not find default branch for repository: ", remote));
      }
    }
    KILN_ASSIGN_OR_RETURN(std::string out,
                          git.Run({"ls-remote", "--", attrs_.remote, ref, ref + "^{}"}));
    const RefNames names = NamesFor(ref);
    std::string sha, head_sha, tag_sha, peeled_sha, used;
    for (absl::string_view line : absl::StrSplit(out, '\n', absl::SkipEmpty())) {
      std::pair<absl::string_view, absl::string_view> parts =
          absl::StrSplit(line, absl::MaxSplits('\t', 1));
      if (parts.second == names.head) head_sha = std::string(parts.first);
      if (parts.second == names.tag) tag_sha = std::string(parts.first);
      if (parts.second == names.peeled_tag) peeled_sha = std::string(parts.first);
      if (parts.second == names.partial) {
        sha = std::string(parts.first);
        used = names.partial;
      }
    }
    // Like git checkout, a branch wins over a tag of the same name.
    if (sha.empty() && !head_sha.empty()) {
      sha = head_sha;
      used = names.head;
    }
    if (!sha.empty() && used != names.tag) peeled_sha.clear();
    if (sha.empty() && !tag_sha.empty()) {
      sha = tag_sha;
      used = names.tag;
    }
    if (sha.empty()) {
      return absl::NotFoundError(
          absl::StrCat("repository ", remote, " does not contain ref ", ref));
    }
    if (!llb::IsCommitSha(sha)) {
      return absl::DataLossError(absl::StrCat("invalid commit sha \"", sha, "\" from ", remote));
    }
    if (!attrs_.checksum.empty() && !absl::StartsWith(sha, attrs_.checksum) &&
        !(peeled_sha.size() > 0 && absl::StartsWith(peeled_sha, attrs_.checksum))) {
      return absl::FailedPreconditionError(
          absl::StrCat("expected checksum to match ", attrs_.checksum, ", got ", sha,
                       peeled_sha.empty() ? "" : " or " + peeled_sha));
    }
    commit_ = sha;
    used_ref_ = used;
    // Without .git, an annotated tag's tree is its commit's: share the key with the commit.
    if (!peeled_sha.empty() && !attrs_.keep_git_dir) sha = peeled_sha;
    key_sha_ = sha;
  }
  if (key_sha_.empty()) key_sha_ = commit_;
  // BuildKit's key: the commit, then what else changes the tree.
  std::string key = key_sha_;
  if (attrs_.keep_git_dir) absl::StrAppend(&key, ".git#", used_ref_);
  if (!attrs_.subdir.empty()) absl::StrAppend(&key, ":", attrs_.subdir);
  if (attrs_.skip_submodules) absl::StrAppend(&key, "(skip-submodules)");
  if (attrs_.mtime == "commit") absl::StrAppend(&key, "(mtime=commit)");
  return solver::CacheMap{.digest = Sha256Digest(absl::StrCat("git\n", key))};
}

std::vector<std::string> GitSourceOp::BaseEnv() const {
  std::vector<std::string> env = {
      "GIT_TERMINAL_PROMPT=0",
      "GIT_CONFIG_NOSYSTEM=1",
      "GIT_CONFIG_GLOBAL=/dev/null",
      "HOME=/nonexistent",
      "LC_ALL=C",
  };
  for (const char* name : {"PATH", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy",
                           "https_proxy", "no_proxy", "ALL_PROXY", "all_proxy"}) {
    if (const char* v = getenv(name)) env.push_back(absl::StrCat(name, "=", v));
  }
  env.insert(env.end(), auth_env_.begin(), auth_env_.end());
  return env;
}

absl::StatusOr<std::vector<solver::ResultPtr>> GitSourceOp::Exec(
    const Context& ctx, const std::vector<solver::ResultPtr>&) {
  KILN_RELEASE_ASSERT(!commit_.empty());  // GetCacheMap runs first
  if (worker_.cache_mounts == nullptr) {
    return absl::FailedPreconditionError("git sources need the daemon's cache-mount directory");
  }
  KILN_RETURN_IF_ERROR(PrepareAuth(ctx));
  KILN_ASSIGN_OR_RETURN(std::string binary, GitBinary());
  const std::string remote = RedactGitUrl(attrs_.remote);
  Git git(ctx, binary, BaseEnv(), UrlPassword(attrs_.remote));

  // The remote's bare repository, ours alone while we hold it.
  KILN_ASSIGN_OR_RETURN(
      CacheMountLease lease,
      worker_.cache_mounts->Acquire(
          ctx, absl::StrCat("git-remote\n", attrs_.remote), CacheSharing::kLocked,
          [&](const fs::path& dir) -> absl::Status {
            KILN_RETURN_IF_ERROR(git.Run({"init", "--bare", "--quiet", dir.string()}).status());
            return git.Run({"--git-dir", dir.string(), "remote", "add", "origin", attrs_.remote})
                .status();
          }));
  const std::string bare = lease.dir().string();
  auto in_bare = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {"--git-dir", bare});
    return git.Run(std::move(args));
  };
  std::error_code ec;
  fs::remove(lease.dir() / "shallow.lock", ec);  // left by a git that was killed
  // The remote may have moved (credentials, mirror) since the repository was made.
  KILN_RETURN_IF_ERROR(in_bare({"remote", "set-url", "origin", attrs_.remote}).status());

  ReportStatus(absl::StrCat("fetching ", remote), 0, 0, false);
  const bool have = in_bare({"cat-file", "-e", commit_ + "^{commit}"}).ok();
  if (!have) {
    if (llb::IsCommitSha(used_ref_)) {
      // A commit asked for by id: servers usually allow fetching it directly; if this one
      // does not, fetch every branch and tag and look for it there.
      if (!in_bare({"fetch", "--depth=1", "--no-tags", "origin", commit_}).ok()) {
        KILN_RETURN_IF_ERROR(
            in_bare({"fetch", "--tags", "--force", "origin", "+refs/heads/*:refs/remotes/origin/*"})
                .status());
      }
    } else {
      KILN_RETURN_IF_ERROR(in_bare({"fetch", "--depth=1", "--no-tags", "--force", "origin", "--",
                                    absl::StrCat(used_ref_, ":", used_ref_)})
                               .status());
      KILN_ASSIGN_OR_RETURN(std::string fetched, in_bare({"rev-parse", used_ref_}));
      if (absl::StripAsciiWhitespace(fetched) != commit_ &&
          !in_bare({"cat-file", "-e", commit_}).ok()) {
        // The ref moved between ls-remote and fetch: fetch the commit the key names.
        KILN_RETURN_IF_ERROR(in_bare({"fetch", "--depth=1", "origin", commit_}).status());
      }
    }
    if (!in_bare({"cat-file", "-e", commit_}).ok()) {
      return absl::NotFoundError(
          absl::StrCat("commit ", commit_, " is not in ", remote, " after fetching ", used_ref_));
    }
  }
  ReportStatus(absl::StrCat("fetching ", remote), 0, 0, true);

  cache::Manager& cache = *worker_.cache;
  KILN_ASSIGN_OR_RETURN(cache::MutableRef checkout, cache.New(nullptr, cache::kTypeGitCheckout));
  const fs::path root = checkout.root();
  const bool keep = attrs_.keep_git_dir && attrs_.subdir.empty();
  fs::path tree = root;
  if (!attrs_.subdir.empty()) {
    tree = root / absl::StrCat(".kiln-checkout-", NewRandomId());
    fs::create_directory(tree, ec);
    if (ec) return absl::InternalError(absl::StrCat("create checkout dir: ", ec.message()));
  }
  std::vector<std::string> tree_git;  // how to run git on the checkout
  if (keep) {
    // A repository of its own, fetched from the bare one, HEAD detached at the commit.
    const std::string dot_git = (root / ".git").string();
    tree_git = {"-C", root.string(), "--git-dir", dot_git, "--work-tree", root.string()};
    auto in_tree = [&](std::vector<std::string> args) {
      args.insert(args.begin(), tree_git.begin(), tree_git.end());
      return git.Run(std::move(args));
    };
    KILN_RETURN_IF_ERROR(in_tree({"-c", "init.defaultBranch=master", "init", "--quiet"}).status());
    KILN_RETURN_IF_ERROR(in_tree({"remote", "add", "origin", "file://" + bare}).status());
    std::string pull = absl::StrCat(used_ref_, ":", used_ref_);
    if (llb::IsCommitSha(used_ref_)) {
      const std::string tmp_ref = absl::StrCat("refs/kiln/", commit_);
      KILN_RETURN_IF_ERROR(in_bare({"update-ref", tmp_ref, commit_}).status());
      pull = tmp_ref;
    }
    KILN_RETURN_IF_ERROR(
        in_tree({"fetch", "-u", "--depth=1", "--quiet", "--", "origin", pull}).status());
    KILN_RETURN_IF_ERROR(in_tree({"checkout", "--quiet", "FETCH_HEAD"}).status());
    KILN_RETURN_IF_ERROR(in_tree({"remote", "set-url", "origin", remote}).status());
    KILN_RETURN_IF_ERROR(in_tree({"reflog", "expire", "--all", "--expire=now"}).status());
    fs::remove(root / ".git" / "FETCH_HEAD", ec);
  } else {
    // The bare repository's objects, checked out with an index of our own.
    // core.bare=false: git submodule refuses to work on a bare repository otherwise.
    // Run inside the work tree (git submodule checks where it runs).
    tree_git = {"-C",        tree.string(), "-c",          "core.bare=false",
                "--git-dir", bare,          "--work-tree", tree.string()};
    const std::string index = absl::StrCat("GIT_INDEX_FILE=", bare, "/kiln-index");
    fs::remove(lease.dir() / "kiln-index", ec);
    std::vector<std::string> args = tree_git;
    args.insert(args.end(), {"checkout", "--no-overlay", commit_, "--", "."});
    KILN_RETURN_IF_ERROR(git.Run(args, {index}).status());
    if (!attrs_.skip_submodules) {
      std::vector<std::string> sub = tree_git;
      sub.insert(sub.end(), {"submodule", "update", "--init", "--recursive", "--depth=1"});
      KILN_RETURN_IF_ERROR(git.Run(sub, {index}).status());
      KILN_RETURN_IF_ERROR(RemoveGitLinks(tree));
    }
    fs::remove(lease.dir() / "kiln-index", ec);
  }
  if (keep && !attrs_.skip_submodules) {
    std::vector<std::string> sub = tree_git;
    sub.insert(sub.end(), {"submodule", "update", "--init", "--recursive", "--depth=1"});
    KILN_RETURN_IF_ERROR(git.Run(sub).status());
  }
  if (attrs_.mtime == "commit") {
    std::vector<std::string> log = {"--git-dir", bare,           "log",
                                    "-1",        "--format=%ct", commit_ + "^{commit}"};
    KILN_ASSIGN_OR_RETURN(std::string out, git.Run(log));
    int64_t seconds = 0;
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(out), &seconds)) {
      return absl::DataLossError(absl::StrCat("commit time of ", commit_, ": \"", out, "\""));
    }
    KILN_RETURN_IF_ERROR(SetMtimes(tree, static_cast<time_t>(seconds)));
  }
  if (!attrs_.subdir.empty()) {
    KILN_RETURN_IF_ERROR(CheckDirsOnly(tree, attrs_.subdir));
    const fs::path from = tree / attrs_.subdir;
    for (const fs::directory_entry& e : fs::directory_iterator(from, ec)) {
      fs::rename(e.path(), root / e.path().filename(), ec);
      if (ec) {
        return absl::InternalError(
            absl::StrCat("move ", e.path().string(), " out of the checkout: ", ec.message()));
      }
    }
    if (ec) return absl::InternalError(absl::StrCat("list git subdir: ", ec.message()));
    fs::remove_all(tree, ec);
    if (ec) return absl::InternalError(absl::StrCat("remove checkout dir: ", ec.message()));
  }
  KILN_ASSIGN_OR_RETURN(cache::ImmutableRef ref,
                        checkout.Commit(absl::StrCat("git snapshot for ", remote, "#", used_ref_)));
  return std::vector<solver::ResultPtr>{std::make_shared<RefResult>(std::move(ref))};
}

}  // namespace kiln::ops
