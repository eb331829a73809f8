#include "daemon/frontend/dockerfile_frontend.h"

#include <optional>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/digest.h"
#include "base/status.h"
#include "daemon/ops/image_source.h"
#include "daemon/ops/read_ref.h"
#include "daemon/ops/vertices.h"
#include "daemon/util/logging.h"
#include "frontend/dockerfile/convert/convert.h"
#include "frontend/dockerfile/convert/subrequests.h"
#include "llb/llb.h"
#include "llb/load.h"

namespace kiln::frontend {
namespace {

constexpr int64_t kMaxDockerfileBytes = 16 << 20;

// A vertex that only reports (no op behind it), as BuildKit's "[internal] ..." steps.
class Step {
 public:
  Step(solver::ProgressSink* sink, const std::string& build, const std::string& name)
      : sink_(sink) {
    v_.digest = Sha256Digest(absl::StrCat("frontend ", build, " ", name));
    v_.name = name;
    if (sink_ != nullptr) sink_->Started(v_);
  }
  void Log(std::string_view line) {
    if (sink_ != nullptr) sink_->Log(v_, 1, absl::StrCat(AV(line), "\n"));
  }
  void Warn(const solver::ProgressSink::Warning& w) {
    if (sink_ != nullptr) sink_->Warn(v_, w);
  }
  absl::Status Done(absl::Status st) {
    if (sink_ != nullptr && !done_) sink_->Completed(v_, false, st);
    done_ = true;
    return st;
  }
  ~Step() { Done(absl::OkStatus()).IgnoreError(); }

