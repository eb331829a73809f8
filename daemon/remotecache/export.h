#pragma once
// Building a cache config from a solve: the records of every vertex the result depends on (as
// the solver's KeyRecorder learned them) and the layer blobs of the results exported with them.

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "base/context.h"
#include "daemon/blobs/blobs.h"
#include "daemon/cache/manager.h"
#include "daemon/content/store.h"
#include "daemon/remotecache/config.h"
#include "daemon/solver/types.h"

namespace kiln::remotecache {

struct BuiltCache {
  CacheConfig config;
  std::vector<blobs::Layer> layers;  // config.layers[i]'s blob, in the content store
};

// The cache config for the result with cache key `root_key`: a record for it and for every
// vertex it depends on; results (layers) for the root only (`max` false, BuildKit's mode=min)
// or for every vertex whose result is in this daemon's cache (mode=max). Cache mounts, secrets
// and ssh sockets are never results, so they are never exported.
[[nodiscard]] absl::StatusOr<BuiltCache> BuildCache(const Context& ctx, cache::Manager& cache,
                                                    content::Store& content,
                                                    const solver::KeyRecorder& recorder,
                                                    const std::string& root_key, bool max,
                                                    const blobs::Options& blob_options);

// Inline cache: the records of BuildCache(mode=min) whose layers are exactly the image's
// layers (`image_layers`, bottom first), as the value of the image config key
// "moby.buildkit.cache.v0" (JSON records, base64 as Go marshals bytes).
[[nodiscard]] absl::StatusOr<std::string> InlineCacheValue(
    const BuiltCache& built, const std::vector<std::string>& image_layers);

}  // namespace kiln::remotecache
