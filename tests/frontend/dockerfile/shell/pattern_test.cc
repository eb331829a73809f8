// Tests of the internals behind Lex: glob patterns and Go-compatible rune handling.

#include "frontend/dockerfile/shell/internal/pattern.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "frontend/dockerfile/shell/internal/runes.h"
#include "tests/testutil/status_matchers.h"

namespace kiln::dockerfile::shell::internal {
namespace {

using ::kiln::testing::IsOk;
using ::kiln::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Match ends of `pattern` over `text` for every start position.
std::vector<int> Ends(std::string_view pattern, std::string_view text, bool greedy) {
  absl::StatusOr<Pattern> p = ParsePattern(pattern, greedy);
  EXPECT_THAT(p, IsOk());
  if (!p.ok()) return {};
  return MatchEnds(*p, DecodeAll(text).runes);
}

TEST(PatternTest, ParsesWildcardsAndEscapes) {
  absl::StatusOr<Pattern> p = ParsePattern(R"(a*?\*\?\\\}\/.)", true);
  ASSERT_THAT(p, IsOk());
  std::vector<PatternElem::Kind> kinds;
  std::string literals;
  for (const PatternElem& e : p->elems) {
    kinds.push_back(e.kind);
    if (e.kind == PatternElem::kLiteral) literals += static_cast<char>(e.rune);
  }
  EXPECT_THAT(kinds,
              ElementsAre(PatternElem::kLiteral, PatternElem::kStar, PatternElem::kAny,
                          PatternElem::kLiteral, PatternElem::kLiteral, PatternElem::kLiteral,
                          PatternElem::kLiteral, PatternElem::kLiteral, PatternElem::kLiteral));
  EXPECT_EQ(literals, R"(a*?\}/.)");
}

TEST(PatternTest, RejectsOtherEscapes) {
  EXPECT_THAT(ParsePattern(R"(\x)", true),
              StatusIs(absl::StatusCode::kInvalidArgument, "invalid escape '\\x'"));
  EXPECT_THAT(ParsePattern(R"(\\\)", true),
              StatusIs(absl::StatusCode::kInvalidArgument, "invalid escape '\\\xEF\xBF\xBD'"));
  EXPECT_THAT(ParsePattern(R"(\)", true),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("invalid escape")));
  EXPECT_THAT(ParsePattern("\\[", true),
              StatusIs(absl::StatusCode::kInvalidArgument, "invalid escape '\\['"));
}

TEST(PatternTest, LeadingByteOrderMarkIsIgnored) {
  absl::StatusOr<Pattern> p = ParsePattern(
      "\xEF\xBB\xBF"
      "a",
      true);
  ASSERT_THAT(p, IsOk());
  ASSERT_EQ(p->elems.size(), 1u);
  EXPECT_EQ(p->elems[0].rune, 'a');
}

TEST(PatternTest, GreedyAndLazyStars) {
  // "*b" over "abab": greedy ends after the last b, lazy after the first reachable one.
  EXPECT_THAT(Ends("*b", "abab", true), ElementsAre(4, 4, 4, 4, -1));
  EXPECT_THAT(Ends("*b", "abab", false), ElementsAre(2, 2, 4, 4, -1));
  // Leftmost-first with several stars: the first star decides first.
  EXPECT_THAT(Ends("*a*", "xaya", true), ElementsAre(4, 4, 4, 4, -1));
  EXPECT_THAT(Ends("*a*", "xaya", false), ElementsAre(2, 2, 4, 4, -1));
  EXPECT_THAT(Ends("*", "ab", true), ElementsAre(2, 2, 2));
  EXPECT_THAT(Ends("*", "ab", false), ElementsAre(0, 1, 2));
  EXPECT_THAT(Ends("", "ab", true), ElementsAre(0, 1, 2));
}

TEST(PatternTest, WildcardsStopAtNewlines) {
  EXPECT_THAT(Ends("*", "a\nb", true), ElementsAre(1, 1, 3, 3));
  EXPECT_THAT(Ends("?", "a\nb", true), ElementsAre(1, -1, 3, -1));
  EXPECT_THAT(Ends("a\nb", "a\nb", true), ElementsAre(3, -1, -1, -1));
}

TEST(PatternTest, MatchesRunesNotBytes) {
  EXPECT_THAT(Ends("?", "é한", true), ElementsAre(1, 2, -1));
  // An invalid byte is one U+FFFD rune, which a literal U+FFFD matches.
  EXPECT_THAT(Ends("\xEF\xBF\xBD", "\xff", true), ElementsAre(1, -1));
}

TEST(PatternTest, ReversePatternKeepsEscapePairs) {
  EXPECT_EQ(ReversePattern(R"(a\*c)"), R"(c\*a)");
  EXPECT_EQ(ReversePattern(R"(\\\ab)"), R"(b\a\\)");
  EXPECT_EQ(ReversePattern(R"(ab\)"), R"(\ba)");
  EXPECT_EQ(ReversePattern(R"(\\b)"), R"(b\\)");
  EXPECT_EQ(ReversePattern("한\\국어"), "어\\국한");
  EXPECT_EQ(ReversePattern(""), "");
}

TEST(PatternTest, TrimPrefixAndSuffix) {
  EXPECT_EQ(*TrimPrefix("*/", "a/b/c", false), "b/c");
  EXPECT_EQ(*TrimPrefix("*/", "a/b/c", true), "c");
  EXPECT_EQ(*TrimPrefix("x", "a/b/c", true), "a/b/c");
  EXPECT_EQ(*TrimSuffix("/*", "a/b/c", false), "a/b");
  EXPECT_EQ(*TrimSuffix("/*", "a/b/c", true), "a");
  EXPECT_EQ(*TrimSuffix(R"(\**)", "a**b", false), "a*");
  EXPECT_EQ(*TrimSuffix("?", "한국어", false), "한국");
  EXPECT_THAT(TrimPrefix(R"(\q)", "x", false),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       R"(invalid pattern (\q) in substitution: invalid escape '\q')"));
}

