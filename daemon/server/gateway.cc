#include "daemon/server/gateway.h"

#include <thread>

#include "absl/strings/str_cat.h"
#include "base/ids.h"
#include "base/status.h"
#include "daemon/frontend/dockerfile_frontend.h"
#include "daemon/ops/image_source.h"
#include "daemon/ops/read_ref.h"
#include "daemon/ops/vertices.h"
#include "daemon/registry/client.h"
#include "daemon/server/control_service.h"
#include "daemon/session/auth.h"
#include "daemon/util/logging.h"
#include "llb/load.h"

namespace kiln::server {
namespace gw = moby::buildkit::v1::frontend;
namespace {

// ReadFile answers fit in one message (16 MiB) with room for framing.
constexpr int64_t kMaxReadFileBytes = 15 << 20;

// Frontend API capabilities this daemon implements (frontend/gateway/pb/caps.go).
constexpr const char* kFrontendCaps[] = {
    "solve.base",      "solve.inlinereturn", "return",   "returnmap", "proto.refarray",
    "frontend.inputs", "gateway.warnings",   "readfile", "readdir",   "statfile",
};
// LLB capabilities of the ops this daemon runs (solver/pb/caps.go).
constexpr const char* kLlbCaps[] = {
    "source.image",
    "source.image.resolvemode",
    "source.image.layerlimit",
    "source.local",
    "source.local.unique",
    "source.local.sessionid",
    "source.local.includepatterns",
    "source.local.followpaths",
    "source.local.excludepatterns",
    "source.local.sharedkeyhint",
    "source.local.differ",
    "source.local.metadatatransfer",
    "source.http",
    "source.http.checksum",
    "source.http.perm",
    "soruce.http.uidgid",  // sic: BuildKit's cap id
    "source.http.auth",
    "source.http.header",
    "source.git",
    "source.git.keepgitdir",
    "source.git.fullurl",
    "source.git.httpauth",
    "source.git.knownsshhosts",
    "source.git.mountsshsock",
    "source.git.subdir",
    "source.git.checksum",
    "source.git.skipsubmodules",
    "source.git.mtime",
    "file.base",
    "file.rm.wildcard",
    "file.copy.includeexcludepatterns",
    "file.rm.nofollowsymlink",
    "file.copy.alwaysreplaceexistingdestpaths",
    "file.copy.modestring",
    "file.symlink.create",
    "constraints",
    "platform",
    "meta.ignorecache",
    "meta.description",
    "mergeop",
    "diffop",
    "exporter.multiple",
};

grpc::ServerUnaryReactor* Finish(grpc::CallbackServerContext* ctx, const absl::Status& st) {
  grpc::ServerUnaryReactor* r = ctx->DefaultReactor();
  r->Finish(ToGrpcStatus(st));
  return r;
}

absl::Status NotYet(const char* method) {
  return absl::UnimplementedError(absl::StrCat(
      "kilnd does not implement moby.buildkit.v1.frontend.LLBBridge/", method, " yet"));
}

// Runs `fn` (which may block: mounts, solves) on its own thread and finishes the call with
// its status.
template <typename Fn>
grpc::ServerUnaryReactor* RunAsync(grpc::CallbackServerContext* ctx, Fn fn) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  std::thread([reactor, fn = std::move(fn)]() mutable {
    absl::Status st = fn();
    reactor->Finish(ToGrpcStatus(st));
  }).detach();
  return reactor;
}

// The tree behind a result ref of `build` for ReadFile/ReadDir/StatFile ("" is the empty
// result, scratch). `keep` holds the result alive while it is read.
absl::StatusOr<const cache::ImmutableRef*> TreeOf(GatewayBuild& build, const std::string& id,
                                                  solver::ResultPtr* keep) {
  if (id.empty()) return nullptr;
  *keep = build.FindResult(id);
  if (!*keep) return absl::NotFoundError(absl::StrCat("no result with ref ", id, " in this build"));
  return ops::AsRef(*keep).ref();
}

class FinishedExec final : public grpc::ServerBidiReactor<gw::ExecMessage, gw::ExecMessage> {
 public:
  explicit FinishedExec(grpc::Status st) { Finish(std::move(st)); }
  void OnDone() override { delete this; }
};

}  // namespace

