#pragma once
// The client side of RUN --mount=type=secret: parsing --secret flags the way buildctl and buildx
// do, and SecretsService, which answers the daemon's GetSecret calls by reading the file or
// environment variable at request time (values are never cached or logged). Thread-safe.

#include <grpcpp/grpcpp.h>

#include <cstddef>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "proto/moby/buildkit/secrets/v1/secrets.grpc.pb.h"

namespace kiln::client {

// BuildKit's secretsprovider.MaxSecretSize.
inline constexpr size_t kMaxSecretBytes = 500 * 1024;

// Where the value of secret `id` comes from. With both set, env wins (as in BuildKit).
struct SecretSource {
  std::string id;
  std::string file;  // path, read when the daemon asks
  std::string env;   // environment variable, read when the daemon asks ("" if unset then)

  bool operator==(const SecretSource&) const = default;
};

// Parses one --secret value: comma-separated key=value fields with CSV quoting, keys
// case-insensitive: `id`, `src` or `source`, `env`, `type=file|env` (`type=env,src=VAR` means
// env=VAR). Unresolved: a spec naming neither src nor env keeps both empty.
[[nodiscard]] absl::StatusOr<SecretSource> ParseSecretSpec(std::string_view spec);

// Parses every --secret value (empty ones are skipped) and resolves them like BuildKit's
// secretsprovider.NewStore: the id is required; a spec with neither src nor env reads the
// environment variable named like the id if it is set, else the file named like the id; files
// must exist and hold at most kMaxSecretBytes. A later spec replaces an earlier one with the
// same id (buildx). Errors quote the offending flag.
[[nodiscard]] absl::StatusOr<std::vector<SecretSource>> ParseSecretSpecs(
    const std::vector<std::string>& specs);

// Serves moby.buildkit.secrets.v1.Secrets. Unknown ids answer NOT_FOUND "secret ID not found".
class SecretsService final : public moby::buildkit::secrets::v1::Secrets::CallbackService {
 public:
  explicit SecretsService(const std::vector<SecretSource>& sources);

  grpc::ServerUnaryReactor* GetSecret(
      grpc::CallbackServerContext* ctx, const moby::buildkit::secrets::v1::GetSecretRequest* req,
      moby::buildkit::secrets::v1::GetSecretResponse* resp) override;

 private:
  std::map<std::string, SecretSource> sources_;  // by id; constant after construction
};

}  // namespace kiln::client
