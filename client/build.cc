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
#include "client/auth.h"
#include "client/filesync.h"
#include "client/progress.h"
#include "client/secrets.h"
#include "client/session.h"
#include "client/ssh.h"
#include "proto/moby/buildkit/v1/control.grpc.pb.h"

namespace kiln::client {
namespace v1 = moby::buildkit::v1;
namespace {

int Fail(const std::string& msg) {
  std::fprintf(stderr, "kiln: %s\n", msg.c_str());
  return 1;
}

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
  auto secret_specs = ParseSecretSpecs(flags.secrets);
  if (!secret_specs.ok()) return Fail(std::string(secret_specs.status().message()));
  auto ssh_specs = ParseSshSpecs(flags.ssh);
  if (!ssh_specs.ok()) return Fail(std::string(ssh_specs.status().message()));
  for (const std::string& e : flags.entitlements) {
    if (e != "security.insecure" && e != "network.host") {
      return Fail(absl::StrCat("--allow ", e, ": want security.insecure or network.host"));
    }
  }
  auto display_or = NewProgressDisplay(flags.progress, stderr);
  if (!display_or.ok()) return Fail(std::string(display_or.status().message()));
  std::unique_ptr<ProgressDisplay> display = *std::move(display_or);
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
  SecretsService secrets(*secret_specs);
  auto docker_config = DockerConfig::LoadDefault();
  if (!docker_config.ok()) return Fail(std::string(docker_config.status().message()));
  AuthService auth(*std::move(docker_config));
  std::unique_ptr<SSHService> ssh;
  if (!ssh_specs->empty()) {
    auto created = SSHService::Create(*ssh_specs);
    if (!created.ok()) return Fail(std::string(created.status().message()));
    ssh = *std::move(created);
  }
  SessionOptions sopts;
  sopts.name = "kiln";
  sopts.shared_key = absl::StrCat("kiln-", ::getuid());
  sopts.services = {{&health, "grpc.health.v1.Health"},
                    {&filesync, "moby.filesync.v1.FileSync"},
                    {&filesend, "moby.filesync.v1.FileSend"},
                    {&secrets, "moby.buildkit.secrets.v1.Secrets"},
                    {&auth, "moby.filesync.v1.Auth"}};
  if (ssh) sopts.services.emplace_back(ssh.get(), "moby.sshforward.v1.SSH");
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
  for (const std::string& e : flags.entitlements) req.add_entitlements(e);

  std::thread status([&] {
    grpc::ClientContext sctx;
    v1::StatusRequest sreq;
    sreq.set_ref(ref);
    auto reader = stub->Status(&sctx, sreq);
    v1::StatusResponse resp;
    while (reader->Read(&resp)) display->Update(resp);
    display->Done();
    reader->Finish().IgnoreError();
  });
  grpc::ClientContext ctx;
  v1::SolveResponse resp;
  grpc::Status st = stub->Solve(&ctx, req, &resp);
  status.join();
  (*session)->Close();
  if (ssh) ssh->Shutdown();
  if (!st.ok()) return Fail(DescribeRpcError(*conn, st));
  return 0;
}

}  // namespace kiln::client
