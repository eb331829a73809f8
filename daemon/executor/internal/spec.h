#pragma once
// The OCI runtime configuration (config.json) for one run, and the files bind-mounted next to
// it. Pure functions of their inputs; thread-safe.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "daemon/executor/executor.h"
#include "daemon/executor/internal/user.h"

namespace kiln::executor::internal {

struct SpecInput {
  std::string root_path;  // absolute host path of the rootfs the runtime mounts as /
  const Meta* meta = nullptr;
  ExecUser user;
  std::vector<Mount> mounts;  // the caller's, after the standard ones
  std::string hosts_path;     // host path of the generated /etc/hosts
  std::string resolv_conf_path;
  // No device cgroup confines the container (crun without a cgroup manager where the executor
  // cannot set one up): in sandbox mode, restrict mknod(2) to harmless nodes and mount binds
  // nodev.
  bool restrict_device_nodes = false;
};

// Docker's default capability set, as OCI names ("CAP_CHOWN", ...).
const std::vector<std::string>& DefaultCapabilities();
// Every capability this process has (and kiln knows by name): what insecure mode grants.
const std::vector<std::string>& AllCapabilities();

// Checks what the spec does not: non-empty args, K=V environment entries, absolute mount
// destinations, known ulimit names with soft <= hard, extra hosts with valid IPs and names.
[[nodiscard]] absl::Status ValidateMeta(const Meta& meta, const std::vector<Mount>& mounts);

// `env` with `secret_env` merged in (a secret replaces an entry of the same name) and
// BuildKit's default PATH added when none is set.
std::vector<std::string> MergeEnv(const std::vector<std::string>& env,
                                  const std::vector<std::string>& secret_env);

// The names of "K=V" entries, for logging.
std::vector<std::string> EnvNames(const std::vector<std::string>& env);

// BuildKit's /etc/hosts: localhost lines naming `hostname`, then one line per extra host.
std::string HostsFile(std::string_view hostname,
                      const std::vector<std::pair<std::string, std::string>>& extra_hosts);

// config.json for `in`. INVALID_ARGUMENT for an unknown ulimit name.
[[nodiscard]] absl::StatusOr<nlohmann::json> GenerateSpec(const SpecInput& in);

}  // namespace kiln::executor::internal
