#pragma once
// Registry credentials for the daemon, served over the session (moby.filesync.v1.Auth) from
// the user's docker config ($DOCKER_CONFIG/config.json, else ~/.docker/config.json), as
// buildctl and buildx do: `auths` entries (auth = base64 "user:password", or username and
// password, or identitytoken), `credHelpers` per registry and `credsStore` for the rest
// (docker-credential-<name> get). Docker Hub is looked up under its historical key
// "https://index.docker.io/v1/". The daemon only ever sees the credentials of hosts it asks for.

#include <grpcpp/grpcpp.h>

#include <filesystem>
#include <map>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "proto/moby/filesync/v1/auth.grpc.pb.h"

namespace kiln::client {

struct Credentials {
  std::string username;
  std::string secret;  // password, token, or identity token (then username is empty)
  bool operator==(const Credentials&) const = default;
};

class DockerConfig {
 public:
  // The config at $DOCKER_CONFIG/config.json or ~/.docker/config.json; a missing file is an
  // empty config. A malformed one is an error naming the file.
  [[nodiscard]] static absl::StatusOr<DockerConfig> LoadDefault();
  [[nodiscard]] static absl::StatusOr<DockerConfig> Load(const std::filesystem::path& file);

  // Credentials for registry `host` ("docker.io", "localhost:5000"); nullopt when there are
  // none. Errors come from a credential helper that fails for another reason than "not found".
  [[nodiscard]] absl::StatusOr<std::optional<Credentials>> Lookup(const std::string& host) const;

 private:
  struct Entry {
    Credentials creds;
  };
  std::filesystem::path file_;
  std::map<std::string, Entry> auths_;  // by hostname (scheme and path stripped)
  std::map<std::string, std::string> cred_helpers_;
  std::string creds_store_;
};

// "https://index.docker.io/v1/" → "index.docker.io" → "docker.io"; "http://h:5000/v2/" → "h:5000".
[[nodiscard]] std::string NormalizeRegistryHost(std::string_view server);

class AuthService final : public moby::filesync::v1::Auth::CallbackService {
 public:
  explicit AuthService(DockerConfig config) : config_(std::move(config)) {}
  grpc::ServerUnaryReactor* Credentials(grpc::CallbackServerContext* ctx,
                                        const moby::filesync::v1::CredentialsRequest* req,
                                        moby::filesync::v1::CredentialsResponse* resp) override;

 private:
  const DockerConfig config_;
};

}  // namespace kiln::client
