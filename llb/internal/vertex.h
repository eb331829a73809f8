#pragma once
// The op-builder side of llb: a vertex is one immutable op node of a State graph, and a
// MarshalContext turns vertices into serialized pb.Ops during one Marshal() call.

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "llb/internal/output.h"
#include "llb/marshal.h"
#include "llb/state.h"
#include "proto/pb/ops.pb.h"

namespace kiln::llb::internal {

class MarshalContext;

// One op in a State graph. Immutable after construction, so thread-safe; shared by every State
// that refers to one of its outputs.
class Vertex {
 public:
  virtual ~Vertex() = default;

  // The outputs this op consumes, in the order BuildKit's Vertex.Inputs() lists them (this
  // decides the order of ops in a Definition).
  virtual std::vector<Output> Inputs() const = 0;

  // Fills `op` (inputs, kind, platform, constraints) and its metadata.
  [[nodiscard]] virtual absl::Status Marshal(MarshalContext& ctx, pb::Op* op,
                                             pb::OpMetadata* metadata) const = 0;
};

// The state of one Marshal() call: its options and each vertex's serialized form, computed once.
// Not thread-safe; lives on the stack of Marshal().
class MarshalContext {
 public:
  struct Marshaled {
    std::string digest;
    std::string bytes;
    pb::OpMetadata metadata;
    std::vector<SourceLocation> locations;  // from the op's OpOptions
  };

  explicit MarshalContext(const MarshalOptions& options);

  const MarshalOptions& options() const { return options_; }
  const Platform& default_platform() const { return default_platform_; }
  const std::string& local_unique_id() const { return local_unique_id_; }

  // The serialized op for `vertex`, marshaling it (and its inputs) on first use.
  [[nodiscard]] absl::StatusOr<const Marshaled*> Get(const Vertex& vertex);
  // The pb.Input that refers to `output`.
  [[nodiscard]] absl::StatusOr<pb::Input> ToInput(const Output& output);

  // BuildKit's MarshalConstraints: sets op.platform (the op's own, else the default) and an empty
  // op.constraints with the worker filters, and fills metadata from `options` plus `caps`.
  void ApplyConstraints(const OpOptions& options, const std::set<std::string>& caps, pb::Op* op,
                        pb::OpMetadata* metadata) const;

 private:
  const MarshalOptions& options_;
  Platform default_platform_;
  std::string local_unique_id_;
  absl::flat_hash_map<const Vertex*, std::unique_ptr<Marshaled>> done_;
  // Source locations ApplyConstraints saw for the vertex being marshaled (Get() hands them to
  // its Marshaled; nested Get() calls for inputs save and restore them).
  mutable std::vector<SourceLocation> pending_locations_;
};

}  // namespace kiln::llb::internal
