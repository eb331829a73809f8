#pragma once
// Snapshotter: mounts stacks of layers. A layer is a directory in overlayfs "upperdir" form:
// files it adds or changes, deletions as 0:0 character devices (whiteouts), and directories
// that hide what is below marked opaque (xattr trusted.overlay.opaque=y). A stack lists layers
// bottom to top. The overlay implementation mounts them; the native one (for filesystems where
// overlay is unavailable) copies them into one flat directory instead.
// Implementations are thread-safe; each Mount is owned by one user.

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace kiln::snapshot {

// A mounted (or materialized) view of a stack. Unmounts when destroyed. Not thread-safe.
class Mount {
 public:
  virtual ~Mount() = default;
  // The merged tree.
  virtual const std::filesystem::path& root() const = 0;
  // Unmounts now, reporting failure (the destructor unmounts silently).
  [[nodiscard]] virtual absl::Status Unmount() = 0;
};
using MountPtr = std::unique_ptr<Mount>;

class Snapshotter {
 public:
  virtual ~Snapshotter() = default;
  virtual std::string name() const = 0;  // "overlayfs" or "native"

  // Read-only view of `layers` at `mountpoint` (an existing empty directory).
  [[nodiscard]] virtual absl::StatusOr<MountPtr> MountReadOnly(
      const std::vector<std::filesystem::path>& layers,
      const std::filesystem::path& mountpoint) = 0;

  // Writable view of `layers` at `mountpoint`; changes land in `upper` (an empty directory)
  // in layer form, `work` is scratch space on the same filesystem as `upper`. When flattens()
  // is true, `upper` receives the whole merged tree and stands alone: the new layer must not
  // keep `layers` below it.
  [[nodiscard]] virtual absl::StatusOr<MountPtr> MountWritable(
      const std::vector<std::filesystem::path>& layers, const std::filesystem::path& upper,
      const std::filesystem::path& work, const std::filesystem::path& mountpoint) = 0;

  virtual bool flattens() const = 0;
};

// Mounts overlayfs; fails with a clear error when a stack is too deep for the mount options.
std::unique_ptr<Snapshotter> NewOverlaySnapshotter();
// Copies layers into flat directories; works on any filesystem.
std::unique_ptr<Snapshotter> NewNativeSnapshotter();
// True when an overlay mount with upper and work dirs under `dir` works here.
bool OverlaySupported(const std::filesystem::path& dir);

// Applies one layer (in upperdir form) onto a flat tree at `dest`: copies what it adds,
// removes what its whiteouts delete, empties opaque directories first. Used by the native
// snapshotter and to flatten deep stacks.
[[nodiscard]] absl::Status ApplyLayer(const std::filesystem::path& layer,
                                      const std::filesystem::path& dest);

}  // namespace kiln::snapshot
