#pragma once
// The JSON debug form of a definition, for `kiln debug llb`: what `buildctl debug dump-llb`
// prints, one line per op: {"Op":...,"Digest":"sha256:...","OpMetadata":{...}}.

#include <string>

#include "proto/pb/ops.pb.h"

namespace kiln::llb {

// One JSON object per Definition.def entry, each followed by "\n", in definition order. Field
// names, omitted zero values, numbers for enums and 64-bit integers, and base64 bytes follow Go's
// encoding/json over BuildKit's types, so the output matches dump-llb's. Differences: symlink file
// actions are shown (dump-llb drops them), and an entry that does not parse is printed as
// {"Digest":...,"Error":"cannot parse op"} instead of failing the whole dump.
std::string DefinitionToJson(const pb::Definition& definition);

}  // namespace kiln::llb
