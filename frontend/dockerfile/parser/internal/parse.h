#pragma once
// Parser entry point with options and shared helpers, for the instructions library.

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "frontend/dockerfile/parser/parser.h"

namespace kiln::dockerfile::parser::internal {

struct ParseOptions {
  // Keep unknown instructions in the tree, as BuildKit's parser does (its instructions.Parse
  // then reports them in line order together with the other instruction errors). When false,
  // Parse fails on the first unknown top-level instruction once the whole file parsed.
  bool allow_unknown_instructions = false;
};

[[nodiscard]] absl::StatusOr<Result> ParseWithOptions(std::string_view dockerfile,
                                                      const ParseOptions& options);

// Whether `keyword` (any case) is a Dockerfile instruction.
bool IsKnownInstruction(std::string_view keyword);

// "unknown instruction: FORM (did you mean FROM?)"
std::string UnknownInstructionMessage(std::string_view keyword);

// BuildKit's suggest.Search: the closest option within Levenshtein distance 2 (options tried in
// the given order), "" when there is none or when `value` is itself an option.
std::string SuggestOption(std::string_view value, const std::vector<std::string>& options,
                          bool case_sensitive);

// "dockerfile parse error on line N: message" (INVALID_ARGUMENT); no line part when line <= 0.
absl::Status LineError(int line, std::string_view message);

}  // namespace kiln::dockerfile::parser::internal