 private:
  solver::ProgressSink* sink_;
  solver::Vertex v_;
  bool done_ = false;
};

absl::StatusOr<solver::ResultPtr> SolveState(const Context& ctx, const FrontendDeps& deps,
                                             const llb::State& state, const llb::MarshalOptions& mo,
                                             bool no_cache) {
  KILN_ASSIGN_OR_RETURN(pb::Definition def, llb::Marshal(state, mo));
  KILN_ASSIGN_OR_RETURN(llb::Graph graph, llb::LoadDefinition(def));
  KILN_ASSIGN_OR_RETURN(solver::Edge edge,
                        ops::BuildVertices(graph, *deps.worker, {.no_cache = no_cache}));
  auto result = deps.solver->Solve(ctx, edge, deps.progress, deps.worker->solve);
  if (!result.ok()) return ops::WithFailedOpSource(result.status(), def);
  return result;
}

const cache::ImmutableRef* RefOf(const solver::ResultPtr& r) {
  return r ? static_cast<const ops::RefResult&>(*r).ref() : nullptr;
}

// A file from a solved tree; nullopt when it does not exist.
absl::StatusOr<std::optional<std::string>> ReadOptional(const solver::ResultPtr& tree,
                                                        const std::string& path) {
  const cache::ImmutableRef* ref = RefOf(tree);
  if (ref == nullptr) return std::optional<std::string>();
  auto data = ops::ReadFileInRef(ref, path, std::nullopt, kMaxDockerfileBytes);
  if (absl::IsNotFound(data.status())) return std::optional<std::string>();
  KILN_RETURN_IF_ERROR(data.status());
  return std::optional<std::string>(std::move(*data));
}

std::string Attr(const std::map<std::string, std::string>& attrs, const std::string& key,
                 const std::string& fallback = "") {
  auto it = attrs.find(key);
  return it == attrs.end() || it->second.empty() ? fallback : it->second;
}

}  // namespace

absl::StatusOr<FrontendResult> SolveDockerfile(const Context& ctx, const FrontendDeps& deps,
                                               const FrontendRequest& req) {
  if (deps.solver == nullptr || deps.worker == nullptr) {
    return absl::FailedPreconditionError("the Dockerfile frontend has no solver");
  }
  if (!req.inputs.empty()) {
    return absl::UnimplementedError(
        "frontend inputs (named contexts passed as definitions) are not supported by kiln's "
        "Dockerfile frontend yet");
  }
  const auto& attrs = req.attrs;
  const std::string filename = Attr(attrs, "filename", "Dockerfile");
  const std::string dockerfile_local = Attr(attrs, "dockerfilekey", "dockerfile");
  const std::string context_local = Attr(attrs, "contextkey", "context");
  const std::string build_id = ctx.build_id();

  dockerfile::ConvertOptions o;
  o.filename = filename;
  o.context_name = context_local;
  o.session_id = req.session_id;
  o.target = Attr(attrs, "target");
  for (const auto& [k, v] : attrs) {
    if (absl::StartsWith(k, "build-arg:")) o.build_args[k.substr(10)] = v;
    if (absl::StartsWith(k, "label:")) o.labels[k.substr(6)] = v;
  }
  if (auto p = Attr(attrs, "platform"); !p.empty()) {
    std::vector<std::string> platforms = absl::StrSplit(p, ',', absl::SkipEmpty());
    if (platforms.size() > 1) {
      return absl::UnimplementedError(
          absl::StrCat("building for several platforms (", p, ") is not supported by kiln yet"));
    }
    KILN_ASSIGN_OR_RETURN(llb::Platform target, llb::ParsePlatform(platforms.at(0)));
    o.target_platform = target;
  }
  if (auto it = attrs.find("no-cache"); it != attrs.end()) {
    if (it->second.empty()) {
      o.no_cache = true;
    } else {
      for (auto s : absl::StrSplit(it->second, ',', absl::SkipEmpty())) {
        o.no_cache_stages.insert(std::string(s));
      }
    }
  }

  // The Dockerfile (and its own ignore file) from the "dockerfile" local source.
  std::string dockerfile;
  std::optional<std::string> ignore;
  {
    // The local source's own vertex shows this step's progress.
    llb::LocalOptions lo;
    lo.include_patterns = {filename, filename + ".dockerignore"};
    lo.session_id = req.session_id;
    lo.shared_key_hint = dockerfile_local;
    lo.op.custom_name = absl::StrCat("[internal] load build definition from ", filename);
    KILN_ASSIGN_OR_RETURN(solver::ResultPtr tree,
                          SolveState(ctx, deps, llb::Local(dockerfile_local, lo), {}, false));
    KILN_ASSIGN_OR_RETURN(std::optional<std::string> data, ReadOptional(tree, filename));
    if (!data) {
      return absl::NotFoundError(absl::StrCat("failed to read dockerfile: open ", filename,
                                              ": no such file or directory"));
    }
    dockerfile = std::move(*data);
    KILN_ASSIGN_OR_RETURN(ignore, ReadOptional(tree, filename + ".dockerignore"));
  }

  // `# syntax=` (or BUILDKIT_SYNTAX): docker/dockerfile is built in; nothing is pulled.
  std::optional<std::string> syntax = dockerfile::SyntaxDirective(dockerfile);
  if (auto it = o.build_args.find("BUILDKIT_SYNTAX"); it != o.build_args.end()) {
    syntax = it->second;
  }
  if (syntax) {
    Step step(deps.progress, build_id, absl::StrCat("resolve image config for ", *syntax));
    if (!dockerfile::IsBuiltinSyntax(*syntax)) {
      return step.Done(absl::FailedPreconditionError(absl::StrCat(
          "syntax \"", *syntax,
          "\" needs an external frontend image, which kiln does not support; kiln has the "
          "docker/dockerfile frontend built in (use # syntax=docker/dockerfile:1 or none)")));
    }
    step.Log(
        absl::StrCat("using the built-in Dockerfile frontend for ", *syntax, " (nothing pulled)"));
  }

  if (!ignore) {
    llb::LocalOptions lo;
    lo.include_patterns = {".dockerignore"};
    lo.session_id = req.session_id;
    lo.shared_key_hint = context_local;
    lo.op.custom_name = "[internal] load .dockerignore";
    KILN_ASSIGN_OR_RETURN(solver::ResultPtr tree,
                          SolveState(ctx, deps, llb::Local(context_local, lo), {}, false));
    KILN_ASSIGN_OR_RETURN(ignore, ReadOptional(tree, ".dockerignore"));
  }
  if (ignore) o.excludes = dockerfile::ParseDockerignore(*ignore);

  // Subrequests (buildx --call): metadata instead of a build, as BuildKit's dockerui.
  const std::string request = Attr(attrs, "requestid");
  if (request == dockerfile::kRequestDescribe) {
    return FrontendResult{.metadata = dockerfile::DescribeResult()};
  }
  if (request == dockerfile::kRequestTargets || request == dockerfile::kRequestOutline) {
    auto m = request == dockerfile::kRequestTargets ? dockerfile::TargetsResult(dockerfile)
                                                    : dockerfile::OutlineResult(dockerfile, o);
    KILN_RETURN_IF_ERROR(m.status());
    return FrontendResult{.metadata = *std::move(m)};
  }
  if (!request.empty() && request != dockerfile::kRequestLint) {
    return dockerfile::UnsupportedSubrequestError(request);
  }

  const std::string resolve_mode = Attr(attrs, "image-resolve-mode", "default");
  o.resolve = [&](const std::string& ref,
                  const llb::Platform& platform) -> absl::StatusOr<dockerfile::ResolvedImage> {
    Step step(deps.progress, build_id, absl::StrCat("[internal] load metadata for ", ref));
    ops::ImageSourceAttrs a{.ref = ref, .resolve_mode = resolve_mode, .platform = platform};
    auto img = ops::ResolveImage(ctx, *deps.worker, a);
    if (!img.ok()) return step.Done(img.status());
    return dockerfile::ResolvedImage{.ref = img->ref, .digest = img->digest, .config = img->config};
  };

  // context:NAME=docker-image://REF | local:DIRNAME replace stages and images named NAME.
  for (const auto& [k, v] : attrs) {
    if (!absl::StartsWith(k, "context:")) continue;
    const std::string name = k.substr(8);
    dockerfile::ConvertOptions::NamedContext nc;
    if (absl::StartsWith(v, "docker-image://")) {
      auto normalized = llb::NormalizeImageRef(v.substr(15));
      if (!normalized.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("context:", name, "=", v, ": ", normalized.status().message()));
      }
      const llb::Platform platform = o.target_platform.value_or(llb::HostPlatform());
      KILN_ASSIGN_OR_RETURN(dockerfile::ResolvedImage img, o.resolve(*normalized, platform));
      llb::ImageOptions io;
      io.op.platform = platform;
      std::string pinned = *normalized;
      if (pinned.find('@') == std::string::npos) absl::StrAppend(&pinned, "@", img.digest);
      nc.state = llb::Image(pinned, io);
      nc.image_config = img.config;
    } else if (absl::StartsWith(v, "local:")) {
      llb::LocalOptions lo;
      lo.session_id = req.session_id;
      lo.shared_key_hint = v.substr(6);
      lo.op.custom_name = absl::StrCat("[context ", name, "] load from client");
      nc.state = llb::Local(v.substr(6), lo);
    } else {
      return absl::UnimplementedError(absl::StrCat(
          "context:", name, "=", v,
          ": kiln supports named contexts of the forms docker-image://REF and local:NAME"));
    }
    o.named_contexts[name] = std::move(nc);
  }

