#pragma once
// Content store: immutable blobs (layers, manifests, configs) addressed by digest, under
// <state root>/content: blobs/sha256/<hex> and ingest/<key> for writes in progress. A blob
// becomes visible only once complete, fsynced and verified against its expected digest (and
// size); an interrupted write keeps its partial data under its ingest key so that the next
// writer with the same key resumes from where it stopped. Thread-safe: concurrent writers of
// the same key are serialized (the second waits for the first to commit or abort).
//
//   KILN_ASSIGN_OR_RETURN(auto w, store.OpenWriter(ctx, "pull-" + desc.digest, desc.digest,
//   desc.size));
//   // w->offset() bytes are already there: ask the server for the rest (Range).
//   KILN_RETURN_IF_ERROR(w->Write(chunk));
//   KILN_RETURN_IF_ERROR(w->Commit());   // verifies digest and size, then renames into blobs/

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "base/context.h"

namespace kiln::content {

// "sha256:<64 lowercase hex>"; the only algorithm accepted.
[[nodiscard]] bool ValidDigest(std::string_view digest);

class Writer {
 public:
  // Without Commit or Abort: a writer of a known digest keeps its partial data for a later
  // resume; one without a digest (which cannot resume) removes it.
  virtual ~Writer() = default;
  // Bytes already written (including data kept from an interrupted earlier writer).
  virtual int64_t offset() const = 0;
  [[nodiscard]] virtual absl::Status Write(std::string_view data) = 0;
  // Drops what was written so far (e.g. the server ignored a Range request).
  [[nodiscard]] virtual absl::Status Truncate() = 0;
  // Verifies size and digest, fsyncs and publishes the blob. A mismatch is
  // FAILED_PRECONDITION naming both digests, and the partial data is deleted. A writer opened
  // without a digest publishes under the digest of what was written.
  [[nodiscard]] virtual absl::Status Commit() = 0;
  // Deletes the partial data and ends the writer (a failed download that should not linger).
  virtual void Abort() = 0;
  // The blob's digest: the expected one, or (without one) what Commit computed.
  virtual std::string digest() const = 0;
};

class Store {
 public:
  // `root` is <state root>/content; created if missing.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<Store>> Open(std::filesystem::path root);
  virtual ~Store() = default;

  virtual bool Has(std::string_view digest) const = 0;
  // Size of a stored blob; NOT_FOUND when absent.
  [[nodiscard]] virtual absl::StatusOr<int64_t> Size(std::string_view digest) const = 0;
  // The blob's file, for streaming reads (never write to it). NOT_FOUND when absent.
  [[nodiscard]] virtual absl::StatusOr<std::filesystem::path> BlobPath(
      std::string_view digest) const = 0;
  // Whole small blob (manifests, configs); RESOURCE_EXHAUSTED above `max_bytes`.
  [[nodiscard]] virtual absl::StatusOr<std::string> Read(std::string_view digest,
                                                         int64_t max_bytes) const = 0;
  // Stores `data`, verifying it against `expected_digest` when given; returns its digest.
  [[nodiscard]] virtual absl::StatusOr<std::string> Put(
      std::string_view data, std::optional<std::string> expected_digest = std::nullopt) = 0;
  // A writer for the blob `expected_digest` (of `expected_size` bytes, -1 if unknown), resuming
  // the partial data of an earlier writer with the same `key`. An empty `expected_digest`
  // means "not known until written" (e.g. a layer being compressed): no resumption, and
  // Commit publishes under the computed digest. Waits (while `ctx` lives) if
  // another writer holds `key`. When the blob already exists, ALREADY_EXISTS.
  [[nodiscard]] virtual absl::StatusOr<std::unique_ptr<Writer>> OpenWriter(
      const Context& ctx, const std::string& key, const std::string& expected_digest,
      int64_t expected_size) = 0;
  // Removes a blob (GC); missing is fine.
  [[nodiscard]] virtual absl::Status Delete(std::string_view digest) = 0;
  // Every stored digest (for GC and du).
  [[nodiscard]] virtual absl::StatusOr<std::vector<std::string>> List() const = 0;
};

}  // namespace kiln::content
