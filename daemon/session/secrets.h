#pragma once
// The daemon asking a client for a secret (RUN --mount=type=secret): one
// moby.buildkit.secrets.v1.Secrets/GetSecret call through the session. The value is returned to
// the caller only; nothing here logs or stores it. Stateless; safe to call concurrently.

#include <cstddef>
#include <string>

#include "absl/status/statusor.h"
#include "base/context.h"
#include "daemon/session/session.h"

namespace kiln::session {

inline constexpr char kGetSecretMethod[] = "/moby.buildkit.secrets.v1.Secrets/GetSecret";
// BuildKit's secretsprovider.MaxSecretSize: clients refuse to send more, and the daemon refuses
// to accept more.
inline constexpr size_t kMaxSecretBytes = 500 * 1024;

// Fetches the secret `id` from the session's client.
// - NOT_FOUND ("secret ID not found …") when the client serves no secrets or has none with that
//   id (callers decide whether the mount was required);
// - FAILED_PRECONDITION when the client sends more than kMaxSecretBytes;
// - UNAVAILABLE when the session is closed; CANCELLED / DEADLINE_EXCEEDED from `ctx`;
// - any other error the client answers, with its message.
[[nodiscard]] absl::StatusOr<std::string> GetSecret(const Context& ctx, const Session& session,
                                                    const std::string& id);

}  // namespace kiln::session
