#pragma once
// The OCI distribution operations the daemon needs from a registry: resolve an image reference
// to its manifest (choosing a platform out of an index), fetch manifests and blobs into the
// content store, push blobs and manifests. `Client` (client.h) implements it over HTTP(S);
// tests of higher layers may substitute a fake. Implementations are thread-safe.

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "base/context.h"
#include "daemon/content/store.h"
#include "daemon/registry/reference.h"
#include "daemon/registry/types.h"

namespace kiln::registry {

// What a reference resolved to.
struct ResolveResult {
  Reference ref;               // the normalized reference that was resolved
  Descriptor root;             // what the reference names (index or manifest); its digest is
                               // the image digest
  Descriptor manifest;         // the chosen platform's image manifest (== root when no index)
  std::string manifest_bytes;  // raw bytes of `manifest`, digest-verified
  std::string index_bytes;     // raw bytes of `root` when it is an index, else empty
  std::string registry_host;   // the host (origin or mirror) that answered
};

class Registry {
 public:
  virtual ~Registry() = default;

  // Resolves `ref` (by tag or digest). For an index or manifest list, picks the manifest for
  // `platform` (default: the host's) like containerd's matcher. By-digest references are
  // verified against the bytes. NOT_FOUND / UNAUTHENTICATED / PERMISSION_DENIED name the image
  // and the registry.
  [[nodiscard]] virtual absl::StatusOr<ResolveResult> Resolve(
      const Context& ctx, const Reference& ref,
      const std::optional<Platform>& platform = std::nullopt) = 0;

  // The bytes of the manifest or index `desc` in `repo`'s repository, verified against
  // `desc.digest` and `desc.size`.
  [[nodiscard]] virtual absl::StatusOr<std::string> FetchManifest(const Context& ctx,
                                                                  const Reference& repo,
                                                                  const Descriptor& desc) = 0;

  // Downloads blob `desc` of `repo` into `store` (no-op when present), resuming partial data
  // left by an earlier interrupted fetch. The blob is visible in the store only once complete
  // and verified; a digest mismatch is FAILED_PRECONDITION and leaves nothing behind.
  [[nodiscard]] virtual absl::Status FetchBlob(const Context& ctx, const Reference& repo,
                                               const Descriptor& desc, content::Store& store) = 0;

  // Uploads blob `desc` from `store` to `repo` unless the registry has it already; when
  // `mount_from_repo` (a repository path on the same registry) is given, asks the registry to
  // mount the blob from there first.
  [[nodiscard]] virtual absl::Status PushBlob(
      const Context& ctx, const Reference& repo, const Descriptor& desc, content::Store& store,
      std::optional<std::string> mount_from_repo = std::nullopt) = 0;

  // Uploads a manifest or index under `ref`'s tag (or its digest when it has no tag) and returns
  // its digest. A digest in `ref` must match `bytes`.
  [[nodiscard]] virtual absl::StatusOr<std::string> PushManifest(const Context& ctx,
                                                                 const Reference& ref,
                                                                 std::string_view media_type,
                                                                 std::string_view bytes) = 0;
};

using RegistryPtr = std::unique_ptr<Registry>;

}  // namespace kiln::registry
