#pragma once
// The edge type shared by states and op builders: one output of one vertex.

#include <cstdint>
#include <memory>
#include <optional>

#include "llb/platform.h"

namespace kiln::llb::internal {

class Vertex;

// One output of a vertex. Two outputs are the same edge when vertex and index match. A plain
// value; vertices are immutable and shared.
struct Output {
  std::shared_ptr<const Vertex> vertex;
  int64_t index = 0;
  // The platform a state built on this output inherits (BuildKit's output.platform), if any.
  std::optional<Platform> platform;

  bool SameEdge(const Output& other) const {
    return vertex == other.vertex && index == other.index;
  }
};

}  // namespace kiln::llb::internal
