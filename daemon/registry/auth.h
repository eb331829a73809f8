#pragma once
// Registry authentication pieces that need no network: credentials, WWW-Authenticate challenge
// parsing, and the token-scope strings of the Docker token protocol. Plain values and pure
// functions.

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace kiln::registry {

// What a user has for one registry host. All empty means anonymous.
struct Credentials {
  std::string username;
  std::string secret;          // password or personal access token
  std::string identity_token;  // OAuth2 refresh token (docker login with an identity provider)
  bool empty() const { return username.empty() && secret.empty() && identity_token.empty(); }
};

// Looks up credentials for the registry host being contacted ("registry-1.docker.io",
// "localhost:5000", or a mirror's host). NOT_FOUND (or empty Credentials) means anonymous;
// any other error fails the request. Called from the thread making the request.
using CredentialsFn = std::function<absl::StatusOr<Credentials>(const std::string& host)>;

// One challenge of a WWW-Authenticate header.
struct Challenge {
  std::string scheme;                         // lowercase: "bearer", "basic"
  std::map<std::string, std::string> params;  // lowercase keys: realm, service, scope, error
  bool operator==(const Challenge&) const = default;
};

// Parses a WWW-Authenticate header value (RFC 7235: one or more challenges, comma-separated
// auth-params with token or quoted-string values). Unparseable tails are dropped; an empty
// result means no usable challenge.
std::vector<Challenge> ParseWwwAuthenticate(std::string_view header);

// "repository:<path>:pull" or "repository:<path>:pull,push".
std::string RepositoryScope(std::string_view path, bool push);

}  // namespace kiln::registry
