// kiln: the client CLI for kilnd (and any BuildKit daemon).

#include <chrono>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <iterator>
#include <map>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/build.h"
#include "client/connection.h"
#include "client/daemon.h"
#include "client/format.h"
#include "kiln_version.h"
#include "llb/json.h"
#include "proto/moby/buildkit/v1/control.grpc.pb.h"

namespace kiln::client {
namespace {
namespace v1 = moby::buildkit::v1;

constexpr auto kRpcTimeout = std::chrono::seconds(30);

struct GlobalFlags {
  ConnectOptions connect;
};

// Prints one line and returns the process exit code.
int Fail(absl::string_view message) {
  std::fprintf(stderr, "kiln: %.*s\n", static_cast<int>(message.size()), message.data());
  return 1;
}

void SetDeadline(grpc::ClientContext& ctx) {
  ctx.set_deadline(std::chrono::system_clock::now() + kRpcTimeout);
}

int64_t NowUnix() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string PlatformString(const pb::Platform& p) {
  return absl::StrCat(p.os(), "/", p.architecture(), p.variant().empty() ? "" : "/", p.variant());
}

std::string DurationString(int64_t ns) {
  int64_t s = ns / 1'000'000'000;
  if (s == 0) return "0s";
  std::string out;
  if (s >= 3600) absl::StrAppend(&out, s / 3600, "h");
  if (s % 3600 >= 60) absl::StrAppend(&out, (s % 3600) / 60, "m");
  if (s % 60) absl::StrAppend(&out, s % 60, "s");
  return out;
}

int CmdVersion(const GlobalFlags& g) {
  std::printf("kiln %s %s\n", kVersion, kRevision);
  auto conn = Connect(g.connect);
  if (!conn.ok()) return Fail(conn.status().message());
  auto stub = v1::Control::NewStub(conn->channel);
  grpc::ClientContext ctx;
  SetDeadline(ctx);
  v1::InfoResponse resp;
  grpc::Status st = stub->Info(&ctx, v1::InfoRequest(), &resp);
  if (!st.ok()) return Fail(DescribeRpcError(*conn, st));
  const auto& v = resp.buildkitversion();
  std::printf("server: %s %s %s\n", v.package().c_str(), v.version().c_str(), v.revision().c_str());
  return 0;
}

int CmdWorkers(const GlobalFlags& g, const std::vector<std::string>& filters, bool verbose) {
  auto conn = Connect(g.connect);
  if (!conn.ok()) return Fail(conn.status().message());
  auto stub = v1::Control::NewStub(conn->channel);
  grpc::ClientContext ctx;
  SetDeadline(ctx);
  v1::ListWorkersRequest req;
  for (const auto& f : filters) req.add_filter(f);
  v1::ListWorkersResponse resp;
  grpc::Status st = stub->ListWorkers(&ctx, req, &resp);
  if (!st.ok()) return Fail(DescribeRpcError(*conn, st));
  if (!verbose) {
    Table t;
    t.Row({"ID", "PLATFORMS"});
    for (const auto& w : resp.record()) {
      std::vector<std::string> ps;
      for (const auto& p : w.platforms()) ps.push_back(PlatformString(p));
      t.Row({w.id(), absl::StrJoin(ps, ",")});
    }
    std::fputs(t.Render().c_str(), stdout);
    return 0;
  }
  for (const auto& w : resp.record()) {
    std::vector<std::string> ps;
    for (const auto& p : w.platforms()) ps.push_back(PlatformString(p));
    const auto& v = w.buildkitversion();
    Table head;
    head.Row({"ID:", w.id()});
    head.Row({"Platforms:", absl::StrJoin(ps, ",")});
    head.Row({"BuildKit:", absl::StrCat(v.package(), " ", v.version(), " ", v.revision())});
    std::fputs(head.Render().c_str(), stdout);
    std::fputs("Labels:\n", stdout);
    Table labels;
    std::map<std::string, std::string> sorted(w.labels().begin(), w.labels().end());
    for (const auto& [k, val] : sorted) labels.Row({"       ", k + ":", val});
    std::fputs(labels.Render().c_str(), stdout);
    for (int i = 0; i < w.gcpolicy_size(); ++i) {
      const auto& r = w.gcpolicy(i);
      std::printf("GC Policy rule#%d:\n", i);
      Table t;
      t.Row({"       ", "All:", r.all() ? "true" : "false"});
      if (r.filters_size() > 0) t.Row({"       ", "Filters:", absl::StrJoin(r.filters(), " ")});
      if (r.keepduration() > 0) {
        t.Row({"       ", "Keep duration:", DurationString(r.keepduration())});
      }
      if (r.reservedspace() > 0)
        t.Row({"       ", "Reserved space:", HumanSize(r.reservedspace())});
      if (r.minfreespace() > 0) {
        t.Row({"       ", "Minimum free space:", HumanSize(r.minfreespace())});
      }
      if (r.maxusedspace() > 0) {
        t.Row({"       ", "Maximum used space:", HumanSize(r.maxusedspace())});
      }
      std::fputs(t.Render().c_str(), stdout);
    }
    std::fputs("\n", stdout);
  }
  return 0;
}

void PrintRecordsTable(const std::vector<v1::UsageRecord>& records, bool verbose) {
  int64_t now = NowUnix();
  if (verbose) {
    for (const auto& r : records) {
      Table t;
      t.Row({"ID:", r.id()});
      if (r.parents_size() > 0) t.Row({"Parents:", absl::StrJoin(r.parents(), ";")});
      t.Row({"Created at:", HumanAge(r.createdat().seconds(), now)});
      t.Row({"Mutable:", r.mutable_() ? "true" : "false"});
      t.Row({"Reclaimable:", r.inuse() ? "false" : "true"});
      t.Row({"Shared:", r.shared() ? "true" : "false"});
      t.Row({"Size:", HumanSize(r.size())});
      if (!r.description().empty()) t.Row({"Description:", r.description()});
      t.Row({"Usage count:", std::to_string(r.usagecount())});
      if (r.has_lastusedat()) t.Row({"Last used:", HumanAge(r.lastusedat().seconds(), now)});
      if (!r.recordtype().empty()) t.Row({"Type:", r.recordtype()});
      std::fputs(t.Render().c_str(), stdout);
      std::fputs("\n", stdout);
    }
    return;
  }
  Table t;
  t.Row({"ID", "RECLAIMABLE", "SIZE", "LAST ACCESSED"});
  for (const auto& r : records) {
    std::string id = r.id();
    if (r.mutable_()) id += "*";
    t.Row({id, r.inuse() ? "false" : "true", HumanSize(r.size()),
           r.has_lastusedat() ? HumanAge(r.lastusedat().seconds(), now) : ""});
  }
  std::fputs(t.Render().c_str(), stdout);
}

void PrintTotals(const std::vector<v1::UsageRecord>& records, bool with_shared) {
  int64_t total = 0, reclaimable = 0, shared = 0;
  for (const auto& r : records) {
    total += r.size();
    if (!r.inuse()) reclaimable += r.size();
    if (r.shared()) shared += r.size();
  }
  Table t;
  if (with_shared && shared > 0) {
    t.Row({"Shared:", HumanSize(shared)});
    t.Row({"Private:", HumanSize(total - shared)});
  }
  if (with_shared) t.Row({"Reclaimable:", HumanSize(reclaimable)});
  t.Row({"Total:", HumanSize(total)});
  std::fputs(t.Render().c_str(), stdout);
}

int CmdDu(const GlobalFlags& g, const std::vector<std::string>& filters, bool verbose) {
  auto conn = Connect(g.connect);
  if (!conn.ok()) return Fail(conn.status().message());
  auto stub = v1::Control::NewStub(conn->channel);
  grpc::ClientContext ctx;
  SetDeadline(ctx);
  v1::DiskUsageRequest req;
  for (const auto& f : filters) req.add_filter(f);
  v1::DiskUsageResponse resp;
  grpc::Status st = stub->DiskUsage(&ctx, req, &resp);
  if (!st.ok()) return Fail(DescribeRpcError(*conn, st));
  std::vector<v1::UsageRecord> records(resp.record().begin(), resp.record().end());
  std::sort(records.begin(), records.end(),
            [](const auto& a, const auto& b) { return a.size() > b.size(); });
  PrintRecordsTable(records, verbose);
  if (filters.empty() || verbose) PrintTotals(records, true);
  return 0;
}

struct PruneFlags {
  std::vector<std::string> filters;
  bool all = false;
  bool verbose = false;
  std::string keep_duration, reserved_space, max_used_space, min_free_space;
};

int CmdPrune(const GlobalFlags& g, const PruneFlags& f) {
  v1::PruneRequest req;
  for (const auto& x : f.filters) req.add_filter(x);
  req.set_all(f.all);
  if (!f.keep_duration.empty()) {
    auto d = ParseDurationNs(f.keep_duration);
    if (!d)
      return Fail(absl::StrCat("--keep-duration: invalid duration \"", f.keep_duration,
                               "\" (want e.g. 48h, 30m, 90s)"));
    req.set_keepduration(*d);
  }
  auto size = [](const std::string& text, const char* flag) -> std::optional<int64_t> {
    if (text.empty()) return 0;
    auto v = ParseHumanSize(text);
    if (!v) Fail(absl::StrCat(flag, ": invalid size \"", text, "\" (want e.g. 10GB, 512MiB)"));
    return v;
  };
  auto reserved = size(f.reserved_space, "--reserved-space");
  auto max_used = size(f.max_used_space, "--max-used-space");
  auto min_free = size(f.min_free_space, "--min-free-space");
  if (!reserved || !max_used || !min_free) return 1;
  req.set_reservedspace(*reserved);
  req.set_maxusedspace(*max_used);
  req.set_minfreespace(*min_free);

  auto conn = Connect(g.connect);
  if (!conn.ok()) return Fail(conn.status().message());
  auto stub = v1::Control::NewStub(conn->channel);
  grpc::ClientContext ctx;
  std::unique_ptr<grpc::ClientReader<v1::UsageRecord>> reader = stub->Prune(&ctx, req);
  std::vector<v1::UsageRecord> removed;
  v1::UsageRecord rec;
  while (reader->Read(&rec)) removed.push_back(rec);
  grpc::Status st = reader->Finish();
  if (!st.ok()) return Fail(DescribeRpcError(*conn, st));
  PrintRecordsTable(removed, f.verbose);
  PrintTotals(removed, false);
  return 0;
}

// `kiln build` against the default address starts kilnd when none runs there, and says where
// and how to stop it.
int EnsureDaemonForBuild(const GlobalFlags& g) {
  LocalDaemon d;
  if (ResolveAddress(g.connect.address) != d.address() || SocketAccepts(d.socket)) return 0;
  auto started = StartLocalDaemon(d);
  if (!started.ok()) return Fail(started.status().message());
  if (started->by_us) {
    std::fprintf(stderr,
                 "kiln: no kilnd was running at %s, so kiln started one (pid %d, state in %s, "
                 "log %s). It keeps running for the next builds; stop it with `kiln daemon "
                 "stop`.\n",
                 d.address().c_str(), static_cast<int>(started->pid), d.root.c_str(),
                 d.log().c_str());
  }
  return 0;
}

int CmdDaemon(const std::string& action) {
  LocalDaemon d;
  if (action == "start") {
    auto started = StartLocalDaemon(d);
    if (!started.ok()) return Fail(started.status().message());
    std::printf("kilnd %s at %s (pid %d, state in %s, log %s)\n",
                started->by_us ? "started" : "is already running", d.address().c_str(),
                static_cast<int>(started->pid), d.root.c_str(), d.log().c_str());
    return 0;
  }
  if (action == "stop") {
    pid_t pid = LocalDaemonPid(d);
    if (auto st = StopLocalDaemon(d); !st.ok()) return Fail(st.message());
    std::printf("kilnd (pid %d) stopped\n", static_cast<int>(pid));
    return 0;
  }
  pid_t pid = LocalDaemonPid(d);
  if (pid == 0) {
    std::printf("no kilnd is running on %s\n", d.root.c_str());
    return 3;
  }
  std::printf("kilnd is running (pid %d) at %s, state in %s, log %s\n", static_cast<int>(pid),
              d.address().c_str(), d.root.c_str(), d.log().c_str());
  return 0;
}

}  // namespace
}  // namespace kiln::client