absl::StatusOr<ops::Worker> WorkerForBuild(const WorkerBase& base, const std::string& session_id,
                                           const std::vector<std::string>& requested) {
  ops::Worker w = base.worker;
  w.session_id = session_id;
  for (const std::string& e : requested) {
    if (std::find(base.allowed_entitlements.begin(), base.allowed_entitlements.end(), e) ==
        base.allowed_entitlements.end()) {
      return absl::PermissionDeniedError(absl::StrCat(
          "the build asks for entitlement ", e,
          " but this kilnd does not allow it (start it with --allow-insecure-entitlement ", e,
          ")"));
    }
    if (e == "security.insecure") w.allow_insecure = true;
    if (e == "network.host") w.allow_network_host = true;
  }
  if (w.content != nullptr) {
    // One registry client per build: it authenticates with what this build's client serves.
    session::Manager* sessions = w.sessions;
    auto credentials =
        [sessions, session_id](const std::string& host) -> absl::StatusOr<registry::Credentials> {
      registry::Credentials out;
      if (sessions == nullptr || session_id.empty()) return out;
      auto s = sessions->Get(Context(), session_id, std::chrono::milliseconds(5000));
      if (!s.ok()) return out;  // the client left: anonymous
      KILN_ASSIGN_OR_RETURN(session::RegistryCredentials c,
                            session::GetRegistryCredentials(Context(), **s, host));
      if (c.username.empty() && !c.secret.empty()) {
        out.identity_token = c.secret;
      } else {
        out.username = c.username;
        out.secret = c.secret;
      }
      return out;
    };
    w.registry = std::make_shared<registry::Client>(
        registry::Client::Options{.hosts = base.registry_hosts, .credentials = credentials});
  }
  return w;
}

std::string GatewayBuild::AddResult(solver::ResultPtr result) {
  std::string id = NewRandomId();
  std::lock_guard lock(mu_);
  results_[id] = std::move(result);
  return id;
}

solver::ResultPtr GatewayBuild::FindResult(const std::string& id) {
  std::lock_guard lock(mu_);
  auto it = results_.find(id);
  return it == results_.end() ? nullptr : it->second;
}

void GatewayBuild::SetReturn(absl::StatusOr<BuildResult> result) {
  std::lock_guard lock(mu_);
  if (!returned_) returned_ = std::move(result);
  cv_.notify_all();
}

absl::StatusOr<BuildResult> GatewayBuild::WaitReturn() {
  std::unique_lock lock(mu_);
  while (!returned_) {
    KILN_RETURN_IF_ERROR(ctx_.Check("build"));
    cv_.wait_for(lock, std::chrono::milliseconds(200));
  }
  return *returned_;
}

void GatewayService::Register(const std::string& ref, std::shared_ptr<GatewayBuild> build) {
  std::lock_guard lock(mu_);
  builds_[ref] = std::move(build);
  cv_.notify_all();
}

void GatewayService::Unregister(const std::string& ref) {
  std::lock_guard lock(mu_);
  builds_.erase(ref);
}

absl::StatusOr<std::shared_ptr<GatewayBuild>> GatewayService::BuildFor(
    grpc::CallbackServerContext* ctx) {
  auto it = ctx->client_metadata().find(kBuildIdHeader);
  if (it == ctx->client_metadata().end()) {
    return absl::InvalidArgumentError(
        absl::StrCat("gateway call without the ", kBuildIdHeader, " header"));
  }
  std::string ref(it->second.data(), it->second.size());
  std::unique_lock lock(mu_);
  // The client starts Control.Solve and its gateway calls at the same time.
  bool found = cv_.wait_for(lock, std::chrono::seconds(10), [&] { return builds_.contains(ref); });
  if (!found) {
    return absl::NotFoundError(absl::StrCat("no build with ref ", ref, " is running"));
  }
  return builds_[ref];
}

