#pragma once
// kilnd's configuration: the subset of buildkitd.toml keys that kiln supports, plus defaults.
// Values are plain data; the loader is a pure function of the file's text.

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace kiln::config {

inline constexpr char kDefaultRoot[] = "/var/lib/kiln";
inline constexpr char kDefaultAddress[] = "unix:///run/kiln/kilnd.sock";

// A size given either in bytes or as a percentage of the state root's filesystem
// (buildkitd's DiskSpace: "10GB", "512MiB", 1000000, "10%").
struct DiskSpace {
  int64_t bytes = 0;
  int64_t percentage = 0;
  bool IsSet() const { return bytes != 0 || percentage != 0; }
  // Resolves against a filesystem of `total_bytes`.
  int64_t AsBytes(int64_t total_bytes) const;
  bool operator==(const DiskSpace&) const = default;
};

// Parses "10GB", "1.5g", "512MiB", "1000" (bytes; binary units like docker's RAMInBytes)
// or "10%". INVALID_ARGUMENT names the text on failure.
[[nodiscard]] absl::StatusOr<DiskSpace> ParseDiskSpace(std::string_view text);

// [registry."host"] section.
struct RegistryConfig {
  std::vector<std::string> mirrors;
  bool http = false;      // talk plain HTTP to this host
  bool insecure = false;  // accept any TLS certificate from this host, or plain HTTP
  bool operator==(const RegistryConfig&) const = default;
};

struct TlsConfig {
  std::string cert;
  std::string key;
  std::string ca;
  bool operator==(const TlsConfig&) const = default;
};

struct Config {
  std::string root = kDefaultRoot;
  std::vector<std::string> addresses;  // [grpc] address; empty means kDefaultAddress
  bool debug = false;
  TlsConfig tls;              // [grpc.tls]
  DiskSpace gc_keep_storage;  // [worker.oci] gckeepstorage
  std::string oci_binary;     // [worker.oci] binary; empty means crun
  std::map<std::string, RegistryConfig> registries;
  // Entitlements builds may ask for: "security.insecure", "network.host"
  // (insecure-entitlements; --allow-insecure-entitlement).
  std::vector<std::string> insecure_entitlements;
};

// A loaded file: its values and the warnings a user should see (unknown or unsupported keys).
struct LoadResult {
  Config config;
  std::vector<std::string> warnings;
};

// Parses buildkitd.toml-style text. `filename` only appears in messages. Wrong types and
// malformed TOML are errors naming the file and the key (or line); unknown keys are warnings.
[[nodiscard]] absl::StatusOr<LoadResult> ParseConfig(std::string_view text,
                                                     std::string_view filename);

// Reads and parses the file at `path`.
[[nodiscard]] absl::StatusOr<LoadResult> LoadConfigFile(const std::string& path);

}  // namespace kiln::config
