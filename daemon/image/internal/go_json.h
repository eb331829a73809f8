#pragma once
// JSON text as Go's encoding/json writes it: compact, members in the order given (build
// objects in Go struct field order, or sorted for Go maps), "<", ">", "&", U+2028 and U+2029
// escaped, invalid UTF-8 as U+FFFD. Thread-safe (pure).

#include <string>

#include <nlohmann/json.hpp>

namespace kiln::image::internal {

std::string GoJson(const nlohmann::ordered_json& value);

}  // namespace kiln::image::internal
