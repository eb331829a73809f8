#pragma once
// State -> pb.Definition, byte-for-byte as BuildKit's Go client (client/llb) marshals it, so that
// op digests (and therefore cache keys) agree between kiln and BuildKit.

#include <optional>
#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "llb/platform.h"
#include "llb/state.h"
#include "proto/pb/ops.pb.h"

namespace kiln::llb {

// Options of one Marshal() call (BuildKit's marshal-time ConstraintsOpts).
struct MarshalOptions {
  // Platform of ops that set none (image sources, execs). Default: HostPlatform().
  std::optional<Platform> platform;
  // Value of "local.unique" on local sources without a session id. Default: a fresh random id
  // per call, as BuildKit does, which makes such local sources unique to one marshal.
  std::string local_unique_id;
  // LLB capabilities of the daemon that will solve the graph (BuildKit's WithCaps). When set and
  // "exec.meta.setsdefaultpath" is missing, execs get a default PATH, as BuildKit does.
  std::optional<std::set<std::string>> caps;
};

// Marshals `state` and everything it depends on. Ops come in dependency order (inputs first),
// each once (identical ops dedupe by digest), followed by the terminal op: an op with no kind
// whose single input is `state`'s output. Metadata is keyed by op digest; Source is set (empty).
// Scratch marshals to an empty Definition. Fails on invalid builder input (e.g. a Run() with no
// args, a malformed image reference), naming the problem.
[[nodiscard]] absl::StatusOr<pb::Definition> Marshal(const State& state,
                                                     const MarshalOptions& options = {});

// The bytes of `op` as they appear in Definition.def: deterministic protobuf (sorted maps), with
// the op-kind oneof written after all other fields, as Go's protobuf runtime does.
std::string SerializeOp(pb::Op op);

// Deterministic serialization of a whole definition (sorted metadata keys), e.g. for writing a
// definition to a file or pipe like Go's llb.WriteTo.
std::string SerializeDefinition(const pb::Definition& definition);

}  // namespace kiln::llb
