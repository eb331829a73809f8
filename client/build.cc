#include "client/build.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "client/filesync.h"
#include "client/session.h"
#include "proto/moby/buildkit/v1/control.grpc.pb.h"

namespace kiln::client {
namespace v1 = moby::buildkit::v1;
namespace {

int Fail(const std::string& msg) {
  std::fprintf(stderr, "kiln: %s\n", msg.c_str());
  return 1;
}

double Seconds(const google::protobuf::Timestamp& a, const google::protobuf::Timestamp& b) {
  return static_cast<double>(b.seconds() - a.seconds()) +
         static_cast<double>(b.nanos() - a.nanos()) / 1e9;
}

// Plain progress: one line when a vertex starts, one when it ends, log lines prefixed by the
// vertex number, as `buildctl --progress=plain` prints them.
class PlainProgress {
 public:
  explicit PlainProgress(FILE* out) : out_(out) {}
  void Update(const v1::StatusResponse& r) {
    for (const auto& v : r.vertexes()) {
      int& n = numbers_[v.digest()];
      bool first = n == 0;
      if (first) n = static_cast<int>(numbers_.size());
      if (first || (!announced_[v.digest()] && v.has_started())) {
        if (!announced_[v.digest()]) {
          std::fprintf(out_, "#%d %s\n", n, v.name().c_str());
          announced_[v.digest()] = true;
        }
      }
      if (v.has_completed() && !done_[v.digest()]) {
        done_[v.digest()] = true;
        if (!v.error().empty()) {
          std::fprintf(out_, "#%d ERROR: %s\n", n, v.error().c_str());
        } else if (v.cached()) {
          std::fprintf(out_, "#%d CACHED\n", n);
        } else {
          std::fprintf(out_, "#%d DONE %.1fs\n", n, Seconds(v.started(), v.completed()));
        }
      }
    }
    for (const auto& l : r.logs()) {
      int n = numbers_[l.vertex()];
      for (absl::string_view line : absl::StrSplit(l.msg(), '\n', absl::SkipEmpty())) {
        std::fprintf(out_, "#%d %.*s\n", n, static_cast<int>(line.size()), line.data());
      }
    }
    std::fflush(out_);
  }

 private:
  FILE* out_;
  std::map<std::string, int> numbers_;
  std::map<std::string, bool> announced_, done_;
};

}  // namespace

int RunBuild(const ConnectOptions& connect, const BuildFlags& flags, std::istream& in) {
  // Flags first: nothing is sent until they all make sense.
  std::map<std::string, std::string> locals;
  for (const std::string& l : flags.locals) {
    size_t eq = l.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == l.size()) {
      return Fail(absl::StrCat("--local ", l, ": want NAME=DIR"));
    }
    std::string dir = l.substr(eq + 1);
    std::error_code ec;
    if (!std::filesystem::is_directory(dir, ec)) {
      return Fail(absl::StrCat("--local ", l, ": ", dir, " is not a directory"));
    }
    locals[l.substr(0, eq)] = std::filesystem::absolute(dir).string();
  }
  std::vector<OutputTarget> targets;
  std::vector<v1::Exporter> exporters;
  for (const std::string& o : flags.outputs) {
    std::map<std::string, std::string> attrs;
    for (absl::string_view kv : absl::StrSplit(o, ',')) {
      std::vector<std::string> parts = absl::StrSplit(kv, absl::MaxSplits('=', 1));
      if (parts.size() != 2) return Fail(absl::StrCat("--output ", o, ": want key=value pairs"));
      attrs[parts[0]] = parts[1];
    }
    OutputTarget t{attrs["type"], attrs["dest"]};
    if (t.type != "local" && t.type != "tar") {
      return Fail(absl::StrCat("--output ", o, ": type must be local or tar"));
    }
    if (t.dest.empty()) return Fail(absl::StrCat("--output ", o, ": dest is required"));
    if (t.type == "local") t.dest = std::filesystem::absolute(t.dest).string();
    v1::Exporter e;
    e.set_type(t.type);
    for (const auto& [k, v] : attrs) {
      if (k != "type" && k != "dest") (*e.mutable_attrs())[k] = v;
    }
    exporters.push_back(std::move(e));
    targets.push_back(std::move(t));
  }
  pb::Definition def;
  std::stringstream buf;
  buf << in.rdbuf();
  if (buf.str().empty()) {
    return Fail("no LLB definition on stdin (pipe one in, e.g. from hello-llb)");
  }
  if (!def.ParseFromString(buf.str()) || def.def_size() == 0) {
    return Fail("stdin is not a valid LLB definition (no ops)");
  }

  auto conn = Connect(connect);
  if (!conn.ok()) return Fail(std::string(conn.status().message()));
  HealthService health;
  FileSyncService filesync(locals);
  FileSendService filesend(targets);
  SessionOptions sopts;
  sopts.name = "kiln";
  sopts.shared_key = absl::StrCat("kiln-", ::getuid());
  sopts.services = {{&health, "grpc.health.v1.Health"},
                    {&filesync, "moby.filesync.v1.FileSync"},
                    {&filesend, "moby.filesync.v1.FileSend"}};
  auto session = SessionServer::Start(conn->channel, std::move(sopts));
  if (!session.ok()) return Fail(std::string(session.status().message()));

  auto stub = v1::Control::NewStub(conn->channel);
  v1::SolveRequest req;
  const std::string ref = NewSessionId();
  req.set_ref(ref);
  req.set_session((*session)->id());
  *req.mutable_definition() = def;
  for (auto& e : exporters) *req.add_exporters() = e;
  if (flags.no_cache) (*req.mutable_frontendattrs())["no-cache"] = "";

  bool quiet = flags.progress == "quiet";
  std::thread status([&] {
    grpc::ClientContext sctx;
    v1::StatusRequest sreq;
    sreq.set_ref(ref);
    auto reader = stub->Status(&sctx, sreq);
    PlainProgress printer(stderr);
    v1::StatusResponse resp;
    while (reader->Read(&resp)) {
      if (!quiet) printer.Update(resp);
    }
    reader->Finish().IgnoreError();
  });
  grpc::ClientContext ctx;
  v1::SolveResponse resp;
  grpc::Status st = stub->Solve(&ctx, req, &resp);
  status.join();
  (*session)->Close();
  if (!st.ok()) return Fail(DescribeRpcError(*conn, st));
  return 0;
}

}  // namespace kiln::client
