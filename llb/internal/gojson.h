#pragma once
// JSON text the way Go's encoding/json writes it (compact, "<", ">", "&", U+2028 and U+2029
// escaped), for the places where BuildKit embeds Go-encoded JSON in LLB (local source pattern
// attributes) and for `kiln debug llb`, which mirrors `buildctl debug dump-llb`.

#include <string>

#include <nlohmann/json.hpp>

namespace kiln::llb::internal {

// Compact JSON of `value`, escaped like Go's json.Marshal. Invalid UTF-8 becomes U+FFFD.
std::string GoJsonDump(const nlohmann::ordered_json& value);

}  // namespace kiln::llb::internal
