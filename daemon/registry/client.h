#pragma once
// Client: the Registry over the OCI distribution HTTP API (HTTP/1.1, TLS through OpenSSL).
//
//   registry::Client client({.hosts = config.registries, .credentials = from_session});
//   KILN_ASSIGN_OR_RETURN(auto ref, registry::ParseReference("busybox"));
//   KILN_ASSIGN_OR_RETURN(auto image, client.Resolve(ctx, ref));
//   KILN_RETURN_IF_ERROR(client.FetchBlob(ctx, image.ref, layer, store));
//
// Hosts: docker.io is served by registry-1.docker.io. A host's RegistryConfig may list mirrors,
// which pulls (resolve and fetch) try in order before the origin, with the same repository path;
// pushes go to the origin only. `http` selects plain HTTP, `insecure` skips certificate checks;
// loopback hosts (localhost, 127.*, ::1) try HTTPS and fall back to HTTP like containerd does.
//
// Auth: every request goes out anonymously or with what an earlier challenge taught; a 401's
// WWW-Authenticate selects Bearer (a token from the realm for the repository scope, with Basic
// credentials or an identity token from `credentials`, cached per host and scope until it
// expires) or Basic (credentials sent as is). Idempotent requests are retried with exponential
// backoff on 5xx, 429 (honouring Retry-After) and connection failures.
//
// Thread-safe: calls may run concurrently; token and scheme caches are shared under a mutex.

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "daemon/config/config.h"
#include "daemon/http/client.h"
#include "daemon/registry/auth.h"
#include "daemon/registry/registry.h"

namespace kiln::registry {

struct RetryOptions {
  int max_attempts = 4;  // tries per request, the first included
  std::chrono::milliseconds initial_backoff{200};
  std::chrono::milliseconds max_backoff{5000};  // also caps Retry-After
};

class Client : public Registry {
 public:
  struct Options {
    // Per-host settings keyed by registry host as written in references ("docker.io",
    // "localhost:5000"); mirrors' own settings are looked up by the mirror's host.
    std::map<std::string, config::RegistryConfig> hosts;
    CredentialsFn credentials;  // null: anonymous everywhere
    std::string user_agent = "kiln";
    RetryOptions retry;
    std::chrono::milliseconds connect_timeout{30000};
    std::chrono::milliseconds io_timeout{120000};
    // Blobs up to this size are uploaded with one PUT; larger ones in PATCH chunks.
    int64_t monolithic_upload_limit = 32 << 20;
    int64_t upload_chunk_size = 16 << 20;
  };

  explicit Client(Options options);
  ~Client() override;

  absl::StatusOr<ResolveResult> Resolve(
      const Context& ctx, const Reference& ref,
      const std::optional<Platform>& platform = std::nullopt) override;
  absl::StatusOr<std::string> FetchManifest(const Context& ctx, const Reference& repo,
                                            const Descriptor& desc) override;
  absl::Status FetchBlob(const Context& ctx, const Reference& repo, const Descriptor& desc,
                         content::Store& store) override;
  absl::Status PushBlob(const Context& ctx, const Reference& repo, const Descriptor& desc,
                        content::Store& store,
                        std::optional<std::string> mount_from_repo = std::nullopt) override;
  absl::StatusOr<std::string> PushManifest(const Context& ctx, const Reference& ref,
                                           std::string_view media_type,
                                           std::string_view bytes) override;

 private:
  struct Host;
  struct Manifest;

  Host OriginHost(const std::string& domain);
  std::vector<Host> PullHosts(const std::string& domain);
  absl::StatusOr<http::Response> Send(const Context& ctx, Host& host,
                                      const std::vector<std::string>& scopes, http::Url url,
                                      const http::Request& request, bool idempotent,
                                      const http::SinkFactory& sink = nullptr,
                                      const std::function<void(http::Request&)>& prepare = nullptr);
  absl::Status Authorize(const Context& ctx, const Host& host,
                         const std::vector<std::string>& scopes,
                         const http::Response& challenge_response, bool* changed);
  absl::StatusOr<std::string> FetchToken(const Context& ctx, const Host& host,
                                         const std::map<std::string, std::string>& challenge,
                                         const std::vector<std::string>& scopes);
  absl::StatusOr<Credentials> CredentialsFor(const std::string& host);
  std::string AuthHeader(const std::string& host, const std::vector<std::string>& scopes);
  absl::Status Sleep(const Context& ctx, std::chrono::milliseconds d);
  std::chrono::milliseconds Backoff(int attempt) const;

  absl::StatusOr<Manifest> GetManifest(const Context& ctx, Host& host, const Reference& ref,
                                       const std::string& locator,
                                       const std::string& expected_digest);
  absl::StatusOr<ResolveResult> ResolveFrom(const Context& ctx, Host& host, const Reference& ref,
                                            const Platform& platform);
  absl::Status FetchBlobFrom(const Context& ctx, Host& host, const Reference& repo,
                             const Descriptor& desc, content::Writer& writer);
  absl::Status Upload(const Context& ctx, Host& host, const Reference& repo,
                      const std::vector<std::string>& scopes, http::Url location,
                      const Descriptor& desc, content::Store& store);

  // Constant after construction.
  const Options options_;
  const http::TransportOptions transport_;

  std::mutex mu_;
  struct Token {
    std::string value;
    std::chrono::steady_clock::time_point expires;
  };
  std::map<std::string, Token> tokens_;       // guarded by mu_; key: host + " " + scopes
  std::map<std::string, std::string> basic_;  // guarded by mu_; host -> "Basic …"
  std::map<std::string, bool> plain_http_;    // guarded by mu_; loopback hosts found to be HTTP
};

}  // namespace kiln::registry
