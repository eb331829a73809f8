#pragma once
// Loading a pb.Definition received from a client: parse every op, check the graph is well formed
// and safe to solve, and index it. Errors name the op digest and what is wrong with it.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "proto/pb/ops.pb.h"

namespace kiln::llb {

struct LoadOptions {
  size_t max_total_bytes = size_t{64} << 20;  // serialized size of the whole Definition
  size_t max_ops = 100000;                    // entries in Definition.def
};

// One op of a loaded definition.
struct LoadedOp {
  std::string digest;       // sha256 of `bytes`
  std::string bytes;        // exactly as in Definition.def
  pb::Op op;                // parsed
  pb::OpMetadata metadata;  // empty when the definition has none for this op
  int64_t num_outputs = 0;  // valid output indexes are [0, num_outputs)
};

class Graph;
namespace internal {
struct RawOp;
[[nodiscard]] absl::StatusOr<Graph> BuildGraph(
    std::vector<RawOp> ops, const google::protobuf::Map<std::string, pb::OpMetadata>& metadata);
}  // namespace internal

// A validated LLB graph. Immutable; thread-safe to read.
class Graph {
 public:
  // The op with `digest`, or nullptr. The terminal op is not part of the graph.
  const LoadedOp* Find(std::string_view digest) const;

  // Every op except the terminal, each once, inputs before the ops that consume them (ties in
  // definition order). Ops the terminal does not reach are included.
  const std::vector<LoadedOp>& ops() const { return ops_; }

  // The result of the build: the terminal op's single input (digest and output index).
  const pb::Input& terminal() const { return terminal_; }
  const std::string& terminal_op_digest() const { return terminal_op_digest_; }
  const pb::OpMetadata& terminal_metadata() const { return terminal_metadata_; }

 private:
  friend absl::StatusOr<Graph> internal::BuildGraph(
      std::vector<internal::RawOp>, const google::protobuf::Map<std::string, pb::OpMetadata>&);

  std::vector<LoadedOp> ops_;
  absl::flat_hash_map<std::string, size_t> index_;
  pb::Input terminal_;
  std::string terminal_op_digest_;
  pb::OpMetadata terminal_metadata_;
};

// Parses and validates `definition`. Rejects (InvalidArgument, naming the op digest): oversized
// definitions or too many ops; unparseable op bytes; a last entry that is not a terminal (no op
// kind, exactly one input); ops with no (or an unknown) kind, and build ops; inputs that name
// digests not in the definition or output indexes the producing op does not have; malformed ops
// (exec without args, root mount or with out-of-range mount inputs; file actions reading missing
// or later-looping actions, duplicate or missing outputs; merge/diff inputs out of range); cycles;
// two different entries with one digest; metadata for digests that match no op; and paths (file
// action paths, copy src/dest, exec cwd, mount targets and selectors) with NUL bytes or ".."
// components that climb above "/".
[[nodiscard]] absl::StatusOr<Graph> LoadDefinition(const pb::Definition& definition,
                                                   const LoadOptions& options = {});

}  // namespace kiln::llb
