#pragma once
// The glob patterns of ${VAR#p}, ${VAR%p} and ${VAR/p/r}, matched the way BuildKit does it: it
// turns a pattern into a Go regular expression (`*` -> `.*` or `.*?`, `?` -> `.`, everything else
// literal) and uses leftmost-first matching. This is a direct matcher with the same results,
// without regular expressions: for every start position it finds the match a backtracking
// engine would pick first, in O(pattern x value) time.

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "frontend/dockerfile/shell/internal/runes.h"

namespace kiln::dockerfile::shell::internal {

struct PatternElem {
  enum Kind { kLiteral, kAny, kStar };
  Kind kind;
  Rune rune;  // kLiteral only
};

struct Pattern {
  std::vector<PatternElem> elems;
  bool greedy = true;  // `*` prefers the longest run (else the shortest)
};

// Parses a pattern: `*`, `?`, `\*`, `\?`, `\\` (literal), `\}` and `\/` (the backslash dropped);
// any other escape fails with "invalid escape '\<c>'". A leading U+FEFF is ignored.
absl::StatusOr<Pattern> ParsePattern(std::string_view pattern, bool greedy);

// For each start rune index s in [0, runes.size()], the end (rune index) of the preferred match
// of `pattern` starting at s, or -1 when none starts there. Wildcards never match '\n'.
std::vector<int> MatchEnds(const Pattern& pattern, const std::vector<Rune>& runes);

// Reverses a pattern rune-wise, keeping each `\x` pair in order ("a\*c" -> "c\*a").
std::string ReversePattern(std::string_view pattern);

// ${VAR#p}/${VAR##p}: `value` without the shortest (longest when greedy) prefix matching p.
absl::StatusOr<std::string> TrimPrefix(std::string_view pattern, std::string_view value,
                                       bool greedy);
// ${VAR%p}/${VAR%%p}: `value` without the shortest (longest) matching suffix. Like BuildKit, the
// result is rebuilt from runes (invalid bytes become U+FFFD).
absl::StatusOr<std::string> TrimSuffix(std::string_view pattern, std::string_view value,
                                       bool greedy);
// ${VAR/p/r} (all=false) and ${VAR//p/r} (all=true, with Go's Regexp.Expand of r).
absl::StatusOr<std::string> Substitute(std::string_view value, std::string_view pattern,
                                       std::string_view replacement, bool all);

// Go's Regexp.Expand for a regexp without groups: `$$` -> `$`, `$0`/`${0}` -> `match`, other
// well-formed `$name`/`${name}` -> "", a malformed reference keeps its `$`.
std::string ExpandTemplate(std::string_view tmpl, std::string_view match);

}  // namespace kiln::dockerfile::shell::internal
