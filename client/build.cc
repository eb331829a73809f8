#include "client/build.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "client/auth.h"
#include "client/filesync.h"
#include "client/localcache.h"
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

// Splits buildctl-style CSV: fields separated by commas, double quotes protect commas (and
// are removed; "" inside quotes is one quote). False on an unterminated quote.
bool SplitCsv(const std::string& text, std::vector<std::string>& out) {
  std::string cur;
  bool quoted = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '"') {
      if (quoted && i + 1 < text.size() && text[i + 1] == '"') {
        cur += '"';
        ++i;
      } else {
        quoted = !quoted;
      }
    } else if (c == ',' && !quoted) {
      out.push_back(std::move(cur));
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (quoted) return false;
  out.push_back(std::move(cur));
  return true;
}

// The exporter response as buildctl's --metadata-file writes it: values that are base64 of a
// JSON document (containerimage.descriptor) decoded into it, others as strings.
std::string MetadataJson(const std::map<std::string, std::string>& response) {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [k, v] : response) {
    std::string decoded;
    if (absl::Base64Unescape(v, &decoded)) {
      nlohmann::json j = nlohmann::json::parse(decoded, nullptr, false);
      if (!j.is_discarded() && (j.is_object() || j.is_array())) {
        out[k] = std::move(j);
        continue;
      }
    }
    out[k] = v;
  }
  return out.dump(2) + "\n";
}

}  // namespace

