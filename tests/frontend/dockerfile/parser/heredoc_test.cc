// Heredocs: detection on RUN/COPY/ADD (and ONBUILD triggers), bodies, quoting, <<- and errors.

#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "frontend/dockerfile/parser/internal/heredoc.h"
#include "frontend/dockerfile/parser/parser.h"
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

TEST(HeredocTest, Basic) {
  Result r = MustParse(
      "FROM x\n"
      "RUN <<EOF\n"
      "echo hello\n"
      "  echo indented\n"
      "EOF\n"
      "CMD done\n");
  ASSERT_THAT(r.root.children, SizeIs(3));
  const Node& run = r.root.children[1];
  ASSERT_THAT(run.heredocs, SizeIs(1));
  EXPECT_EQ(run.heredocs[0].name, "EOF");
  EXPECT_EQ(run.heredocs[0].content, "echo hello\n  echo indented\n");
  EXPECT_TRUE(run.heredocs[0].expand);
  EXPECT_FALSE(run.heredocs[0].chomp);
  EXPECT_EQ(run.start_line, 2);
  EXPECT_EQ(run.end_line, 5);
  EXPECT_EQ(run.next[0].value, "<<EOF");
  EXPECT_EQ(r.root.children[2].start_line, 6);
}

TEST(HeredocTest, EmptyBody) {
  Result r = MustParse("FROM x\nRUN <<EOF\nEOF\n");
  ASSERT_THAT(r.root.children[1].heredocs, SizeIs(1));
  EXPECT_EQ(r.root.children[1].heredocs[0].content, "");
}

TEST(HeredocTest, ChompStripsLeadingTabs) {
  Result r = MustParse(
      "FROM x\n"
      "RUN <<-EOT\n"
      "\t\techo a\n"
      "\t  echo b\n"
      "    echo c\n"
      "\tEOT\n");
  const Heredoc& h = r.root.children[1].heredocs.at(0);
  EXPECT_EQ(h.name, "EOT");
  EXPECT_TRUE(h.chomp);
  EXPECT_EQ(h.content, "echo a\n  echo b\n    echo c\n");
}

TEST(HeredocTest, WithoutChompATabbedTerminatorIsContent) {
  Result r = MustParse("FROM x\nRUN <<EOT\n\tEOT\nEOT\n");
  EXPECT_EQ(r.root.children[1].heredocs.at(0).content, "\tEOT\n");
}

TEST(HeredocTest, QuotedDelimitersDoNotExpand) {
  Result r = MustParse(
      "FROM x\n"
      "RUN <<'A'\n$HOME\nA\n"
      "RUN <<\"B\"\n$HOME\nB\n"
      "RUN <<C\n$HOME\nC\n"
      "RUN <<-'D'\n\t$HOME\nD\n"
      "RUN <<e'o'f\nx\neof\n");
  const auto& c = r.root.children;
  EXPECT_EQ(c[1].heredocs.at(0).name, "A");
  EXPECT_FALSE(c[1].heredocs.at(0).expand);
  EXPECT_EQ(c[2].heredocs.at(0).name, "B");
  EXPECT_FALSE(c[2].heredocs.at(0).expand);
  EXPECT_TRUE(c[3].heredocs.at(0).expand);
  EXPECT_FALSE(c[4].heredocs.at(0).expand);
  EXPECT_TRUE(c[4].heredocs.at(0).chomp);
  EXPECT_EQ(c[4].heredocs.at(0).content, "$HOME\n");
  EXPECT_EQ(c[5].heredocs.at(0).name, "eof");
  EXPECT_FALSE(c[5].heredocs.at(0).expand);
}

TEST(HeredocTest, SeveralPerInstructionInOrder) {
  Result r = MustParse(
      "FROM x\n"
      "COPY <<FILE1 <<-FILE2 /dest/\n"
      "content 1\n"
      "FILE1\n"
      "\tcontent 2\n"
      "FILE2\n"
      "RUN <<A cat /dev/stdin - 3<<B\n"
      "B\n"
      "A\n"
      "A\n"
      "B\n");
  const auto& c = r.root.children;
  ASSERT_THAT(c, SizeIs(3));
  ASSERT_THAT(c[1].heredocs, SizeIs(2));
  EXPECT_EQ(c[1].heredocs[0].name, "FILE1");
  EXPECT_EQ(c[1].heredocs[0].content, "content 1\n");
  EXPECT_EQ(c[1].heredocs[1].name, "FILE2");
  EXPECT_EQ(c[1].heredocs[1].content, "content 2\n");
  EXPECT_EQ(Dump(r.root.children[1]), "copy \"<<FILE1\" \"<<-FILE2\" \"/dest/\"");
  ASSERT_THAT(c[2].heredocs, SizeIs(2));
  EXPECT_EQ(c[2].heredocs[0].name, "A");
  EXPECT_EQ(c[2].heredocs[0].content, "B\n");
  EXPECT_EQ(c[2].heredocs[1].name, "B");
  EXPECT_EQ(c[2].heredocs[1].content, "A\n");
  EXPECT_EQ(c[2].end_line, 11);
}

TEST(HeredocTest, FlagsBeforeHeredoc) {
  Result r = MustParse("FROM x\nRUN --mount=type=cache,target=/c <<EOF\nmake\nEOF\n");
  const Node& run = r.root.children[1];
  EXPECT_THAT(run.flags, ElementsAre("--mount=type=cache,target=/c"));
  EXPECT_EQ(run.heredocs.at(0).content, "make\n");
}

