#pragma once
// WorkerInfo: what kilnd tells clients about its single OCI worker (ListWorkers). Plain data,
// built once at start by the composition root.

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "daemon/cache/manager.h"

namespace kiln::server {

struct Platform {
  std::string os;
  std::string architecture;
  std::string variant;
};

struct WorkerInfo {
  std::string id;
  std::map<std::string, std::string> labels;
  std::vector<Platform> platforms;
  std::vector<cache::PruneOptions> gc_policy;
};

// The platforms this machine runs natively, as buildkitd names them: the base platform, then
// the micro-architecture levels the CPU supports (linux/amd64, linux/amd64/v2, ...).
// Foreign platforms (emulation, 32-bit compat) are not claimed until they can be tested.
std::vector<Platform> DetectPlatforms();

// The worker id persisted at `root`/workerid, created (random, 25 chars) on first start.
[[nodiscard]] absl::StatusOr<std::string> LoadOrCreateWorkerId(const std::filesystem::path& root);

// BuildKit's worker labels for an OCI worker with the given runtime binary.
std::map<std::string, std::string> WorkerLabels(const std::string& oci_binary);

}  // namespace kiln::server