grpc::ServerUnaryReactor* GatewayService::Ping(grpc::CallbackServerContext* ctx,
                                               const gw::PingRequest*, Pong* resp) {
  for (const char* cap : kFrontendCaps) {
    auto* c = resp->add_frontendapicaps();
    c->set_id(cap);
    c->set_enabled(true);
  }
  for (const char* cap : kLlbCaps) {
    auto* c = resp->add_llbcaps();
    c->set_id(cap);
    c->set_enabled(true);
  }
  if (options_.worker != nullptr) {
    auto* w = resp->add_workers();
    w->set_id(options_.worker->id);
    for (const auto& [k, v] : options_.worker->labels) (*w->mutable_labels())[k] = v;
    for (const Platform& p : options_.worker->platforms) {
      auto* out = w->add_platforms();
      out->set_os(p.os);
      out->set_architecture(p.architecture);
      out->set_variant(p.variant);
    }
  }
  return Finish(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* GatewayService::Solve(grpc::CallbackServerContext* ctx,
                                                const gw::SolveRequest* req,
                                                gw::SolveResponse* resp) {
  // Solving blocks until the graph is done: run it on its own thread.
  return RunAsync(ctx, [this, ctx, req, resp]() -> absl::Status {
    KILN_ASSIGN_OR_RETURN(auto build, BuildFor(ctx));
    if (!req->frontend().empty()) {
      if (req->frontend() != frontend::kDockerfileFrontend) {
        return absl::UnimplementedError(
            absl::StrCat("frontend \"", req->frontend(), "\" is not available in kilnd (it has \"",
                         frontend::kDockerfileFrontend, "\" built in)"));
      }
      KILN_ASSIGN_OR_RETURN(ops::Worker worker, WorkerForBuild(*options_.base, build->session_id(),
                                                               build->params().entitlements));
      worker.solve = build->params().solve;
      worker.secret_ids = build->params().secret_ids;
      frontend::FrontendRequest freq{
          .attrs = {req->frontendopt().begin(), req->frontendopt().end()},
          .inputs = {req->frontendinputs().begin(), req->frontendinputs().end()},
          .session_id = build->session_id()};
      if (build->params().no_cache && !freq.attrs.contains("no-cache")) freq.attrs["no-cache"] = "";
      KILN_ASSIGN_OR_RETURN(
          frontend::FrontendResult fr,
          frontend::SolveDockerfile(
              build->ctx(),
              {.solver = options_.solver, .progress = &build->progress(), .worker = &worker},
              freq));
      // No ref (a subrequest's metadata-only answer, or scratch): the empty ref "", which Return
      // accepts, as for an empty definition.
      std::string id = fr.result ? build->AddResult(std::move(fr.result)) : "";
      auto* result = resp->mutable_result();
      for (const auto& [k, v] : fr.metadata) (*result->mutable_metadata())[k] = v;
      if (req->allowresultreturn()) {
        result->mutable_ref()->set_id(id);
      } else {
        resp->set_ref(id);
      }
      return absl::OkStatus();
    }
    if (!req->has_definition() || req->definition().def_size() == 0) {
      // An empty definition is the empty result.
      if (req->allowresultreturn()) resp->mutable_result()->mutable_ref()->set_id("");
      return absl::OkStatus();
    }
    KILN_ASSIGN_OR_RETURN(llb::Graph graph, llb::LoadDefinition(req->definition()));
    KILN_ASSIGN_OR_RETURN(ops::Worker worker, WorkerForBuild(*options_.base, build->session_id(),
                                                             build->params().entitlements));
    worker.solve = build->params().solve;
    worker.secret_ids = build->params().secret_ids;
    bool no_cache = build->params().no_cache || req->frontendopt().contains("no-cache");
    KILN_ASSIGN_OR_RETURN(solver::Edge target,
                          ops::BuildVertices(graph, worker, {.no_cache = no_cache}));
    auto result = options_.solver->Solve(build->ctx(), target, &build->progress(), worker.solve);
    if (!result.ok()) return ops::WithFailedOpSource(result.status(), req->definition());
    std::string id = build->AddResult(*std::move(result));
    if (req->allowresultreturn()) {
      auto* ref = resp->mutable_result()->mutable_ref();
      ref->set_id(id);
      *ref->mutable_def() = req->definition();
    } else {
      resp->set_ref(id);
    }
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* GatewayService::Return(grpc::CallbackServerContext* ctx,
                                                 const gw::ReturnRequest* req,
                                                 gw::ReturnResponse*) {
  auto build = BuildFor(ctx);
  if (!build.ok()) return Finish(ctx, build.status());
  if (req->has_error() && req->error().code() != 0) {
    (*build)->SetReturn(FromRpcStatus(req->error()));
    return Finish(ctx, absl::OkStatus());
  }
  const gw::Result& r = req->result();
  std::string id;
  switch (r.result_case()) {
    case gw::Result::kRef:
      id = r.ref().id();
      break;
    case gw::Result::kRefDeprecated:
      id = r.refdeprecated();
      break;
    case gw::Result::kRefs:
    case gw::Result::kRefsDeprecated:
      return Finish(ctx, absl::UnimplementedError(
                             "multi-platform results (a map of refs) are not supported yet"));
    default:
      break;
  }
  solver::ResultPtr result;
  if (!id.empty()) {
    result = (*build)->FindResult(id);
    if (!result) {
      return Finish(ctx, absl::NotFoundError(absl::StrCat("Return names unknown ref ", id)));
    }
  }
  BuildResult returned{.ref = std::move(result), .metadata = {}};
  for (const auto& [k, v] : r.metadata()) returned.metadata[k] = v;
  (*build)->SetReturn(std::move(returned));
  return Finish(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* GatewayService::Inputs(grpc::CallbackServerContext* ctx,
                                                 const gw::InputsRequest*,
                                                 gw::InputsResponse* resp) {
  auto build = BuildFor(ctx);
  if (!build.ok()) return Finish(ctx, build.status());
  for (const auto& [name, def] : (*build)->params().inputs) {
    (*resp->mutable_definitions())[name] = def;
  }
  return Finish(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* GatewayService::Warn(grpc::CallbackServerContext* ctx,
                                               const gw::WarnRequest* req, gw::WarnResponse*) {
  Logger("gateway")->warn("frontend warning: {}", req->short_());
  return Finish(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* GatewayService::ResolveImageConfig(
    grpc::CallbackServerContext* ctx, const gw::ResolveImageConfigRequest* req,
    gw::ResolveImageConfigResponse* resp) {
  return RunAsync(ctx, [this, ctx, req, resp]() -> absl::Status {
    KILN_ASSIGN_OR_RETURN(auto build, BuildFor(ctx));
    KILN_ASSIGN_OR_RETURN(
        ops::Worker worker,
        WorkerForBuild(*options_.base,
                       req->sessionid().empty() ? build->session_id() : req->sessionid(),
                       build->params().entitlements));
    ops::ImageSourceAttrs attrs{.ref = req->ref(), .resolve_mode = req->resolvemode()};
    if (req->has_platform()) {
      attrs.platform = llb::NormalizePlatform({.os = req->platform().os(),
                                               .architecture = req->platform().architecture(),
                                               .variant = req->platform().variant()});
    }
    if (attrs.resolve_mode.empty()) attrs.resolve_mode = "default";
    KILN_ASSIGN_OR_RETURN(ops::ResolvedImage image, ops::ResolveImage(build->ctx(), worker, attrs));
    resp->set_digest(image.digest);
    resp->set_config(image.config);
    resp->set_ref(image.ref);
    return absl::OkStatus();
  });
}
grpc::ServerUnaryReactor* GatewayService::ResolveSourceMeta(grpc::CallbackServerContext* ctx,
                                                            const gw::ResolveSourceMetaRequest*,
                                                            gw::ResolveSourceMetaResponse*) {
  return Finish(ctx, NotYet("ResolveSourceMeta"));
}
grpc::ServerUnaryReactor* GatewayService::ReadFile(grpc::CallbackServerContext* ctx,
                                                   const gw::ReadFileRequest* req,
                                                   gw::ReadFileResponse* resp) {
  return RunAsync(ctx, [this, ctx, req, resp]() -> absl::Status {
    KILN_ASSIGN_OR_RETURN(auto build, BuildFor(ctx));
    solver::ResultPtr keep;
    KILN_ASSIGN_OR_RETURN(const cache::ImmutableRef* tree, TreeOf(*build, req->ref(), &keep));
    std::optional<ops::ByteRange> range;
    if (req->has_range()) range = ops::ByteRange{req->range().offset(), req->range().length()};
    KILN_ASSIGN_OR_RETURN(std::string data,
                          ops::ReadFileInRef(tree, req->filepath(), range, kMaxReadFileBytes));
    resp->set_data(std::move(data));
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* GatewayService::ReadDir(grpc::CallbackServerContext* ctx,
                                                  const gw::ReadDirRequest* req,
                                                  gw::ReadDirResponse* resp) {
  return RunAsync(ctx, [this, ctx, req, resp]() -> absl::Status {
    KILN_ASSIGN_OR_RETURN(auto build, BuildFor(ctx));
    solver::ResultPtr keep;
    KILN_ASSIGN_OR_RETURN(const cache::ImmutableRef* tree, TreeOf(*build, req->ref(), &keep));
    KILN_ASSIGN_OR_RETURN(auto entries,
                          ops::ReadDirInRef(tree, req->dirpath(), req->includepattern()));
    for (auto& e : entries) *resp->add_entries() = std::move(e);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* GatewayService::StatFile(grpc::CallbackServerContext* ctx,
                                                   const gw::StatFileRequest* req,
                                                   gw::StatFileResponse* resp) {
  return RunAsync(ctx, [this, ctx, req, resp]() -> absl::Status {
    KILN_ASSIGN_OR_RETURN(auto build, BuildFor(ctx));
    solver::ResultPtr keep;
    KILN_ASSIGN_OR_RETURN(const cache::ImmutableRef* tree, TreeOf(*build, req->ref(), &keep));
    KILN_ASSIGN_OR_RETURN(*resp->mutable_stat(), ops::StatFileInRef(tree, req->path()));
    return absl::OkStatus();
  });
}
grpc::ServerUnaryReactor* GatewayService::Evaluate(grpc::CallbackServerContext* ctx,
                                                   const gw::EvaluateRequest*,
                                                   gw::EvaluateResponse*) {
  return Finish(ctx, NotYet("Evaluate"));
}
grpc::ServerUnaryReactor* GatewayService::NewContainer(grpc::CallbackServerContext* ctx,
                                                       const gw::NewContainerRequest*,
                                                       gw::NewContainerResponse*) {
  return Finish(ctx, NotYet("NewContainer"));
}
grpc::ServerUnaryReactor* GatewayService::ReleaseContainer(grpc::CallbackServerContext* ctx,
                                                           const gw::ReleaseContainerRequest*,
                                                           gw::ReleaseContainerResponse*) {
  return Finish(ctx, NotYet("ReleaseContainer"));
}
grpc::ServerBidiReactor<gw::ExecMessage, gw::ExecMessage>* GatewayService::ExecProcess(
    grpc::CallbackServerContext*) {
  return new FinishedExec(ToGrpcStatus(NotYet("ExecProcess")));
}

}  // namespace kiln::server
