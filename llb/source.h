#pragma once
// Source ops: where content enters a build (the client's directories, registry images, URLs).
// Identifiers and attributes are BuildKit's, so the daemon's source implementations and
// BuildKit's agree on what an op means.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "llb/state.h"

namespace kiln::llb {

// Options of Local(); the attribute each sets is named beside it.
struct LocalOptions {
  std::vector<std::string> include_patterns;  // local.includepattern (JSON array)
  std::vector<std::string> exclude_patterns;  // local.excludepatterns (JSON array)
  std::vector<std::string> follow_paths;      // local.followpaths (JSON array)
  std::string shared_key_hint;                // local.sharedkeyhint
  std::string session_id;                     // local.session
  // local.unique when there is no session id; empty means MarshalOptions::local_unique_id.
  std::string local_unique_id;
  OpOptions op;
};

// A directory the client sends through the session: identifier "local://NAME".
State Local(std::string_view name, const LocalOptions& options = {});

enum class ResolveMode { kDefault, kForcePull, kPreferLocal };

// Options of Image().
struct ImageOptions {
  ResolveMode resolve_mode = ResolveMode::kDefault;  // image.resolvemode when not default
  std::string record_type;                           // image.recordtype
  std::optional<int> layer_limit;                    // image.layerlimit
  OpOptions op;  // op.platform picks the image variant and becomes the state's platform
};

// A registry image: identifier "docker-image://" + the normalized reference ("busybox" ->
// "docker.io/library/busybox:latest"). A malformed reference fails at Marshal().
State Image(std::string_view ref, const ImageOptions& options = {});

// Normalizes an image reference as BuildKit's llb.Image does (distribution's
// ParseNormalizedNamed + TagNameOnly).
[[nodiscard]] absl::StatusOr<std::string> NormalizeImageRef(std::string_view ref);

// Options of Http().
struct HttpOptions {
  std::string checksum;            // http.checksum ("sha256:...")
  std::string filename;            // http.filename
  std::optional<uint32_t> perm;    // http.perm (octal text)
  int uid = 0;                     // http.uid when nonzero
  int gid = 0;                     // http.gid when nonzero
  std::string auth_header_secret;  // http.authheadersecret
  OpOptions op;
};

// A file downloaded from `url` (the identifier is the URL itself).
State Http(std::string_view url, const HttpOptions& options = {});

// Options of Git(); the attribute each sets is named beside it.
struct GitOptions {
  std::string ref;     // branch, tag, full ref or commit (identifier fragment)
  std::string subdir;  // directory of the repository to use as the root (identifier fragment)
  bool keep_git_dir = false;                           // git.keepgitdir
  std::string checksum;                                // git.checksum: the commit (or a prefix)
  bool skip_submodules = false;                        // git.skipsubmodules
  std::string mtime;                                   // git.mtime: "checkout" or "commit"
  std::string auth_token_secret = "GIT_AUTH_TOKEN";    // git.authtokensecret
  std::string auth_header_secret = "GIT_AUTH_HEADER";  // git.authheadersecret
  std::string known_ssh_hosts;                         // git.knownsshhosts (ssh remotes)
  std::string mount_ssh_sock;  // git.mountsshsock (ssh remotes; default "default")
  OpOptions op;
};

// A git repository checked out: identifier "git://HOST/PATH[#REF[:SUBDIR]]" (the same for
// every transport), the remote itself in git.fullurl. A URL without a known scheme is https.
State Git(std::string_view url, const GitOptions& options = {});

}  // namespace kiln::llb
