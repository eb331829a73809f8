#include "daemon/registry/auth.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace kiln::registry {
namespace {

using Params = std::map<std::string, std::string>;

TEST(WwwAuthenticateTest, ParsesDockerHubBearer) {
  auto c = ParseWwwAuthenticate(
      R"(Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull")");
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].scheme, "bearer");
  EXPECT_EQ(c[0].params, (Params{{"realm", "https://auth.docker.io/token"},
                                 {"service", "registry.docker.io"},
                                 {"scope", "repository:library/busybox:pull"}}));
}

TEST(WwwAuthenticateTest, ParsesBasicTokensEscapesAndSeveralChallenges) {
  auto c = ParseWwwAuthenticate(
      R"(Basic realm="kiln \"test\"", Bearer Realm=https://h/t , error="insufficient_scope",scope="repository:a:pull,push")");
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0].scheme, "basic");
  EXPECT_EQ(c[0].params, (Params{{"realm", "kiln \"test\""}}));
  EXPECT_EQ(c[1].scheme, "bearer");
  EXPECT_EQ(c[1].params, (Params{{"realm", "https://h/t"},
                                 {"error", "insufficient_scope"},
                                 {"scope", "repository:a:pull,push"}}));
}

TEST(WwwAuthenticateTest, ToleratesJunk) {
  EXPECT_TRUE(ParseWwwAuthenticate("").empty());
  auto c = ParseWwwAuthenticate(R"(Bearer realm="unterminated)");
  ASSERT_EQ(c.size(), 1u);
  EXPECT_TRUE(c[0].params.empty());
  c = ParseWwwAuthenticate("Basic");
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].scheme, "basic");
}

TEST(RepositoryScopeTest, Formats) {
  EXPECT_EQ(RepositoryScope("library/busybox", false), "repository:library/busybox:pull");
  EXPECT_EQ(RepositoryScope("a/b", true), "repository:a/b:pull,push");
}

}  // namespace
}  // namespace kiln::registry
