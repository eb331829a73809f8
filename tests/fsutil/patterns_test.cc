#include "fsutil/patterns.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "tests/testutil/status_matchers.h"

namespace kiln::fsutil {
namespace {

using ::kiln::testing::IsOk;
using ::kiln::testing::StatusIs;
using ::testing::HasSubstr;

// How a single pattern relates to a path: kNone = no match; kSelf = the pattern matches the
// path itself; kParent = only a parent directory of the path matches.
enum class Want { kNone, kSelf, kParent };

struct Case {
  const char* pattern;
  const char* path;
  Want want;
};

// Semantics of moby/patternmatcher, including its quirks (a trailing "**" needs something
// below, "**" also matches zero directories, '|' is not escaped).
const Case kCases[] = {
    {"**", "file", Want::kSelf},
    {"**", "dir/file", Want::kSelf},
    {"**/", "file", Want::kSelf},
    {"**/**", "dir/file", Want::kSelf},
    {"dir/**", "dir/file", Want::kSelf},
    {"dir/**", "dir/dir2/file", Want::kSelf},
    {"dir/**", "dir", Want::kNone},
    {"**/dir", "dir", Want::kSelf},
    {"**/dir", "dir/file", Want::kParent},
    {"**/dir2/*", "dir/dir2/file", Want::kSelf},
    {"**/dir2/**", "dir/dir2/dir3/file", Want::kSelf},
    {"**file", "file", Want::kSelf},
    {"**file", "dir/dir/file", Want::kSelf},
    {"**file", "dir/myfile", Want::kSelf},
    {"**/file*.txt", "dir/dir/file.txt", Want::kSelf},
    {"**/**/*.txt2", "dir/dir/file.txt", Want::kNone},
    {"**/*.txt", "file.txt", Want::kSelf},
    {"a**/*.txt", "a/dir/dir/file.txt", Want::kSelf},
    {"a/*.txt", "a/dir/file.txt", Want::kNone},
    {"a/*.txt", "a/file.txt", Want::kSelf},
    {"a/*.txt**", "a/file.txt", Want::kSelf},
    {"a[b-d]e", "ace", Want::kSelf},
    {"a[b-d]e", "aae", Want::kNone},
    {"a[^b-d]e", "aze", Want::kSelf},
    {".*", ".foo", Want::kSelf},
    {".*", "foo", Want::kNone},
    {"abc.def", "abcZdef", Want::kNone},
    {"abc?def", "abcZdef", Want::kSelf},
    {"abc?def", "abc/def", Want::kNone},
    {"**/foo/bar", "dir/dir2/foo/bar", Want::kSelf},
    {"abc/**", "abc/def/ghi", Want::kSelf},
    {"**/.foo", "bar.foo", Want::kNone},
    {"a(b)c/def", "a(b)c/def", Want::kSelf},
    {"a.|)$(}+{bc", "a.|)$(}+{bc", Want::kSelf},
    {"dist/*.whl", "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", Want::kSelf},
    {"a\\\\", "a\\", Want::kSelf},
    {"a\\*b", "a*b", Want::kSelf},
    {"a\\*b", "axb", Want::kNone},
    {"a?b",
     "a\xe2\x98\xba"
     "b",
     Want::kSelf},  // '?' is one character, not one byte
    {"docs", "docs/README.md", Want::kParent},
    {"docs/", "docs/README.md", Want::kParent},
    {"./docs", "docs/a/b", Want::kParent},
    {"/abs", "abs", Want::kNone},  // patternmatcher keeps a leading '/'
    {"*", "a/b", Want::kParent},
    {"x|y", "x", Want::kNone},       // no wildcard: compared literally
    {"x|*.y", "xq/z", Want::kSelf},  // with one, '|' is an unescaped regexp alternation
};

TEST(PatternMatcherTest, SinglePatternTable) {
  for (const Case& c : kCases) {
    SCOPED_TRACE(::testing::Message() << "pattern=" << c.pattern << " path=" << c.path);
    absl::StatusOr<PatternMatcher> pm = PatternMatcher::Create({c.pattern});
    ASSERT_THAT(pm, IsOk());
    ASSERT_EQ(pm->Patterns().size(), 1u);
    absl::StatusOr<bool> self = pm->Patterns()[0].Match(c.path);
    ASSERT_THAT(self, IsOk());
    EXPECT_EQ(*self, c.want == Want::kSelf);
    absl::StatusOr<bool> any = pm->MatchesOrParentMatches(c.path);
    ASSERT_THAT(any, IsOk());
    EXPECT_EQ(*any, c.want != Want::kNone);
  }
}

// Evaluates `path` the way a walker does: each parent first, passing MatchInfo down.
absl::StatusOr<bool> MatchDownward(const PatternMatcher& pm, const std::string& path) {
  MatchInfo info;
  bool matched = false;
  std::string prefix;
  for (absl::string_view part : absl::StrSplit(path, '/')) {
    prefix = prefix.empty() ? std::string(part) : prefix + "/" + std::string(part);
    MatchInfo next;
    absl::StatusOr<bool> m = pm.MatchesUsingParentResults(prefix, info, &next);
    if (!m.ok()) return m.status();
    matched = *m;
    info = std::move(next);
  }
  return matched;
}

TEST(PatternMatcherTest, ParentResultsAgreeWithParentMatching) {
  const std::vector<std::vector<std::string>> sets = {
      {"**", "!util/docker/web"},    {"**", "!util/docker/web", "util/docker/web/foo"},
      {"**", "!dist/*.whl"},         {"docs", "!docs/README.md"},
      {"docs/*", "!docs/README.md"}, {"*.go", "!fileutils.go"},
      {"!fileutils.go", "*.go"},     {"a/**", "!a/b/**", "a/b/c"},
  };
  const std::vector<std::string> paths = {
      "util/docker/web/foo",
      "util/docker/web",
      "util/x",
      "dist/a.whl",
      "dist/a.tgz",
      "docs/README.md",
      "docs/other.md",
      "fileutils.go",
      "main.go",
      "a/b/c/d",
      "a/b/x",
      "a/z",
  };
  for (const auto& patterns : sets) {
    absl::StatusOr<PatternMatcher> pm = PatternMatcher::Create(patterns);
    ASSERT_THAT(pm, IsOk());
    for (const std::string& path : paths) {
      SCOPED_TRACE(::testing::Message() << patterns.front() << "... " << path);
      absl::StatusOr<bool> a = pm->MatchesOrParentMatches(path);
      absl::StatusOr<bool> b = MatchDownward(*pm, path);
      MatchInfo unused;
      absl::StatusOr<bool> c = pm->MatchesUsingParentResults(path, MatchInfo{}, &unused);
      ASSERT_THAT(a, IsOk());
      ASSERT_THAT(b, IsOk());
      ASSERT_THAT(c, IsOk());
      EXPECT_EQ(*a, *b);
      EXPECT_EQ(*a, *c);
    }
  }
}

TEST(PatternMatcherTest, LaterPatternsWin) {
  auto matches = [](std::vector<std::string> patterns, const std::string& path) {
    absl::StatusOr<PatternMatcher> pm = PatternMatcher::Create(patterns);
    EXPECT_THAT(pm, IsOk());
    return *pm->MatchesOrParentMatches(path);
  };
  EXPECT_TRUE(matches({"*.go"}, "fileutils.go"));
  EXPECT_FALSE(matches({"*.go", "!fileutils.go"}, "fileutils.go"));
  EXPECT_TRUE(matches({"!fileutils.go", "*.go"}, "fileutils.go"));
  EXPECT_FALSE(matches({"docs", "!docs/README.md"}, "docs/README.md"));
  EXPECT_TRUE(matches({"docs", "!docs/README.md"}, "docs/other.md"));
  EXPECT_FALSE(matches({"**", "!util/docker/web"}, "util/docker/web/foo"));
  EXPECT_TRUE(matches({"**", "!util/docker/web", "util/docker/web/foo"}, "util/docker/web/foo"));
  EXPECT_FALSE(matches({}, "any/path"));
}

TEST(PatternMatcherTest, CleansTrimsAndCountsExclusions) {
  absl::StatusOr<PatternMatcher> pm =
      PatternMatcher::Create({"  docs/ ", "", "   ", "!./docs/README.md", "./a//b/../c"});
  ASSERT_THAT(pm, IsOk());
  ASSERT_EQ(pm->Patterns().size(), 3u);
  EXPECT_EQ(pm->Patterns()[0].String(), "docs");
  EXPECT_FALSE(pm->Patterns()[0].Exclusion());
  // Like patternmatcher, the text after '!' is not cleaned again.
  EXPECT_EQ(pm->Patterns()[1].String(), "./docs/README.md");
  EXPECT_TRUE(pm->Patterns()[1].Exclusion());
  EXPECT_EQ(pm->Patterns()[2].String(), "a/c");
  EXPECT_TRUE(pm->Exclusions());

  absl::StatusOr<PatternMatcher> plain = PatternMatcher::Create({"a", "b"});
  ASSERT_THAT(plain, IsOk());
  EXPECT_FALSE(plain->Exclusions());
}

TEST(PatternMatcherTest, MatchTypes) {
  auto type_of = [](const char* p) {
    absl::StatusOr<PatternMatcher> pm = PatternMatcher::Create({p});
    EXPECT_THAT(pm, IsOk());
    return pm->Patterns()[0].match_type();
  };
  using T = Pattern::MatchType;
  EXPECT_EQ(type_of("abc.def"), T::kExact);
  EXPECT_EQ(type_of("a(b)c/def"), T::kExact);
  EXPECT_EQ(type_of("dir/**"), T::kPrefix);
  EXPECT_EQ(type_of("**"), T::kSuffix);
  EXPECT_EQ(type_of("**/dir"), T::kSuffix);
  EXPECT_EQ(type_of("**/foo/bar"), T::kSuffix);
  EXPECT_EQ(type_of("**/**"), T::kRegexp);
  EXPECT_EQ(type_of("*"), T::kRegexp);
  EXPECT_EQ(type_of("**/dir2/*"), T::kRegexp);
  EXPECT_EQ(type_of("a[b-d]e"), T::kRegexp);
}

TEST(PatternMatcherTest, RejectsMalformedPatterns) {
  for (const char* bad :
       {"!", "[", "[^", "[^bc", "a[", "\\", "[]a]", "[-]", "[x-]", "[-x]", "[a-b-c]", "a\\"}) {
    SCOPED_TRACE(bad);
    EXPECT_THAT(PatternMatcher::Create({"ok", bad}),
                StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  }
  EXPECT_THAT(PatternMatcher::Create({"!"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("illegal exclusion")));
  EXPECT_THAT(PatternMatcher::Create({"x", "[z"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("[z")));
}

TEST(PatternMatcherTest, RegexpErrorsSurfaceWhenEvaluated) {
  // Valid for filepath.Match (reversed ranges are fine there) but not as a regexp: like
  // patternmatcher, Create accepts it and every evaluation fails.
  absl::StatusOr<PatternMatcher> pm = PatternMatcher::Create({"[Local-Only]/"});
  ASSERT_THAT(pm, IsOk());
  EXPECT_THAT(pm->MatchesOrParentMatches("x"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("[Local-Only]")));
  EXPECT_THAT(pm->MatchesOrParentMatches("x"),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  // An exception that is never reached is never evaluated.
  absl::StatusOr<PatternMatcher> lazy = PatternMatcher::Create({"a", "!b[z-a]"});
  ASSERT_THAT(lazy, IsOk());
  EXPECT_THAT(lazy->MatchesOrParentMatches("c"), IsOk());
  EXPECT_THAT(lazy->MatchesOrParentMatches("a"),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
}

TEST(PatternMatcherTest, WrongSizedParentInfoIsRejected) {
  absl::StatusOr<PatternMatcher> pm = PatternMatcher::Create({"a", "b"});
  ASSERT_THAT(pm, IsOk());
  MatchInfo parent{{true}};
  MatchInfo out;
  EXPECT_THAT(pm->MatchesUsingParentResults("a/b", parent, &out),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
}

TEST(PatternMatcherTest, PatternWithoutTrailingGlob) {
  absl::StatusOr<PatternMatcher> pm = PatternMatcher::Create({"a/b/**", "a/*", "a/**/*", "**"});
  ASSERT_THAT(pm, IsOk());
  EXPECT_EQ(PatternWithoutTrailingGlob(pm->Patterns()[0]), "a/b");
  EXPECT_EQ(PatternWithoutTrailingGlob(pm->Patterns()[1]), "a");
  EXPECT_EQ(PatternWithoutTrailingGlob(pm->Patterns()[2]), "a/**");
  EXPECT_EQ(PatternWithoutTrailingGlob(pm->Patterns()[3]), "**");
}

TEST(PatternMatcherTest, GlobMatchIsGoFilepathMatch) {
  struct G {
    const char* pattern;
    const char* name;
    bool match;
  };
  const G cases[] = {
      {"abc", "abc", true},
      {"*", "abc", true},
      {"*c", "abc", true},
      {"a*", "ab/c", false},
      {"a*/b", "abc/b", true},
      {"a*/b", "a/c/b", false},
      {"a*b?c*x", "abxbbxdbxebxczzx", true},
      {"a*b?c*x", "abxbbxdbxebxczzy", false},
      {"ab[^e-g]", "abc", true},
      {"a\\*b", "ab", false},
      {"a[^a]b",
       "a\xe2\x98\xba"
       "b",
       true},
      {"a???b",
       "a\xe2\x98\xba"
       "b",
       false},
      {"[\\]a]", "]", true},
      {"[x\\-]", "-", true},
      {"*x", "xxx", true},
  };
  for (const G& g : cases) {
    absl::StatusOr<bool> m = GlobMatch(g.pattern, g.name);
    ASSERT_THAT(m, IsOk()) << g.pattern;
    EXPECT_EQ(*m, g.match) << g.pattern << " " << g.name;
  }
  EXPECT_THAT(GlobMatch("[a-b-c]", "a"),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  // Malformed after a star is only reported if reached, as in Go.
  EXPECT_THAT(GlobMatch("x*[", "."), IsOk());
}

TEST(PatternMatcherTest, ParsesDockerignore) {
  absl::StatusOr<std::vector<std::string>> p = ParseIgnoreFile(
      "\xEF\xBB\xBF# comment\n"
      "node_modules\r\n"
      "  /abs/path/  \n"
      "\n"
      "!  ./keep/me\n"
      "  # not a comment\n"
      "/\n"
      "!\n"
      "a/../b");
  ASSERT_THAT(p, IsOk());
  EXPECT_EQ(*p, (std::vector<std::string>{"node_modules", "abs/path", "!keep/me", "# not a comment",
                                          "/", "!", "b"}));
  EXPECT_THAT(ParseIgnoreFile(std::string(70000, 'x')),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("too long")));
}

}  // namespace
}  // namespace kiln::fsutil
