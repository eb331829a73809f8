#pragma once
// Image archives, laid out as BuildKit's oci and docker exporters write them (containerd's
// archive.Export):
//   oci:    oci-layout, index.json, blobs/sha256/<hex>   (an OCI image layout)
//   docker: the same plus manifest.json [{Config, RepoTags, Layers}] for `docker load`
// index.json lists the root descriptor once per image name, annotated with
// io.containerd.image.name (the normalized name) and org.opencontainers.image.ref.name (its
// tag). Entries are sorted by name, with mtime 0, uid/gid 0 and no user names, so the same
// image and names always give the same bytes. Blobs come from the content store and are
// verified against their digests while they are copied.
// All functions are thread-compatible; the store is only read.

#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "base/context.h"
#include "daemon/content/store.h"
#include "daemon/image/spec.h"

namespace kiln::image {

struct ArchiveOptions {
  // The image: a manifest, or (oci only) an index whose manifests are all included.
  Descriptor root;
  // Image names ("busybox", "registry:5000/app:v1"); each is normalized as BuildKit does
  // ("docker.io/library/busybox:latest"). May be empty.
  std::vector<std::string> names;
};

// Streams an OCI image layout tar to `fd` (written from its current position, not closed).
[[nodiscard]] absl::Status WriteOciArchive(const Context& ctx, const content::Store& store,
                                           const ArchiveOptions& options, int fd);

// Streams a `docker load` tar to `fd`. The root must be a single manifest (INVALID_ARGUMENT for
// an index, as BuildKit's docker exporter refuses manifest lists).
[[nodiscard]] absl::Status WriteDockerArchive(const Context& ctx, const content::Store& store,
                                              const ArchiveOptions& options, int fd);

// The same archives, handed to `sink` chunk by chunk (in order) instead of written to an fd;
// a failing sink stops the write and its status is returned.
using ArchiveSink = std::function<absl::Status(std::string_view)>;
[[nodiscard]] absl::Status WriteOciArchiveTo(const Context& ctx, const content::Store& store,
                                             const ArchiveOptions& options,
                                             const ArchiveSink& sink);
[[nodiscard]] absl::Status WriteDockerArchiveTo(const Context& ctx, const content::Store& store,
                                                const ArchiveOptions& options,
                                                const ArchiveSink& sink);

// Writes the OCI image layout into the directory `dir` (created if missing; existing blobs are
// kept, index.json and oci-layout are replaced).
[[nodiscard]] absl::Status WriteOciLayout(const Context& ctx, const content::Store& store,
                                          const ArchiveOptions& options,
                                          const std::filesystem::path& dir);

}  // namespace kiln::image
