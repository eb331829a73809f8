#pragma once
// Image metadata: the image config, manifest and index JSON of the OCI image-spec (or Docker's
// schema2 media types), written deterministically: compact, members in the field order of the
// image-spec's Go structs (maps sorted, as Go's encoding/json does), Go's string escaping, no
// trailing newline. The same inputs always give the same bytes, hence the same digest.
// All functions are thread-safe (pure).

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "llb/platform.h"

namespace kiln::image {

using Platform = llb::Platform;  // serialized in the image spec's member order

struct Descriptor {
  std::string media_type;
  std::string digest;
  int64_t size = 0;
  std::vector<std::string> urls;
  std::map<std::string, std::string> annotations;
  std::optional<Platform> platform;
  std::string artifact_type;
};

// One history entry of an image config.
struct History {
  std::optional<std::string> created;  // RFC 3339 (see FormatTime)
  std::string created_by;
  std::string author;
  std::string comment;
  bool empty_layer = false;
};

// Go's time.RFC3339Nano of a UTC instant: "2024-01-02T03:04:05.5Z" (trailing zeros dropped).
std::string FormatTime(int64_t unix_seconds, int32_t nanos = 0);

// What an image config is made from.
struct ConfigInput {
  // The config JSON the image starts from (the frontend's result or a base image's config);
  // empty for scratch. Its created, author, platform, config and history are kept unless
  // overridden below; other top-level members are dropped, as a round trip through the Go
  // struct drops them.
  std::string base;
  std::optional<Platform> platform;
  // The runtime config ("config": Env, Cmd, Entrypoint, WorkingDir, User, Labels, ExposedPorts,
  // Volumes, StopSignal, Healthcheck, …): replaces the base's when set. Passed through: known
  // members are ordered as Go's structs order them and dropped when empty (omitempty), unknown
  // ones follow in sorted order.
  std::optional<nlohmann::json> config;
  // Uncompressed digests of ALL the image's layers, bottom first.
  std::vector<std::string> diff_ids;
  // Replaces the base's history when set. Entries without empty_layer must match diff_ids in
  // number.
  std::optional<std::vector<History>> history;
  // Replaces "created"; without it the base's, else the last history entry's, else none.
  std::optional<std::string> created;
  // BuildKit's inline cache: the value of "moby.buildkit.cache.v0" (base64 of its records).
  std::optional<std::string> inline_cache;
};

// The image config JSON (media type application/vnd.oci.image.config.v1+json, the same bytes
// serve as Docker's). INVALID_ARGUMENT for a malformed base or a history that does not match
// the layers.
[[nodiscard]] absl::StatusOr<std::string> MakeImageConfig(const ConfigInput& input);

// An image manifest for `config` and `layers` (descriptors with their media types set).
// `oci_media_types` picks the OCI manifest type or Docker's schema2 one, which cannot carry
// annotations (INVALID_ARGUMENT).
[[nodiscard]] absl::StatusOr<std::string> MakeManifest(
    const Descriptor& config, const std::vector<Descriptor>& layers, bool oci_media_types,
    const std::map<std::string, std::string>& annotations = {});

// An image index (or Docker manifest list) of `manifests`, each normally with a platform.
[[nodiscard]] absl::StatusOr<std::string> MakeIndex(
    const std::vector<Descriptor>& manifests, bool oci_media_types,
    const std::map<std::string, std::string>& annotations = {});

// The media type of an image config / manifest / index for the OCI or Docker family.
std::string ConfigMediaType(bool oci_media_types);
std::string ManifestMediaType(bool oci_media_types);
std::string IndexMediaType(bool oci_media_types);
bool IsManifestMediaType(std::string_view media_type);
bool IsIndexMediaType(std::string_view media_type);

// JSON object of a descriptor, in image-spec field order.
nlohmann::ordered_json DescriptorJson(const Descriptor& d);

// Parsed manifest and index (what the archive writers and tests need).
struct Manifest {
  std::string media_type;
  Descriptor config;
  std::vector<Descriptor> layers;
  std::map<std::string, std::string> annotations;
};
struct Index {
  std::string media_type;
  std::vector<Descriptor> manifests;
  std::map<std::string, std::string> annotations;
};
[[nodiscard]] absl::StatusOr<Manifest> ParseManifest(std::string_view json);
[[nodiscard]] absl::StatusOr<Index> ParseIndex(std::string_view json);

// The sha256 descriptor of `data` with `media_type`.
Descriptor DescriptorOf(std::string_view media_type, std::string_view data);

}  // namespace kiln::image