TEST(PatternTest, Substitute) {
  EXPECT_EQ(*Substitute("banana", "an", "AN", false), "bANana");
  EXPECT_EQ(*Substitute("banana", "an", "AN", true), "bANANa");
  EXPECT_EQ(*Substitute("banana", "a*a", "_", false), "b_");
  EXPECT_EQ(*Substitute("banana", "?", "", true), "");
  EXPECT_EQ(*Substitute("ab", "", "-", true), "-a-b-");
  EXPECT_EQ(*Substitute("ab", "", "-", false), "-ab");
  EXPECT_EQ(*Substitute("abc", "*", "X", true), "X");
  EXPECT_EQ(*Substitute("a\nb", "*", "X", true), "X\nX");
  EXPECT_EQ(*Substitute("aXbX", "X", "[$0]", true), "a[X]b[X]");
  EXPECT_EQ(*Substitute("aXbX", "X", "[$0]", false), "a[$0]bX");
  EXPECT_EQ(*Substitute("", "", "e", true), "e");
  EXPECT_EQ(*Substitute("", "x", "e", true), "");
  EXPECT_EQ(*Substitute("x\xffy", "?", "-", true), "---");
  EXPECT_EQ(*Substitute("x\xffy", "x", "-", true), "-\xffy");
}

TEST(PatternTest, ExpandTemplateFollowsGoRegexpExpand) {
  EXPECT_EQ(ExpandTemplate("[$0]", "m"), "[m]");
  EXPECT_EQ(ExpandTemplate("[${0}]", "m"), "[m]");
  EXPECT_EQ(ExpandTemplate("$$0", "m"), "$0");
  EXPECT_EQ(ExpandTemplate("$1|$name|${name}|$00", "m"), "|||");
  EXPECT_EQ(ExpandTemplate("$0x", "m"), "");  // the name is "0x"
  EXPECT_EQ(ExpandTemplate("${0}x", "m"), "mx");
  EXPECT_EQ(ExpandTemplate("$", "m"), "$");
  EXPECT_EQ(ExpandTemplate("a$-b", "m"), "a$-b");
  EXPECT_EQ(ExpandTemplate("${0", "m"), "${0");
  EXPECT_EQ(ExpandTemplate("${}", "m"), "${}");
  EXPECT_EQ(ExpandTemplate("$é", "m"), "");
  EXPECT_EQ(ExpandTemplate("plain", "m"), "plain");
}

TEST(RunesTest, ScannerSkipsOnlyALeadingByteOrderMark) {
  RuneScanner s(
      "\xEF\xBB\xBF"
      "a\xEF\xBB\xBF\xff");
  EXPECT_EQ(s.Peek(), 'a');
  EXPECT_EQ(s.Next(), 'a');
  EXPECT_EQ(s.Next(), 0xFEFF);
  EXPECT_EQ(s.Next(), 0xFFFD);
  EXPECT_EQ(s.Next(), kEof);
  EXPECT_EQ(s.Next(), kEof);
}

}  // namespace
}  // namespace kiln::dockerfile::shell::internal
