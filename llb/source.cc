#include "llb/source.h"

#include <cstdio>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "llb/git_url.h"
#include "llb/internal/gojson.h"
#include "llb/internal/gopath.h"
#include "llb/internal/vertex.h"

namespace kiln::llb {
namespace {

// A source op: identifier plus attributes, no inputs. Immutable, so thread-safe to share.
class SourceVertex : public internal::Vertex {
 public:
  // `unique_id` is set for local sources without a session: they get a "local.unique" attr,
  // the marshal call's id when `*unique_id` is empty.
  SourceVertex(std::string identifier, std::map<std::string, std::string> attrs,
               std::set<std::string> caps, OpOptions options, absl::Status error,
               std::optional<std::string> unique_id = std::nullopt)
      : identifier_(std::move(identifier)),
        attrs_(std::move(attrs)),
        caps_(std::move(caps)),
        options_(std::move(options)),
        error_(std::move(error)),
        unique_id_(std::move(unique_id)) {}

  std::vector<internal::Output> Inputs() const override { return {}; }

  absl::Status Marshal(internal::MarshalContext& ctx, pb::Op* op,
                       pb::OpMetadata* metadata) const override {
    if (!error_.ok()) return error_;
    std::map<std::string, std::string> attrs = attrs_;
    std::set<std::string> caps = caps_;
    if (unique_id_.has_value()) {
      attrs["local.unique"] = unique_id_->empty() ? ctx.local_unique_id() : *unique_id_;
      caps.insert("source.local.unique");
    }
    ctx.ApplyConstraints(options_, caps, op, metadata);
    // Only images are platform specific (BuildKit's platformSpecificSource).
    if (!identifier_.starts_with("docker-image://") && !identifier_.starts_with("oci-layout://")) {
      op->clear_platform();
    }
    pb::SourceOp* source = op->mutable_source();
    source->set_identifier(identifier_);
    for (const auto& [k, v] : attrs) (*source->mutable_attrs())[k] = v;
    return absl::OkStatus();
  }

