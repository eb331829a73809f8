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

TEST(RunesTest, DecodeRuneLikeGo) {
  auto dec = [](std::string_view s) {
    Decoded d = DecodeRune(s);
    return std::vector<int>{d.rune, static_cast<int>(d.width)};
  };
  EXPECT_THAT(dec("a"), ElementsAre('a', 1));
  EXPECT_THAT(dec("é"), ElementsAre(0xE9, 2));
  EXPECT_THAT(dec("한"), ElementsAre(0xD55C, 3));
  EXPECT_THAT(dec("\U0001F600"), ElementsAre(0x1F600, 4));
  EXPECT_THAT(dec("\xff"), ElementsAre(0xFFFD, 1));
  EXPECT_THAT(dec("\xC0\x80"), ElementsAre(0xFFFD, 1));          // overlong
  EXPECT_THAT(dec("\xED\xA0\x80"), ElementsAre(0xFFFD, 1));      // surrogate
  EXPECT_THAT(dec("\xE0\x80\x80"), ElementsAre(0xFFFD, 1));      // overlong
  EXPECT_THAT(dec("\xF4\x90\x80\x80"), ElementsAre(0xFFFD, 1));  // > U+10FFFF
  EXPECT_THAT(dec("\xE2\x82"), ElementsAre(0xFFFD, 1));          // truncated
  EXPECT_THAT(dec("\xEF\xBF\xBD"), ElementsAre(0xFFFD, 3));      // a real U+FFFD
}

TEST(RunesTest, AppendRuneReplacesInvalidRunes) {
  EXPECT_EQ(RuneToString('a'), "a");
  EXPECT_EQ(RuneToString(0x1F600), "\U0001F600");
  EXPECT_EQ(RuneToString(kEof), "\xEF\xBF\xBD");
  EXPECT_EQ(RuneToString(0xD800), "\xEF\xBF\xBD");
  EXPECT_EQ(RuneToString(0x110000), "\xEF\xBF\xBD");
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

TEST(RunesTest, Classes) {
  EXPECT_TRUE(IsLetter('a'));
  EXPECT_TRUE(IsLetter(0xE9));
  EXPECT_TRUE(IsLetter(0xD55C));
  EXPECT_FALSE(IsLetter('_'));
  EXPECT_FALSE(IsLetter('1'));
  EXPECT_TRUE(IsDigit('7'));
  EXPECT_TRUE(IsDigit(0x0661));   // ARABIC-INDIC DIGIT ONE
  EXPECT_FALSE(IsDigit(0x00B2));  // superscript two is not Nd
  EXPECT_TRUE(IsSpace(' '));
  EXPECT_TRUE(IsSpace(0x85));
  EXPECT_TRUE(IsSpace(0xA0));
  EXPECT_TRUE(IsSpace(0x3000));
  EXPECT_FALSE(IsSpace(0x200B));
  EXPECT_TRUE(IsPrint(' '));
  EXPECT_FALSE(IsPrint(0xA0));
  EXPECT_FALSE(IsPrint('\t'));
  EXPECT_TRUE(IsPrint(0xFFFD));
  EXPECT_FALSE(IsLetter(kEof));
}

TEST(RunesTest, GoQuote) {
  EXPECT_EQ(GoQuote(""), R"("")");
  EXPECT_EQ(GoQuote(R"(a"b\c)"), R"("a\"b\\c")");
  EXPECT_EQ(GoQuote("\a\b\f\n\r\t\v"), R"("\a\b\f\n\r\t\v")");
  EXPECT_EQ(GoQuote(std::string("\x00\x1f\x7f", 3)), R"("\x00\x1f\x7f")");
  EXPECT_EQ(GoQuote("\xff\xC0"), R"("\xff\xc0")");
  EXPECT_EQ(GoQuote("é한\U0001F600"), "\"é한\U0001F600\"");
  EXPECT_EQ(GoQuote("\u00a0\u200b\U000E0001"), R"("\u00a0\u200b\U000e0001")");
}

}  // namespace
}  // namespace kiln::dockerfile::shell::internal
