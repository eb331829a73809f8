#pragma once
// remotecache: BuildKit's cache export and import (`SolveRequest.Cache`), so that a fresh
// daemon can reuse what another one built.
//   type=registry,ref=R[,mode=min|max][,compression=...][,oci-mediatypes=...]
//       export: the layers, a cache config and an image manifest whose config is the cache
//       config, pushed to R; import: R (a cache manifest, or an image with inline cache)
//   type=inline  export: the records of the result, in the pushed image's config
//       ("moby.buildkit.cache.v0"); import through type=registry,ref=IMAGE
//   type=local,dest=DIR / src=DIR,digest=D
//       the same blobs and manifest in an OCI layout on the client's machine, read and written
//       through the build's session (the client serves containerd's content service for DIR,
//       resolves D from DIR/index.json and updates it after an export)
// Import is lazy: imported records answer the solver's cache misses (Importer is the solver's
// fallback CacheStore), and only the layers of results the build needs are downloaded, each
// unpacked once and shared by chain id with pulled images. A source that cannot be read, or a
// layer that cannot be fetched, produces a warning and the build goes on without it.

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "base/context.h"
#include "daemon/blobs/blobs.h"
#include "daemon/cache/manager.h"
#include "daemon/content/store.h"
#include "daemon/registry/registry.h"
#include "daemon/remotecache/config.h"
#include "daemon/session/session.h"
#include "daemon/solver/types.h"

namespace kiln::remotecache {

// One CacheOptionsEntry.
struct Entry {
  std::string type;
  std::map<std::string, std::string> attrs;
};

struct Deps {
  cache::Manager* cache = nullptr;
  content::Store* content = nullptr;
  std::shared_ptr<registry::Registry> registry;     // the build's client (its credentials)
  std::shared_ptr<const session::Session> session;  // the build's session (type=local)
};

// The solver's fallback for a build with cache imports. Thread-safe.
class Importer final : public solver::CacheStore {
 public:
  using WarnFn = std::function<void(const std::string& message)>;
  Importer(Deps deps, WarnFn warn) : deps_(std::move(deps)), warn_(std::move(warn)) {}

  // Reads the cache config `entry` names (not its layers). An error means the source is
  // unusable; the caller warns and builds without it.
  [[nodiscard]] absl::Status Add(const Context& ctx, const Entry& entry);
  bool empty() const;

  // The results recorded for `key` by an imported source, unpacked into this daemon's cache
  // (and recorded under `key` there); empty when no source has the key, or when its layers
  // cannot be fetched (a warning says why).
  absl::StatusOr<std::vector<solver::ResultPtr>> Load(const Context& ctx,
                                                      const std::string& key) override;
  absl::Status Save(const std::string&, const std::vector<solver::ResultPtr>&) override {
    return absl::OkStatus();
  }
  absl::StatusOr<std::optional<Alias>> LoadAlias(const Context& ctx,
                                                 const std::string& fast) override;

 private:
  // Downloads a layer blob of the source into the daemon's content store.
  using FetchFn = std::function<absl::Status(const Context&, const image::Descriptor&)>;
  struct Source {
    std::string name;  // for messages: "registry cache 127.0.0.1:5000/app:cache"
    Index index;
    FetchFn fetch;
    std::string domain, path;  // the repository blobs come from ("" for a local cache)
  };
  absl::Status AddRegistry(const Context& ctx, const Entry& entry);
  absl::Status AddLocal(const Context& ctx, const Entry& entry);
  absl::Status AddSource(std::string name, const CacheConfig& config, FetchFn fetch,
                         std::string domain, std::string path);
  absl::StatusOr<std::vector<solver::ResultPtr>> Materialize(const Context& ctx,
                                                             const Source& source,
                                                             const std::string& key,
                                                             const RemoteResults& results);

  const Deps deps_;
  const WarnFn warn_;
  mutable std::mutex mu_;
  std::vector<std::shared_ptr<const Source>> sources_;  // guarded by mu_
};

// Exports the cache of the result with key `root_key` as `entry` says (type=registry or local;
// inline is written by the image exporter through InlineCacheForImage). Returns response
// entries: "cache.manifest", the manifest's descriptor as JSON (a local cache's client names it
// in DIR/index.json).
[[nodiscard]] absl::StatusOr<std::map<std::string, std::string>> Export(
    const Context& ctx, const Deps& deps, const solver::KeyRecorder& recorder,
    const std::string& root_key, const Entry& entry);

// The inline cache value for an image whose layers are `image_layers` (made with
// `blob_options`) of the result with key `root_key`.
[[nodiscard]] absl::StatusOr<std::string> InlineCacheForImage(
    const Context& ctx, const Deps& deps, const solver::KeyRecorder& recorder,
    const std::string& root_key, const std::vector<std::string>& image_layers,
    const blobs::Options& blob_options);

// The cache entries of a request: SolveRequest.Cache imports/exports, the deprecated single
// ref forms, and the frontend attributes buildx and BuildKit's Dockerfile frontend use
// (cache-imports as JSON, cache-from as refs, build-arg:BUILDKIT_INLINE_CACHE).
struct Requested {
  std::vector<Entry> imports;
  std::vector<Entry> exports;
};
[[nodiscard]] absl::StatusOr<Requested> FromRequest(
    const std::vector<Entry>& imports, const std::vector<Entry>& exports,
    const std::map<std::string, std::string>& frontend_attrs);

}  // namespace kiln::remotecache
