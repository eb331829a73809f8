#include "daemon/server/control_service.h"

#include <algorithm>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/digest.h"
#include "base/status.h"
#include "boost/asio/post.hpp"
#include "daemon/cache/filter.h"
#include "daemon/exporter/exporter.h"
#include "daemon/frontend/dockerfile_frontend.h"
#include "daemon/ops/vertices.h"
#include "daemon/ops/worker.h"
#include "daemon/remotecache/remotecache.h"
#include "daemon/server/secret_guard.h"
#include "daemon/util/logging.h"
#include "frontend/dockerfile/convert/subrequests.h"
#include "kiln_version.h"
#include "llb/errdefs.h"
#include "llb/load.h"
#include "proto/google/rpc/status.pb.h"

namespace kiln::server {
namespace v1 = moby::buildkit::v1;

// The BuildKit API level whose protocol kilnd speaks.
constexpr char kBuildkitApiVersion[] = "v0.24.0";

grpc::Status ToGrpcStatus(const absl::Status& status) {
  auto code = static_cast<grpc::StatusCode>(status.code());
  std::string message(status.message());
  // BuildKit's typed error details (grpcerrors.ToGRPC): the failing op's source lines, which
  // buildctl, buildx and kiln print with context, and the failing vertex.
  google::rpc::Status details;
  for (const llb::ErrorSource& source : llb::SourcesOf(status)) {
    google::protobuf::Any* any = details.add_details();
    any->set_type_url(llb::kSourceDetailType);
    any->set_value(llb::SourceDetailJson(source));
  }
  if (auto vertex = status.GetPayload(solver::kVertexPayload)) {
    google::protobuf::Any* any = details.add_details();
    any->set_type_url(llb::kVertexDetailType);
    any->set_value(llb::VertexDetailJson(std::string(*vertex)));
  }
  if (auto name = status.GetPayload(dockerfile::kSubrequestPayload)) {
    google::protobuf::Any* any = details.add_details();
    any->set_type_url(dockerfile::kSubrequestDetailType);
    any->set_value(dockerfile::SubrequestDetailJson(std::string(*name)));
  }
  if (details.details_size() == 0) return grpc::Status(code, message);
  details.set_code(static_cast<int32_t>(code));
  details.set_message(message);
  return grpc::Status(code, message, details.SerializeAsString());
}

absl::Status FromRpcStatus(const google::rpc::Status& status) {
  absl::Status out(static_cast<absl::StatusCode>(status.code()), status.message());
  if (out.ok()) return out;
  for (const google::protobuf::Any& any : status.details()) {
    if (any.type_url() == llb::kSourceDetailType) {
      if (auto source = llb::ParseSourceDetail(any.value()); source.ok()) {
        out = llb::WithSource(std::move(out), *source);
      }
    } else if (any.type_url() == llb::kVertexDetailType) {
      if (auto digest = llb::ParseVertexDetail(any.value()); digest.ok()) {
        out.SetPayload(solver::kVertexPayload, absl::Cord(*digest));
      }
    }
  }
  return out;
}

v1::types::BuildkitVersion KilnBuildkitVersion() {
  v1::types::BuildkitVersion v;
  v.set_package(kPackage);
  v.set_version(absl::StrCat(kBuildkitApiVersion, "+kiln.", kVersion));
  v.set_revision(kRevision);
  return v;
}

namespace {

// The progress vertex name of an export, as BuildKit words it.
std::string ExportName(const exporter::ExportRequest& e) {
  if (e.type == "local") return "exporting to client directory";
  if (e.type == "tar") return "exporting to client tarball";
  if (e.type == "oci" || e.type == "docker")
    return absl::StrCat("exporting to ", e.type, " image format");
  auto name = e.attrs.find("name");
  auto push = e.attrs.find("push");
  if (name != e.attrs.end() && push != e.attrs.end() && push->second != "false") {
    return absl::StrCat("exporting to image ", name->second, " (push)");
  }
  return "exporting to image";
}

void SetTimestamp(int64_t ns, google::protobuf::Timestamp* ts) {
  ts->set_seconds(ns / 1'000'000'000);
  ts->set_nanos(static_cast<int32_t>(ns % 1'000'000'000));
}

v1::UsageRecord ToProto(const cache::UsageInfo& u) {
  v1::UsageRecord out;
  const cache::Record& r = u.record;
  out.set_id(r.id);
  out.set_mutable_(r.is_mutable);
  out.set_inuse(u.in_use);
  out.set_size(r.size);
  SetTimestamp(r.created_at_ns, out.mutable_createdat());
  if (r.last_used_at_ns) SetTimestamp(*r.last_used_at_ns, out.mutable_lastusedat());
  out.set_usagecount(r.usage_count);
  out.set_description(r.description);
  out.set_recordtype(r.record_type);
  out.set_shared(r.shared);
  for (const std::string& p : r.parents) out.add_parents(p);
  return out;
}

void FillGcPolicy(const cache::PruneOptions& p, v1::types::GCPolicy* out) {
  out->set_all(p.all);
  out->set_keepduration(p.keep_duration_ns);
  for (const std::string& f : p.filters) out->add_filters(f);
  out->set_reservedspace(p.reserved_space);
  out->set_maxusedspace(p.max_used_space);
  out->set_minfreespace(p.min_free_space);
}

grpc::ServerUnaryReactor* FinishUnary(grpc::CallbackServerContext* ctx, grpc::Status status) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(std::move(status));
  return reactor;
}

grpc::Status Unimplemented(std::string_view method) {
  return grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                      absl::StrCat("kilnd does not implement ", AV(method), " yet"));
}

// A server-streaming reactor that finishes at once with `status` and sends nothing.
template <typename T>
class FinishedWriter final : public grpc::ServerWriteReactor<T> {
 public:
  explicit FinishedWriter(grpc::Status status) { this->Finish(std::move(status)); }
  void OnDone() override { delete this; }
};

class FinishedGenericBidi final : public grpc::ServerGenericBidiReactor {
 public:
  explicit FinishedGenericBidi(grpc::Status status) { Finish(std::move(status)); }
  void OnDone() override { delete this; }
};

// Streams the records Prune removes as it removes them. The prune runs on the pool; writes
// happen one at a time. Finish() is always the last thing either side does with `this`.
class PruneWriter final : public grpc::ServerWriteReactor<v1::UsageRecord> {
 public:
  PruneWriter(cache::Manager& cache, boost::asio::thread_pool& pool, cache::PruneOptions options) {
    boost::asio::post(pool, [this, &cache, options = std::move(options)] {
      absl::Status st = cache.Prune(options, [this](const cache::UsageInfo& u) {
        Logger("server")->debug("pruned {} ({} bytes)", u.record.id, u.record.size);
        Enqueue(ToProto(u));
      });
      Complete(st);
    });
  }

  void OnWriteDone(bool ok) override {
    std::unique_lock lock(mu_);
    writing_ = false;
    if (!ok) broken_ = true;  // client went away; keep pruning, stop writing
    queue_.pop_front();
    if (!broken_ && !queue_.empty()) {
      writing_ = true;
      const v1::UsageRecord* next = &queue_.front();
      lock.unlock();
      StartWrite(next);
      return;
    }
    if (done_) {
      grpc::Status final = final_;
      lock.unlock();
      Finish(final);
    }
  }

  void OnDone() override { delete this; }

 private:
  void Enqueue(v1::UsageRecord record) {
    std::unique_lock lock(mu_);
    if (broken_) return;
    queue_.push_back(std::move(record));
    if (writing_) return;
    writing_ = true;
    const v1::UsageRecord* next = &queue_.front();
    lock.unlock();
    StartWrite(next);
  }

  void Complete(const absl::Status& status) {
    std::unique_lock lock(mu_);
    done_ = true;
    final_ = ToGrpcStatus(status);
    if (writing_) return;  // OnWriteDone finishes
    grpc::Status final = final_;
    lock.unlock();
    Finish(final);
  }

  std::mutex mu_;
  std::deque<v1::UsageRecord> queue_;  // front is being written while writing_
  bool writing_ = false;
  bool broken_ = false;
  bool done_ = false;
  grpc::Status final_;
};

// Streams one build's progress: replays what happened so far, then follows live updates,
// coalescing whatever piled up into one message per write. Ends when the build's progress
// closes. The subscription and the reactor share State, so a late notification after OnDone
// finds no reactor and does nothing.
class StatusWriter final : public grpc::ServerWriteReactor<v1::StatusResponse> {
 public:
  explicit StatusWriter(std::shared_ptr<BuildProgress> progress)
      : progress_(std::move(progress)), state_(std::make_shared<State>()) {
    state_->reactor = this;
    std::weak_ptr<State> weak = state_;
    auto progress_ptr = progress_;
    sub_ = progress_->Subscribe([weak, progress_ptr] {
      if (auto st = weak.lock()) Pump(st, *progress_ptr);
    });
    Pump(state_, *progress_);
  }

  void OnWriteDone(bool ok) override {
    {
      std::lock_guard lock(state_->mu);
      state_->writing = false;
      if (!ok) state_->broken = true;
    }
    Pump(state_, *progress_);
  }

  void OnDone() override {
    {
      std::lock_guard lock(state_->mu);
      state_->reactor = nullptr;
    }
    progress_->Unsubscribe(sub_);
    delete this;
  }

 private:
  struct State {
    std::mutex mu;
    StatusWriter* reactor = nullptr;  // null after OnDone
    size_t cursor = 0;
    bool writing = false;
    bool broken = false;
    bool finished = false;
    v1::StatusResponse out;
  };

  static void Pump(const std::shared_ptr<State>& st, BuildProgress& progress) {
    StatusWriter* reactor = nullptr;
    bool finish = false;
    {
      std::lock_guard lock(st->mu);
      if (st->reactor == nullptr || st->writing || st->finished) return;
      std::vector<v1::StatusResponse> events;
      bool open = progress.Read(&st->cursor, &events);
      if (st->broken) {
        st->finished = finish = true;
      } else if (!events.empty()) {
        st->out.Clear();
        for (const auto& e : events) st->out.MergeFrom(e);
        st->writing = true;
      } else if (!open) {
        st->finished = finish = true;
      } else {
        return;
      }
      reactor = st->reactor;
    }
    if (finish) {
      reactor->Finish(grpc::Status::OK);
    } else {
      reactor->StartWrite(&st->out);
    }
  }

  std::shared_ptr<BuildProgress> progress_;
  std::shared_ptr<State> state_;
  int sub_ = 0;
};

}  // namespace

grpc::ServerUnaryReactor* ControlService::DiskUsage(grpc::CallbackServerContext* ctx,
                                                    const v1::DiskUsageRequest* request,
                                                    v1::DiskUsageResponse* response) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  std::vector<std::string> filters(request->filter().begin(), request->filter().end());
  boost::asio::post(*options_.pool, [this, reactor, response, filters = std::move(filters)] {
    auto usage = options_.base->worker.cache->DiskUsage(filters);
    if (!usage.ok()) {
      reactor->Finish(ToGrpcStatus(usage.status()));
      return;
    }
    for (const cache::UsageInfo& u : *usage) *response->add_record() = ToProto(u);
    reactor->Finish(grpc::Status::OK);
  });
  return reactor;
}

grpc::ServerWriteReactor<v1::UsageRecord>* ControlService::Prune(grpc::CallbackServerContext* ctx,
                                                                 const v1::PruneRequest* request) {
  cache::PruneOptions options;
  options.filters.assign(request->filter().begin(), request->filter().end());
  options.all = request->all();
  options.keep_duration_ns = request->keepduration();
  options.reserved_space = request->reservedspace();
  options.max_used_space = request->maxusedspace();
  options.min_free_space = request->minfreespace();
  Logger("server")->info("prune requested (all={}, filters=[{}])", options.all,
                         absl::StrJoin(options.filters, " "));
  return new PruneWriter(*options_.base->worker.cache, *options_.pool, std::move(options));
}

// Runs one Control.Solve on its own thread (solving blocks until the graph is done; pool
// threads must never wait). Cancelled when the client goes away.
class SolveReactor final : public grpc::ServerUnaryReactor {
 public:
  SolveReactor(ControlService& service, const v1::SolveRequest* request,
               v1::SolveResponse* response)
      : service_(service), request_(request), response_(response) {
    {
      std::lock_guard lock(service_.builds_mu_);
      ++service_.running_builds_;
    }
    std::thread([this] { Run(); }).detach();
  }
  void OnCancel() override { ctx_.Cancel(); }
  void OnDone() override { delete this; }

