#pragma once
// Registry credentials from the client: moby.filesync.v1.Auth/Credentials over the session, as
// BuildKit's daemon asks for them when a registry challenges it. The client answers from its
// docker config (auths, credsStore, credHelpers). Secrets in the answer are never logged.

#include <string>

#include "absl/status/statusor.h"
#include "base/context.h"
#include "daemon/session/session.h"

namespace kiln::session {

inline constexpr char kAuthCredentialsMethod[] = "/moby.filesync.v1.Auth/Credentials";

struct RegistryCredentials {
  std::string username;  // empty with a non-empty secret: an identity (refresh) token
  std::string secret;
  bool empty() const { return username.empty() && secret.empty(); }
};

// The credentials the client has for registry `host` ("docker.io", "ghcr.io",
// "localhost:5000"). Anonymous (empty) when the client serves no Auth service or has none for
// the host; errors only for a broken session or cancellation.
[[nodiscard]] absl::StatusOr<RegistryCredentials> GetRegistryCredentials(const Context& ctx,
                                                                         const Session& session,
                                                                         const std::string& host);

}  // namespace kiln::session
