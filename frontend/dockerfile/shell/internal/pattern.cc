#include "frontend/dockerfile/shell/internal/pattern.h"

#include <algorithm>
#include <cstddef>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "base/go_text.h"
#include "base/status.h"

namespace kiln::dockerfile::shell::internal {
namespace {

absl::Status InvalidPattern(std::string_view pattern, const absl::Status& cause) {
  return absl::InvalidArgumentError(
      absl::StrCat("invalid pattern (", AV(pattern), ") in substitution: ", cause.message()));
}

// Index of the first start >= s with a match, for every s (runes.size()+1 entries; -1: none).
std::vector<int> NextMatchStarts(const std::vector<int>& ends) {
  std::vector<int> next(ends.size());
  int upcoming = -1;
  for (size_t i = ends.size(); i-- > 0;) {
    if (ends[i] >= 0) upcoming = static_cast<int>(i);
    next[i] = upcoming;
  }
  return next;
}

// Go's regexp "extract": a leading name or {name} after `$`. Returns false when malformed.
bool ExtractReference(std::string_view str, std::string_view* name, std::string_view* rest) {
  if (str.empty()) return false;
  bool brace = false;
  if (str[0] == '{') {
    brace = true;
    str.remove_prefix(1);
  }
  size_t i = 0;
  while (i < str.size()) {
    const gotext::DecodedRune d = gotext::DecodeRune(str.substr(i));
    if (!gotext::IsLetter(d.rune) && !gotext::IsDigit(d.rune) && d.rune != '_') break;
    i += d.width;
  }
  if (i == 0) return false;
  *name = str.substr(0, i);
  if (brace) {
    if (i >= str.size() || str[i] != '}') return false;
    ++i;
  }
  *rest = str.substr(i);
  return true;
}

// The group number a reference names, or -1 for a name (leading zeros make it a name too).
int GroupNumber(std::string_view name) {
  int num = 0;
  for (char c : name) {
    if (c < '0' || c > '9' || num >= 100000000) return -1;
    num = num * 10 + (c - '0');
  }
  if (name[0] == '0' && name.size() > 1) return -1;
  return num;
}

}  // namespace

absl::StatusOr<Pattern> ParsePattern(std::string_view pattern, bool greedy) {
  Pattern out;
  out.greedy = greedy;
  RuneScanner s(pattern);
  for (Rune tok = s.Next(); tok != kEof; tok = s.Next()) {
    if (tok == '*') {
      out.elems.push_back({PatternElem::kStar, 0});
      continue;
    }
    if (tok == '?') {
      out.elems.push_back({PatternElem::kAny, 0});
      continue;
    }
    if (tok == '\\') {
      // `}` and `/` are escaped only to get them past ${...} parsing; the backslash goes.
      if (s.Peek() == '}' || s.Peek() == '/') continue;
      tok = s.Next();
      if (tok != '*' && tok != '?' && tok != '\\') {
        return absl::InvalidArgumentError(
            absl::StrCat("invalid escape '\\", gotext::RuneToString(tok), "'"));
      }
    }
    out.elems.push_back({PatternElem::kLiteral, tok});
  }
  return out;
}

std::vector<int> MatchEnds(const Pattern& pattern, const std::vector<Rune>& runes) {
  const size_t n = runes.size();
  // next[pos]: where the rest of the pattern (after the element being processed) ends its
  // preferred match when it starts at pos, or -1. Built from the last element backwards.
  std::vector<int> next(n + 1);
  for (size_t pos = 0; pos <= n; ++pos) next[pos] = static_cast<int>(pos);
  std::vector<int> cur(n + 1);
  for (size_t e = pattern.elems.size(); e-- > 0;) {
    const PatternElem& elem = pattern.elems[e];
    switch (elem.kind) {
      case PatternElem::kLiteral:
        for (size_t pos = 0; pos <= n; ++pos) {
          cur[pos] = (pos < n && runes[pos] == elem.rune) ? next[pos + 1] : -1;
        }
        break;
      case PatternElem::kAny:
        for (size_t pos = 0; pos <= n; ++pos) {
          cur[pos] = (pos < n && runes[pos] != '\n') ? next[pos + 1] : -1;
        }
        break;
      case PatternElem::kStar:
        // A star starting at pos may stop anywhere in [pos, first newline at or after pos].
        // Greedy: the latest stop from which the rest matches; lazy: the earliest.
        for (size_t pos = n + 1; pos-- > 0;) {
          const bool can_extend = pos < n && runes[pos] != '\n';
          if (pattern.greedy) {
            cur[pos] = (can_extend && cur[pos + 1] >= 0) ? cur[pos + 1] : next[pos];
          } else {
            cur[pos] = next[pos] >= 0 ? next[pos] : (can_extend ? cur[pos + 1] : -1);
          }
        }
        break;
    }
    std::swap(cur, next);
  }
  return next;
}

std::string ReversePattern(std::string_view pattern) {
  const std::vector<Rune> in = DecodeAll(pattern).runes;
  std::vector<Rune> out(in.size());
  const size_t n = in.size();
  for (size_t i = 0; i < n;) {
    const size_t out_idx = n - 1 - i;
    if (in[i] == '\\' && i + 1 < n) {
      out[out_idx - 1] = in[i];
      out[out_idx] = in[i + 1];
      i += 2;
    } else {
      out[out_idx] = in[i];
      ++i;
    }
  }
  return EncodeRunes(out);
}

absl::StatusOr<std::string> TrimPrefix(std::string_view pattern, std::string_view value,
                                       bool greedy) {
  absl::StatusOr<Pattern> parsed = ParsePattern(pattern, greedy);
  if (!parsed.ok()) return InvalidPattern(pattern, parsed.status());
  const RuneText text = DecodeAll(value);
  const int end = MatchEnds(*parsed, text.runes)[0];
  if (end < 0) return std::string(value);
  return std::string(value.substr(text.offsets[static_cast<size_t>(end)]));
}

absl::StatusOr<std::string> TrimSuffix(std::string_view pattern, std::string_view value,
                                       bool greedy) {
  // A suffix match is a prefix match of the reversed pattern on the reversed value.
  std::vector<Rune> reversed = DecodeAll(value).runes;
  std::reverse(reversed.begin(), reversed.end());
  absl::StatusOr<std::string> trimmed =
      TrimPrefix(ReversePattern(pattern), EncodeRunes(reversed), greedy);
  if (!trimmed.ok()) return trimmed.status();
  std::vector<Rune> rest = DecodeAll(*trimmed).runes;
  std::reverse(rest.begin(), rest.end());
  return EncodeRunes(rest);
}

absl::StatusOr<std::string> Substitute(std::string_view value, std::string_view pattern,
                                       std::string_view replacement, bool all) {
  absl::StatusOr<Pattern> parsed = ParsePattern(pattern, /*greedy=*/true);
  if (!parsed.ok()) return InvalidPattern(pattern, parsed.status());
  const RuneText text = DecodeAll(value);
  const std::vector<int> ends = MatchEnds(*parsed, text.runes);
  const std::vector<int> starts = NextMatchStarts(ends);
  auto bytes = [&](int rune_index) { return text.offsets[static_cast<size_t>(rune_index)]; };
  auto slice = [&](int from, int to) { return value.substr(bytes(from), bytes(to) - bytes(from)); };

  const int n = static_cast<int>(text.runes.size());
  if (!all) {
    const int a0 = starts[0];
    if (a0 < 0) return std::string(value);
    const int a1 = ends[static_cast<size_t>(a0)];
    return absl::StrCat(AV(slice(0, a0)), AV(replacement), AV(slice(a1, n)));
  }

  // Go's Regexp.ReplaceAllString: successive non-overlapping matches; an empty match right
  // after a previous match is not replaced; the search always advances by at least one rune.
  std::string out;
  int last_match_end = 0;
  int search = 0;
  while (search <= n) {
    const int a0 = starts[static_cast<size_t>(search)];
    if (a0 < 0) break;
    const int a1 = ends[static_cast<size_t>(a0)];
    out.append(slice(last_match_end, a0));
    if (a1 > last_match_end || a0 == 0) out += ExpandTemplate(replacement, slice(a0, a1));
    last_match_end = a1;
    search = a1 <= search ? search + 1 : a1;
  }
  out.append(slice(last_match_end, n));
  return out;
}

std::string ExpandTemplate(std::string_view tmpl, std::string_view match) {
  std::string out;
  while (true) {
    const size_t dollar = tmpl.find('$');
    if (dollar == std::string_view::npos) break;
    out.append(tmpl.substr(0, dollar));
    tmpl.remove_prefix(dollar + 1);
    if (!tmpl.empty() && tmpl[0] == '$') {
      out.push_back('$');
      tmpl.remove_prefix(1);
      continue;
    }
    std::string_view name;
    std::string_view rest;
    if (!ExtractReference(tmpl, &name, &rest)) {
      out.push_back('$');
      continue;
    }
    tmpl = rest;
    // Group 0 is the whole match; the pattern has no other groups and no names.
    if (GroupNumber(name) == 0) out.append(match);
  }
  out.append(tmpl);
  return out;
}

}  // namespace kiln::dockerfile::shell::internal
