#pragma once
// blobs: the compressed layer blobs of cache records. Each layer of a record's stack becomes a
// blob in the content store once per (layer record, compression) and is remembered in the
// cache metadata, so later exports reuse the same bytes. Layers that came from a registry (an
// image pull, a remote cache import) remember their original blob and the repository it came
// from, for cross-repository mounts. Used by the image exporters and by cache export.
// Functions are thread-safe (the metadata and content stores are).

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "base/context.h"
#include "daemon/cache/manager.h"
#include "daemon/content/store.h"
#include "daemon/image/layer.h"
#include "daemon/image/spec.h"

namespace kiln::blobs {

struct Layer {
  image::Descriptor desc;
  std::string diff_id;
  std::string domain, path;   // where the blob was pulled from, if it was
  int64_t created_at_ns = 0;  // when the layer's record was made
};

struct Options {
  image::Compression compression = image::Compression::kGzip;
  std::optional<int> level;
  // Use only blobs in `compression` (else any remembered blob will do).
  bool force_compression = false;
  bool oci_media_types = true;
  // Clamp modification times to this epoch (BuildKit's rewrite-timestamp): other bytes, so
  // such blobs are remembered per epoch.
  std::optional<int64_t> rewrite_epoch;
};

// "gzip", "zstd" or "uncompressed".
const char* CompressionName(image::Compression c);

// Named value (cache metadata) under which the blob of layer record `record_id` in
// `compression` ("gzip", "zstd", "uncompressed") is remembered, as JSON
// {"digest","size","media_type","diff_id"[,"domain","path"]}.
std::string ValueName(const std::string& record_id, const std::string& compression);

// Remembers `layer` as the blob of `record_id` (its compression read from its media type).
[[nodiscard]] absl::Status Remember(cache::MetadataStore& meta, const std::string& record_id,
                                    const Layer& layer);

// Every layer's blob for `ref`'s stack, bottom first: remembered ones reused while they are
// still in the content store, new ones compressed in parallel (one thread per core); the first
// error cancels the rest.
[[nodiscard]] absl::StatusOr<std::vector<Layer>> ForRef(const Context& ctx, cache::Manager& cache,
                                                        content::Store& content,
                                                        const cache::ImmutableRef& ref,
                                                        const Options& options);

}  // namespace kiln::blobs
