#pragma once
// OCI platforms as LLB records them, normalized the way containerd's platforms.Normalize does.

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace kiln::llb {

// An OCI platform (os/architecture/variant). A plain value.
struct Platform {
  std::string os;
  std::string architecture;
  std::string variant;
  std::string os_version;
  std::vector<std::string> os_features;

  bool operator==(const Platform&) const = default;
};

// Lowercases and canonicalizes os/architecture/variant (x86_64 -> amd64, aarch64/v8 -> arm64,
// armhf -> arm/v7, ...). An empty os becomes the host's.
Platform NormalizePlatform(Platform platform);

// "linux/arm64/v8" (os/arch[/variant]), normalized; INVALID_ARGUMENT naming the text otherwise.
[[nodiscard]] absl::StatusOr<Platform> ParsePlatform(std::string_view text);
// "linux/arm64", "linux/arm/v7".
std::string FormatPlatform(const Platform& platform);

// The platform this binary runs on, normalized: BuildKit's default for ops that have none.
Platform HostPlatform();

}  // namespace kiln::llb
