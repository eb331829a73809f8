#include "frontend/dockerfile/convert/git_ref.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kiln::dockerfile {
namespace {

using ::testing::HasSubstr;

std::optional<GitRef> Parse(const std::string& s) {
  auto r = ParseGitRef(s);
  EXPECT_TRUE(r.ok()) << s << ": " << r.status();
  return r.ok() ? *r : std::nullopt;
}

std::string ErrorOf(const std::string& s) {
  auto r = ParseGitRef(s);
  return r.ok() ? "ok" : std::string(r.status().message());
}

TEST(GitRefTest, RecognizesRepositoriesLikeBuildKit) {
  auto https = Parse("https://github.com/foo/bar.git#baz/qux:quux/quuz");
  ASSERT_TRUE(https);
  EXPECT_EQ(https->remote, "https://github.com/foo/bar.git");
  EXPECT_EQ(https->ref, "baz/qux");
  EXPECT_EQ(https->subdir, "quux/quuz");
  EXPECT_FALSE(https->unencrypted);

  auto scp = Parse("git@github.com:foo/bar.git#main");
  ASSERT_TRUE(scp);
  EXPECT_EQ(scp->remote, "git@github.com:foo/bar.git");
  EXPECT_EQ(scp->ref, "main");

  auto git = Parse("git://example.com/repo");
  ASSERT_TRUE(git);
  EXPECT_TRUE(git->unencrypted);
  EXPECT_TRUE(Parse("ssh://git@example.com:2222/repo"));

  // Not repositories: paths, plain URLs, the deprecated bare form, unknown schemes.
  EXPECT_FALSE(Parse("./repo.git"));
  EXPECT_FALSE(Parse("src/app"));
  EXPECT_FALSE(Parse("https://example.com/archive.tar.gz"));
  EXPECT_FALSE(Parse("github.com/foo/bar"));
  EXPECT_FALSE(Parse("ftp://example.com/repo.git"));
}

TEST(GitRefTest, QueryOptions) {
  auto r = Parse(
      "https://example.com/r.git?tag=v1&subdir=docs&checksum=abc&keep-git-dir&"
      "submodules=false&mtime=commit");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->remote, "https://example.com/r.git");
  EXPECT_EQ(r->ref, "refs/tags/v1");
  EXPECT_EQ(r->subdir, "docs");
  EXPECT_EQ(r->checksum, "abc");
  EXPECT_EQ(r->keep_git_dir, std::optional<bool>(true));
  EXPECT_EQ(r->submodules, std::optional<bool>(false));
  EXPECT_EQ(r->mtime, "commit");
  EXPECT_EQ(Parse("https://example.com/r.git?branch=dev")->ref, "refs/heads/dev");
  EXPECT_EQ(Parse("https://example.com/r.git?ref=dev#dev")->ref, "dev");
}

TEST(GitRefTest, QueryErrors) {
  EXPECT_THAT(ErrorOf("https://e.com/r.git?ref=a#b"), HasSubstr("ref conflicts"));
  EXPECT_THAT(ErrorOf("https://e.com/r.git?ref=a&ref=b"), HasSubstr("has multiple values"));
  EXPECT_THAT(ErrorOf("https://e.com/r.git?ref="), HasSubstr("has no value"));
  EXPECT_THAT(ErrorOf("https://e.com/r.git?tag=a&branch=b"),
              HasSubstr("branch conflicts with tag"));
  EXPECT_THAT(ErrorOf("https://e.com/r.git?keep-git-dir=maybe"), HasSubstr("invalid keep-git-dir"));
  EXPECT_THAT(ErrorOf("https://e.com/r.git?mtime=now"), HasSubstr("invalid mtime value"));
  EXPECT_THAT(ErrorOf("https://e.com/r.git?what=1"), HasSubstr("unexpected query \"what\""));
}

}  // namespace
}  // namespace kiln::dockerfile