 private:
  const std::string identifier_;
  const std::map<std::string, std::string> attrs_;
  const std::set<std::string> caps_;
  const OpOptions options_;
  const absl::Status error_;
  const std::optional<std::string> unique_id_;
};

State NewSource(std::shared_ptr<SourceVertex> vertex, const OpOptions& options) {
  return State::FromOutput(internal::Output{std::move(vertex), 0, options.platform});
}

std::string JsonList(const std::vector<std::string>& values) {
  return internal::GoJsonDump(nlohmann::ordered_json(values));
}

// The grammar of github.com/distribution/reference, hand-written (std::regex is slow and trips
// GCC 12 warnings under sanitizers).
bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool IsAlnum(char c) { return IsLowerAlnum(c) || (c >= 'A' && c <= 'Z'); }
bool IsWord(char c) { return IsAlnum(c) || c == '_'; }
bool IsHex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

// [a-z0-9]+ separated by ".", "_", "__" or runs of "-".
bool IsPathComponent(std::string_view s) {
  size_t i = 0;
  auto run = [&] {
    const size_t start = i;
    while (i < s.size() && IsLowerAlnum(s[i])) ++i;
    return i > start;
  };
  if (!run()) return false;
  while (i < s.size()) {
    if (s[i] == '.') {
      ++i;
    } else if (s[i] == '_') {
      i += (i + 1 < s.size() && s[i + 1] == '_') ? 2 : 1;
    } else if (s[i] == '-') {
      while (i < s.size() && s[i] == '-') ++i;
    } else {
      return false;
    }
    if (!run()) return false;
  }
  return true;
}

bool IsRemoteName(std::string_view s) {
  for (size_t start = 0;;) {
    const size_t slash = s.find('/', start);
    if (!IsPathComponent(s.substr(start, slash - start))) return false;
    if (slash == std::string_view::npos) return true;
    start = slash + 1;
  }
}

// host[:port], host a dotted DNS name or a bracketed IPv6 address.
bool IsDomainAndPort(std::string_view s) {
  std::string_view host = s;
  std::string_view port;
  if (!s.empty() && s.front() == '[') {
    const size_t close = s.find(']');
    if (close == std::string_view::npos || close == 1) return false;
    for (char c : s.substr(1, close - 1)) {
      if (!IsHex(c) && c != ':') return false;
    }
    host = {};
    port = s.substr(close + 1);
  } else if (const size_t colon = s.find(':'); colon != std::string_view::npos) {
    host = s.substr(0, colon);
    port = s.substr(colon);
  }
  if (!port.empty()) {
    if (port.size() < 2 || port.front() != ':') return false;
    for (char c : port.substr(1)) {
      if (c < '0' || c > '9') return false;
    }
  }
  if (s.front() == '[') return true;
  for (size_t start = 0;;) {
    const size_t dot = host.find('.', start);
    std::string_view label = host.substr(start, dot - start);
    if (label.empty() || !IsAlnum(label.front()) || !IsAlnum(label.back())) return false;
    for (char c : label) {
      if (!IsAlnum(c) && c != '-') return false;
    }
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

bool IsTag(std::string_view s) {
  if (s.empty() || s.size() > 128 || !IsWord(s.front())) return false;
  for (char c : s) {
    if (!IsWord(c) && c != '.' && c != '-') return false;
  }
  return true;
}

// algorithm:hex, the algorithm being [A-Za-z][A-Za-z0-9]* parts joined by one of "-_+.".
bool IsDigestSyntax(std::string_view s) {
  const size_t colon = s.find(':');
  if (colon == std::string_view::npos || s.size() - colon - 1 < 32) return false;
  bool part_start = true;
  for (char c : s.substr(0, colon)) {
    if (part_start) {
      if (!IsAlnum(c) || (c >= '0' && c <= '9')) return false;
      part_start = false;
    } else if (c == '-' || c == '_' || c == '+' || c == '.') {
      part_start = true;
    } else if (!IsAlnum(c)) {
      return false;
    }
  }
  if (part_start) return false;
  for (char c : s.substr(colon + 1)) {
    if (!IsHex(c)) return false;
  }
  return true;
}

absl::Status ValidateDigest(const std::string& digest) {
  const size_t colon = digest.find(':');
  const std::string algorithm = digest.substr(0, colon);
  const std::string hex = digest.substr(colon + 1);
  size_t want = 0;
  if (algorithm == "sha256") {
    want = 64;
  } else if (algorithm == "sha384") {
    want = 96;
  } else if (algorithm == "sha512") {
    want = 128;
  } else {
    return absl::InvalidArgumentError(absl::StrCat("unsupported digest algorithm in ", digest));
  }
  if (hex.size() != want || hex.find_first_not_of("0123456789abcdef") != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("invalid checksum digest format: ", digest));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> NormalizeImageRef(std::string_view ref_view) {
  const std::string ref(ref_view);
  if (ref.size() == 64 && ref.find_first_not_of("0123456789abcdef") == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "invalid repository name (", ref, "), cannot specify 64-byte hexadecimal strings"));
  }
  if (ref.empty() || ref.size() > 1024) {
    return absl::InvalidArgumentError("invalid reference format");
  }
  // splitDockerDomain: familiar names live on Docker Hub, official images under library/.
  std::string domain;
  std::string remainder;
  if (const size_t slash = ref.find('/'); slash == std::string::npos) {
    domain = "docker.io";
    remainder = "library/" + ref;
  } else {
    const std::string first = ref.substr(0, slash);
    std::string lower = first;
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (first == "localhost" || first.find_first_of(".:") != std::string::npos || lower != first) {
      domain = first == "index.docker.io" ? "docker.io" : first;
      remainder = ref.substr(slash + 1);
    } else {
      domain = "docker.io";
      remainder = ref;
    }
    if (domain == "docker.io" && remainder.find('/') == std::string::npos) {
      remainder = "library/" + remainder;
    }
  }
  const std::string remote = remainder.substr(0, remainder.find(':'));
  for (char c : remote) {
    if (std::isupper(static_cast<unsigned char>(c))) {
      return absl::InvalidArgumentError(absl::StrCat("invalid reference format: repository name (",
                                                     remote, ") must be lowercase"));
    }
  }
  // domain/remainder = name[:tag][@digest]
  const std::string full = domain + "/" + remainder;
  const size_t at = full.find('@');
  const std::string name_tag = full.substr(0, at);
  const std::string digest = at == std::string::npos ? "" : full.substr(at + 1);
  std::string name = name_tag;
  std::string tag;
  if (const size_t colon = name_tag.rfind(':');
      colon != std::string::npos && name_tag.find('/', colon) == std::string::npos) {
    name = name_tag.substr(0, colon);
    tag = name_tag.substr(colon + 1);
  }
  const bool name_ok =
      IsRemoteName(name) ||
      (IsDomainAndPort(domain) &&
       IsRemoteName(std::string_view(name).substr(std::min(name.size(), domain.size() + 1))));
  if (!name_ok || (at != std::string::npos && !IsDigestSyntax(digest)) ||
      (name_tag.size() != name.size() && !IsTag(tag))) {
    return absl::InvalidArgumentError("invalid reference format");
  }
  if (name.size() > 255) {
    return absl::InvalidArgumentError("repository name must have at most 255 characters");
  }
  std::string out = name;
  if (!digest.empty()) {
    if (absl::Status s = ValidateDigest(digest); !s.ok()) return s;
  }
  if (tag.empty() && digest.empty()) {
    out += ":latest";  // TagNameOnly
  } else {
    if (!tag.empty()) absl::StrAppend(&out, ":", tag);
    if (!digest.empty()) absl::StrAppend(&out, "@", digest);
  }
  return out;
}

State Local(std::string_view name, const LocalOptions& options) {
  std::map<std::string, std::string> attrs;
  std::set<std::string> caps{"source.local"};
  if (!options.session_id.empty()) {
    attrs["local.session"] = options.session_id;
    caps.insert("source.local.sessionid");
  }
  if (!options.include_patterns.empty()) {
    attrs["local.includepattern"] = JsonList(options.include_patterns);
    caps.insert("source.local.includepatterns");
  }
  if (!options.follow_paths.empty()) {
    attrs["local.followpaths"] = JsonList(options.follow_paths);
    caps.insert("source.local.followpaths");
  }
  if (!options.exclude_patterns.empty()) {
    attrs["local.excludepatterns"] = JsonList(options.exclude_patterns);
    caps.insert("source.local.excludepatterns");
  }
  if (!options.shared_key_hint.empty()) {
    attrs["local.sharedkeyhint"] = options.shared_key_hint;
    caps.insert("source.local.sharedkeyhint");
  }
  std::optional<std::string> unique_id;
  if (options.session_id.empty()) unique_id = options.local_unique_id;
  auto vertex =
      std::make_shared<SourceVertex>(absl::StrCat("local://", AV(name)), std::move(attrs),
                                     std::move(caps), options.op, absl::OkStatus(), unique_id);
  return NewSource(std::move(vertex), options.op);
}

State Image(std::string_view ref, const ImageOptions& options) {
  absl::StatusOr<std::string> normalized = NormalizeImageRef(ref);
  std::map<std::string, std::string> attrs;
  std::set<std::string> caps{"source.image"};
  switch (options.resolve_mode) {
    case ResolveMode::kDefault:
      break;
    case ResolveMode::kForcePull:
      attrs["image.resolvemode"] = "pull";
      caps.insert("source.image.resolvemode");
      break;
    case ResolveMode::kPreferLocal:
      attrs["image.resolvemode"] = "local";
      break;
  }
  if (!options.record_type.empty()) attrs["image.recordtype"] = options.record_type;
  if (options.layer_limit.has_value()) {
    attrs["image.layerlimit"] = std::to_string(*options.layer_limit);
    caps.insert("source.image.layerlimit");
  }
  absl::Status error = normalized.status();
  if (!error.ok()) {
    error = absl::InvalidArgumentError(
        absl::StrCat("image reference \"", AV(ref), "\": ", error.message()));
  }
  auto vertex = std::make_shared<SourceVertex>(
      absl::StrCat("docker-image://", normalized.ok() ? *normalized : std::string(ref)),
      std::move(attrs), std::move(caps), options.op, std::move(error));
  return NewSource(std::move(vertex), options.op);
}

State Http(std::string_view url, const HttpOptions& options) {
  std::map<std::string, std::string> attrs;
  std::set<std::string> caps{"source.http"};
  if (!options.checksum.empty()) {
    attrs["http.checksum"] = options.checksum;
    caps.insert("source.http.checksum");
  }
  if (!options.filename.empty()) attrs["http.filename"] = options.filename;
  if (options.perm.has_value() && (*options.perm & 0777) != 0) {
    char octal[16];
    std::snprintf(octal, sizeof(octal), "0%o", *options.perm & 0777);
    attrs["http.perm"] = octal;
    caps.insert("source.http.perm");
  }
  // BuildKit's cap id for uid/gid is spelled "soruce.http.uidgid"; keep it byte-identical.
  if (options.uid != 0) {
    attrs["http.uid"] = std::to_string(options.uid);
    caps.insert("soruce.http.uidgid");
  }
  if (options.gid != 0) {
    attrs["http.gid"] = std::to_string(options.gid);
    caps.insert("soruce.http.uidgid");
  }
  if (!options.auth_header_secret.empty()) {
    attrs["http.authheadersecret"] = options.auth_header_secret;
    caps.insert("source.http.auth");
  }
  auto vertex = std::make_shared<SourceVertex>(std::string(url), std::move(attrs), std::move(caps),
                                               options.op, absl::OkStatus());
  return NewSource(std::move(vertex), options.op);
}

State Git(std::string_view url, const GitOptions& options) {
  std::string remote_url(url);
  absl::StatusOr<GitUrl> remote = ParseGitUrl(remote_url);
  if (remote.status().code() == absl::StatusCode::kNotFound) {
    remote_url = absl::StrCat("https://", AV(url));
    remote = ParseGitUrl(remote_url);
  }
  if (remote.ok()) remote_url = remote->remote;
  // The identifier is the same for https and ssh remotes of one host/path, as BuildKit's.
  std::string id = remote_url;
  if (remote.ok()) {
    id = absl::StrCat(remote->host, internal::JoinPath("/", remote->path));
    if (!options.ref.empty() || !options.subdir.empty()) {
      absl::StrAppend(&id, "#", options.ref);
      if (!options.subdir.empty()) absl::StrAppend(&id, ":", options.subdir);
    }
  }
  std::map<std::string, std::string> attrs;
  std::set<std::string> caps{"source.git"};
  if (options.keep_git_dir) {
    attrs["git.keepgitdir"] = "true";
    caps.insert("source.git.keepgitdir");
  }
  if (!remote_url.empty()) {
    attrs["git.fullurl"] = remote_url;
    caps.insert("source.git.fullurl");
  }
  if (!options.auth_token_secret.empty()) {
    attrs["git.authtokensecret"] = options.auth_token_secret;
  }
  if (!options.auth_header_secret.empty()) {
    attrs["git.authheadersecret"] = options.auth_header_secret;
  }
  if (remote.ok() && remote->scheme == "ssh") {
    if (!options.known_ssh_hosts.empty()) {
      std::string hosts = options.known_ssh_hosts;
      while (!hosts.empty() && hosts.back() == '\n') hosts.pop_back();
      attrs["git.knownsshhosts"] = hosts + "\n";
    }
    caps.insert("source.git.knownsshhosts");
    attrs["git.mountsshsock"] = options.mount_ssh_sock.empty() ? "default" : options.mount_ssh_sock;
    caps.insert("source.git.mountsshsock");
  }
  if (!options.checksum.empty()) {
    attrs["git.checksum"] = options.checksum;
    caps.insert("source.git.checksum");
  }
  if (options.skip_submodules) {
    attrs["git.skipsubmodules"] = "true";
    caps.insert("source.git.skipsubmodules");
  }
  if (!options.mtime.empty()) {
    attrs["git.mtime"] = options.mtime;
    caps.insert("source.git.mtime");
  }
  auto vertex = std::make_shared<SourceVertex>(absl::StrCat("git://", id), std::move(attrs),
                                               std::move(caps), options.op, absl::OkStatus());
  return NewSource(std::move(vertex), options.op);
}

}  // namespace kiln::llb