 private:
  void Run() {
    const std::string ref = request_->ref();
    auto log = Logger("server");
    log->info("build {} started", ref);
    auto start = std::chrono::steady_clock::now();
    std::shared_ptr<BuildProgress> progress;
    absl::Status st;
    if (ref.empty()) {
      st = absl::InvalidArgumentError("Solve needs a build ref");
    } else {
      progress = service_.options_.progress->Get(ref);
      st = Solve(progress);
      progress->Close();
    }
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                  std::chrono::steady_clock::now() - start)
                  .count();
    if (st.ok()) {
      log->info("build {} done in {} ms", ref, ms);
    } else {
      log->info("build {} failed after {} ms: {}", ref, ms, SV(st.message()));
    }
    {
      std::lock_guard lock(service_.builds_mu_);
      --service_.running_builds_;
      service_.builds_cv_.notify_all();
    }
    Finish(ToGrpcStatus(st));  // last use of `this`
  }

  // The build's result: solved from the request's definition, or returned by a frontend
  // driving the build through the gateway.
  absl::StatusOr<BuildResult> Result(const std::shared_ptr<BuildProgress>& progress) {
    const auto& o = service_.options_;
    const v1::SolveRequest& req = *request_;
    if (!req.frontend().empty()) {
      if (req.frontend() != frontend::kDockerfileFrontend) {
        return absl::UnimplementedError(
            absl::StrCat("frontend \"", req.frontend(), "\" is not available in kilnd (it has \"",
                         frontend::kDockerfileFrontend, "\" built in)"));
      }
      KILN_ASSIGN_OR_RETURN(ops::Worker worker,
                            WorkerForBuild(*o.base, req.session(),
                                           {req.entitlements().begin(), req.entitlements().end()}));
      worker.solve = solve_;
      worker.secret_ids = secret_ids_;
      KILN_ASSIGN_OR_RETURN(
          frontend::FrontendResult fr,
          frontend::SolveDockerfile(
              ctx_, {.solver = o.solver, .progress = progress.get(), .worker = &worker},
              {.attrs = {req.frontendattrs().begin(), req.frontendattrs().end()},
               .inputs = {req.frontendinputs().begin(), req.frontendinputs().end()},
               .session_id = req.session()}));
      return BuildResult{.ref = std::move(fr.result), .metadata = std::move(fr.metadata)};
    }
    if (!req.has_definition() || req.definition().def_size() == 0) {
      GatewayBuild::Params params{
          .session_id = req.session(),
          .inputs = {req.frontendinputs().begin(), req.frontendinputs().end()},
          .no_cache = req.frontendattrs().contains("no-cache"),
          .entitlements = {req.entitlements().begin(), req.entitlements().end()},
          .solve = solve_,
          .secret_ids = secret_ids_};
      auto build = std::make_shared<GatewayBuild>(ctx_, std::move(params), progress);
      o.gateway->Register(req.ref(), build);
      auto result = build->WaitReturn();
      o.gateway->Unregister(req.ref());
      return result;
    }
    KILN_ASSIGN_OR_RETURN(llb::Graph graph, llb::LoadDefinition(req.definition()));
    KILN_ASSIGN_OR_RETURN(ops::Worker worker,
                          WorkerForBuild(*o.base, req.session(),
                                         {req.entitlements().begin(), req.entitlements().end()}));
    bool no_cache = req.frontendattrs().contains("no-cache");
    worker.secret_ids = secret_ids_;
    KILN_ASSIGN_OR_RETURN(solver::Edge target,
                          ops::BuildVertices(graph, worker, {.no_cache = no_cache}));
    auto result = o.solver->Solve(ctx_, target, progress.get(), solve_);
    if (!result.ok()) return ops::WithFailedOpSource(result.status(), req.definition());
    return BuildResult{.ref = *std::move(result), .metadata = {}};
  }

