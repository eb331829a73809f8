#pragma once
// JSON arrays as BuildKit reads exec-form arguments: Go's encoding/json decoding a text into
// []any (syntax checked on the whole text, invalid UTF-8 and unpaired surrogates in strings read
// as U+FFFD, nesting limited to 10000 levels).

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kiln::dockerfile::parser::internal {

struct JsonElement {
  bool is_string = false;
  std::string value;  // the decoded string when is_string
};

// The elements of a JSON array text, or nullopt when `text` is not valid JSON or not an array.
std::optional<std::vector<JsonElement>> DecodeJsonArray(std::string_view text);

}  // namespace kiln::dockerfile::parser::internal
