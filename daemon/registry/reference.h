#pragma once
// Image references ("busybox", "user/app:1.0", "localhost:5000/x@sha256:…") parsed and
// normalized the way Docker's distribution/reference package does: Docker Hub names gain
// "docker.io/" and, for single-component names, "library/"; a name with neither tag nor digest
// gets the tag "latest". Plain values; thread-compatible.

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace kiln::registry {

struct Reference {
  std::string domain;  // "docker.io", "ghcr.io", "localhost:5000"
  std::string path;    // repository path inside the registry: "library/busybox"
  std::string tag;     // empty when the reference has only a digest
  std::string digest;  // "sha256:<hex>", empty when none

  // "docker.io/library/busybox": the repository, without tag or digest.
  std::string Name() const;
  // The full normalized form: "docker.io/library/busybox:latest", "host/x:t@sha256:…".
  std::string String() const;
  // The short form users type: "busybox:latest", "user/app@sha256:…", "ghcr.io/o/x:1".
  std::string FamiliarString() const;
  // What to ask the registry for: the digest when there is one (it pins the content), else the tag.
  const std::string& Locator() const { return digest.empty() ? tag : digest; }

  bool operator==(const Reference&) const = default;
};

// Parses and normalizes `text`. INVALID_ARGUMENT names the reference and what is wrong with it
// (uppercase repository, bad tag, unsupported digest, bad domain, …).
[[nodiscard]] absl::StatusOr<Reference> ParseReference(std::string_view text);

// The same repository as `ref`, pointing at `digest` (no tag): how blobs and child manifests of
// an image are addressed.
Reference WithDigest(const Reference& ref, std::string digest);

}  // namespace kiln::registry