  // A vertex of its own in the progress, for work around the solve (cache import, export).
  solver::Vertex StepVertex(const std::string& name) const {
    solver::Vertex v;
    v.digest = Sha256Digest(absl::StrCat(name, " ", request_->ref()));
    v.name = name;
    return v;
  }

  static std::vector<remotecache::Entry> Entries(
      const google::protobuf::RepeatedPtrField<v1::CacheOptionsEntry>& in) {
    std::vector<remotecache::Entry> out;
    for (const auto& e : in) out.push_back({e.type(), {e.attrs().begin(), e.attrs().end()}});
    return out;
  }

  // Where a cache entry points, for progress: its ref or its directory ("" if neither).
  static std::string CacheEntryPlace(const remotecache::Entry& e) {
    for (const char* attr : {"ref", "src", "dest"}) {
      if (auto it = e.attrs.find(attr); it != e.attrs.end()) return it->second;
    }
    return "";
  }

  // Reads every cache import the request asks for; a source that cannot be read is a warning.
  absl::Status ImportCaches(const std::shared_ptr<BuildProgress>& progress_ptr,
                            const std::vector<remotecache::Entry>& imports,
                            const remotecache::Deps& deps) {
    BuildProgress& progress = *progress_ptr;
    // Warnings may come from solver work that outlives this reactor (a failed build's other
    // branches): the callback owns what it uses.
    auto importer = std::make_shared<remotecache::Importer>(
        deps, [progress_ptr, v = StepVertex("importing cache")](const std::string& message) {
          progress_ptr->Warn(v, {.short_message = message});
        });
    for (const remotecache::Entry& e : imports) {
      std::string source = CacheEntryPlace(e);
      if (source.empty()) source = "type=" + e.type;
      solver::Vertex v = StepVertex(absl::StrCat("importing cache manifest from ", source));
      progress.Started(v);
      absl::Status st = importer->Add(ctx_, e);
      KILN_RETURN_IF_ERROR(ctx_.Check("cache import"));
      if (!st.ok()) {
        progress.Warn(v, {.short_message = absl::StrCat("cache import from ", source, ": ",
                                                        st.message(), " (building without it)")});
        Logger("server")->warn("build {}: {}: {}", request_->ref(), v.name, SV(st.message()));
      }
      progress.Completed(v, false, absl::OkStatus());
    }
    if (!importer->empty()) solve_.fallback = importer;
    return absl::OkStatus();
  }

