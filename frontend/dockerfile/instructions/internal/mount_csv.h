#pragma once
// go-csvvalue's Fields: one CSV record (',' separated, `"` quoting with `""` escapes, strict).

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace kiln::dockerfile::instructions::internal {

// Errors read like Go's csv.ParseError ("parse error on line 1, column 3: bare \" in
// non-quoted-field"); an empty input is "EOF".
[[nodiscard]] absl::StatusOr<std::vector<std::string>> CsvFields(std::string_view line);

}  // namespace kiln::dockerfile::instructions::internal
