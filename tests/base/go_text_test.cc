// Go's string semantics: the expected values are what Go 1.23 (unicode/utf8, unicode, strings,
// strconv) returns for the same input.

#include "base/go_text.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

namespace kiln::gotext {
namespace {

using ::testing::ElementsAre;

// {rune, width, valid} of the first rune of `s`.
std::vector<int> Dec(std::string_view s) {
  const DecodedRune d = DecodeRune(s);
  return {d.rune, static_cast<int>(d.width), d.valid() ? 1 : 0};
}

TEST(GoTextTest, DecodeValid) {
  EXPECT_THAT(Dec("a"), ElementsAre('a', 1, 1));
  EXPECT_THAT(Dec(std::string_view("\0", 1)), ElementsAre(0, 1, 1));
  EXPECT_THAT(Dec("\x7f"), ElementsAre(0x7F, 1, 1));
  EXPECT_THAT(Dec("\xC2\x80"), ElementsAre(0x80, 2, 1));  // smallest 2-byte
  EXPECT_THAT(Dec("é"), ElementsAre(0xE9, 2, 1));
  EXPECT_THAT(Dec("\xE0\xA0\x80"), ElementsAre(0x800, 3, 1));  // smallest 3-byte
  EXPECT_THAT(Dec("한"), ElementsAre(0xD55C, 3, 1));
  EXPECT_THAT(Dec("\xED\x9F\xBF"), ElementsAre(0xD7FF, 3, 1));       // just below the surrogates
  EXPECT_THAT(Dec("\xEE\x80\x80"), ElementsAre(0xE000, 3, 1));       // just above them
  EXPECT_THAT(Dec("\xF0\x90\x80\x80"), ElementsAre(0x10000, 4, 1));  // smallest 4-byte
  EXPECT_THAT(Dec("\U0001F600"), ElementsAre(0x1F600, 4, 1));
  EXPECT_THAT(Dec("\xF4\x8F\xBF\xBF"), ElementsAre(0x10FFFF, 4, 1));
  EXPECT_THAT(Dec("ab"), ElementsAre('a', 1, 1));  // only the first rune
  // A U+FFFD in the text is valid and 3 bytes wide, unlike the error value.
  EXPECT_THAT(Dec("\xEF\xBF\xBD"), ElementsAre(0xFFFD, 3, 1));
}

TEST(GoTextTest, DecodeInvalidIsReplacementOfWidthOne) {
  EXPECT_THAT(Dec(""), ElementsAre(0xFFFD, 0, 0));
  EXPECT_THAT(Dec("\x80"), ElementsAre(0xFFFD, 1, 0));      // lone continuation byte
  EXPECT_THAT(Dec("\xBF\x80"), ElementsAre(0xFFFD, 1, 0));  // continuation bytes only
  EXPECT_THAT(Dec("\xff"), ElementsAre(0xFFFD, 1, 0));
  EXPECT_THAT(Dec("\xF5\x80\x80\x80"), ElementsAre(0xFFFD, 1, 0));  // lead byte never used
  // Overlong forms.
  EXPECT_THAT(Dec("\xC0\x80"), ElementsAre(0xFFFD, 1, 0));
  EXPECT_THAT(Dec("\xC1\xBF"), ElementsAre(0xFFFD, 1, 0));
  EXPECT_THAT(Dec("\xE0\x80\x80"), ElementsAre(0xFFFD, 1, 0));
  EXPECT_THAT(Dec("\xE0\x9F\xBF"), ElementsAre(0xFFFD, 1, 0));
  EXPECT_THAT(Dec("\xF0\x80\x80\x80"), ElementsAre(0xFFFD, 1, 0));
  EXPECT_THAT(Dec("\xF0\x8F\xBF\xBF"), ElementsAre(0xFFFD, 1, 0));
  // Surrogates (U+D800, U+DFFF) and values above U+10FFFF.
  EXPECT_THAT(Dec("\xED\xA0\x80"), ElementsAre(0xFFFD, 1, 0));
  EXPECT_THAT(Dec("\xED\xBF\xBF"), ElementsAre(0xFFFD, 1, 0));
  EXPECT_THAT(Dec("\xF4\x90\x80\x80"), ElementsAre(0xFFFD, 1, 0));
  // Truncated sequences and bad continuation bytes: never wider than one byte.
  EXPECT_THAT(Dec("\xC3"), ElementsAre(0xFFFD, 1, 0));
  EXPECT_THAT(Dec("\xE2\x82"), ElementsAre(0xFFFD, 1, 0));
  EXPECT_THAT(Dec("\xF0\x9F\x98"), ElementsAre(0xFFFD, 1, 0));
  EXPECT_THAT(Dec("\xE2\x28\xA1"), ElementsAre(0xFFFD, 1, 0));
  EXPECT_THAT(Dec("\xE2\x82\x28"), ElementsAre(0xFFFD, 1, 0));
  EXPECT_THAT(Dec("\xF0\x9F\x98\x41"), ElementsAre(0xFFFD, 1, 0));
}

TEST(GoTextTest, AppendRuneReplacesInvalidRunes) {
  EXPECT_EQ(RuneToString('a'), "a");
  EXPECT_EQ(RuneToString(0xE9), "é");
  EXPECT_EQ(RuneToString(0xD55C), "한");
  EXPECT_EQ(RuneToString(0x1F600), "\U0001F600");
  EXPECT_EQ(RuneToString(0x10FFFF), "\xF4\x8F\xBF\xBF");
  EXPECT_EQ(RuneToString(-1), "\xEF\xBF\xBD");
  EXPECT_EQ(RuneToString(0xD800), "\xEF\xBF\xBD");
  EXPECT_EQ(RuneToString(0xDFFF), "\xEF\xBF\xBD");
  EXPECT_EQ(RuneToString(0x110000), "\xEF\xBF\xBD");
  std::string out = "x";
  AppendRune(&out, 0x3000);
  EXPECT_EQ(out, "x\xE3\x80\x80");
}

TEST(GoTextTest, EncodeDecodeRoundTrip) {
  for (Rune r = 0; r <= kMaxRune; ++r) {
    if (r >= 0xD800 && r <= 0xDFFF) continue;
    const std::string s = RuneToString(r);
    const DecodedRune d = DecodeRune(s);
    ASSERT_EQ(d.rune, r);
    ASSERT_EQ(d.width, s.size());
  }
}

TEST(GoTextTest, LetterAndDigit) {
  EXPECT_TRUE(IsLetter('a'));
  EXPECT_TRUE(IsLetter('Z'));
  EXPECT_TRUE(IsLetter(0xAA));  // ª (Lo)
  EXPECT_TRUE(IsLetter(0xE9));
  EXPECT_TRUE(IsLetter(0xD55C));
  EXPECT_FALSE(IsLetter('_'));
  EXPECT_FALSE(IsLetter('1'));
  EXPECT_FALSE(IsLetter(0xD7));  // ×
  EXPECT_FALSE(IsLetter(0x2603));
  EXPECT_FALSE(IsLetter(-1));
  EXPECT_TRUE(IsDigit('7'));
  EXPECT_TRUE(IsDigit(0x0661));   // ARABIC-INDIC DIGIT ONE
  EXPECT_FALSE(IsDigit(0x00B2));  // superscript two is not Nd
  EXPECT_FALSE(IsDigit('a'));
  EXPECT_FALSE(IsDigit(-1));
}

TEST(GoTextTest, IsSpace) {
  for (Rune r : {'\t', '\n', '\v', '\f', '\r', ' '}) EXPECT_TRUE(IsSpace(r)) << r;
  for (Rune r :
       {0x85, 0xA0, 0x1680, 0x2000, 0x2005, 0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000}) {
    EXPECT_TRUE(IsSpace(r)) << r;
  }
  // Not White_Space: zero-width space, Mongolian vowel separator, byte order mark, controls.
  for (Rune r : {0, 0x1C, 0x1F, 0x200B, 0x180E, 0xFEFF, Rune{'a'}, 0xFFFD, -1}) {
    EXPECT_FALSE(IsSpace(r)) << r;
  }
}

TEST(GoTextTest, IsPrint) {
  EXPECT_TRUE(IsPrint(' '));
  EXPECT_TRUE(IsPrint('a'));
  EXPECT_TRUE(IsPrint('~'));
  EXPECT_TRUE(IsPrint(0xE9));
  EXPECT_TRUE(IsPrint(0xFFFD));
  EXPECT_TRUE(IsPrint(0x1F600));
  EXPECT_TRUE(IsPrint(0x0301));  // combining acute accent (Mn)
  EXPECT_FALSE(IsPrint('\t'));
  EXPECT_FALSE(IsPrint('\n'));
  EXPECT_FALSE(IsPrint(0x7F));
  EXPECT_FALSE(IsPrint(0x85));
  EXPECT_FALSE(IsPrint(0xA0));    // only the ASCII space is a printable space
  EXPECT_FALSE(IsPrint(0x3000));  // ideographic space
  EXPECT_FALSE(IsPrint(0xAD));    // soft hyphen (Cf)
  EXPECT_FALSE(IsPrint(0x200B));
  EXPECT_FALSE(IsPrint(0x2028));
  EXPECT_FALSE(IsPrint(0xFEFF));
  EXPECT_FALSE(IsPrint(0xE000));    // private use
  EXPECT_FALSE(IsPrint(0x0378));    // unassigned
  EXPECT_FALSE(IsPrint(0xE0001));   // language tag
  EXPECT_FALSE(IsPrint(0x10FFFF));  // noncharacter
  EXPECT_FALSE(IsPrint(0xD800));
  EXPECT_FALSE(IsPrint(-1));
}

TEST(GoTextTest, TrimSpace) {
  EXPECT_EQ(TrimSpace(""), "");
  EXPECT_EQ(TrimSpace(" \t\n "), "");
  EXPECT_EQ(TrimSpace("  a b \t\r\n"), "a b");
  EXPECT_EQ(TrimSpace("\u3000\u0085x\u00a0\u2029"), "x");
  EXPECT_EQ(TrimSpace("\u200bx\u200b"), "\u200bx\u200b");
  // An invalid byte is not space and stops the trimming; so does a truncated space sequence.
  EXPECT_EQ(TrimSpace(" \xff "), "\xff");
  EXPECT_EQ(TrimSpace("x\xE3\x80"), "x\xE3\x80");
  EXPECT_EQ(TrimSpace("\x80\xE3\x80\x80"), "\x80");
  EXPECT_EQ(TrimLeftSpace(" \u00a0x "), "x ");
  EXPECT_EQ(TrimRightSpace(" x\u3000 "), " x");
}

TEST(GoTextTest, QuotePlainAndEscaped) {
  EXPECT_EQ(Quote(""), R"("")");
  EXPECT_EQ(Quote("abc"), R"("abc")");
  EXPECT_EQ(Quote(R"(a"b\c)"), R"("a\"b\\c")");
  EXPECT_EQ(Quote("'"), R"("'")");
}

TEST(GoTextTest, QuoteControlCharacters) {
  EXPECT_EQ(Quote("\a\b\f\n\r\t\v"), R"("\a\b\f\n\r\t\v")");
  EXPECT_EQ(Quote(std::string("\x00\x1b\x1f\x7f", 4)), R"("\x00\x1b\x1f\x7f")");
  EXPECT_EQ(Quote("\u0085\u00a0\u00ad"), R"("\u0085\u00a0\u00ad")");
  EXPECT_EQ(Quote("\u200b\u2028\u3000\ufeff"), R"("\u200b\u2028\u3000\ufeff")");
}

TEST(GoTextTest, QuoteInvalidUtf8ByteByByte) {
  EXPECT_EQ(Quote("\xff\xC0"), R"("\xff\xc0")");
  EXPECT_EQ(Quote("a\xffz"), R"("a\xffz")");
  EXPECT_EQ(Quote("\xC0\x80"), R"("\xc0\x80")");          // overlong NUL
  EXPECT_EQ(Quote("\xED\xA0\x80"), R"("\xed\xa0\x80")");  // surrogate
  EXPECT_EQ(Quote("\xE2\x82"), R"("\xe2\x82")");          // truncated
  EXPECT_EQ(Quote("\xEF\xBF\xBD"), "\"\xEF\xBF\xBD\"");   // a real U+FFFD is printable
}

TEST(GoTextTest, QuoteNonAscii) {
  EXPECT_EQ(Quote("é한\U0001F600"), "\"é한\U0001F600\"");
  EXPECT_EQ(Quote("\u0378"), R"("\u0378")");  // unassigned
  EXPECT_EQ(Quote("\ue000"), R"("\ue000")");  // private use
  EXPECT_EQ(Quote("\u00a0\u200b\U000E0001"), R"("\u00a0\u200b\U000e0001")");
  EXPECT_EQ(Quote("\U000F0000\U0010FFFF"), R"("\U000f0000\U0010ffff")");
}

}  // namespace
}  // namespace kiln::gotext
