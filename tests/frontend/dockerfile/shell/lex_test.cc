#include "frontend/dockerfile/shell/lex.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "tests/testutil/status_matchers.h"

namespace kiln::dockerfile::shell {
namespace {

using ::kiln::testing::IsOk;
using ::kiln::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::EndsWith;
using ::testing::IsEmpty;
using ::testing::StartsWith;

// The environment most cases run against.
Lookup TestEnv() {
  return EnvLookup({
      "PWD=/home",
      "SHELL=bash",
      "EMPTY=",
      "V=value",
      "KO=한국어",
      "é=accent",
      "SP=a b  c",
      "LEAD=  x y ",
      "FILE=/tmp/dir/archive.tar.gz",
      "GLOB=*/",
      "STARS=a**b",
      "Q=x?y?z",
      "BR=[ab]c",
      "BRACE=a}b",
      "NL=x\ny",
      "BIN=\xff",
      "DOLLAR=$V",
  });
}

// Input -> expected ProcessWord result.
struct WordCase {
  std::string_view input;
  std::string_view want;
};

// Input -> the reason after "failed to process \"<input>\": ".
struct ErrorCase {
  std::string_view input;
  std::string_view reason;
};

// Input -> expected ProcessWords fields.
struct WordsCase {
  std::string_view input;
  std::vector<std::string> want;
};

void ExpectWords(const Lex& lex, const Lookup& env, const std::vector<WordCase>& cases) {
  for (const WordCase& c : cases) {
    SCOPED_TRACE(::testing::Message() << "input: " << c.input);
    absl::StatusOr<ProcessResult> r = lex.ProcessWord(c.input, env);
    ASSERT_THAT(r, IsOk());
    EXPECT_EQ(r->result, c.want);
  }
}

void ExpectErrors(const Lex& lex, const Lookup& env, const std::vector<ErrorCase>& cases) {
  for (const ErrorCase& c : cases) {
    SCOPED_TRACE(::testing::Message() << "input: " << c.input);
    absl::StatusOr<ProcessResult> r = lex.ProcessWord(c.input, env);
    EXPECT_THAT(r,
                StatusIs(absl::StatusCode::kInvalidArgument, StartsWith("failed to process \"")));
    EXPECT_THAT(
        r, StatusIs(absl::StatusCode::kInvalidArgument, EndsWith("\": " + std::string(c.reason))));
  }
}

void ExpectFields(const Lex& lex, const Lookup& env, const std::vector<WordsCase>& cases) {
  for (const WordsCase& c : cases) {
    SCOPED_TRACE(::testing::Message() << "input: " << c.input);
    absl::StatusOr<ProcessResult> r = lex.ProcessWords(c.input, env);
    ASSERT_THAT(r, IsOk());
    EXPECT_THAT(r->words, ElementsAreArray(c.want));
  }
}

TEST(LexTest, VariableReferences) {
  ExpectWords(Lex(), TestEnv(),
              {
                  {"hello", "hello"},
                  {"", ""},
                  {"$V", "value"},
                  {"${V}", "value"},
                  {"pre${V}post", "prevaluepost"},
                  {"$Vpost", ""},  // the name runs on: $Vpost
                  {"$V.txt", "value.txt"},
                  {"$V-$V", "value-value"},
                  {"$PWD/bin", "/home/bin"},
                  {"$UNSET", ""},
                  {"${UNSET}x", "x"},
                  {"$EMPTY|", "|"},
                  {"$_", ""},
                  {"$V_1", ""},
                  {"$KO", "한국어"},
                  {"안녕$KO", "안녕한국어"},
                  {"$é!", "accent!"},  // Unicode letters make names
                  {"${V}}", "value}"},
                  {"{V}", "{V}"},
                  {"$DOLLAR", "$V"},  // values are not expanded again
              });
}

TEST(LexTest, DollarWithoutName) {
  ExpectWords(Lex(), TestEnv(),
              {
                  {"$", "$"},
                  {"$.", "$."},
                  {"a$ b", "a$ b"},
                  {"$/x", "$/x"},
                  {"x$", "x$"},
                  {"$\"V\"", "$V"},
                  {"$'V'", "$V"},
                  {"$%", "$%"},
              });
}

TEST(LexTest, PositionalAndSpecialParameters) {
  // Positional and special parameters are never set in a Dockerfile: they expand to "" (or
  // the default), and a digit run ends the name.
  ExpectWords(
      Lex(), TestEnv(),
      {
          {"$1x", "x"},      {"$123abc", "abc"}, {"${10}", ""},        {"${007:-seven}", "seven"},
          {"${3:+set}", ""}, {"$@", ""},         {"$@@", "@"},         {"$@V", "V"},
          {"$*", ""},        {"$#", ""},         {"$?x", "x"},         {"$-", ""},
          {"$$", ""},        {"$!", ""},         {"$0", ""},           {"$0a", "a"},
          {"${#}", ""},      {"${@:-at}", "at"}, {"${$:-pid}", "pid"}, {"${!:+bang}", ""},
          {"${?-q}", "q"},
      });
}

TEST(LexTest, DefaultAndAlternativeOperators) {
  ExpectWords(Lex(), TestEnv(),
              {
                  // ${VAR:-word}: word when unset or empty.
                  {"${V:-d}", "value"},
                  {"${EMPTY:-d}", "d"},
                  {"${UNSET:-d}", "d"},
                  // ${VAR-word}: word only when unset.
                  {"${V-d}", "value"},
                  {"${EMPTY-d}", ""},
                  {"${UNSET-d}", "d"},
                  // ${VAR:+word}: word when set and non-empty.
                  {"${V:+alt}", "alt"},
                  {"${EMPTY:+alt}", ""},
                  {"${UNSET:+alt}", ""},
                  // ${VAR+word}: word when set, even empty.
                  {"${V+alt}", "alt"},
                  {"${EMPTY+alt}", "alt"},
                  {"${UNSET+alt}", ""},
                  // ${VAR:?msg} / ${VAR?msg} when satisfied.
                  {"${V:?msg}", "value"},
                  {"${V?msg}", "value"},
                  {"${EMPTY?msg}", ""},
                  // Operands.
                  {"${UNSET:-}", ""},
                  {"${UNSET:-a b}", "a b"},
                  {"x${UNSET:-000}y", "x000y"},
                  {"${UNSET:-}}", "}"},
                  {"${UNSET:-{x}", "{x"},
                  {"${UNSET:-a:b-c}", "a:b-c"},
              });
}

TEST(LexTest, NestedExpansions) {
  ExpectWords(Lex(), TestEnv(),
              {
                  {"${UNSET:-$V}", "value"},
                  {"${UNSET:-${V}}", "value"},
                  {"${UNSET:-${UNSET2:-deep}}", "deep"},
                  {"${UNSET:-${PWD:-no}}", "/home"},
                  {"${UNSET:-${EMPTY:-x}y}", "xy"},
                  {"${V:+[${V}]}", "[value]"},
                  {"${V:+${UNSET:-none}}", "none"},
                  {"${V:+${UNSET}}", ""},
                  {"${PWD:+${SHELL}}", "bash"},
                  {"${PWD:+${PWD}:}", "/home:"},
                  {"${UNSET:-${UNSET2:-${UNSET3:-${V}}}}", "value"},
                  {"${UNSET:-'quoted }'}", "quoted }"},
                  {"${UNSET:-\"$V\"}", "value"},
                  {"${UNSET:-\"a}b\"}", "a}b"},
                  {R"(${UNSET:-\}})", "}"},
                  {R"(${UNSET:-a\$V})", "a$V"},
                  {R"(${UNSET:-\$PWD:})", "$PWD:"},
                  {R"(${UNSET:-\${PWD}z})", "${PWDz}"},  // the operand ends at the first `}`
                  {"${UNSET:-a${V}b}c", "avaluebc"},
                  {"something-${V}${UNSET:+-${UNSET}}.tar.gz", "something-value.tar.gz"},
                  {"something-${V}${SHELL:+-${SHELL}}.tar.gz", "something-value-bash.tar.gz"},
              });
}

TEST(LexTest, PrefixAndSuffixRemoval) {
  ExpectWords(
      Lex(), TestEnv(),
      {
          // # shortest prefix, ## longest prefix.
          {"${FILE#*/}", "tmp/dir/archive.tar.gz"},
          {"${FILE##*/}", "archive.tar.gz"},
          {"${FILE#/tmp}", "/dir/archive.tar.gz"},
          {"${FILE#/*/}", "dir/archive.tar.gz"},
          {"${FILE##/*/}", "archive.tar.gz"},
          {"${FILE#*.}", "tar.gz"},
          {"${FILE##*.}", "gz"},
          {"${FILE#?}", "tmp/dir/archive.tar.gz"},
          {"${FILE#nomatch}", "/tmp/dir/archive.tar.gz"},
          {"${FILE#tmp}", "/tmp/dir/archive.tar.gz"},  // anchored at the start
                                                       // % shortest suffix, %% longest suffix.
          {"${FILE%.*}", "/tmp/dir/archive.tar"},
          {"${FILE%%.*}", "/tmp/dir/archive"},
          {"${FILE%/*}", "/tmp/dir"},
          {"${FILE%%/*}", ""},
          {"${FILE%??}", "/tmp/dir/archive.tar."},
          {"${FILE%.gz}", "/tmp/dir/archive.tar"},
          {"${FILE%.tar}", "/tmp/dir/archive.tar.gz"},  // anchored at the end
                                                        // A lone * matches nothing (shortest) or
                                                        // everything (longest).
          {"${FILE#*}", "/tmp/dir/archive.tar.gz"},
          {"${FILE##*}", ""},
          {"${FILE%*}", "/tmp/dir/archive.tar.gz"},
          {"${FILE%%*}", ""},
          // Empty patterns.
          {"${FILE#}", "/tmp/dir/archive.tar.gz"},
          {"${FILE##}", "/tmp/dir/archive.tar.gz"},
          {"${FILE%}", "/tmp/dir/archive.tar.gz"},
          {"${FILE%%}", "/tmp/dir/archive.tar.gz"},
          // Patterns from variables are patterns too.
          {"${FILE#$GLOB}", "tmp/dir/archive.tar.gz"},
          {"${FILE##$GLOB}", "archive.tar.gz"},
          {"${FILE%/$UNSET*}", "/tmp/dir"},
          {"${FILE#\"/tmp\"}", "/dir/archive.tar.gz"},
          // Several wildcards.
          {"${Q#*?*?}", "y?z"},
          {"${Q##*?*?}", ""},
          {"${Q%?*?*}", "x?y"},
          {"${Q%%?*?*}", ""},
          // Unset variable: empty.
          {"${UNSET#x}", ""},
          {"${UNSET%%*}", ""},
          // Runes, not bytes.
          {"${KO#?}", "국어"},
          {"${KO%?}", "한국"},
          {"${KO##*국}", "어"},
          // Wildcards never match a newline.
          {"${NL##*}", "\ny"},
          {"${NL%%*}", "x\n"},
          {"${NL#x?}", "x\ny"},
          {"${NL#x\n}", "y"},
      });
}

TEST(LexTest, PatternEscapesAndLiterals) {
  ExpectWords(Lex(), TestEnv(),
              {
                  // Escaped wildcards are literal.
                  {R"(${STARS#a\*})", "*b"},
                  {R"(${STARS##a\**})", ""},
                  {R"(${STARS%\**})", "a*"},
                  {R"(${STARS%%\**})", "a"},
                  {R"(${STARS%%\**\*})", "a**b"},
                  {R"(${Q#?\?})", "y?z"},
                  {R"(${Q%\??})", "x?y"},
                  // \} and \/ get past the ${...} parsing; the pattern sees plain } and /.
                  {R"(${BRACE#a\}})", "b"},
                  {R"(${FILE#\/tmp\/})", "dir/archive.tar.gz"},
                  // No bracket expressions: brackets and other regexp characters are literal.
                  {"${BR#[ab]}", "c"},
                  {"${V#[uv]}", "value"},
                  {"${FILE%.t*}", "/tmp/dir/archive"},
                  {"${V#(v)}", "value"},
                  {"${V#v|x}", "value"},
                  {"${V#^v}", "value"},
                  {"${V%e$}", "value"},
                  {"${V#v.l}", "value"},
                  {"${V#v+}", "value"},
              });
}

TEST(LexTest, PatternReplacement) {
  ExpectWords(Lex(), TestEnv(),
              {
                  {R"(${FILE/\//:})", ":tmp/dir/archive.tar.gz"},
                  {R"(${FILE//\//:})", ":tmp:dir:archive.tar.gz"},
                  {"${FILE/dir/DIR}", "/tmp/DIR/archive.tar.gz"},
                  {"${FILE/.*/}", "/tmp/dir/archive"},  // greedy, leftmost
                  {"${FILE/a*a/A}", "/tmp/dir/Ar.gz"},
                  {"${V/?/X}", "Xalue"},
                  {"${V//?/X}", "XXXXX"},
                  {"${V//a/}", "vlue"},
                  {"${V/e/}", "valu"},
                  {"${V/nomatch/X}", "value"},
                  {"${V//*/X}", "X"},  // no extra empty match at the end
                  {"${V///}", "value"},
                  {"${V///-}", "-v-a-l-u-e-"},  // the empty pattern matches everywhere
                  {"${V//[ae]/_}", "value"},
                  {"${V/l/${V}}", "vavalueue"},
                  {"${V/$UNSET/^}", "^value"},
                  {"${SP// /_}", "a_b__c"},
                  {"${NL//?/.}", ".\n."},
                  {"${KO/국/-}", "한-어"},
                  {"${UNSET/a/b}", ""},
                  {R"(${STARS//\*/+})", "a++b"},
                  // The escape character is kept in the replacement.
                  {R"(${FILE//\//\/})", R"(\/tmp\/dir\/archive.tar.gz)"},
                  // In `//` replacements, $0 is the match and $$ a dollar (Go's Regexp.Expand);
                  // `/` inserts the replacement as is.
                  {R"(${V//l/\$0\$0})", R"(va\l\lue)"},
                  {R"(${V/l/\$0})", R"(va\$0ue)"},
                  {"${V//l/$DOLLAR}", "vaue"},
                  {"${V/l/$DOLLAR}", "va$Vue"},
              });
}

TEST(LexTest, QuotesAndEscapes) {
  ExpectWords(Lex(), TestEnv(),
              {
                  {"'$V'", "$V"},
                  {R"('a\b')", R"(a\b)"},
                  {R"('a\\b')", R"(a\\b)"},
                  {R"('\$V')", R"(\$V)"},
                  {"'${V'", "${V"},
                  {"\"$V\"", "value"},
                  {"\"'$V'\"", "'value'"},
                  {"'\"$V\"'", "\"$V\""},
                  {"''", ""},
                  {"\"\"", ""},
                  {"'a'\"b\"c", "abc"},
                  {"he'll'o", "hello"},
                  {"안'녕'", "안녕"},
                  {"\"a b  c\"", "a b  c"},
                  // Inside double quotes the escape character escapes only " $ and itself.
                  {R"("a\"b")", R"(a"b)"},
                  {R"("a\$V")", "a$V"},
                  {R"("a\\b")", R"(a\b)"},
                  {R"("a\\$V")", R"(a\value)"},
                  {R"("a\tb")", R"(a\tb)"},
                  {R"("a\'b")", R"(a\'b)"},
                  {R"("a\b")", R"(a\b)"},
                  {"\"${UNSET:-\"inner\"}\"", "inner"},
                  // Outside quotes it escapes anything.
                  {R"(a\ b)", "a b"},
                  {R"(\$V)", "$V"},
                  {R"(\\$V)", R"(\value)"},
                  {R"(a\tb)", "atb"},
                  {R"(\'x)", "'x"},
                  {R"(\"x)", "\"x"},
                  {R"(\${V})", "${V}"},
                  {R"(\${})", "${}"},
                  {R"(trailing\)", "trailing"},
                  {R"(trailing\\)", R"(trailing\)"},
                  {"a\\\nb", "a\nb"},
                  // Heredoc markers and redirections are plain text.
                  {"<<EOF", "<<EOF"},
                  {"<<- EOF", "<<- EOF"},
                  {"a<b", "a<b"},
              });
}

TEST(LexTest, BacktickEscape) {
  ExpectWords(Lex('`'), TestEnv(),
              {
                  {"a` b", "a b"},
                  {"`$V", "$V"},
                  {R"(\$V)", R"(\value)"},
                  {R"(C:\path\to)", R"(C:\path\to)"},
                  {"\"a`\"b\"", "a\"b"},
                  {R"("a\b")", R"(a\b)"},
                  {"\"``\"", "`"},
                  {"\"`$V\"", "$V"},
                  {"\"`x\"", "`x"},
                  {"x`", "x"},
                  {"``", "`"},
                  {"'a`b'", "a`b"},
                  {"${UNSET:-a`}b}", "a}b"},
                  // Patterns only know `\`: a backtick-escaped * stays a wildcard after a
                  // literal backtick.
                  {"${STARS#a`*}", "a**b"},
                  {R"(${STARS#a\*})", "*b"},
              });
  ExpectErrors(
      Lex('`'), TestEnv(),
      {
          {"\"a`\"", "unexpected end of statement while looking for matching double-quote"},
      });
}

TEST(LexTest, InputEncoding) {
  ExpectWords(Lex(), TestEnv(),
              {
                  {"\xEF\xBB\xBF"
                   "abc",
                   "abc"},  // a leading byte order mark is skipped
                  {"a\xEF\xBB\xBF"
                   "b",
                   "a\xEF\xBB\xBF"
                   "b"},
                  {"a\xff"
                   "b",
                   "a\xEF\xBF\xBD"
                   "b"},             // invalid bytes of the word read as U+FFFD
                  {"$BIN", "\xff"},  // values are copied byte for byte
                  {"${BIN#x}", "\xff"},
                  {"${BIN%x}", "\xEF\xBF\xBD"},  // % rebuilds the value from runes
              });
}

TEST(LexTest, Errors) {
  ExpectErrors(
      Lex(), TestEnv(),
      {
          {"${UNSET:?}", "UNSET: is not allowed to be unset"},
          {"${UNSET?}", "UNSET: is not allowed to be unset"},
          {"${EMPTY:?}", "EMPTY: is not allowed to be empty"},
          {"${UNSET:?msg}", "UNSET: msg"},
          {"${UNSET?msg}", "UNSET: msg"},
          {"${EMPTY:?msg}", "EMPTY: msg"},
          {"${UNSET:?need $V here}", "UNSET: need value here"},
          {"${V:-${UNSET:?boom}}", "UNSET: boom"},
          {"${V:-${UNSET:?boom}", "syntax error: missing '}'"},
          {"${", "syntax error: missing '}'"},
          {"he${", "syntax error: missing '}'"},
          {"${}", "syntax error: bad substitution"},
          {"${}x", "syntax error: bad substitution"},
          {"${:}", "syntax error: bad substitution"},
          {"${:-x}", "syntax error: bad substitution"},
          {"${{V}", "syntax error: bad substitution"},
          {"${V", "unsupported modifier (\xEF\xBF\xBD) in substitution"},
          {"${V:}", "syntax error: missing '}'"},
          {"${V:}x}", "unsupported modifier (:}) in substitution"},
          {"${V:x}", "unsupported modifier (:x) in substitution"},
          {"${.}", "unsupported modifier (.) in substitution"},
          {"${V.}", "unsupported modifier (.) in substitution"},
          {"${V:=x}", "unsupported modifier (:=) in substitution"},
          {"${V=x}", "unsupported modifier (=) in substitution"},
          {"${V=}", "unsupported modifier (=) in substitution"},
          {"${V!}", "unsupported modifier (!) in substitution"},
          {"${V:#x}", "unsupported modifier (:#) in substitution"},
          {"${V:##x}", "unsupported modifier (:#) in substitution"},
          {"${V:%x}", "unsupported modifier (:%) in substitution"},
          {"${V:%%x}", "unsupported modifier (:%) in substitution"},
          {"${V:/x/y}", "unsupported modifier (:/) in substitution"},
          {"${V:-x", "syntax error: missing '}'"},
          {"${V:-'x}'", "syntax error: missing '}'"},
          {"${V:-x\\", "syntax error: missing '}'"},
          {"${V#x", "syntax error: missing '}'"},
          {"${V/x", "syntax error: missing '/' in ${}"},
          {"${V/}", "syntax error: missing '/' in ${}"},
          {"${V//}", "syntax error: missing '/' in ${}"},
          {"${V//x}", "syntax error: missing '/' in ${}"},
          {"${V/x/y", "syntax error: missing '}'"},
          {R"(${V#\v})", R"(invalid pattern (\v) in substitution: invalid escape '\v')"},
          {R"(${V/\x/y})", R"(invalid pattern (\x) in substitution: invalid escape '\x')"},
          {"${V#$BIN\\a}", "invalid pattern (\xff\\a) in substitution: invalid escape '\\a'"},
          {"${V/e}", "syntax error: missing '/' in ${}"},
          // % reports the reversed pattern (it matches reversed text).
          {R"(${V%x\v})", R"(invalid pattern (\vx) in substitution: invalid escape '\v')"},
          {"'open", "unexpected end of statement while looking for matching single-quote"},
          {"\"open", "unexpected end of statement while looking for matching double-quote"},
          {R"("a\")", "unexpected end of statement while looking for matching double-quote"},
          {R"(a\\'b)", "unexpected end of statement while looking for matching single-quote"},
          {"안'녕", "unexpected end of statement while looking for matching single-quote"},
      });
}

TEST(LexTest, ErrorMessageQuotesTheWordLikeGo) {
  const Lex lex;
  const Lookup env = TestEnv();
  EXPECT_THAT(lex.ProcessWord("${UNSET:?}", env),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "failed to process \"${UNSET:?}\": UNSET: is not allowed to be unset"));
  // The word is a<TAB>b\"c\\${ : tab, backslashes and quotes are escaped in the message.
  EXPECT_THAT(lex.ProcessWord("a\tb\\\"c\\\\${", env),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       R"(failed to process "a\tb\\\"c\\\\${": syntax error: missing '}')"));
  EXPECT_THAT(lex.ProcessWord("한\x01\x7f\xff\u00a0\U0001F600${", env),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "failed to process \"한\\x01\\x7f\\xff\\u00a0\U0001F600${\": syntax "
                       "error: missing '}'"));
  EXPECT_THAT(lex.ProcessWord("\n\r\v\f\a\b\u2028${", env),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "failed to process \"\\n\\r\\v\\f\\a\\b\\u2028${\": syntax error: "
                       "missing '}'"));
}

