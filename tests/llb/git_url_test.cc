#include "llb/git_url.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kiln::llb {
namespace {

using ::testing::ElementsAre;
using ::testing::Pair;

TEST(GitUrlTest, StandardUrls) {
  auto u =
      ParseGitUrl("https://user:tok@example.com:8443/org/repo.git?ref=main&x=a%20b#v1:sub/../dir");
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_EQ(u->scheme, "https");
  EXPECT_EQ(u->user, "user:tok");
  EXPECT_EQ(u->host, "example.com:8443");
  EXPECT_EQ(u->path, "/org/repo.git");
  EXPECT_THAT(u->query, ElementsAre(Pair("ref", "main"), Pair("x", "a b")));
  EXPECT_EQ(u->ref, "v1");
  EXPECT_EQ(u->subdir, "dir");
  EXPECT_EQ(u->remote, "https://user:tok@example.com:8443/org/repo.git");
  EXPECT_EQ(ParseGitUrl("GIT://h/r")->scheme, "git");
}

TEST(GitUrlTest, ScpLikeUrlsAreSsh) {
  auto u = ParseGitUrl("git@github.com:moby/buildkit.git#main");
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_EQ(u->scheme, "ssh");
  EXPECT_EQ(u->user, "git");
  EXPECT_EQ(u->host, "github.com");
  EXPECT_EQ(u->path, "moby/buildkit.git");
  EXPECT_EQ(u->remote, "git@github.com:moby/buildkit.git");
  EXPECT_EQ(u->ref, "main");
  EXPECT_TRUE(IsGitTransport("git@github.com:moby/buildkit.git"));
}

TEST(GitUrlTest, Errors) {
  EXPECT_EQ(ParseGitUrl("github.com/moby/buildkit").status().code(),
            absl::StatusCode::kNotFound);  // no scheme: the caller may add https://
  EXPECT_FALSE(IsGitTransport("github.com/moby/buildkit"));
  EXPECT_EQ(ParseGitUrl("ftp://example.com/r.git").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(IsGitTransport("file:///etc"));
  EXPECT_FALSE(ParseGitUrl("https:///path").ok());
  EXPECT_FALSE(ParseGitUrl("https://h/r?x=%zz").ok());
  EXPECT_FALSE(ParseGitUrl("https://h/r\nx").ok());
}

TEST(GitUrlTest, CommitIds) {
  EXPECT_TRUE(IsCommitSha(std::string(40, 'a')));
  EXPECT_TRUE(IsCommitSha(std::string(64, '0')));
  EXPECT_FALSE(IsCommitSha(std::string(40, 'A')));
  EXPECT_FALSE(IsCommitSha("abc123"));
}

}  // namespace
}  // namespace kiln::llb
