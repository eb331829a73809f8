// Parser fixtures: directives, escapes, continuations, comments, forms, flags, errors, Dump.

#include "frontend/dockerfile/parser/parser.h"

#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/frontend/dockerfile/testutil.h"
#include "tests/testutil/status_matchers.h"

namespace kiln::dockerfile::parser {
namespace {

using ::kiln::testing::IsOk;
using ::kiln::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

Result MustParse(std::string_view text) { return testutil::ValueOrFail(Parse(text)); }

std::string DumpOf(std::string_view text) { return Dump(MustParse(text).root); }

// ---- directives ------------------------------------------------------------------------------

TEST(DirectivesTest, AllThreeAtTheTop) {
  Result r = MustParse(
      "# syntax=docker/dockerfile:1.7\n"
      "# escape=`\n"
      "# check=skip=JSONArgsRecommended;error=true\n"
      "FROM busybox\n");
  ASSERT_TRUE(r.directives.syntax.has_value());
  EXPECT_EQ(*r.directives.syntax, "docker/dockerfile:1.7");
  EXPECT_EQ(r.directives.escape, '`');
  ASSERT_TRUE(r.directives.check.has_value());
  EXPECT_EQ(*r.directives.check, "skip=JSONArgsRecommended;error=true");
  ASSERT_THAT(r.root.children, SizeIs(1));
  // Directives are not comments of the first instruction.
  EXPECT_THAT(r.root.children[0].prev_comment, IsEmpty());
  EXPECT_EQ(r.root.children[0].start_line, 4);
}

TEST(DirectivesTest, KeysAreCaseInsensitiveAndBlanksAllowed) {
  Result r = MustParse("#   SYNTAX  =  foo/bar:1  \n#Escape=`\nFROM x\n");
  EXPECT_EQ(r.directives.syntax.value_or(""), "foo/bar:1");
  EXPECT_EQ(r.directives.escape, '`');
}

TEST(DirectivesTest, DefaultsWithoutDirectives) {
  Result r = MustParse("FROM x\n");
  EXPECT_FALSE(r.directives.syntax.has_value());
  EXPECT_FALSE(r.directives.check.has_value());
  EXPECT_EQ(r.directives.escape, '\\');
}

TEST(DirectivesTest, AfterACommentIsJustAComment) {
  Result r = MustParse("# hello\n# escape=`\nFROM x\nRUN a \\\n  b\n");
  EXPECT_EQ(r.directives.escape, '\\');
  EXPECT_THAT(r.root.children[0].prev_comment, ElementsAre("hello", "escape=`"));
  EXPECT_EQ(Dump(r.root), "(from \"x\")\n(run \"a   b\")");
}

TEST(DirectivesTest, AfterAnEmptyLineOrInstructionIsIgnored) {
  EXPECT_EQ(MustParse("\n# escape=`\nFROM x\n").directives.escape, '\\');
  Result r = MustParse("FROM x\n# syntax=foo\nRUN y\n");
  EXPECT_FALSE(r.directives.syntax.has_value());
  EXPECT_THAT(r.root.children[1].prev_comment, ElementsAre("syntax=foo"));
}

TEST(DirectivesTest, UnknownDirectiveEndsTheDirectives) {
  Result r = MustParse("# foo=bar\n# escape=`\nFROM x\n");
  EXPECT_EQ(r.directives.escape, '\\');
}

TEST(DirectivesTest, DuplicateIsAnError) {
  EXPECT_THAT(Parse("# escape=`\n# escape=`\nFROM x\n"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "dockerfile parse error on line 2: only one escape parser directive can "
                       "be used"));
  EXPECT_THAT(Parse("# syntax=a\n# SYNTAX=b\nFROM x\n"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("only one syntax")));
}

TEST(DirectivesTest, InvalidEscapeToken) {
  EXPECT_THAT(Parse("# escape=x\nFROM x\n"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "dockerfile parse error on line 1: invalid escape token 'x' does not "
                       "match ` or \\"));
}

TEST(DirectivesTest, ByteOrderMarkIsSkipped) {
  Result r = MustParse("\xEF\xBB\xBF# escape=`\nFROM x\n");
  EXPECT_EQ(r.directives.escape, '`');
}

// ---- escape and continuations ----------------------------------------------------------------

TEST(EscapeTest, BacktickContinuationKeepsBackslashes) {
  Result r = MustParse(
      "# escape=`\n"
      "FROM windows\n"
      "RUN dir c:\\ `\n"
      "    && echo done\n"
      "COPY c:\\src\\ c:\\dst\\\n");
  EXPECT_EQ(Dump(r.root),
            "(from \"windows\")\n"
            "(run \"dir c:\\\\     && echo done\")\n"
            "(copy \"c:\\\\src\\\\\" \"c:\\\\dst\\\\\")");
  EXPECT_EQ(r.root.children[1].start_line, 3);
  EXPECT_EQ(r.root.children[1].end_line, 4);
}

TEST(ContinuationTest, CommentsAndBlankLinesInside) {
  Result r = MustParse(
      "FROM x\n"
      "RUN apt-get update \\\n"
      "# a comment in the middle\n"
      "    # an indented one\n"
      "  && apt-get install -y foo \\\n"
      "\n"
      "  && rm -rf /var/lib/apt\n"
      "CMD done\n");
  ASSERT_THAT(r.root.children, SizeIs(3));
  const Node& run = r.root.children[1];
  EXPECT_EQ(run.next[0].value,
            "apt-get update   && apt-get install -y foo   && rm -rf /var/lib/apt");
  EXPECT_EQ(run.original,
            "RUN apt-get update   && apt-get install -y foo   && rm -rf /var/lib/apt");
  EXPECT_EQ(run.start_line, 2);
  EXPECT_EQ(run.end_line, 7);
  EXPECT_EQ(r.root.children[2].start_line, 8);
  ASSERT_THAT(r.warnings, SizeIs(1));
  EXPECT_EQ(r.warnings[0].short_message, "Empty continuation line");
  EXPECT_EQ(r.warnings[0].line, 7);
  EXPECT_EQ(r.warnings[0].rule, "NoEmptyContinuation");
  EXPECT_THAT(r.warnings[0].detail, HasSubstr("future release"));
}

TEST(ContinuationTest, WhitespaceOnlyLineIsAnEmptyContinuation) {
  Result r = MustParse("FROM x\nRUN a \\\n   \\\n b\n");
  EXPECT_THAT(r.warnings, IsEmpty());  // "   \" is not empty: it continues with blanks
  EXPECT_EQ(r.root.children[1].next[0].value, "a     b");
  Result r2 = MustParse("FROM x\nRUN a \\\n   \n b\n");
  EXPECT_THAT(r2.warnings, SizeIs(1));
  EXPECT_EQ(r2.root.children[1].next[0].value, "a  b");
}

TEST(ContinuationTest, EscapedEscapeIsNotAContinuation) {
  Result r = MustParse("FROM x\nENV A=b\\\\\nENV C=d\n");
  ASSERT_THAT(r.root.children, SizeIs(3));
  EXPECT_EQ(r.root.children[1].next[1].value, "b\\\\");
}

TEST(ContinuationTest, AtEndOfFile) {
  EXPECT_EQ(DumpOf("FROM x\nRUN echo \\"), "(from \"x\")\n(run \"echo\")");
}

TEST(ContinuationTest, TrailingBlanksAfterEscape) {
  EXPECT_EQ(DumpOf("FROM x\nRUN a \\  \t\nb\n"), "(from \"x\")\n(run \"a b\")");
}

TEST(ContinuationTest, CrlfLineEndings) {
  Result r = MustParse("FROM x\r\nRUN a \\\r\n  b\r\nCMD c\r\n");
  EXPECT_EQ(Dump(r.root), "(from \"x\")\n(run \"a   b\")\n(cmd \"c\")");
}

// ---- comments --------------------------------------------------------------------------------

TEST(CommentsTest, PrevCommentCollectsDirectlyAboveAndResetsOnBareHash) {
  Result r = MustParse(
      "FROM x\n"
      "# stale\n"
      "#\n"
      "# first\n"
      "\n"
      "#second line\n"
      "ARG FOO=1\n"
      "RUN y\n");
  EXPECT_THAT(r.root.children[1].prev_comment, ElementsAre("first", "second line"));
  EXPECT_THAT(r.root.children[2].prev_comment, IsEmpty());
}

TEST(CommentsTest, IndentedCommentAndHashInArguments) {
  Result r = MustParse("FROM x\n   # indented\nRUN echo # not a comment\n");
  ASSERT_THAT(r.root.children, SizeIs(2));
  EXPECT_EQ(r.root.children[1].next[0].value, "echo # not a comment");
  // BuildKit drops only the first byte of the raw line, so an indented comment keeps its "#".
  EXPECT_THAT(r.root.children[1].prev_comment, ElementsAre("# indented"));
}

// ---- forms -----------------------------------------------------------------------------------

TEST(FormsTest, JsonAndShellForms) {
  Result r = MustParse(
      "FROM x\n"
      "RUN [\"echo\", \"a b\"]\n"
      "RUN echo a b\n"
      "CMD [ \"x\" ]  \n"
      "ENTRYPOINT [\"unterminated\"\n"
      "SHELL [\"/bin/bash\", \"-c\"]\n"
      "CMD []\n");
  const auto& c = r.root.children;
  EXPECT_TRUE(c[1].json);
  EXPECT_EQ(Dump(r.root),
            "(from \"x\")\n"
            "(run \"echo\" \"a b\")\n"
            "(run \"echo a b\")\n"
            "(cmd \"x\")\n"
            "(entrypoint \"[\\\"unterminated\\\"\")\n"
            "(shell \"/bin/bash\" \"-c\")\n"
            "(cmd)");
  EXPECT_FALSE(c[2].json);
  EXPECT_TRUE(c[3].json);
  EXPECT_FALSE(c[4].json);
  EXPECT_TRUE(c[6].json);
  EXPECT_THAT(c[6].next, IsEmpty());
}

TEST(FormsTest, JsonWithNonStringsIsAnError) {
  EXPECT_THAT(Parse("FROM x\n\nCMD [\"a\", 1]\n"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "dockerfile parse error on line 3: when using JSON array syntax, arrays "
                       "must be comprised of strings only"));
  EXPECT_THAT(Parse("FROM x\nCOPY [\"a\", [\"b\"]]\n"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("line 2")));
  EXPECT_THAT(Parse("FROM x\nRUN [null]\n"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("strings only")));
}

TEST(FormsTest, JsonDecodingLikeGo) {
  Result r = MustParse(
      "FROM x\n"
      "CMD [\"\\ud83d\\ude00\", \"\\ud800x\", \"a\xff"
      "b\", \"\\/\"]\n"
      "CMD [\"a\"] trailing\n"
      "CMD [\"a\",]\n"
      "CMD [\"raw\ttab\"]\n"
      "CMD [\"a\"]  \t\n");
  const auto& c = r.root.children;
  ASSERT_THAT(c, SizeIs(6));
  ASSERT_TRUE(c[1].json);
  ASSERT_THAT(c[1].next, SizeIs(4));
  EXPECT_EQ(c[1].next[0].value, "\xF0\x9F\x98\x80");
  EXPECT_EQ(c[1].next[1].value, "\xEF\xBF\xBDx");  // unpaired surrogate
  EXPECT_EQ(c[1].next[2].value,
            "a\xEF\xBF\xBD"
            "b");  // invalid UTF-8
  EXPECT_EQ(c[1].next[3].value, "/");
  EXPECT_FALSE(c[2].json);  // trailing data
  EXPECT_EQ(c[2].next[0].value, "[\"a\"] trailing");
  EXPECT_FALSE(c[3].json);  // trailing comma
  EXPECT_FALSE(c[4].json);  // raw control character in a string
  EXPECT_TRUE(c[5].json);
  // Valid JSON with non-strings anywhere is an error, not a fallback to the shell form.
  EXPECT_THAT(Parse("FROM x\nCMD [{\"k\": [1, true, null]}, \"a\"]\n"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("strings only")));
  EXPECT_THAT(Parse("FROM x\nCMD [\"a\", -1.5e3]\n"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("strings only")));
}

TEST(FormsTest, ListInstructions) {
  EXPECT_EQ(DumpOf("FROM --platform=$P img:1  AS  build\n"),
            "(from [\"--platform=$P\"] \"img:1\" \"AS\" \"build\")");
  EXPECT_EQ(DumpOf("FROM x\nEXPOSE 80  443/tcp\t53/udp\n"),
            "(from \"x\")\n(expose \"80\" \"443/tcp\" \"53/udp\")");
  EXPECT_EQ(DumpOf("FROM x\nVOLUME /a /b\nVOLUME [\"/c d\"]\n"),
            "(from \"x\")\n(volume \"/a\" \"/b\")\n(volume \"/c d\")");
  EXPECT_EQ(DumpOf("FROM x\nADD a b  /dst/\n"), "(from \"x\")\n(add \"a\" \"b\" \"/dst/\")");
}

TEST(FormsTest, StringInstructionsKeepWhitespace) {
  EXPECT_EQ(DumpOf("FROM x\nUSER  me:  grp \nWORKDIR /a b\nSTOPSIGNAL SIGKILL\n"
                   "MAINTAINER Jane Doe <j@d>\n"),
            "(from \"x\")\n(user \"me:  grp\")\n(workdir \"/a b\")\n(stopsignal \"SIGKILL\")\n"
            "(maintainer \"Jane Doe <j@d>\")");
}

TEST(FormsTest, EnvAndLabel) {
  EXPECT_EQ(DumpOf("FROM x\nENV a b c\nENV a=1 b=\"2 3\" c=4\\ 5\nLABEL \"k\"=v x=\n"),
            "(from \"x\")\n"
            "(env \"a\" \"b c\" \"\")\n"
            "(env \"a\" \"1\" \"=\" \"b\" \"\\\"2 3\\\"\" \"=\" \"c\" \"4\\\\ 5\" \"=\")\n"
            "(label \"\\\"k\\\"\" \"v\" \"=\" \"x\" \"\" \"=\")");
}

TEST(FormsTest, EnvErrors) {
  EXPECT_THAT(Parse("FROM x\nENV PATH\n"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "dockerfile parse error on line 2: ENV must have two arguments"));
  EXPECT_THAT(Parse("FROM x\nLABEL a=b c\n"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "dockerfile parse error on line 2: Syntax error - can't find = in \"c\". "
                       "Must be of the form: name=value"));
  // ENV without anything parses; the instructions layer rejects it.
  EXPECT_EQ(DumpOf("FROM x\nENV\n"), "(from \"x\")\n(env)");
}

TEST(FormsTest, ArgWords) {
  EXPECT_EQ(DumpOf("ARG A B=2 C=\"x y\"\nFROM x\n"),
            "(arg \"A\" \"B=2\" \"C=\\\"x y\\\"\")\n(from \"x\")");
}

TEST(FormsTest, Healthcheck) {
  Result r = MustParse(
      "FROM x\nHEALTHCHECK --interval=5s CMD curl -f http://x/\nHEALTHCHECK CMD [\"a\", \"b\"]\n"
      "HEALTHCHECK NONE\n");
  EXPECT_EQ(Dump(r.root),
            "(from \"x\")\n"
            "(healthcheck [\"--interval=5s\"] \"CMD\" \"curl -f http://x/\")\n"
            "(healthcheck \"CMD\" \"a\" \"b\")\n"
            "(healthcheck \"NONE\")");
  EXPECT_FALSE(r.root.children[1].json);
  EXPECT_TRUE(r.root.children[2].json);
}

TEST(FormsTest, Onbuild) {
  Result r = MustParse(
      "FROM x\nONBUILD RUN --mount=type=cache,target=/c make\nONBUILD ADD [\"a\", \"b\"]\n"
      "onbuild  workdir /w\n");
  EXPECT_EQ(Dump(r.root),
            "(from \"x\")\n"
            "(onbuild (run [\"--mount=type=cache,target=/c\"] \"make\"))\n"
            "(onbuild (add \"a\" \"b\"))\n"
            "(onbuild (workdir \"/w\"))");
  const Node& onbuild = r.root.children[1];
  EXPECT_EQ(onbuild.value, "onbuild");
  EXPECT_THAT(onbuild.next, IsEmpty());
  ASSERT_THAT(onbuild.children, SizeIs(1));
  EXPECT_EQ(onbuild.children[0].value, "run");
  EXPECT_THAT(onbuild.children[0].flags, ElementsAre("--mount=type=cache,target=/c"));
  EXPECT_TRUE(r.root.children[2].children[0].json);
  EXPECT_FALSE(r.root.children[2].json);
  EXPECT_EQ(r.root.children[3].original, "onbuild  workdir /w");
}

TEST(FormsTest, OnbuildWithUnknownTriggerIsKept) {
  EXPECT_EQ(DumpOf("FROM x\nONBUILD FOO bar\n"), "(from \"x\")\n(onbuild (foo \"\"))");
}

TEST(FormsTest, KeywordsAreCaseInsensitive) {
  Result r = MustParse("from x\nRuN echo\n");
  EXPECT_EQ(r.root.children[1].value, "run");
  EXPECT_EQ(r.root.children[1].original, "RuN echo");
}

// ---- flags -----------------------------------------------------------------------------------

TEST(FlagsTest, Extraction) {
  Result r = MustParse(
      "FROM x\n"
      "COPY --from=build --chown=1:1 --link a b\n"
      "COPY --chmod=\"7 55\" -- --not-a-flag /d\n"
      "RUN --mount=type=secret,id=x -- echo\n"
      "RUN --network=none\n"
      "COPY -notflag a b\n");
  const auto& c = r.root.children;
  EXPECT_THAT(c[1].flags, ElementsAre("--from=build", "--chown=1:1", "--link"));
  EXPECT_THAT(c[2].flags, ElementsAre("--chmod=7 55"));
  EXPECT_EQ(c[2].next[0].value, "--not-a-flag");
  EXPECT_THAT(c[3].flags, ElementsAre("--mount=type=secret,id=x"));
  EXPECT_EQ(c[3].next[0].value, "echo");
  EXPECT_THAT(c[4].flags, ElementsAre("--network=none"));
  EXPECT_THAT(c[4].next, IsEmpty());
  EXPECT_THAT(c[5].flags, IsEmpty());
  EXPECT_EQ(c[5].next[0].value, "-notflag");
}

// ---- errors ----------------------------------------------------------------------------------

TEST(ErrorsTest, UnknownInstructionNamesTheLine) {
  EXPECT_THAT(Parse("# comment\nFROM x\nFORM y\n"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "dockerfile parse error on line 3: unknown instruction: FORM (did you "
                       "mean FROM?)"));
  EXPECT_THAT(Parse("FROM x\nfoobar y\n"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "dockerfile parse error on line 2: unknown instruction: foobar"));
  EXPECT_THAT(Parse("FROM x\nrunn y\n"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("(did you mean run?)")));
}

TEST(ErrorsTest, EmptyFiles) {
  EXPECT_THAT(Parse(""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("file with no instructions")));
  EXPECT_THAT(Parse("# only\n\n# comments\n"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "dockerfile parse error on line 3: file with no instructions"));
  EXPECT_THAT(Parse("\n\n   \n"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("file with no instructions")));
}

TEST(ErrorsTest, LineTooLong) {
  std::string long_line = "FROM x\nRUN echo " + std::string(70000, 'a') + "\n";
  EXPECT_THAT(Parse(long_line), StatusIs(absl::StatusCode::kInvalidArgument,
                                         HasSubstr("dockerfile line greater than max allowed "
                                                   "size of 65535")));
  std::string ok_line = "FROM x\nRUN " + std::string(60000, 'a') + "\n";
  EXPECT_THAT(Parse(ok_line), IsOk());
}

TEST(ErrorsTest, LocationOfMultiLineInstruction) {
  EXPECT_THAT(Parse("FROM x\n\nENV \\\n  PATH\n"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "dockerfile parse error on line 3: ENV must have two arguments"));
}

// ---- lines and Dump ----------------------------------------------------------------------------

TEST(LinesTest, StartAndEnd) {
  Result r = MustParse("\n\nFROM x\n\nRUN a \\\n  b \\\n  c\n\n\nCMD d");
  ASSERT_THAT(r.root.children, SizeIs(3));
  EXPECT_EQ(r.root.children[0].start_line, 3);
  EXPECT_EQ(r.root.children[0].end_line, 3);
  EXPECT_EQ(r.root.children[1].start_line, 5);
  EXPECT_EQ(r.root.children[1].end_line, 7);
  EXPECT_EQ(r.root.children[2].start_line, 10);
  EXPECT_EQ(r.root.children[2].end_line, 10);
}

TEST(DumpTest, QuotesLikeGo) {
  Result r =
      MustParse("FROM x\nCMD [\"tab\\there\", \"nul\\u0000\", \"\\u00e9\\u00a0\", \"\\u2028\"]\n");
  EXPECT_EQ(Dump(r.root),
            "(from \"x\")\n(cmd \"tab\\there\" \"nul\\x00\" \"\xC3\xA9\\u00a0\" \"\\u2028\")");
}

TEST(DumpTest, SingleInstructionNode) {
  Result r = MustParse("FROM x\nCOPY --from=a b c\n");
  EXPECT_EQ(Dump(r.root.children[1]), "copy [\"--from=a\"] \"b\" \"c\"");
}

}  // namespace
}  // namespace kiln::dockerfile::parser