  // The secret leak guard: before anything leaves the daemon, look for the build's secrets
  // in what is about to be exported; warn about each hit, or fail with secret-scan=error.
  absl::Status GuardSecrets(BuildProgress& progress, const BuildResult& built,
                            const session::Session* session,
                            const std::vector<remotecache::Entry>& cache_exports) {
    const std::map<std::string, std::string> attrs(request_->frontendattrs().begin(),
                                                   request_->frontendattrs().end());
    KILN_ASSIGN_OR_RETURN(SecretScanMode mode, SecretScanModeOf(attrs));
    if (mode == SecretScanMode::kOff) return absl::OkStatus();
    KILN_ASSIGN_OR_RETURN(std::vector<secretscan::Secret> secrets,
                          BuildSecrets(ctx_, session, secret_ids_->Get(), attrs));
    if (secrets.empty()) return absl::OkStatus();
    solver::Vertex v = StepVertex("scanning exports for secrets");
    progress.Started(v);
    ScanTargets targets;
    if (built.ref) targets.result = static_cast<const ops::RefResult&>(*built.ref).ref();
    if (auto it = built.metadata.find("containerimage.config"); it != built.metadata.end()) {
      targets.image_config = it->second;
    }
    // A mode=max cache export also carries every stage's results.
    const bool max = std::any_of(cache_exports.begin(), cache_exports.end(), [](const auto& e) {
      auto m = e.attrs.find("mode");
      return m != e.attrs.end() && m->second == "max";
    });
    std::vector<solver::ResultPtr> keep;
    if (max) {
      for (const auto& [key, record] : recorder_->Records()) {
        if (record.inputs.empty()) continue;  // sources are not exported (remotecache::BuildCache)
        for (const solver::ResultPtr& r : record.results) {
          if (const cache::ImmutableRef* ref = ops::AsRef(r).ref()) {
            targets.cache_results.push_back(ref);
            keep.push_back(r);
          }
        }
      }
    }
    const auto start = std::chrono::steady_clock::now();
    absl::StatusOr<std::vector<secretscan::Finding>> found =
        ScanExports(ctx_, *service_.options_.base->worker.cache, targets, secrets);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::steady_clock::now() - start)
                        .count();
    if (!found.ok()) {
      progress.Completed(v, false, found.status());
      return found.status();
    }
    for (const secretscan::Finding& f : *found) {
      progress.Warn(
          v, {.short_message = absl::StrCat(
                  "secret leak: ", secretscan::Describe(f),
                  mode == SecretScanMode::kError ? "" : " (secret-scan=error fails such builds)")});
    }
    absl::Status st;
    if (!found->empty() && mode == SecretScanMode::kError) {
      st = absl::FailedPreconditionError(
          absl::StrCat("secret-scan=error: ", secretscan::Describe(found->front()),
                       found->size() > 1 ? absl::StrCat(" (and ", found->size() - 1, " more)") : "",
                       "; nothing was exported"));
    }
    Logger("server")->info("build {}: secret scan of {} secret(s): {} finding(s) in {} ms",
                           request_->ref(), secrets.size(), found->size(), ms);
    progress.Completed(v, false, st);
    return st;
  }

  absl::Status Solve(const std::shared_ptr<BuildProgress>& progress_ptr) {
    const auto& o = service_.options_;
    const v1::SolveRequest& req = *request_;
    BuildProgress& progress = *progress_ptr;

    std::vector<remotecache::Entry> imports = Entries(req.cache().imports());
    std::vector<remotecache::Entry> cache_exports = Entries(req.cache().exports());
    for (const std::string& ref : req.cache().importrefsdeprecated()) {
      imports.push_back({"registry", {{"ref", ref}}});
    }
    if (!req.cache().exportrefdeprecated().empty()) {
      remotecache::Entry e{
          "registry",
          {req.cache().exportattrsdeprecated().begin(), req.cache().exportattrsdeprecated().end()}};
      e.attrs["ref"] = req.cache().exportrefdeprecated();
      cache_exports.push_back(std::move(e));
    }
    KILN_ASSIGN_OR_RETURN(
        remotecache::Requested cache,
        remotecache::FromRequest(imports, cache_exports,
                                 {req.frontendattrs().begin(), req.frontendattrs().end()}));
    // The build's registry client (authenticating as its client) for pushes and cache
    // imports; entitlements were checked when the result was built.
    KILN_ASSIGN_OR_RETURN(ops::Worker worker, WorkerForBuild(*o.base, req.session(), {}));
    // A type=local cache lives on the client's machine and is reached through its session;
    // without one, those entries fail (imports with a warning).
    std::shared_ptr<session::Session> session;
    auto is_local = [](const remotecache::Entry& e) { return e.type == "local"; };
    if (std::any_of(cache.imports.begin(), cache.imports.end(), is_local) ||
        std::any_of(cache.exports.begin(), cache.exports.end(), is_local)) {
      auto s = o.base->worker.sessions->Get(ctx_, req.session(), std::chrono::milliseconds(5000));
      if (s.ok()) session = *std::move(s);
    }
    const remotecache::Deps cache_deps{.cache = o.base->worker.cache,
                                       .content = worker.content,
                                       .registry = worker.registry,
                                       .session = session};
    solve_.recorder = recorder_;
    if (!cache.imports.empty()) {
      KILN_RETURN_IF_ERROR(ImportCaches(progress_ptr, cache.imports, cache_deps));
    }

    KILN_ASSIGN_OR_RETURN(BuildResult built, Result(progress_ptr));
    const solver::ResultPtr& result = built.ref;
    // The result's cache key, for cache exports (none for an empty result).
    std::optional<std::string> root_key;
    if (result) {
      if (auto k = recorder_->KeyOfResult(result)) root_key = k->first;
    }

    std::vector<exporter::ExportRequest> exports;
    for (int i = 0; i < req.exporters_size(); ++i) {
      const auto& e = req.exporters(i);
      exports.push_back({e.type(), {e.attrs().begin(), e.attrs().end()}, i});
    }
    if (exports.empty() && !req.exporterdeprecated().empty()) {
      exports.push_back(
          {req.exporterdeprecated(),
           {req.exporterattrsdeprecated().begin(), req.exporterattrsdeprecated().end()},
           0});
    }
    if (exports.empty() && cache.exports.empty()) return absl::OkStatus();
    if (!session) {
      KILN_ASSIGN_OR_RETURN(session, o.base->worker.sessions->Get(ctx_, req.session(),
                                                                  std::chrono::milliseconds(5000)));
    }
    KILN_RETURN_IF_ERROR(GuardSecrets(progress, built, session.get(), cache.exports));
    exporter::ExportDeps deps{
        .cache = o.base->worker.cache,
        .session = session.get(),
        .content = worker.content,
        .registry = worker.registry,
        .insecure_registry = [&o, &req](const std::vector<std::string>& domains)
            -> std::shared_ptr<registry::Registry> {
          WorkerBase insecure = *o.base;
          for (const std::string& d : domains) insecure.registry_hosts[d].insecure = true;
          auto w = WorkerForBuild(insecure, req.session(), {});
          return w.ok() ? w->registry : nullptr;
        },
        .frontend_attrs = {req.frontendattrs().begin(), req.frontendattrs().end()}};
    // The frontend's metadata (the image config) is what exporters read, as in BuildKit.
    for (const auto& [k, v] : built.metadata) deps.frontend_attrs[k] = v;
    const bool inline_cache = std::any_of(cache.exports.begin(), cache.exports.end(),
                                          [](const auto& e) { return e.type == "inline"; });
    if (inline_cache && root_key) {
      deps.inline_cache = [this, &cache_deps, &root_key](const Context& ctx,
                                                         const std::vector<std::string>& layers,
                                                         const blobs::Options& bo) {
        return remotecache::InlineCacheForImage(ctx, cache_deps, *recorder_, *root_key, layers, bo);
      };
    }
    for (const auto& e : exports) {
      solver::Vertex v = StepVertex(absl::StrCat(ExportName(e), " ", e.id));
      v.name = ExportName(e);
      progress.Started(v);
      const cache::ImmutableRef* ref =
          result ? static_cast<const ops::RefResult&>(*result).ref() : nullptr;
      auto resp = exporter::Export(ctx_, deps, ref, e);
      progress.Completed(v, false, resp.status());
      if (!resp.ok()) return resp.status();
      for (const auto& [k, val] : *resp) (*response_->mutable_exporterresponse())[k] = val;
      if (auto it = resp->find("containerimage.digest"); it != resp->end()) {
        Logger("server")->info("build {} exported {} image {}", req.ref(), e.type, it->second);
      }
    }
    for (const remotecache::Entry& e : cache.exports) {
      if (e.type == "inline") continue;  // written into the image by its exporter
      const std::string place = CacheEntryPlace(e);
      solver::Vertex v =
          StepVertex(absl::StrCat("exporting cache to ", e.type, place.empty() ? "" : " " + place));
      progress.Started(v);
      absl::Status st;
      if (!root_key) {
        progress.Warn(v, {.short_message = "skipping cache export for empty result"});
      } else {
        auto resp = remotecache::Export(ctx_, cache_deps, *recorder_, *root_key, e);
        st = resp.status();
        if (resp.ok()) {
          for (const auto& [k, val] : *resp) (*response_->mutable_exporterresponse())[k] = val;
        }
      }
      auto ignore = e.attrs.find("ignore-error");
      if (!st.ok() && ignore != e.attrs.end() && ignore->second == "true") {
        progress.Warn(
            v, {.short_message = absl::StrCat("cache export failed (ignored): ", st.message())});
        st = absl::OkStatus();
      }
      progress.Completed(v, false, st);
      KILN_RETURN_IF_ERROR(st);
    }
    return absl::OkStatus();
  }

  ControlService& service_;
  const v1::SolveRequest* request_;
  v1::SolveResponse* response_;
  Context ctx_;
  // The build's cache: what its solves learned, and the caches it imports.
  std::shared_ptr<solver::KeyRecorder> recorder_ = std::make_shared<solver::KeyRecorder>();
  std::shared_ptr<ops::SecretIds> secret_ids_ = std::make_shared<ops::SecretIds>();
  solver::Solver::SolveOptions solve_;
};