TEST(LexTest, FieldSplitting) {
  ExpectFields(Lex(), TestEnv(),
               {
                   {"a b  c", {"a", "b", "c"}},
                   {"  lead trail  ", {"lead", "trail"}},
                   {"", {}},
                   {"   ", {}},
                   {"a\tb\nc", {"a", "b", "c"}},
                   {"a\u00a0b\u3000c", {"a", "b", "c"}},  // Unicode whitespace splits too
                   {R"(a\ b c)", {"a b", "c"}},
                   {"'a b' c", {"a b", "c"}},
                   {"\"a  b\"c d", {"a  bc", "d"}},
                   {"$SP", {"a", "b", "c"}},
                   {"\"$SP\"", {"a b  c"}},
                   {"x${SP}y", {"xa", "b", "cy"}},
                   {"p${LEAD}q", {"p", "x", "y", "q"}},
                   {"\"$LEAD\"", {"  x y "}},
                   {"'$SP'", {"$SP"}},
                   {"a \"\" b", {"a", "b"}},  // empty quoted words are dropped
                   {"''", {}},
                   {"a\\\nb", {"a\nb"}},
                   {"8080/tcp 53/udp", {"8080/tcp", "53/udp"}},
                   {"$UNSET a", {"a"}},
                   // `<<` keeps the blanks after it: "<< EOF" is one heredoc marker.
                   {"<< EOF x", {"<< EOF", "x"}},
                   {"cat <<\tEOF", {"cat", "<<\tEOF"}},
                   {"a < b", {"a", "<", "b"}},
                   {"pre${V}post", {"prevaluepost"}},
                   {"${UNSET:-a b} c", {"a", "b", "c"}},
                   {"a ${UNSET:-b c}d", {"a", "b", "cd"}},
                   // BuildKit quirk: an operator expansion drops what its field had so far.
                   {"pre${UNSET:-b}post c", {"bpost", "c"}},
                   {"pre\"${UNSET:-x}\"", {"x"}},
                   {"a${V#v}", {"alue"}},
                   {"x\"$V\"", {"xvalue"}},
               });
  // The joined result is not affected by the quirk.
  absl::StatusOr<ProcessResult> r = Lex().ProcessWords("pre${UNSET:-b}post c", TestEnv());
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->result, "prebpost c");
}

