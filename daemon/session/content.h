#pragma once
// ClientContentStore: a content store on the client's machine, reached through the session
// (BuildKit's session/content caller). The client serves containerd's Content service; every
// call carries the metadata buildkit-attachable-store-id naming one of its stores ("local:" +
// a type=local cache directory). Blobs are checked against their digests here, whatever the
// client sends. Immutable; safe to use concurrently.
//
//   ClientContentStore store(session, "local:/tmp/cache");
//   KILN_ASSIGN_OR_RETURN(std::string manifest, store.ReadBlob(ctx, digest, 1 << 20));

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "base/context.h"
#include "daemon/session/session.h"

namespace kiln::session {

inline constexpr char kContentStoreIdHeader[] = "buildkit-attachable-store-id";
inline constexpr char kContentInfoMethod[] = "/containerd.services.content.v1.Content/Info";
inline constexpr char kContentReadMethod[] = "/containerd.services.content.v1.Content/Read";
inline constexpr char kContentWriteMethod[] = "/containerd.services.content.v1.Content/Write";

class ClientContentStore {
 public:
  ClientContentStore(std::shared_ptr<const Session> session, std::string store_id)
      : session_(std::move(session)), store_id_(std::move(store_id)) {}

  const std::string& store_id() const { return store_id_; }

  // The size of blob `digest`; NOT_FOUND when the client does not have it.
  [[nodiscard]] absl::StatusOr<int64_t> Info(const Context& ctx, const std::string& digest) const;

  // Streams blob `digest` from byte `offset` to its end into `sink`, chunk by chunk; stops at
  // the first error `sink` returns. DATA_LOSS when the client sends more than `limit` bytes in
  // all (from `offset`).
  [[nodiscard]] absl::Status Read(const Context& ctx, const std::string& digest, int64_t offset,
                                  int64_t limit,
                                  const std::function<absl::Status(std::string_view)>& sink) const;

  // The whole blob (manifests, configs), verified against `digest`: DATA_LOSS when its bytes
  // do not match, RESOURCE_EXHAUSTED when it is larger than `max_bytes`.
  [[nodiscard]] absl::StatusOr<std::string> ReadBlob(const Context& ctx, const std::string& digest,
                                                     int64_t max_bytes) const;

  // Stores `data` as blob `digest` on the client (which verifies it before publishing). A blob
  // the client already has is not sent again.
  [[nodiscard]] absl::Status WriteBlob(const Context& ctx, const std::string& digest,
                                       std::string_view data) const;
  // The same for the `size` bytes of the file at `path` (a blob of this daemon's store).
  [[nodiscard]] absl::Status WriteFile(const Context& ctx, const std::string& digest, int64_t size,
                                       const std::filesystem::path& path) const;

 private:
  // Returns up to `max` bytes of the blob from `offset`; empty at its end.
  using ChunkSource = std::function<absl::StatusOr<std::string>(int64_t offset, size_t max)>;
  absl::Status Write(const Context& ctx, const std::string& digest, int64_t size,
                     const ChunkSource& source) const;

  const std::shared_ptr<const Session> session_;
  const std::string store_id_;
};

}  // namespace kiln::session
