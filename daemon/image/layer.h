#pragma once
// Image layers: tar streams (plain, gzip or zstd) to and from directories in overlayfs upperdir
// form (see daemon/snapshot/snapshotter.h): deletions are 0:0 character devices, directories
// that hide what is below carry trusted.overlay.opaque=y. In the tar stream these are the OCI
// whiteouts `.wh.NAME` and `.wh..wh..opq`.
//
//   KILN_ASSIGN_OR_RETURN(UnpackResult r, UnpackLayer(ctx, blob, desc.media_type, dir,
//                                                     {.expected_digest = desc.digest}));
//   KILN_ASSIGN_OR_RETURN(LayerBlob b, WriteLayer(ctx, dir, {.compression = Compression::kZstd},
//                                                 store));
//
// All functions are thread-compatible: they touch only the paths and objects they are given.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "base/context.h"
#include "daemon/content/store.h"

namespace kiln::image {

enum class Compression { kUncompressed, kGzip, kZstd };

// "gzip", "zstd" or "uncompressed" (BuildKit's `compression=` exporter attribute).
[[nodiscard]] absl::StatusOr<Compression> ParseCompression(std::string_view name);

// The layer media type for `compression`: OCI types, or Docker's schema2 type when
// `oci_media_types` is false (except for zstd, which only has an OCI type).
std::string LayerMediaType(Compression compression, bool oci_media_types);

// ---- Unpack ---------------------------------------------------------------------------------

struct UnpackOptions {
  // When set, the compressed blob must have this digest ("sha256:…"); checked at the end of the
  // stream, so a mismatching blob still leaves a partial tree behind.
  std::optional<std::string> expected_digest;
};

struct UnpackResult {
  std::string diff_id;                                   // sha256 of the uncompressed tar stream
  int64_t uncompressed_size = 0;                         // bytes of the uncompressed tar stream
  std::string digest;                                    // sha256 of the blob as read
  int64_t size = 0;                                      // bytes of the blob
  Compression compression = Compression::kUncompressed;  // as found in the blob
};

// Streams the layer tar in `blob` into `dest_layer_dir` (an existing EMPTY directory) in
// upperdir form, keeping types, modes, owners, modification times and extended attributes.
// The compression is read from the blob's magic bytes; `media_type` must be a layer type (or
// empty for "unknown"). Entry names and hardlink targets must be relative and free of `..`;
// nothing is ever resolved through a symlink, so an archive cannot write or link outside
// `dest_layer_dir` (INVALID_ARGUMENT). Corrupt data is DATA_LOSS, a digest mismatch
// FAILED_PRECONDITION. On error the directory holds a partial tree for the caller to remove.
// Needs the privileges to create devices, chown and set trusted.* attributes (root).
[[nodiscard]] absl::StatusOr<UnpackResult> UnpackLayer(const Context& ctx,
                                                       const std::filesystem::path& blob,
                                                       std::string_view media_type,
                                                       const std::filesystem::path& dest_layer_dir,
                                                       const UnpackOptions& options = {});

// ---- Export ---------------------------------------------------------------------------------

struct LayerOptions {
  Compression compression = Compression::kGzip;
  // Compression level; nullopt = the codec's default (gzip 6, zstd 3, as BuildKit).
  std::optional<int> level;
  // OCI layer media types (true) or Docker schema2 ones (false).
  bool oci_media_types = true;
  // Modification times later than this epoch (seconds) are clamped to it, as BuildKit's
  // rewrite-timestamp with SOURCE_DATE_EPOCH.
  std::optional<int64_t> rewrite_timestamp;
};

struct LayerBlob {
  std::string media_type;
  std::string digest;  // of the compressed blob
  int64_t size = 0;    // of the compressed blob
  std::string diff_id;
  int64_t uncompressed_size = 0;
};

// Called with each chunk of the compressed stream, in order.
using ByteSink = std::function<absl::Status(std::string_view)>;

// Writes the layer at `layer_dir` (upperdir form) as a tar stream into `sink`, in one pass:
// entries in directory-walk order with names sorted bytewise (a directory's whiteouts first),
// `.wh..wh..opq` right after an opaque directory, hardlinks within the layer as link entries,
// xattrs (except trusted.overlay.*) as PAX records, uid/gid numeric with empty names, mtimes
// in whole seconds, no atime/ctime; gzip headers carry no name or time. The same tree always
// gives the same bytes. Sockets are skipped.
[[nodiscard]] absl::StatusOr<LayerBlob> WriteLayerTo(const Context& ctx,
                                                     const std::filesystem::path& layer_dir,
                                                     const LayerOptions& options,
                                                     const ByteSink& sink);

// WriteLayerTo into the content store, in one pass (the store publishes the blob under the
// digest it computes while the layer is written).
[[nodiscard]] absl::StatusOr<LayerBlob> WriteLayer(const Context& ctx,
                                                   const std::filesystem::path& layer_dir,
                                                   const LayerOptions& options,
                                                   content::Store& store);

}  // namespace kiln::image
