#pragma once
// OCI content descriptors, the manifest media types a registry serves, and platform matching
// for picking one manifest out of an index. Plain values and pure functions.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "llb/platform.h"

namespace kiln::registry {

using Platform = llb::Platform;

inline constexpr char kMediaTypeOciIndex[] = "application/vnd.oci.image.index.v1+json";
inline constexpr char kMediaTypeOciManifest[] = "application/vnd.oci.image.manifest.v1+json";
inline constexpr char kMediaTypeDockerList[] =
    "application/vnd.docker.distribution.manifest.list.v2+json";
inline constexpr char kMediaTypeDockerManifest[] =
    "application/vnd.docker.distribution.manifest.v2+json";

bool IsIndexMediaType(std::string_view media_type);
bool IsManifestMediaType(std::string_view media_type);

// An OCI descriptor: what a manifest or index says about one piece of content.
struct Descriptor {
  std::string media_type;
  std::string digest;  // "sha256:<hex>"
  int64_t size = 0;
  std::optional<Platform> platform;
  std::map<std::string, std::string> annotations;

  bool operator==(const Descriptor&) const = default;
};

// A manifest or index, reduced to what pulling and platform selection need.
struct ParsedManifest {
  std::string media_type;             // from the document, else the one given to the parser
  std::vector<Descriptor> manifests;  // index / manifest list entries
  std::optional<Descriptor> config;   // image manifest
  std::vector<Descriptor> layers;     // image manifest
  bool IsIndex() const { return IsIndexMediaType(media_type); }
};

// Parses a manifest or index. `content_type` (from the HTTP response; may be empty or carry
// parameters) is used when the document has no mediaType field. INVALID_ARGUMENT on bad JSON
// or a document that is neither an index nor an image manifest.
[[nodiscard]] absl::StatusOr<ParsedManifest> ParseManifest(std::string_view bytes,
                                                           std::string_view content_type);

using llb::FormatPlatform;
using llb::ParsePlatform;

// How well `have` (an index entry's platform) serves a build that wants `want`, after both are
// normalized like containerd does (arm64 means arm64/v8, arm means arm/v7, amd64/v1 is amd64):
// 0 for the same os/architecture/variant, larger for compatible older variants (arm/v6 for an
// arm/v7 build, arm/v7 for an arm64 build, amd64/v2 for amd64/v3), nullopt when it does not
// run at all.
std::optional<int> PlatformRank(const Platform& want, const Platform& have);

// Index of the best entry of `manifests` for `want` (lowest rank, first on ties); NOT_FOUND
// listing the platforms on offer when none matches.
[[nodiscard]] absl::StatusOr<size_t> SelectPlatform(const std::vector<Descriptor>& manifests,
                                                    const Platform& want);

}  // namespace kiln::registry
