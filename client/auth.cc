#include "client/auth.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/status.h"

namespace kiln::client {
namespace fs = std::filesystem;
using json = nlohmann::json;
namespace {

constexpr char kDockerHubServer[] = "https://index.docker.io/v1/";

// Runs `docker-credential-<helper> get` with `server` on stdin; its stdout.
absl::StatusOr<std::optional<Credentials>> RunHelper(const std::string& helper,
                                                     const std::string& server) {
  const std::string program = "docker-credential-" + helper;
  int in[2], out[2];
  if (pipe2(in, O_CLOEXEC) != 0) return ErrnoToStatus(errno, "pipe");
  if (pipe2(out, O_CLOEXEC) != 0) {
    close(in[0]);
    close(in[1]);
    return ErrnoToStatus(errno, "pipe");
  }
  // posix_spawn: safe in this multi-threaded process, unlike fork + exec.
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in[0], 0);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  const char* argv[] = {program.c_str(), "get", nullptr};
  pid_t pid = 0;
  int err =
      posix_spawnp(&pid, program.c_str(), &actions, nullptr, const_cast<char**>(argv), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (err != 0) {
    for (int fd : {in[0], in[1], out[0], out[1]}) close(fd);
    if (err == ENOENT) {
      return absl::FailedPreconditionError(absl::StrCat(
          "credential helper ", program, " is not installed (named in docker config)"));
    }
    return ErrnoToStatus(err, absl::StrCat("run ", program));
  }
  close(in[0]);
  close(out[1]);
  // A helper may exit without reading its input: write with SIGPIPE blocked for this thread,
  // and swallow the signal if it became pending.
  {
    sigset_t pipe_set, old_set;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old_set);
    std::string input = server + "\n";
    ssize_t n = write(in[1], input.data(), input.size());
    if (n < 0 && errno == EPIPE) {
      struct timespec zero = {0, 0};
      while (sigtimedwait(&pipe_set, nullptr, &zero) > 0) {
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_set, nullptr);
  }
  close(in[1]);
  std::string output;
  char buf[4096];
  for (;;) {
    ssize_t n = read(out[0], buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    output.append(buf, static_cast<size_t>(n));
  }
  close(out[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    if (absl::StrContains(output, "credentials not found")) return std::nullopt;
    return absl::UnavailableError(
        absl::StrCat(program, " get ", server, " failed: ", absl::StripAsciiWhitespace(output)));
  }
  try {
    json j = json::parse(output);
    Credentials c{j.value("Username", ""), j.value("Secret", "")};
    // A "<token>" username marks an identity token (docker's convention).
    if (c.username == "<token>") c.username.clear();
    return c;
  } catch (const json::exception& e) {
    return absl::UnavailableError(
        absl::StrCat(program, " returned something that is not JSON: ", e.what()));
  }
}

}  // namespace

std::string NormalizeRegistryHost(std::string_view server) {
  std::string s(absl::StripAsciiWhitespace(AV(server)));
  for (const char* scheme : {"https://", "http://"}) {
    if (absl::StartsWith(s, scheme)) s = s.substr(std::string_view(scheme).size());
  }
  if (size_t slash = s.find('/'); slash != std::string::npos) s.resize(slash);
  s = absl::AsciiStrToLower(s);
  if (s == "index.docker.io" || s == "registry-1.docker.io") return "docker.io";
  return s;
}

absl::StatusOr<DockerConfig> DockerConfig::LoadDefault() {
  fs::path dir;
  if (const char* d = std::getenv("DOCKER_CONFIG"); d != nullptr && *d != '\0') {
    dir = d;
  } else if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0') {
    dir = fs::path(home) / ".docker";
  } else {
    return DockerConfig();
  }
  return Load(dir / "config.json");
}

absl::StatusOr<DockerConfig> DockerConfig::Load(const fs::path& file) {
  DockerConfig cfg;
  cfg.file_ = file;
  std::ifstream in(file);
  if (!in) return cfg;  // no config: anonymous everywhere
  json j;
  try {
    j = json::parse(in);
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("docker config ", file.string(), " is not valid JSON: ", e.what()));
  }
  if (!j.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("docker config ", file.string(), " is not an object"));
  }
  try {
    const json auths = j.value("auths", json::object());
    const json helpers = j.value("credHelpers", json::object());
    for (auto& [server, entry] : auths.items()) {
      Credentials c;
      if (entry.contains("auth") && !entry["auth"].get<std::string>().empty()) {
        std::string decoded;
        if (!absl::Base64Unescape(entry["auth"].get<std::string>(), &decoded) ||
            decoded.find(':') == std::string::npos) {
          return absl::InvalidArgumentError(absl::StrCat("docker config ", file.string(),
                                                         ": auths.", server,
                                                         ".auth is not base64 of user:password"));
        }
        c.username = decoded.substr(0, decoded.find(':'));
        c.secret = decoded.substr(decoded.find(':') + 1);
      } else {
        c.username = entry.value("username", "");
        c.secret = entry.value("password", "");
      }
      if (std::string token = entry.value("identitytoken", ""); !token.empty()) {
        c.username.clear();
        c.secret = token;
      }
      cfg.auths_[NormalizeRegistryHost(server)] = Entry{c};
    }
    for (auto& [server, helper] : helpers.items()) {
      cfg.cred_helpers_[NormalizeRegistryHost(server)] = helper.get<std::string>();
    }
    cfg.creds_store_ = j.value("credsStore", "");
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("docker config ", file.string(), ": ", e.what()));
  }
  return cfg;
}

absl::StatusOr<std::optional<Credentials>> DockerConfig::Lookup(const std::string& host_in) const {
  const std::string host = NormalizeRegistryHost(host_in);
  const std::string server = host == "docker.io" ? kDockerHubServer : host;
  if (auto it = cred_helpers_.find(host); it != cred_helpers_.end()) {
    return RunHelper(it->second, server);
  }
  if (!creds_store_.empty()) {
    KILN_ASSIGN_OR_RETURN(std::optional<Credentials> c, RunHelper(creds_store_, server));
    if (c) return c;
  }
  if (auto it = auths_.find(host); it != auths_.end() && !(it->second.creds.username.empty() &&
                                                           it->second.creds.secret.empty())) {
    return it->second.creds;
  }
  return std::nullopt;
}

grpc::ServerUnaryReactor* AuthService::Credentials(
    grpc::CallbackServerContext* ctx, const moby::filesync::v1::CredentialsRequest* req,
    moby::filesync::v1::CredentialsResponse* resp) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  // Credential helpers may take a while (keychains): keep them off the gRPC threads.
  std::thread([this, req, resp, reactor] {
    auto creds = config_.Lookup(req->host());
    if (!creds.ok()) {
      reactor->Finish(grpc::Status(static_cast<grpc::StatusCode>(creds.status().code()),
                                   std::string(creds.status().message())));
      return;
    }
    if (*creds) {
      resp->set_username((*creds)->username);
      resp->set_secret((*creds)->secret);
    }
    reactor->Finish(grpc::Status::OK);
  }).detach();
  return reactor;
}

}  // namespace kiln::client