absl::StatusOr<std::vector<std::string>> ExpandOutputs(const BuildFlags& flags) {
  std::vector<std::string> out = flags.outputs;
  if (flags.push && flags.tags.empty()) {
    return absl::InvalidArgumentError("--push needs an image name: add -t NAME");
  }
  if (!flags.tags.empty()) {
    // One image output for every name, as buildx's -t (names with commas are quoted).
    std::string names;
    for (const std::string& t : flags.tags) {
      if (t.empty()) return absl::InvalidArgumentError("-t: empty image name");
      absl::StrAppend(&names, names.empty() ? "" : ",", t);
    }
    out.push_back(absl::StrCat("type=image,\"name=", names, "\"", flags.push ? ",push=true" : ""));
  }
  if (!flags.load_to.empty()) {
    std::string o = absl::StrCat("type=docker,dest=", flags.load_to);
    if (!flags.tags.empty()) absl::StrAppend(&o, ",\"name=", absl::StrJoin(flags.tags, ","), "\"");
    out.push_back(std::move(o));
  }
  return out;
}

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
  std::string frontend = flags.frontend;
  std::map<std::string, std::string> frontend_attrs;
  for (const std::string& opt : flags.opts) {
    size_t eq = opt.find('=');
    if (eq == std::string::npos || eq == 0)
      return Fail(absl::StrCat("--opt ", opt, ": want KEY=VALUE"));
    frontend_attrs[opt.substr(0, eq)] = opt.substr(eq + 1);
  }
  if (!flags.context.empty() || !flags.file.empty()) {
    // buildx-style: the Dockerfile frontend on a context directory.
    if (!frontend.empty() && frontend != "dockerfile.v0") {
      return Fail(absl::StrCat("a build context is for the Dockerfile frontend, not ", frontend));
    }
    frontend = "dockerfile.v0";
    const std::string context = flags.context.empty() ? "." : flags.context;
    std::error_code ec;
    if (!std::filesystem::is_directory(context, ec)) {
      return Fail(absl::StrCat("build context ", context, " is not a directory"));
    }
    std::filesystem::path file = flags.file.empty() ? std::filesystem::path(context) / "Dockerfile"
                                                    : std::filesystem::path(flags.file);
    if (flags.file == "-") return Fail("-f -: reading the Dockerfile from stdin is not supported");
    if (!std::filesystem::is_regular_file(file, ec)) {
      return Fail(absl::StrCat("Dockerfile ", file.string(), " not found"));
    }
    locals["context"] = std::filesystem::absolute(context).lexically_normal().string();
    locals["dockerfile"] =
        std::filesystem::absolute(file).parent_path().lexically_normal().string();
    frontend_attrs["filename"] = file.filename().string();
  }
  for (const std::string& a : flags.build_args) {
    size_t eq = a.find('=');
    if (eq == 0) return Fail(absl::StrCat("--build-arg ", a, ": want NAME=VALUE"));
    if (eq == std::string::npos) {
      // Like docker: NAME alone takes the value from the environment, or is left out.
      if (const char* v = std::getenv(a.c_str()); v != nullptr) {
        frontend_attrs["build-arg:" + a] = v;
      }
      continue;
    }
    frontend_attrs["build-arg:" + a.substr(0, eq)] = a.substr(eq + 1);
  }
  if (!flags.target.empty()) frontend_attrs["target"] = flags.target;
  if (!flags.platform.empty()) frontend_attrs["platform"] = flags.platform;
  if (frontend.empty() && !frontend_attrs.empty()) {
    return Fail(
        "--opt, --build-arg, --target and --platform need a frontend (--frontend "
        "dockerfile.v0, or a build context)");
  }
  std::vector<OutputTarget> targets;
  std::vector<v1::Exporter> exporters;
  absl::StatusOr<std::vector<std::string>> outputs = ExpandOutputs(flags);
  if (!outputs.ok()) return Fail(std::string(outputs.status().message()));
  for (const std::string& o : *outputs) {
    std::map<std::string, std::string> attrs;
    std::vector<std::string> fields;
    if (!SplitCsv(o, fields)) return Fail(absl::StrCat("--output ", o, ": unbalanced quotes"));
    for (const std::string& kv : fields) {
      std::vector<std::string> parts = absl::StrSplit(kv, absl::MaxSplits('=', 1));
      if (parts.size() != 2) return Fail(absl::StrCat("--output ", o, ": want key=value pairs"));
      attrs[parts[0]] = parts[1];
    }
    OutputTarget t{attrs["type"], attrs["dest"]};
    if (t.type != "local" && t.type != "tar" && t.type != "image" && t.type != "oci" &&
        t.type != "docker") {
      return Fail(absl::StrCat("--output ", o, ": type must be local, tar, image, oci or docker"));
    }
    if (t.type == "image") {
      if (!t.dest.empty()) {
        return Fail(absl::StrCat("--output ", o, ": type=image takes no dest (name= and push=)"));
      }
    } else if (t.dest.empty()) {
      return Fail(absl::StrCat("--output ", o, ": dest is required"));
    }
    if (t.type == "local") t.dest = std::filesystem::absolute(t.dest).string();
    v1::Exporter e;
    e.set_type(t.type);
    for (const auto& [k, v] : attrs) {
      if (k != "type" && k != "dest") (*e.mutable_attrs())[k] = v;
    }
    exporters.push_back(std::move(e));
    targets.push_back(std::move(t));
  }
  // --export-cache / --import-cache: CSV key=value pairs; a bare reference is a registry.
  auto cache_entries = [&](const std::vector<std::string>& specs, const char* flag,
                           std::vector<v1::CacheOptionsEntry>& out) -> bool {
    for (const std::string& spec : specs) {
      std::vector<std::string> fields;
      if (!SplitCsv(spec, fields)) {
        Fail(absl::StrCat(flag, " ", spec, ": unbalanced quotes"));
        return false;
      }
      v1::CacheOptionsEntry e;
      if (fields.size() == 1 && fields[0].find('=') == std::string::npos) {
        e.set_type("registry");
        (*e.mutable_attrs())["ref"] = fields[0];
      } else {
        for (const std::string& kv : fields) {
          std::vector<std::string> parts = absl::StrSplit(kv, absl::MaxSplits('=', 1));
          if (parts.size() != 2) {
            Fail(absl::StrCat(flag, " ", spec, ": want key=value pairs"));
            return false;
          }
          if (parts[0] == "type") {
            e.set_type(parts[1]);
          } else {
            (*e.mutable_attrs())[parts[0]] = parts[1];
          }
        }
      }
      if (e.type().empty()) {
        Fail(absl::StrCat(flag, " ", spec, ": type= is required (registry, local or inline)"));
        return false;
      }
      out.push_back(std::move(e));
    }
    return true;
  };
  std::vector<v1::CacheOptionsEntry> cache_exports, cache_imports;
  if (!cache_entries(flags.cache_exports, "--export-cache", cache_exports)) return 1;
  if (!cache_entries(flags.cache_imports, "--import-cache", cache_imports)) return 1;
  auto local_caches =
      PrepareLocalCaches(cache_imports, cache_exports, [](const std::string& message) {
        std::fprintf(stderr, "kiln: warning: %s\n", message.c_str());
      });
  if (!local_caches.ok()) return Fail(std::string(local_caches.status().message()));
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
  if (frontend.empty()) {
    std::stringstream buf;
    buf << in.rdbuf();
    if (buf.str().empty()) {
      return Fail(
          "no LLB definition on stdin (pipe one in, e.g. from hello-llb), and no Dockerfile "
          "build (kiln build [-f Dockerfile] CONTEXT)");
    }
    if (!def.ParseFromString(buf.str()) || def.def_size() == 0) {
      return Fail("stdin is not a valid LLB definition (no ops)");
    }
  }

  auto conn = Connect(connect);
  if (!conn.ok()) return Fail(std::string(conn.status().message()));
  HealthService health;
  FileSyncService filesync(locals);
  FileSendService filesend(targets);
  // The ids (never the values) of every --secret, so that kilnd's leak guard also looks for
  // secrets no step mounts (kilnd learns mounted ones from the build; the session API has no
  // way to list what the client offers).
  if (!secret_specs->empty()) {
    std::vector<std::string> ids;
    for (const SecretSource& spec : *secret_specs) ids.push_back(spec.id);
    frontend_attrs["secret-scan-ids"] = absl::StrJoin(ids, ",");
  }
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
  // The daemon reads and writes type=local cache directories through the session.
  ContentService content(local_caches->stores);
  if (!local_caches->stores.empty()) {
    sopts.services.emplace_back(&content, "containerd.services.content.v1.Content");
  }
  auto session = SessionServer::Start(conn->channel, std::move(sopts));
  if (!session.ok()) return Fail(std::string(session.status().message()));

  auto stub = v1::Control::NewStub(conn->channel);
  v1::SolveRequest req;
  const std::string ref = NewSessionId();
  req.set_ref(ref);
  req.set_session((*session)->id());
  if (frontend.empty()) {
    *req.mutable_definition() = def;
  } else {
    req.set_frontend(frontend);
  }
  for (const auto& [k, v] : frontend_attrs) (*req.mutable_frontendattrs())[k] = v;
  for (auto& e : exporters) *req.add_exporters() = e;
  for (auto& e : cache_exports) *req.mutable_cache()->add_exports() = e;
  for (auto& e : cache_imports) *req.mutable_cache()->add_imports() = e;
  if (flags.no_cache) (*req.mutable_frontendattrs())["no-cache"] = "";
  // As buildx does: the environment's SOURCE_DATE_EPOCH becomes the build argument.
  if (const char* epoch = std::getenv("SOURCE_DATE_EPOCH"); epoch != nullptr && *epoch != '\0') {
    (*req.mutable_frontendattrs())["build-arg:SOURCE_DATE_EPOCH"] = epoch;
  }
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
  if (!st.ok()) {
    std::fputs(DescribeErrorSources(st).c_str(), stderr);
    return Fail(DescribeRpcError(*conn, st));
  }
  std::map<std::string, std::string> response(resp.exporterresponse().begin(),
                                              resp.exporterresponse().end());
  if (absl::Status updated = UpdateLocalCacheIndexes(*local_caches, response); !updated.ok()) {
    return Fail(absl::StrCat("cache export: ", updated.message()));
  }
  if (!flags.metadata_file.empty()) {
    std::string md = MetadataJson(response);
    FILE* f = std::fopen(flags.metadata_file.c_str(), "wb");
    if (f == nullptr || std::fwrite(md.data(), 1, md.size(), f) != md.size() ||
        std::fclose(f) != 0) {
      return Fail(absl::StrCat("cannot write --metadata-file ", flags.metadata_file));
    }
  }
  return 0;
}

}  // namespace kiln::client
