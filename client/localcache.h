#pragma once
// The client side of type=local build cache (BuildKit's cache directory on the client machine,
// an OCI layout): OciLayoutStore reads and writes one directory; ContentService serves a
// build's stores to the daemon through the session (containerd's content service, the store
// chosen by the metadata buildkit-attachable-store-id = "local:" + DIR); PrepareLocalCaches
// and UpdateLocalCacheIndexes do what buildctl does around the solve (resolve an import's
// digest from DIR/index.json, name the exported manifest there afterwards).

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "base/digest.h"
#include "base/unique_fd.h"
#include "proto/containerd/services/content/v1/content.grpc.pb.h"
#include "proto/moby/buildkit/v1/control.pb.h"

namespace kiln::client {

// One OCI layout directory: DIR/oci-layout, DIR/index.json, blobs in DIR/blobs/sha256/<hex>,
// writes in progress in DIR/ingest/. Every path is opened below the directory opened by Open,
// one component at a time and never through a symlink, and digests must be sha256:<64 hex>,
// so nothing a request names or DIR contains reaches outside DIR. Thread-safe: the filesystem
// is the state, and blobs appear only complete (rename).
class OciLayoutStore {
 public:
  // Opens DIR; with `create`, creates it (and its parents) when missing.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<OciLayoutStore>> Open(const std::string& dir,
                                                                            bool create);

  const std::string& dir() const { return dir_; }

  // The size of blob `digest`. INVALID_ARGUMENT for a digest that is not sha256:<64 hex>,
  // NOT_FOUND when the blob is absent (or not a regular file).
  [[nodiscard]] absl::StatusOr<int64_t> Size(std::string_view digest) const;
  // The blob, opened for reading; errors as Size.
  [[nodiscard]] absl::StatusOr<UniqueFd> OpenBlob(std::string_view digest) const;

  // A blob being written into a private file under DIR/ingest. Commit verifies it and renames
  // it into blobs/; without Commit the file is removed. Must not outlive its store; not
  // thread-safe.
  class Ingest {
   public:
    ~Ingest();
    Ingest(const Ingest&) = delete;
    Ingest& operator=(const Ingest&) = delete;

    int64_t offset() const { return offset_; }
    [[nodiscard]] absl::Status Write(std::string_view data);
    // Drops what was written so far.
    [[nodiscard]] absl::Status Truncate();
    // Checks the size (when `expected_size` > 0) and the digest (when `expected_digest` is not
    // empty), fsyncs and publishes the blob; returns its digest. FAILED_PRECONDITION on a
    // mismatch, ALREADY_EXISTS when the blob is already there. The ingest is spent afterwards.
    [[nodiscard]] absl::StatusOr<std::string> Commit(int64_t expected_size,
                                                     std::string_view expected_digest);

   private:
    friend class OciLayoutStore;
    Ingest(const OciLayoutStore* store, UniqueFd dir, std::string name, UniqueFd file);
    void Remove();

    const OciLayoutStore* store_;
    UniqueFd dir_;  // DIR/ingest
    std::string name_;
    UniqueFd file_;
    int64_t offset_ = 0;
    std::unique_ptr<Sha256> hash_;
  };
  [[nodiscard]] absl::StatusOr<std::unique_ptr<Ingest>> NewIngest() const;

  // The digest of the manifest DIR/index.json names `tag` (annotation
  // io.containerd.image.name, else org.opencontainers.image.ref.name, as buildctl looks it
  // up). NOT_FOUND without index.json or without such an entry.
  [[nodiscard]] absl::StatusOr<std::string> ResolveTag(const std::string& tag) const;
  // Points `tag` (org.opencontainers.image.ref.name) at `descriptor` (an OCI descriptor as
  // JSON) in DIR/index.json, replacing the entry with that tag and keeping the others; writes
  // DIR/oci-layout too. Each file is replaced atomically.
  [[nodiscard]] absl::Status PutTag(const std::string& descriptor, const std::string& tag) const;

