#pragma once
// Path patterns with the semantics of github.com/moby/patternmatcher (v0.6), which BuildKit uses
// for include/exclude patterns of local sources and Docker uses for .dockerignore:
//
//   *        any run of characters except '/'
//   ?        one character except '/'
//   [a-z]    a character class, passed through to the regular expression ([^a-z] negates)
//   \c       the character c
//   **       any run of characters including '/' ("**/x" also matches "x"; "a/**" matches below a)
//   !p       an exception: re-includes what earlier patterns matched
//
// Patterns are trimmed and cleaned like Go's filepath.Clean; later patterns win, so order
// matters. A pattern matches a path if it matches the path itself or one of its parent
// directories ("docs" matches "docs/README.md").
//
//   KILN_ASSIGN_OR_RETURN(PatternMatcher pm, PatternMatcher::Create({"docs", "!docs/README.md"}));
//   KILN_ASSIGN_OR_RETURN(bool excluded, pm.MatchesOrParentMatches("docs/a.md"));  // true

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace re2 {
class RE2;
}

namespace kiln::fsutil {

// One cleaned pattern. Immutable; thread-safe.
class Pattern {
 public:
  enum class MatchType { kExact, kPrefix, kSuffix, kRegexp };

  // The cleaned pattern without its leading '!'.
  const std::string& String() const { return cleaned_; }
  // True for "!pattern" exceptions.
  bool Exclusion() const { return exclusion_; }
  MatchType match_type() const { return match_type_; }

  // Whether `path` (slash-separated, relative) matches this pattern alone, ignoring parents.
  // INVALID_ARGUMENT if the pattern's regular expression does not compile; like Go, such a
  // pattern is accepted by PatternMatcher::Create and fails when it is first evaluated.
  [[nodiscard]] absl::StatusOr<bool> Match(std::string_view path) const;

 private:
  friend class PatternMatcher;
  void Compile();

  std::string cleaned_;
  bool exclusion_ = false;
  MatchType match_type_ = MatchType::kExact;
  std::shared_ptr<const re2::RE2> regexp_;  // kRegexp only
  absl::Status compile_error_;              // non-OK if the regexp failed to compile
};

// Per-pattern results for a directory, passed down to its children so that a walker does not
// re-test parent directories (patternmatcher.MatchInfo). Empty = no information.
struct MatchInfo {
  std::vector<bool> parent_matched;
};

// An ordered list of patterns. Immutable after Create; safe for concurrent use; cheap to copy
// (compiled expressions are shared).
class PatternMatcher {
 public:
  PatternMatcher() = default;

  // Parses and validates `patterns` exactly as patternmatcher.New does: whitespace-only entries
  // are dropped; each is trimmed and cleaned; "!" alone and malformed globs (unbalanced '[',
  // bad ranges, a trailing '\') are INVALID_ARGUMENT naming the pattern.
  [[nodiscard]] static absl::StatusOr<PatternMatcher> Create(
      const std::vector<std::string>& patterns);

  // True if `path` or one of its parent directories matches, after exceptions are applied in
  // order. `path` is slash-separated and relative ("a/b/c").
  [[nodiscard]] absl::StatusOr<bool> MatchesOrParentMatches(std::string_view path) const;

  // Same answer as MatchesOrParentMatches, computed from the parent directory's MatchInfo
  // (empty for top-level paths); fills `info` for use by `path`'s children.
  [[nodiscard]] absl::StatusOr<bool> MatchesUsingParentResults(std::string_view path,
                                                               const MatchInfo& parent,
                                                               MatchInfo* info) const;

  // True if any pattern is an exception ("!p"). When false, a walker may skip a whole directory
  // that matches, because nothing below it can be re-included.
  bool Exclusions() const { return exclusions_; }
  const std::vector<Pattern>& Patterns() const { return patterns_; }
  bool empty() const { return patterns_.empty(); }

 private:
  std::vector<Pattern> patterns_;
  bool exclusions_ = false;
};

// The pattern text with a trailing "/**" or "/*" removed; walkers compare it with directory
// prefixes to decide whether a directory can be skipped (fsutil's patternWithoutTrailingGlob).
[[nodiscard]] std::string PatternWithoutTrailingGlob(const Pattern& pattern);

// Go's filepath.Match for '/'-separated names: shell globbing of a single path (no "**").
// INVALID_ARGUMENT for a malformed pattern.
[[nodiscard]] absl::StatusOr<bool> GlobMatch(std::string_view pattern, std::string_view name);

// Parses .dockerignore contents like moby/patternmatcher/ignorefile.ReadAll: strips a UTF-8 BOM,
// skips lines starting with '#', trims whitespace, cleans each pattern and removes a leading
// '/' (keeping a leading '!'). INVALID_ARGUMENT for a line longer than 64 KiB.
[[nodiscard]] absl::StatusOr<std::vector<std::string>> ParseIgnoreFile(std::string_view contents);

}  // namespace kiln::fsutil
