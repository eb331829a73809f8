#include "fsutil/patterns.h"

#include <re2/re2.h>

#include <cstdint>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/go_text.h"
#include "base/status.h"
#include "fsutil/paths.h"

namespace kiln::fsutil {
namespace {

using ::kiln::gotext::AppendRune;
using ::kiln::gotext::DecodeRune;
using ::kiln::gotext::kRuneError;
using ::kiln::gotext::TrimSpace;

// filepath.Match's getEsc: one possibly escaped character of a character class.
absl::Status GetEsc(std::string_view* chunk, char32_t* r) {
  std::string_view c = *chunk;
  if (c.empty() || c[0] == '-' || c[0] == ']') return absl::InvalidArgumentError("");
  if (c[0] == '\\') {
    c.remove_prefix(1);
    if (c.empty()) return absl::InvalidArgumentError("");
  }
  auto [rune, n] = DecodeRune(c);
  bool bad = rune == kRuneError && n == 1;
  c.remove_prefix(n);
  if (c.empty()) bad = true;
  *r = rune;
  *chunk = c;
  return bad ? absl::InvalidArgumentError("") : absl::OkStatus();
}

struct ChunkResult {
  std::string_view rest;
  bool ok = false;
  absl::Status error;
};

// filepath.Match's matchChunk: whether `chunk` (no '*') matches a prefix of `s`. After a
// mismatch it keeps scanning the chunk so malformed patterns are always reported.
ChunkResult MatchChunk(std::string_view chunk, std::string_view s) {
  bool failed = false;
  while (!chunk.empty()) {
    if (!failed && s.empty()) failed = true;
    switch (chunk[0]) {
      case '[': {
        char32_t r = 0;
        if (!failed) {
          auto [rune, n] = DecodeRune(s);
          r = rune;
          s.remove_prefix(n);
        }
        chunk.remove_prefix(1);
        bool negated = false;
        if (!chunk.empty() && chunk[0] == '^') {
          negated = true;
          chunk.remove_prefix(1);
        }
        bool match = false;
        int nrange = 0;
        while (true) {
          if (!chunk.empty() && chunk[0] == ']' && nrange > 0) {
            chunk.remove_prefix(1);
            break;
          }
          char32_t lo = 0;
          if (absl::Status st = GetEsc(&chunk, &lo); !st.ok()) return {{}, false, st};
          char32_t hi = lo;
          if (chunk[0] == '-') {
            chunk.remove_prefix(1);
            if (absl::Status st = GetEsc(&chunk, &hi); !st.ok()) return {{}, false, st};
          }
          if (lo <= r && r <= hi) match = true;
          ++nrange;
        }
        if (match == negated) failed = true;
        break;
      }
      case '?':
        if (!failed) {
          if (s[0] == '/') failed = true;
          s.remove_prefix(DecodeRune(s).width);
        }
        chunk.remove_prefix(1);
        break;
      case '\\':
        chunk.remove_prefix(1);
        if (chunk.empty()) return {{}, false, absl::InvalidArgumentError("")};
        [[fallthrough]];
      default:
        if (!failed) {
          if (chunk[0] != s[0]) failed = true;
          s.remove_prefix(1);
        }
        chunk.remove_prefix(1);
        break;
    }
  }
  if (failed) return {};
  return {s, true, absl::OkStatus()};
}

// filepath.Match's scanChunk.
void ScanChunk(std::string_view* pattern, bool* star, std::string_view* chunk) {
  std::string_view p = *pattern;
  *star = false;
  while (!p.empty() && p[0] == '*') {
    p.remove_prefix(1);
    *star = true;
  }
  bool inrange = false;
  size_t i = 0;
  for (; i < p.size(); ++i) {
    const char c = p[i];
    if (c == '\\') {
      if (i + 1 < p.size()) ++i;
    } else if (c == '[') {
      inrange = true;
    } else if (c == ']') {
      inrange = false;
    } else if (c == '*' && !inrange) {
      break;
    }
  }
  *chunk = p.substr(0, i);
  *pattern = p.substr(i);
}

absl::Status BadPattern(std::string_view pattern) {
  return absl::InvalidArgumentError(absl::StrFormat(
      "invalid pattern \"%s\": syntax error in pattern", absl::CHexEscape(AV(pattern))));
}

// Calls `fn` with each ancestor prefix of the directory `parent`, shortest first, the way
// patternmatcher joins strings.Split(parent, "/")[:i+1] ("a/b" → "a", "a/b"; "/a" → "", "/a").
template <typename Fn>
bool AnyParentDir(std::string_view parent, Fn fn) {
  for (size_t pos = parent.find('/');; pos = parent.find('/', pos + 1)) {
    if (fn(pos == std::string_view::npos ? parent : parent.substr(0, pos))) return true;
    if (pos == std::string_view::npos) return false;
  }
}

// Regexp metacharacters that patternmatcher escapes (its shouldEscape). The Go table is meant to
// hold ".+()|{}$", but its bit arithmetic overflows a byte for '{', '|' and '}', so those reach
// the regexp unescaped ("a|b" is an alternation); we reproduce that.
bool ShouldEscape(char32_t r) {
  switch (r) {
    case '.':
    case '+':
    case '(':
    case ')':
    case '$':
      return true;
    default:
      return false;
  }
}

}  // namespace

absl::StatusOr<bool> GlobMatch(std::string_view pattern, std::string_view name) {
  const std::string_view original = pattern;
  while (!pattern.empty()) {
    bool star;
    std::string_view chunk;
    ScanChunk(&pattern, &star, &chunk);
    if (star && chunk.empty()) {
      // A trailing '*' matches the rest unless it contains a separator.
      return name.find('/') == std::string_view::npos;
    }
    ChunkResult res = MatchChunk(chunk, name);
    if (res.ok && (res.rest.empty() || !pattern.empty())) {
      name = res.rest;
      continue;
    }
    if (!res.error.ok()) return BadPattern(original);
    bool advanced = false;
    if (star) {
      for (size_t i = 0; i < name.size() && name[i] != '/'; ++i) {
        ChunkResult r2 = MatchChunk(chunk, name.substr(i + 1));
        if (r2.ok) {
          if (pattern.empty() && !r2.rest.empty()) continue;
          name = r2.rest;
          advanced = true;
          break;
        }
        if (!r2.error.ok()) return BadPattern(original);
      }
    }
    if (!advanced) return false;
  }
  return name.empty();
}

void Pattern::Compile() {
  std::string re = "^";
  match_type_ = MatchType::kExact;

  // Decode like Go's text/scanner: a leading BOM is skipped, invalid bytes become U+FFFD.
  std::vector<char32_t> runes;
  std::string_view rest = cleaned_;
  while (!rest.empty()) {
    auto [r, n] = DecodeRune(rest);
    rest.remove_prefix(n);
    runes.push_back(r);
  }
  size_t pos = 0;
  if (!runes.empty() && runes[0] == 0xFEFF) pos = 1;
  auto peek = [&]() -> int64_t { return pos < runes.size() ? int64_t{runes[pos]} : -1; };

  for (int i = 0; pos < runes.size(); ++i) {
    const char32_t ch = runes[pos++];
    if (ch == '*') {
      if (peek() == '*') {
        ++pos;
        if (peek() == '/') ++pos;  // "**/" is the same as "**"
        if (peek() == -1) {
          // A trailing "**" accepts everything below, like .gitignore.
          if (match_type_ == MatchType::kExact) {
            match_type_ = MatchType::kPrefix;
          } else {
            re += ".*";
            match_type_ = MatchType::kRegexp;
          }
        } else {
          re += "(.*/)?";
          match_type_ = MatchType::kRegexp;
        }
        if (i == 0) match_type_ = MatchType::kSuffix;
      } else {
        re += "[^/]*";
        match_type_ = MatchType::kRegexp;
      }
    } else if (ch == '?') {
      re += "[^/]";
      match_type_ = MatchType::kRegexp;
    } else if (ShouldEscape(ch)) {
      re += '\\';
      AppendRune(&re, ch);
    } else if (ch == '\\') {
      if (peek() != -1) {
        re += '\\';
        AppendRune(&re, runes[pos++]);
        match_type_ = MatchType::kRegexp;
      } else {
        re += '\\';
      }
    } else if (ch == '[' || ch == ']') {
      AppendRune(&re, ch);
      match_type_ = MatchType::kRegexp;
    } else {
      AppendRune(&re, ch);
    }
  }
  if (match_type_ != MatchType::kRegexp) return;
  re += '$';
  RE2::Options options;
  options.set_log_errors(false);
  auto compiled = std::make_shared<const RE2>(re, options);
  if (!compiled->ok()) {
    compile_error_ = absl::InvalidArgumentError(
        absl::StrFormat("invalid pattern \"%s\": syntax error in pattern (%s)",
                        absl::CHexEscape(cleaned_), compiled->error()));
    return;
  }
  regexp_ = std::move(compiled);
}

absl::StatusOr<bool> Pattern::Match(std::string_view path) const {
  switch (match_type_) {
    case MatchType::kExact:
      return path == cleaned_;
    case MatchType::kPrefix: {
      // The pattern ends in "**", which is stripped.
      std::string_view prefix = std::string_view(cleaned_).substr(0, cleaned_.size() - 2);
      return path.substr(0, prefix.size()) == prefix;
    }
    case MatchType::kSuffix: {
      std::string_view suffix = std::string_view(cleaned_).substr(2);
      if (path.size() >= suffix.size() && path.substr(path.size() - suffix.size()) == suffix) {
        return true;
      }
      // "**/foo" also matches "foo".
      return !suffix.empty() && suffix[0] == '/' && path == suffix.substr(1);
    }
    case MatchType::kRegexp:
      if (!compile_error_.ok()) return compile_error_;
      return RE2::PartialMatch(re2::StringPiece(path.data(), path.size()), *regexp_);
  }
  return false;
}

absl::StatusOr<PatternMatcher> PatternMatcher::Create(const std::vector<std::string>& patterns) {
  PatternMatcher pm;
  pm.patterns_.reserve(patterns.size());
  for (const std::string& raw : patterns) {
    std::string_view trimmed = TrimSpace(raw);
    if (trimmed.empty()) continue;
    std::string p = CleanPath(trimmed);
    Pattern pattern;
    if (p[0] == '!') {
      if (p.size() == 1) return absl::InvalidArgumentError("illegal exclusion pattern: \"!\"");
      pattern.exclusion_ = true;
      p.erase(0, 1);
      pm.exclusions_ = true;
    }
    // Like patternmatcher.New: filepath.Match reports malformed globs.
    if (absl::StatusOr<bool> m = GlobMatch(p, "."); !m.ok()) return m.status();
    pattern.cleaned_ = std::move(p);
    pattern.Compile();
    pm.patterns_.push_back(std::move(pattern));
  }
  return pm;
}

absl::StatusOr<bool> PatternMatcher::MatchesOrParentMatches(std::string_view path) const {
  bool matched = false;
  const std::string parent = DirPath(path);
  for (const Pattern& pattern : patterns_) {
    // An inclusion cannot change an already matched path, nor an exception an unmatched one.
    if (pattern.Exclusion() != matched) continue;
    KILN_ASSIGN_OR_RETURN(bool match, pattern.Match(path));
    if (!match && parent != ".") {
      match = AnyParentDir(parent, [&](std::string_view dir) {
        absl::StatusOr<bool> m = pattern.Match(dir);
        return m.ok() && *m;
      });
    }
    if (match) matched = !pattern.Exclusion();
  }
  return matched;
}

absl::StatusOr<bool> PatternMatcher::MatchesUsingParentResults(std::string_view path,
                                                               const MatchInfo& parent,
                                                               MatchInfo* info) const {
  const std::vector<bool>& parent_matched = parent.parent_matched;
  if (!parent_matched.empty() && parent_matched.size() != patterns_.size()) {
    return absl::InvalidArgumentError("wrong number of values in parentMatched");
  }
  MatchInfo out;
  out.parent_matched.assign(patterns_.size(), false);
  bool matched = false;
  for (size_t i = 0; i < patterns_.size(); ++i) {
    const Pattern& pattern = patterns_[i];
    // A parent that matched this pattern means its whole subtree does.
    bool match = !parent_matched.empty() && parent_matched[i];
    if (!match) {
      if (pattern.Exclusion() != matched) continue;
      KILN_ASSIGN_OR_RETURN(match, pattern.Match(path));
      if (!match && parent_matched.empty()) {
        // No parent results were given: test the parent directories directly.
        const std::string parent_dir = DirPath(path);
        if (parent_dir != ".") {
          match = AnyParentDir(parent_dir, [&](std::string_view dir) {
            absl::StatusOr<bool> m = pattern.Match(dir);
            return m.ok() && *m;
          });
        }
      }
    }
    out.parent_matched[i] = match;
    if (match) matched = !pattern.Exclusion();
  }
  if (info != nullptr) *info = std::move(out);
  return matched;
}

std::string PatternWithoutTrailingGlob(const Pattern& pattern) {
  std::string_view s = pattern.String();
  if (s.size() >= 3 && s.substr(s.size() - 3) == "/**") {
    s.remove_suffix(3);
  }
  if (s.size() >= 2 && s.substr(s.size() - 2) == "/*") s.remove_suffix(2);
  return std::string(s);
}

absl::StatusOr<std::vector<std::string>> ParseIgnoreFile(std::string_view contents) {
  constexpr size_t kMaxLine = 64 * 1024;  // bufio.Scanner's default token limit
  std::vector<std::string> out;
  bool first = true;
  while (!contents.empty()) {
    size_t nl = contents.find('\n');
    std::string_view line = contents.substr(0, nl);
    contents.remove_prefix(nl == std::string_view::npos ? contents.size() : nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.size() >= kMaxLine) {
      return absl::InvalidArgumentError("ignore file: line too long");
    }
    if (first && line.substr(0, 3) == "\xEF\xBB\xBF") line.remove_prefix(3);
    first = false;
    if (!line.empty() && line[0] == '#') continue;
    std::string_view pattern = TrimSpace(line);
    if (pattern.empty()) continue;
    const bool invert = pattern[0] == '!';
    if (invert) pattern = TrimSpace(pattern.substr(1));
    std::string cleaned;
    if (!pattern.empty()) {
      cleaned = CleanPath(pattern);
      if (cleaned.size() > 1 && cleaned[0] == '/') cleaned.erase(0, 1);
    }
    out.push_back(invert ? absl::StrCat("!", cleaned) : cleaned);
  }
  return out;
}

}  // namespace kiln::fsutil