  if (request == dockerfile::kRequestLint) {
    return FrontendResult{.metadata = dockerfile::LintResult(
                              dockerfile, filename, dockerfile::DockerfileToLlb(dockerfile, o))};
  }
  KILN_ASSIGN_OR_RETURN(dockerfile::ConvertResult conv, dockerfile::DockerfileToLlb(dockerfile, o));

  FrontendResult out;
  if (!conv.warnings.empty()) {
    Step step(deps.progress, build_id, "[internal] Dockerfile warnings");
    for (const dockerfile::Warning& w : conv.warnings) {
      std::string line = w.line > 0 ? absl::StrCat(filename, ":", w.line, ": ") : "";
      std::string text = absl::StrCat(line, w.rule.empty() ? "" : w.rule + ": ", w.message);
      Logger("frontend")->info("build {}: warning: {}", build_id, text);
      out.warnings.push_back(text);
      step.Warn({.level = 1,
                 .short_message = absl::StrCat(w.rule.empty() ? "" : w.rule + ": ", w.message),
                 .detail = {},
                 .url = w.url,
                 .filename = filename,
                 .source = dockerfile,
                 .line = w.line});
    }
  }

  llb::MarshalOptions mo;
  mo.platform = o.target_platform.value_or(llb::HostPlatform());
  KILN_ASSIGN_OR_RETURN(out.result, SolveState(ctx, deps, conv.state, mo, o.no_cache));
  out.metadata["containerimage.config"] = conv.image_config;
  return out;
}

}  // namespace kiln::frontend