TEST(LexTest, RawQuotes) {
  Lex lex;
  lex.set_raw_quotes(true);
  ExpectWords(lex, TestEnv(),
              {
                  {"'a'\"b\"", "'a'\"b\""},
                  {"'$V'", "'$V'"},
                  {"\"$V\"", "\"value\""},
                  {R"("a\"b")", R"("a"b")"},
                  {"${UNSET:-'q'}", "'q'"},
              });
  ExpectFields(lex, TestEnv(),
               {
                   {"'a b' c", {"'a b'", "c"}},
                   {"\"\" x", {"\"\"", "x"}},
               });
}

TEST(LexTest, RawEscapes) {
  Lex lex;
  lex.set_raw_escapes(true);
  ExpectWords(lex, TestEnv(),
              {
                  {R"(a\ b)", R"(a\ b)"},
                  {R"(\$V)", R"(\$V)"},
                  {R"("a\"b")", R"(a\"b)"},
                  {R"("a\b")", R"(a\\b)"},  // kept once as escape, once as itself
                  {R"(x\)", R"(x\)"},
                  {R"(${UNSET:-a\b})", "ab"},  // not inside ${VAR-word} operands
                  {R"(${STARS#a\*})", "*b"},
              });
  ExpectFields(lex, TestEnv(), {{R"(a\ b c)", {R"(a\ b)", "c"}}});
}

