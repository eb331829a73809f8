#pragma once
// The digest-agnostic half of LoadDefinition(), exposed so tests can feed digests that real
// SHA-256 never produces (two different ops with one digest, ops that reference each other).

#include <string>
#include <vector>

#include "llb/load.h"

namespace kiln::llb::internal {

// One Definition.def entry and the digest the caller computed for it.
struct RawOp {
  std::string digest;
  std::string bytes;
};

// Validates `ops` (the last one is the terminal) and `metadata` as LoadDefinition() documents,
// except for the size limits, which LoadDefinition() checks before hashing.
[[nodiscard]] absl::StatusOr<Graph> BuildGraph(
    std::vector<RawOp> ops, const google::protobuf::Map<std::string, pb::OpMetadata>& metadata);

}  // namespace kiln::llb::internal