TEST(HeredocTest, SpacesAfterMarker) {
  Result r = MustParse("FROM x\nRUN <<  EOF > out\nhi\nEOF\n");
  EXPECT_EQ(r.root.children[1].heredocs.at(0).name, "EOF");
}

TEST(HeredocTest, CrlfBodyKeepsLineEndings) {
  Result r = MustParse("FROM x\r\nRUN <<EOF\r\necho a\r\nEOF\r\n");
  EXPECT_EQ(r.root.children[1].heredocs.at(0).content, "echo a\r\n");
}

TEST(HeredocTest, NotHeredocs) {
  Result r = MustParse(
      "FROM x\n"
      "RUN [\"<<EOF\"]\n"
      "RUN echo \"<<EOF\" '<<EOF'\n"
      "RUN cat<<EOF\n"
      "ENV A=<<EOF\n"
      "USER <<EOF\n"
      "RUN echo a<b\n");
  for (size_t i = 1; i < r.root.children.size(); ++i) {
    EXPECT_THAT(r.root.children[i].heredocs, IsEmpty()) << i;
  }
  EXPECT_THAT(r.root.children, SizeIs(7));
}

TEST(HeredocTest, OnbuildTrigger) {
  Result r = MustParse("FROM x\nONBUILD RUN <<EOF\necho hi\nEOF\nONBUILD RUN [\"<<EOF\"]\n");
  ASSERT_THAT(r.root.children, SizeIs(3));
  ASSERT_THAT(r.root.children[1].heredocs, SizeIs(1));
  EXPECT_EQ(r.root.children[1].heredocs[0].content, "echo hi\n");
  EXPECT_THAT(r.root.children[2].heredocs, IsEmpty());
}

TEST(HeredocTest, UnterminatedIsAnError) {
  EXPECT_THAT(Parse("FROM x\n\nRUN <<EOF\necho\nEOFX\n"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "dockerfile parse error on line 3: unterminated heredoc"));
  EXPECT_THAT(Parse("FROM x\nCOPY <<A <<B /d\na\nA\n"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unterminated heredoc")));
}

TEST(HeredocTest, BodyIsNotParsedAsInstructions) {
  Result r = MustParse("FROM x\nCOPY <<EOF /f\n# not a comment\nFORM not an instruction\n\nEOF\n");
  ASSERT_THAT(r.root.children, SizeIs(2));
  EXPECT_EQ(r.root.children[1].heredocs.at(0).content,
            "# not a comment\nFORM not an instruction\n\n");
}

// ---- internal helpers ------------------------------------------------------------------------

TEST(ParseHeredocTest, Words) {
  using internal::ParseHeredoc;
  for (const char* valid : {"<<EOF", "<<'EOF'", "<<\"EOF\"", "<<-EOF", "<<-'EOF'", "<<EO\"F\"",
                            "<< EOF", "<<- EOF", "7<<EOF"}) {
    auto h = ParseHeredoc(valid);
    ASSERT_THAT(h, IsOk()) << valid;
    ASSERT_TRUE(h->has_value()) << valid;
    EXPECT_EQ((*h)->name, "EOF") << valid;
  }
  for (const char* none : {"", "EOF", "<<", "<<-", "<EOF", "<<<EOF", "<<EOF sh", "x<<EOF"}) {
    auto h = ParseHeredoc(none);
    ASSERT_THAT(h, IsOk()) << none;
    EXPECT_FALSE(h->has_value()) << none;
  }
  for (const char* bad : {"<<'EOF", "<<\"EOF", "<<EOF'", "<<EOF\""}) {
    EXPECT_FALSE(ParseHeredoc(bad).ok()) << bad;
  }
  auto escaped = ParseHeredoc("<<eo\\'f");
  ASSERT_THAT(escaped, IsOk());
  EXPECT_EQ((*escaped)->name, "eo'f");
  EXPECT_TRUE((*escaped)->expand);
  auto mixed = ParseHeredoc("<<'e'o\\'f");
  ASSERT_THAT(mixed, IsOk());
  EXPECT_EQ((*mixed)->name, "eo'f");
  EXPECT_FALSE((*mixed)->expand);
  auto var = ParseHeredoc("<<$EOF");
  ASSERT_THAT(var, IsOk());
  EXPECT_EQ((*var)->name, "$EOF");
}

TEST(ParseHeredocTest, LexWords) {
  using internal::LexOptions;
  using internal::LexWords;
  auto w = LexWords("RUN <<  EOF 'a b' \"c $d\" e\\ f ${x:-y z}",
                    LexOptions{.raw_quotes = true, .raw_escapes = true});
  ASSERT_THAT(w, IsOk());
  EXPECT_THAT(*w, ElementsAre("RUN", "<<  EOF", "'a b'", "\"c $d\"", "e\\ f", "${x:-y", "z}"));
  auto plain = LexWords("'a b'c \"d\\\"e\"", LexOptions{});
  ASSERT_THAT(plain, IsOk());
  EXPECT_THAT(*plain, ElementsAre("a bc", "d\"e"));
}

TEST(ParseHeredocTest, Chomp) {
  EXPECT_EQ(internal::ChompHeredocContent("\t\ta\n\tb\n c\n\t"), "a\nb\n c\n");
}

}  // namespace
}  // namespace kiln::dockerfile::parser