 private:
  OciLayoutStore(std::string dir, UniqueFd fd) : dir_(std::move(dir)), fd_(std::move(fd)) {}
  // DIR/blobs/sha256, created when asked.
  absl::StatusOr<UniqueFd> BlobDir(bool create) const;
  absl::Status WriteAtomically(const std::string& name, std::string_view data) const;

  const std::string dir_;
  const UniqueFd fd_;  // DIR
};

// Serves containerd.services.content.v1.Content (Info, Read, Write, Status, Abort) over a
// build's local cache stores, keyed by store id ("local:" + DIR as the flag spelled DIR).
// Requests for other ids are NOT_FOUND. Thread-safe.
class ContentService final : public containerd::services::content::v1::Content::Service {
 public:
  explicit ContentService(std::map<std::string, std::shared_ptr<OciLayoutStore>> stores)
      : stores_(std::move(stores)) {}

  grpc::Status Info(grpc::ServerContext* ctx,
                    const containerd::services::content::v1::InfoRequest* req,
                    containerd::services::content::v1::InfoResponse* resp) override;
  grpc::Status Read(
      grpc::ServerContext* ctx, const containerd::services::content::v1::ReadContentRequest* req,
      grpc::ServerWriter<containerd::services::content::v1::ReadContentResponse>* out) override;
  grpc::Status Status(grpc::ServerContext* ctx,
                      const containerd::services::content::v1::StatusRequest* req,
                      containerd::services::content::v1::StatusResponse* resp) override;
  grpc::Status Write(
      grpc::ServerContext* ctx,
      grpc::ServerReaderWriter<containerd::services::content::v1::WriteContentResponse,
                               containerd::services::content::v1::WriteContentRequest>* stream)
      override;
  grpc::Status Abort(grpc::ServerContext* ctx,
                     const containerd::services::content::v1::AbortRequest* req,
                     google::protobuf::Empty* resp) override;

 private:
  // A write in progress, by (store id, ref).
  struct Active {
    int64_t offset = 0;
    int64_t total = 0;
    std::string expected;
    bool aborted = false;
  };
  // The store a request names (by id) and the store.
  absl::StatusOr<std::pair<std::string, OciLayoutStore*>> Choose(
      const grpc::ServerContext* ctx) const;
  // Runs `fn` on the write in progress under `ref` in the request's store, holding mu_;
  // NOT_FOUND when there is none.
  grpc::Status WithActive(const grpc::ServerContext* ctx, const std::string& ref,
                          const std::function<void(Active&)>& fn);

  const std::map<std::string, std::shared_ptr<OciLayoutStore>> stores_;
  std::mutex mu_;
  std::map<std::pair<std::string, std::string>, Active> active_;  // guarded by mu_
};

// The local cache directories of a build and what to do with them after it.
struct LocalCaches {
  std::map<std::string, std::shared_ptr<OciLayoutStore>> stores;  // by store id
  // Exported directories and the tag their index.json gives the new cache manifest.
  std::vector<std::pair<std::shared_ptr<OciLayoutStore>, std::string>> exports;
};

// Prepares the type=local entries of a build's cache flags as buildctl does: an export needs
// dest= (created if missing); an import needs src=, and without digest= takes it from
// SRC/index.json (tag=, default "latest"). An import whose directory, index entry or manifest
// is missing is dropped from `imports` with a message on `warn`. Errors name the flag.
[[nodiscard]] absl::StatusOr<LocalCaches> PrepareLocalCaches(
    std::vector<moby::buildkit::v1::CacheOptionsEntry>& imports,
    const std::vector<moby::buildkit::v1::CacheOptionsEntry>& exports,
    const std::function<void(const std::string&)>& warn);

// After a successful build: names the daemon's cache manifest (exporter response
// "cache.manifest", a descriptor as JSON) in each exported directory's index.json. Does
// nothing when the response has none (an export with nothing to write).
[[nodiscard]] absl::Status UpdateLocalCacheIndexes(
    const LocalCaches& caches, const std::map<std::string, std::string>& exporter_response);

}  // namespace kiln::client
