#pragma once
// SourceOp "docker-image://REF": an image's root filesystem, as BuildKit's image source gives
// it. The reference is resolved through the registry (platform from the op, else the host's;
// "image.resolvemode": default and pull resolve remotely, local uses the last resolution kept
// by this daemon), the config and layers are fetched into the content store, and each layer is
// unpacked once into a cache record keyed by its chain id, so images that share base layers
// share snapshots. The cache key is the image manifest's digest: a re-solve of an unchanged
// tag needs one manifest request and no downloads.

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "daemon/content/store.h"
#include "daemon/image/spec.h"
#include "daemon/ops/worker.h"
#include "daemon/registry/registry.h"
#include "daemon/solver/types.h"
#include "llb/platform.h"

namespace kiln::ops {

struct ImageSourceAttrs {
  std::string ref;                 // as written after docker-image://
  std::string resolve_mode;        // "default", "pull" or "local"
  std::optional<int> layer_limit;  // image.layerlimit: use only the first N layers
  std::optional<llb::Platform> platform;
};

// Parses "docker-image://REF" and its attrs. INVALID_ARGUMENT names what is wrong.
[[nodiscard]] absl::StatusOr<ImageSourceAttrs> ParseImageSource(
    const std::string& identifier, const google::protobuf::Map<std::string, std::string>& attrs,
    const std::optional<llb::Platform>& platform);

// What resolving an image yields for frontends (ResolveImageConfig) and for the op.
struct ResolvedImage {
  std::string ref;              // normalized reference
  std::string digest;           // what the reference names (index or manifest)
  std::string manifest_digest;  // the platform's manifest
  std::string manifest;         // its bytes
  std::string config;           // the image config JSON
};

// Resolves `attrs` and fetches its manifest and config (not the layers).
[[nodiscard]] absl::StatusOr<ResolvedImage> ResolveImage(const Context& ctx, const Worker& worker,
                                                         const ImageSourceAttrs& attrs);

// One layer of a chain to import: its blob and what the blob must unpack to.
struct ChainLayer {
  image::Descriptor desc;
  std::string diff_id;
  int64_t created_at_ns = 0;  // the record's creation time; 0 = now
  // The repository the blob comes from (remembered for cross-repository mounts on push).
  std::string domain, path;
};

// Unpacks `layers` (bottom first) into cache records, one per layer, each keyed by its OCI
// chain id so that images and caches sharing base layers share snapshots: layers already here
// are reused, missing blobs are fetched into the content store by `fetch` first. Each record
// remembers its original blob (daemon/blobs). Returns the top record (nullopt for no layers).
using FetchBlobFn = std::function<absl::Status(const Context& ctx, const image::Descriptor& desc)>;
[[nodiscard]] absl::StatusOr<std::optional<cache::ImmutableRef>> ImportLayerChain(
    const Context& ctx, cache::Manager& cache, content::Store& content,
    const std::vector<ChainLayer>& layers, const FetchBlobFn& fetch,
    const std::string& description);

class ImageSourceOp final : public solver::Op {
 public:
  ImageSourceOp(Worker worker, ImageSourceAttrs attrs)
      : worker_(std::move(worker)), attrs_(std::move(attrs)) {}
  absl::StatusOr<solver::CacheMap> GetCacheMap(const Context& ctx) override;
  absl::StatusOr<std::vector<solver::ResultPtr>> Exec(
      const Context& ctx, const std::vector<solver::ResultPtr>& inputs) override;

 private:
  Worker worker_;
  ImageSourceAttrs attrs_;
  std::optional<ResolvedImage> resolved_;
};

}  // namespace kiln::ops