TEST(LexTest, SkipProcessQuotes) {
  Lex lex;
  lex.set_skip_process_quotes(true);
  ExpectWords(lex, TestEnv(),
              {
                  {"'$V'", "'value'"},
                  {"'a'", "'a'"},
                  {"\"a\"", "\"a\""},
                  {R"(\"$V)", "\"value"},
              });
  ExpectFields(lex, TestEnv(), {{"\"a b\" c", {"\"a", "b\"", "c"}}});
}

TEST(LexTest, SkipUnsetEnv) {
  Lex lex;
  lex.set_skip_unset_env(true);
  ExpectWords(lex, TestEnv(),
              {
                  {"$UNSET", "$UNSET"},
                  {"${UNSET}", "${UNSET}"},
                  {"$1", "$1"},
                  {"$@x", "$@x"},
                  {"${UNSET:-x}", "${UNSET:-x}"},
                  {"${UNSET-$V}", "${UNSET-value}"},
                  {"${UNSET:-'q'}", "${UNSET:-q}"},
                  {"${UNSET:?}", "${UNSET:?}"},  // no error
                  {"${UNSET?msg}", "${UNSET?msg}"},
                  {"${UNSET:=x}", "${UNSET:=x}"},  // no error either
                  {"${UNSET#x}", "${UNSET#x}"},
                  {"${UNSET%%x}", "${UNSET%%x}"},
                  {"${UNSET/a/b}", "${UNSET/a/b}"},
                  {"${UNSET//a/b}", "${UNSET/a/b}"},  // `//` comes back as `/`
                  {"$V", "value"},
                  {"${EMPTY:-x}", "x"},
              });
  ExpectErrors(lex, TestEnv(),
               {
                   {"${V:=x}", "unsupported modifier (:=) in substitution"},
                   {"${EMPTY:?}", "EMPTY: is not allowed to be empty"},
               });
}

