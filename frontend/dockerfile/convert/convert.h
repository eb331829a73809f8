#pragma once
// dockerfile2llb: a Dockerfile and the frontend's options -> an LLB state for the target stage
// and the image config (with history) the exporter should write, as BuildKit's
// frontend/dockerfile/dockerfile2llb does. One dispatch function per instruction. Base images'
// configs come from a caller-supplied resolver, so this library needs no daemon: it is a pure
// function of its inputs (plus the resolver's answers). Thread-compatible.
//
//   ConvertOptions o;
//   o.build_args["VERSION"] = "1.2";
//   o.resolve = [&](const std::string& ref, const llb::Platform& p) { ... };
//   absl::StatusOr<ConvertResult> r = DockerfileToLlb(text, o);
//   absl::StatusOr<pb::Definition> def = llb::Marshal(r->state);

#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "llb/llb.h"

namespace kiln::dockerfile {

// A base image's identity and config, as the registry gave it.
struct ResolvedImage {
  std::string ref;     // normalized reference that was resolved
  std::string digest;  // manifest digest ("sha256:..."), pinned into the LLB
  std::string config;  // the image config JSON
};
// Resolves a normalized image reference for a platform. NOT_FOUND etc. fail the conversion.
using ImageResolver =
    std::function<absl::StatusOr<ResolvedImage>(const std::string& ref, const llb::Platform&)>;

// A lint-style finding shown to the user, as BuildKit's frontend warnings.
struct Warning {
  std::string rule;         // "SecretsUsedInArgOrEnv", "UndefinedVar", ...
  std::string message;      // one line
  int line = 0;             // 1-based; 0 when not tied to a line
  std::string url;          // documentation link, if any
  std::string description;  // the rule's one-line description, if known
};

struct ConvertOptions {
  std::string filename = "Dockerfile";            // the Dockerfile's name in error sources
  std::string target;                             // --opt target=; empty = the last stage
  std::map<std::string, std::string> build_args;  // build-arg:NAME=value
  std::map<std::string, std::string> labels;      // label:NAME=value, added to the image
  std::optional<llb::Platform> target_platform;   // platform=; default: build_platform
  llb::Platform build_platform = llb::HostPlatform();
  std::string context_name = "context";  // the local source of the build context
  std::string session_id;                // local.session of local sources
  std::string shared_key_hint;           // local.sharedkeyhint of the context
  std::vector<std::string> excludes;     // .dockerignore patterns for the context
  // context:NAME=... replacements of stages/images named in FROM/COPY --from/--mount from=,
  // given as ready LLB states (the daemon turns docker-image://, local:NAME, oci-layout:// and
  // input:NAME values into states) with an optional image config.
  struct NamedContext {
    llb::State state;
    std::string image_config;  // empty: none
  };
  std::map<std::string, NamedContext> named_contexts;
  bool no_cache = false;                  // no-cache with no value: every op ignores the cache
  std::set<std::string> no_cache_stages;  // no-cache=stage1,stage2
  ImageResolver resolve;                  // required when a stage uses an image
};

struct ConvertResult {
  llb::State state;          // the target stage's root filesystem
  std::string image_config;  // JSON: containerimage.config
  std::vector<Warning> warnings;
  std::optional<std::string> syntax;  // the `# syntax=` directive, if any
};

// Converts `dockerfile`. Errors are INVALID_ARGUMENT naming the line for Dockerfile problems
// ("Dockerfile:4: unknown stage \"buidler\""), or the resolver's error for base images.
[[nodiscard]] absl::StatusOr<ConvertResult> DockerfileToLlb(std::string_view dockerfile,
                                                            const ConvertOptions& options);

// The `# syntax=` directive of a Dockerfile without parsing the rest (nullopt when absent).
std::optional<std::string> SyntaxDirective(std::string_view dockerfile);

// True when `syntax` names the Dockerfile frontend kiln has built in: docker/dockerfile (any
// tag, with or without docker.io/, -labs variants and digests).
bool IsBuiltinSyntax(std::string_view syntax);

// .dockerignore text -> exclude patterns, as moby's ignorefile.ReadAll: comments and blank
// lines dropped, whitespace trimmed, paths cleaned, a leading "/" removed, "!" kept.
std::vector<std::string> ParseDockerignore(std::string_view text);

// BuildKit's secret-name check (rule SecretsUsedInArgOrEnv): a name whose "_"-separated words
// include apikey, auth, credential(s), key, password, pword, passwd, secret or token.
bool LooksLikeSecretName(std::string_view name);

}  // namespace kiln::dockerfile
