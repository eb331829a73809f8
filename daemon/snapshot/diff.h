#pragma once
// The difference between two trees as a layer: what `upper` adds or changes relative to
// `lower`, with whiteouts (0:0 character devices) for what it removes. Applying the layer
// onto `lower` (ApplyLayer) reproduces `upper`.

#include <filesystem>

#include "absl/status/status.h"

namespace kiln::snapshot {

// Writes into `layer` (an empty directory) the changes from `lower` to `upper`. Entries are
// compared by type, mode, owner, size, modification time and link target (content is not
// re-read when all of those agree). Needs permission to create character devices for
// whiteouts.
[[nodiscard]] absl::Status ComputeDiff(const std::filesystem::path& lower,
                                       const std::filesystem::path& upper,
                                       const std::filesystem::path& layer);

}  // namespace kiln::snapshot
