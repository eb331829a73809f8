#pragma once
// Exporters, as BuildKit names them: `local` (the tree into a client directory, as fsutil
// packets), `tar` (a tarball of the tree, streamed as bytes to the client), `image` (an image
// in the content store, optionally pushed to registries), and `oci` / `docker` (the image as an
// OCI layout or `docker load` tarball streamed to the client).
//
// Image exporters turn each layer of the result's stack into a blob (daemon/blobs: made once
// per layer record and compression, pulled layers keep their original blob), then write the
// image config and manifest into the content store.

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "base/context.h"
#include "daemon/blobs/blobs.h"
#include "daemon/cache/manager.h"
#include "daemon/content/store.h"
#include "daemon/registry/registry.h"
#include "daemon/session/session.h"

namespace kiln::exporter {

struct ExportRequest {
  std::string type;                          // "local", "tar", "image", "oci" or "docker"
  std::map<std::string, std::string> attrs;  // exporter attributes (dest is client-side)
  int id = 0;                                // index among the request's exporters
};

// What exporters use from the daemon, for one build. Not owned.
struct ExportDeps {
  cache::Manager* cache = nullptr;
  const session::Session* session = nullptr;  // the build's client
  content::Store* content = nullptr;          // image exporters: blobs, configs, manifests
  // push=true: the build's registry client (authenticating as the build's client).
  std::shared_ptr<registry::Registry> registry;
  // registry.insecure=true: a client like `registry` that also accepts any certificate (and
  // plain HTTP) from `domains`. Null: `registry` is used.
  std::function<std::shared_ptr<registry::Registry>(const std::vector<std::string>& domains)>
      insecure_registry;
  // The request's frontend attributes (build-arg:SOURCE_DATE_EPOCH).
  std::map<std::string, std::string> frontend_attrs;
  // Inline cache (daemon/remotecache), when the build exports it: the value of the image
  // config's "moby.buildkit.cache.v0" for an image of these layer blobs (bottom first), made
  // with these blob options.
  std::function<absl::StatusOr<std::string>(const Context& ctx,
                                            const std::vector<std::string>& layer_digests,
                                            const blobs::Options& options)>
      inline_cache;
};

// Exports `result` (null = the empty tree). Returns the exporter's response entries (for image
// exporters: containerimage.digest, containerimage.config.digest, containerimage.descriptor
// and image.name, as BuildKit's).
[[nodiscard]] absl::StatusOr<std::map<std::string, std::string>> Export(
    const Context& ctx, const ExportDeps& deps, const cache::ImmutableRef* result,
    const ExportRequest& request);

// Writes the tree at `root` as a tar stream (PAX format, sorted, uid/gid numeric), calling
// `write` for each chunk. Used by the tar exporter and its tests.
[[nodiscard]] absl::Status WriteTar(const std::string& root,
                                    const std::function<absl::Status(std::string_view)>& write);

}  // namespace kiln::exporter
