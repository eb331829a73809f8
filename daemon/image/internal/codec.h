#pragma once
// Streaming gzip and zstd (zlib and libzstd), with deterministic output: gzip members carry no
// file name and no time, and a fixed OS byte (255, "unknown", as Go's compress/gzip writes).
// Not thread-safe; one object per stream.

#include <cstddef>
#include <functional>
#include <memory>
#include <string_view>

#include "absl/status/statusor.h"
#include "daemon/image/layer.h"

namespace kiln::image::internal {

// The compression a stream starts with, from its magic bytes (needs at least 4 bytes to tell
// zstd); anything unrecognised is uncompressed. OCI layers are gzip, zstd or plain tar:
// bzip2 and xz streams (legacy `docker load` inputs) are refused with an error naming them.
[[nodiscard]] absl::StatusOr<Compression> DetectCompression(std::string_view head);

// Compresses what it is given into `sink`. Finish flushes the end of the stream.
class Encoder {
 public:
  virtual ~Encoder() = default;
  [[nodiscard]] virtual absl::Status Write(std::string_view data) = 0;
  [[nodiscard]] virtual absl::Status Finish() = 0;
};
[[nodiscard]] absl::StatusOr<std::unique_ptr<Encoder>> NewEncoder(
    Compression compression, int level, std::function<absl::Status(std::string_view)> sink);

// Decompresses a stream pushed in pieces. Decode consumes from the front of `in` and writes at
// most `cap` bytes to `out`, returning how many; call it again while `in` is not empty or it
// filled `out`. Concatenated gzip members and zstd frames are one stream.
class Decoder {
 public:
  virtual ~Decoder() = default;
  [[nodiscard]] virtual absl::StatusOr<size_t> Decode(std::string_view& in, char* out,
                                                      size_t cap) = 0;
  // At the end of the input: DATA_LOSS when the stream stopped inside a member or frame.
  [[nodiscard]] virtual absl::Status Finish() = 0;
};
[[nodiscard]] absl::StatusOr<std::unique_ptr<Decoder>> NewDecoder(Compression compression);

}  // namespace kiln::image::internal