grpc::ServerUnaryReactor* ControlService::Solve(grpc::CallbackServerContext*,
                                                const v1::SolveRequest* request,
                                                v1::SolveResponse* response) {
  return new SolveReactor(*this, request, response);
}

bool ControlService::WaitIdle(std::chrono::milliseconds timeout) {
  std::unique_lock lock(builds_mu_);
  return builds_cv_.wait_for(lock, timeout, [&] { return running_builds_ == 0; });
}

grpc::ServerWriteReactor<v1::StatusResponse>* ControlService::Status(
    grpc::CallbackServerContext*, const v1::StatusRequest* request) {
  if (request->ref().empty()) {
    return new FinishedWriter<v1::StatusResponse>(
        grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "Status needs the build's ref"));
  }
  return new StatusWriter(options_.progress->Get(request->ref()));
}

grpc::ServerBidiReactor<v1::BytesMessage, v1::BytesMessage>* ControlService::Session(
    grpc::CallbackServerContext* ctx) {
  return options_.base->worker.sessions->Accept(ctx);
}

grpc::ServerUnaryReactor* ControlService::ListWorkers(grpc::CallbackServerContext* ctx,
                                                      const v1::ListWorkersRequest* request,
                                                      v1::ListWorkersResponse* response) {
  std::vector<std::string> filters(request->filter().begin(), request->filter().end());
  auto filter = cache::Filter::Parse(filters);
  if (!filter.ok()) return FinishUnary(ctx, ToGrpcStatus(filter.status()));
  const WorkerInfo& w = options_.worker;
  std::vector<std::string> platform_names;
  for (const Platform& p : w.platforms) {
    platform_names.push_back(
        absl::StrCat(p.os, "/", p.architecture, p.variant.empty() ? "" : "/", p.variant));
  }
  bool match = filter->Match([&](std::string_view field) -> std::optional<std::string> {
    if (field == "id") return w.id;
    if (field == "platforms") return absl::StrJoin(platform_names, ",");
    if (field.starts_with("labels.")) {
      auto it = w.labels.find(std::string(field.substr(7)));
      if (it != w.labels.end()) return it->second;
    }
    return std::nullopt;
  });
  if (match) {
    v1::types::WorkerRecord* rec = response->add_record();
    rec->set_id(w.id);
    for (const auto& [k, v] : w.labels) (*rec->mutable_labels())[k] = v;
    for (const Platform& p : w.platforms) {
      pb::Platform* out = rec->add_platforms();
      out->set_os(p.os);
      out->set_architecture(p.architecture);
      out->set_variant(p.variant);
    }
    for (const cache::PruneOptions& g : w.gc_policy) FillGcPolicy(g, rec->add_gcpolicy());
    *rec->mutable_buildkitversion() = KilnBuildkitVersion();
  }
  return FinishUnary(ctx, grpc::Status::OK);
}

