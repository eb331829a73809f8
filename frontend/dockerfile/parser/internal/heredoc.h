#pragma once
// Heredoc detection as BuildKit's parser does it (parser.go: heredocsFromLine, ParseHeredoc),
// including the small shell lexer it relies on (shell.Lex with escape `\`, SkipUnsetEnv and no
// variables set, RawQuotes/RawEscapes as requested). Internal to the Dockerfile frontend.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "frontend/dockerfile/parser/parser.h"

namespace kiln::dockerfile::parser::internal {

struct LexOptions {
  bool raw_quotes = false;   // keep quote characters in the words
  bool raw_escapes = false;  // keep escape characters in the words
};

// shell.Lex.ProcessWords(s) with no variables set and unset variables kept as written.
[[nodiscard]] absl::StatusOr<std::vector<std::string>> LexWords(std::string_view s,
                                                                LexOptions options);

// One word `[n]<<[-]WORD` -> its heredoc (name unquoted, expand, chomp; content empty), nullopt
// when the word is not a heredoc. Errors on malformed quoting.
[[nodiscard]] absl::StatusOr<std::optional<Heredoc>> ParseHeredoc(std::string_view word);

// All heredocs named on an instruction line, in order.
[[nodiscard]] absl::StatusOr<std::vector<Heredoc>> HeredocsFromLine(std::string_view line);

// Removes the leading tabs of every line (`<<-`).
std::string ChompHeredocContent(std::string_view content);

}  // namespace kiln::dockerfile::parser::internal