TEST(LexTest, RawQuotesWithSkipUnsetEnv) {
  // What the Dockerfile parser uses to find heredoc markers.
  Lex lex;
  lex.set_raw_quotes(true);
  lex.set_skip_unset_env(true);
  ExpectWords(lex, EnvLookup({}),
              {
                  {"${UNSET:-'q'}", "${UNSET:-'q'}"},
                  {"\"$X\"", "\"$X\""},
              });
  ExpectFields(lex, EnvLookup({}), {{"<<\"EOF\" $A", {"<<\"EOF\"", "$A"}}});
}

TEST(LexTest, MatchedAndUnmatched) {
  struct Case {
    std::string_view input;
    std::set<std::string> matched;
    std::set<std::string> unmatched;
  };
  const std::vector<Case> cases = {
      {"x", {}, {}},
      {"$V ${UNSET} ${EMPTY:-d}", {"EMPTY", "V"}, {"UNSET"}},
      {"${UNSET:-$V}", {"V"}, {"UNSET"}},
      {"${UNSET:+$V}", {"V"}, {"UNSET"}},  // operands are expanded before the test
      {"$1 $@", {}, {"1", "@"}},
      {"'$V'", {}, {}},
      {"\"$V\"", {"V"}, {}},
      {"\\$V", {}, {}},
      {"${FILE#$GLOB}", {"FILE", "GLOB"}, {}},
      {"${FILE/$UNSET/$V}", {"FILE", "V"}, {"UNSET"}},
      {"${V}${V}", {"V"}, {}},
      {"$é", {"é"}, {}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(::testing::Message() << "input: " << c.input);
    absl::StatusOr<ProcessResult> r = Lex().ProcessWord(c.input, TestEnv());
    ASSERT_THAT(r, IsOk());
    EXPECT_EQ(r->matched, c.matched);
    EXPECT_EQ(r->unmatched, c.unmatched);
  }
}

TEST(LexTest, ProcessWordAlsoSplitsAndProcessWordsAlsoJoins) {
  absl::StatusOr<ProcessResult> word = Lex().ProcessWord("a $SP", TestEnv());
  ASSERT_THAT(word, IsOk());
  EXPECT_EQ(word->result, "a a b  c");
  EXPECT_THAT(word->words, ElementsAre("a", "a", "b", "c"));
  absl::StatusOr<ProcessResult> words = Lex().ProcessWords("a $SP", TestEnv());
  ASSERT_THAT(words, IsOk());
  EXPECT_EQ(words->result, "a a b  c");
  EXPECT_THAT(words->words, ElementsAre("a", "a", "b", "c"));
  EXPECT_EQ(words->matched, std::set<std::string>{"SP"});
}

TEST(LexTest, LookupIsCalledWithNames) {
  std::vector<std::string> asked;
  const Lookup env = [&asked](std::string_view name) -> std::optional<std::string> {
    asked.emplace_back(name);
    if (name == "A") return "1";
    return std::nullopt;
  };
  absl::StatusOr<ProcessResult> r = Lex().ProcessWord("$A${B:-$A}${C}", env);
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->result, "11");
  EXPECT_THAT(asked, ElementsAre("A", "A", "B", "C"));
}

