#pragma once
// The secret leak guard around a build's exports: which secrets to look for (the client's
// values of the secret ids the build's RUN steps mount, and build args whose names look
// secret), and where to look (the result's new layers, the image config with its history, and
// the layers a mode=max cache export adds). Findings become warnings, or, with the frontend
// option secret-scan=error, an error before anything is exported.

#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "base/context.h"
#include "daemon/cache/manager.h"
#include "daemon/secretscan/scan.h"
#include "daemon/session/session.h"

namespace kiln::server {

enum class SecretScanMode { kOff, kWarn, kError };

// The frontend option secret-scan: "warn" (default), "error" or "off".
[[nodiscard]] absl::StatusOr<SecretScanMode> SecretScanModeOf(
    const std::map<std::string, std::string>& frontend_attrs);

// The frontend option naming every secret id the client offers (comma-separated; the kiln
// client sends it), so that secrets no step mounts are looked for too.
inline constexpr char kSecretScanIdsAttr[] = "secret-scan-ids";

// The secrets to look for: `ids` (the ones the build mounted) and those kSecretScanIdsAttr
// names. Ids the client does not have are skipped.
[[nodiscard]] absl::StatusOr<std::vector<secretscan::Secret>> BuildSecrets(
    const Context& ctx, const session::Session* session, const std::set<std::string>& ids,
    const std::map<std::string, std::string>& frontend_attrs);

struct ScanTargets {
  const cache::ImmutableRef* result = nullptr;  // the exported tree (null: empty)
  std::string image_config;                     // the frontend's image config JSON, if any
  // Results a cache export includes besides `result` (mode=max: every stage's).
  std::vector<const cache::ImmutableRef*> cache_results;
};

// Every finding in `targets`. Layers pulled from a registry as part of a base image are not
// scanned (the build did not write them).
[[nodiscard]] absl::StatusOr<std::vector<secretscan::Finding>> ScanExports(
    const Context& ctx, cache::Manager& cache, const ScanTargets& targets,
    const std::vector<secretscan::Secret>& secrets);

}  // namespace kiln::server