grpc::ServerUnaryReactor* ControlService::Info(grpc::CallbackServerContext* ctx,
                                               const v1::InfoRequest*, v1::InfoResponse* response) {
  *response->mutable_buildkitversion() = KilnBuildkitVersion();
  return FinishUnary(ctx, grpc::Status::OK);
}

grpc::ServerWriteReactor<v1::BuildHistoryEvent>* ControlService::ListenBuildHistory(
    grpc::CallbackServerContext*, const v1::BuildHistoryRequest*) {
  // No build has been recorded: the history is empty and the stream ends cleanly, which is
  // how buildx learns that the daemon supports build history.
  return new FinishedWriter<v1::BuildHistoryEvent>(grpc::Status::OK);
}

grpc::ServerUnaryReactor* ControlService::UpdateBuildHistory(
    grpc::CallbackServerContext* ctx, const v1::UpdateBuildHistoryRequest* request,
    v1::UpdateBuildHistoryResponse*) {
  return FinishUnary(
      ctx, grpc::Status(grpc::StatusCode::NOT_FOUND,
                        absl::StrCat("no build history record with ref \"", request->ref(), "\"")));
}

grpc::ServerGenericBidiReactor* UnimplementedService::CreateReactor(
    grpc::GenericCallbackServerContext* ctx) {
  std::string method = ctx->method();
  if (!method.empty() && method.front() == '/') method.erase(0, 1);
  Logger("server")->debug("call to unimplemented method {}", method);
  return new FinishedGenericBidi(Unimplemented(method));
}

}  // namespace kiln::server