TEST(EnvLookupTest, LastEntryWinsAndBareKeysAreEmpty) {
  const Lookup env = EnvLookup({"foo=bar", "car=hat", "car=bike", "bare", "eq=a=b", "e="});
  EXPECT_EQ(env("foo"), "bar");
  EXPECT_EQ(env("car"), "bike");
  EXPECT_EQ(env("bare"), "");
  EXPECT_EQ(env("eq"), "a=b");
  EXPECT_EQ(env("e"), "");
  EXPECT_EQ(env("FOO"), std::nullopt);  // case-sensitive
  EXPECT_EQ(env("missing"), std::nullopt);
  EXPECT_THAT(EnvLookup({})("x"), std::nullopt);
}

TEST(LexTest, LongValuesStayLinear) {
  // The matcher is O(pattern x value): a 200k-rune value with a many-star pattern is quick.
  std::string big(200000, 'a');
  big += "b";
  const Lookup env = EnvLookup({"BIG=" + big});
  absl::StatusOr<ProcessResult> r = Lex().ProcessWord("${BIG##*a*a*a*a*a*a*a*a}", env);
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->result, "b");
  r = Lex().ProcessWord("${BIG//a/}", env);
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->result, "b");
  r = Lex().ProcessWord("${BIG%%a*c}", env);
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->result, big);
  EXPECT_THAT(r->words, ElementsAre(big));
  EXPECT_THAT(Lex().ProcessWord("", env)->words, IsEmpty());
}

TEST(LexTest, DeepNestingIsAnErrorNotACrash) {
  auto nested = [](int depth) {
    std::string word;
    for (int i = 0; i < depth; ++i) word += "${U:-";
    word += "x";
    for (int i = 0; i < depth; ++i) word += "}";
    return word;
  };
  absl::StatusOr<ProcessResult> r = Lex().ProcessWord(nested(1000), EnvLookup({}));
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->result, "x");
  EXPECT_THAT(Lex().ProcessWord(nested(100000), EnvLookup({})),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       EndsWith(": syntax error: expansions nested too deeply")));
}

}  // namespace
}  // namespace kiln::dockerfile::shell
