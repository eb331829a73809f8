#pragma once
// BuildKit's distributable cache config (`application/vnd.buildkit.cacheconfig.v0`): layers
// (blobs, each with its parent) and records (an op's cache map digest, the records its inputs
// link to, and the layers of its results). kiln writes one record per exported vertex:
//   digest  the op's cache map digest;
//   inputs  per input, a link to the input vertex's record (selector "" for output 0,
//           "kiln:output=N" otherwise); for an input that contributes a checksum of its
//           content, first a link to a record whose digest is that checksum (selector
//           "kiln:content"), then the link to the input's record as the alternative (it gives
//           the vertex's "fast" key, which finds it without computing the input);
//   layers  per output, the top layer of its chain (layers carry their parents).
// Importing recomputes every record's cache key with solver::ComposeCacheKey, so a record's
// results are found under the same key the solver computes for that vertex.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "daemon/image/spec.h"
#include "daemon/solver/types.h"

namespace kiln::remotecache {

inline constexpr char kCacheConfigMediaType[] = "application/vnd.buildkit.cacheconfig.v0";
inline constexpr char kContentSelector[] = "kiln:content";
inline constexpr char kOutputSelectorPrefix[] = "kiln:output=";
// Layer descriptor annotations BuildKit writes and reads.
inline constexpr char kAnnotationUncompressed[] = "containerd.io/uncompressed";
inline constexpr char kAnnotationCreatedAt[] = "buildkit/createdat";

struct CacheLayer {
  std::string blob;  // digest
  int parent = -1;
  // annotations
  std::string media_type;
  std::string diff_id;
  int64_t size = 0;
  std::string created_at;  // RFC 3339
};

struct CacheResult {
  int layer = -1;  // top layer; its parents complete the chain
  std::string created_at;
};

struct ChainedResult {
  std::vector<int> layers;  // bottom first, without parents
  std::string created_at;
};

struct CacheInput {
  std::string selector;
  int link = -1;
};

struct CacheRecord {
  std::string digest;
  std::vector<CacheResult> results;    // "layers"
  std::vector<ChainedResult> chained;  // "chains"
  std::vector<std::vector<CacheInput>> inputs;
};

struct CacheConfig {
  std::vector<CacheLayer> layers;
  std::vector<CacheRecord> records;
};

// JSON as BuildKit writes it.
std::string ToJson(const CacheConfig& config);
// Just the records, as inline cache stores them in an image config.
std::string RecordsToJson(const std::vector<CacheRecord>& records);
// Parses a cache config; INVALID_ARGUMENT (or DATA_LOSS for bad indexes) names what is wrong.
[[nodiscard]] absl::StatusOr<CacheConfig> ParseCacheConfig(std::string_view json);
[[nodiscard]] absl::StatusOr<std::vector<CacheRecord>> ParseRecords(std::string_view json);

// A layer of an imported result, bottom first.
struct RemoteLayer {
  image::Descriptor desc;  // digest, size, media type
  std::string diff_id;
  int64_t created_at_ns = 0;  // 0 when unknown
};
// The results of one cache key: one layer chain per output.
using RemoteResults = std::vector<std::vector<RemoteLayer>>;

// What a cache config offers the solver: every record's results by the cache key the solver
// computes for its vertex, and, for vertices with inputs read by content, the alias from the
// fast key (inputs' keys) to that cache key. Records whose links form a cycle or point nowhere
// are skipped.
struct Index {
  std::map<std::string, RemoteResults> results;
  std::map<std::string, solver::CacheStore::Alias> aliases;
};
[[nodiscard]] absl::StatusOr<Index> IndexByKey(const CacheConfig& config);

// Go's time.Time JSON form (RFC 3339 with nanoseconds, UTC) and back; 0 for "" or bad input.
std::string FormatCreatedAt(int64_t unix_ns);
int64_t ParseCreatedAt(const std::string& text);

}  // namespace kiln::remotecache