int main(int argc, char** argv) {
  using namespace kiln::client;
  CLI::App app{"kiln: build container images with kilnd (or any BuildKit daemon)", "kiln"};
  app.require_subcommand(1);
  GlobalFlags g;
  app.add_option("--addr", g.connect.address,
                 "daemon address: unix:///PATH or tcp://HOST:PORT (default: $KILN_HOST, "
                 "$BUILDKIT_HOST, unix:///run/kiln/kilnd.sock)");
  app.add_option("--tlscacert", g.connect.tls_ca, "CA certificate to verify the daemon (PEM)");
  app.add_option("--tlscert", g.connect.tls_cert, "client certificate (PEM)");
  app.add_option("--tlskey", g.connect.tls_key, "client key (PEM)");
  app.add_option("--tlsservername", g.connect.tls_server_name,
                 "server name to verify in the daemon's certificate");

  auto* version = app.add_subcommand("version", "print the client's and the daemon's version");

  auto* debug = app.add_subcommand("debug", "debugging commands");
  debug->require_subcommand(1);
  std::vector<std::string> worker_filters;
  bool workers_verbose = false;
  auto* workers = debug->add_subcommand("workers", "list the daemon's workers");
  workers->add_option("--filter", worker_filters, "containerd-style filter (repeatable)");
  workers->add_flag("-v,--verbose", workers_verbose, "show details");

  auto* dump = debug->add_subcommand(
      "llb", "print an LLB definition read from stdin as JSON, one op per line");

  std::vector<std::string> du_filters;
  bool du_verbose = false;
  auto* du = app.add_subcommand("du", "show disk usage of the build cache");
  du->add_option("-f,--filter", du_filters, "filter records, e.g. type==regular (repeatable)");
  du->add_flag("-v,--verbose", du_verbose, "show every record's details");

  PruneFlags pf;
  auto* prune = app.add_subcommand("prune", "remove build cache");
  prune->add_option("-f,--filter", pf.filters, "filter records (repeatable)");
  prune->add_flag("-a,--all", pf.all, "include internal and frontend records");
  prune->add_flag("-v,--verbose", pf.verbose, "show every removed record's details");
  prune->add_option("--keep-duration", pf.keep_duration, "keep data used more recently, e.g. 48h");
  prune->add_option("--reserved-space", pf.reserved_space, "keep at least this much, e.g. 10GB");
  prune->add_option("--max-used-space", pf.max_used_space, "prune down to this size, e.g. 20GB");
  prune->add_option("--min-free-space", pf.min_free_space, "prune until this much is free");

  std::string daemon_action;
  auto* daemon = app.add_subcommand(
      "daemon",
      "start, stop or show the local kilnd that `kiln build` starts when none runs "
      "(at unix:///run/kiln/kilnd.sock, state in /var/lib/kiln)");
  daemon->add_option("action", daemon_action, "start, stop or status")
      ->required()
      ->check(CLI::IsMember({"start", "stop", "status"}));

  BuildFlags bf;
  auto* build = app.add_subcommand(
      "build",
      "build a Dockerfile (kiln build [-f FILE] CONTEXT), or an LLB definition read from stdin "
      "(like `buildctl build`)");
  build->add_option("context", bf.context, "build context directory (Dockerfile builds)");
  build->add_option("-f,--file", bf.file, "the Dockerfile (default: CONTEXT/Dockerfile)");
  build->add_option("--build-arg", bf.build_args, "a build argument: NAME=VALUE (repeatable)");
  build->add_option("--target", bf.target, "the Dockerfile stage to build");
  build->add_option("--platform", bf.platform, "the platform to build for, e.g. linux/amd64");
  build->add_option("--frontend", bf.frontend, "a frontend instead of stdin: dockerfile.v0");
  build->add_option("--opt", bf.opts, "a frontend option: KEY=VALUE (repeatable)");
  build->add_option("--local", bf.locals, "a local directory the build reads: NAME=DIR");
  build->add_option("-o,--output", bf.outputs,
                    "where the result goes: type=local,dest=DIR, type=tar,dest=FILE|-, "
                    "type=image,name=NAME[,push=true], type=oci|docker,dest=FILE|-[,name=NAME]");
  build->add_option("-t,--tag", bf.tags,
                    "name the image (repeatable): adds type=image,name=NAME to the outputs");
  build->add_flag("--push", bf.push, "push the image named by -t");
  build->add_option("--load-to", bf.load_to,
                    "write the image as a `docker load` tarball to FILE (kiln has no Docker engine "
                    "to load into)");
  build->add_option("--metadata-file", bf.metadata_file,
                    "write the exporters' response (e.g. containerimage.digest) to FILE as JSON");
  build->add_option("--progress", bf.progress,
                    "progress output: auto, tty, plain, rawjson or quiet");
  build->add_flag("--no-cache", bf.no_cache, "do not use cached results");
  build->add_option("--secret", bf.secrets,
                    "a secret RUN steps may mount: id=ID,src=FILE or id=ID,env=VAR (repeatable)");
  build->add_option("--ssh", bf.ssh,
                    "an SSH agent RUN steps may use: default, or ID=SOCKET|KEYFILE (repeatable)");
  build->add_option("--export-cache,--cache-to", bf.cache_exports,
                    "export build cache: type=registry,ref=REF[,mode=min|max], "
                    "type=local,dest=DIR[,mode=min|max][,tag=TAG] or type=inline (repeatable)");
  build->add_option("--import-cache,--cache-from", bf.cache_imports,
                    "import build cache: type=registry,ref=REF, type=local,src=DIR[,tag=TAG], or "
                    "just REF (repeatable)");
  build->add_option("--allow", bf.entitlements,
                    "grant an entitlement: security.insecure or network.host (repeatable)");

  // Repeatable options take one value per use, so that `kiln build -o X CONTEXT` keeps
  // CONTEXT as the positional argument.
  for (CLI::Option* opt : build->get_options()) {
    if (opt->get_items_expected_max() > 1) opt->allow_extra_args(false);
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (version->parsed()) return CmdVersion(g);
  if (workers->parsed()) return CmdWorkers(g, worker_filters, workers_verbose);
  if (dump->parsed()) {
    std::string bytes(std::istreambuf_iterator<char>(std::cin), {});
    pb::Definition def;
    if (bytes.empty() || !def.ParseFromString(bytes) || def.def_size() == 0) {
      std::fprintf(stderr, "kiln: stdin is not a valid LLB definition\n");
      return 1;
    }
    std::fputs(kiln::llb::DefinitionToJson(def).c_str(), stdout);
    return 0;
  }
  if (du->parsed()) return CmdDu(g, du_filters, du_verbose);
  if (prune->parsed()) return CmdPrune(g, pf);
  if (daemon->parsed()) return CmdDaemon(daemon_action);
  if (build->parsed()) {
    if (int rc = EnsureDaemonForBuild(g); rc != 0) return rc;
    return RunBuild(g.connect, bf, std::cin);
  }
  return 1;
}
