#include "daemon/http/client.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/testutil/status_matchers.h"

namespace kiln::http {
namespace {

using ::kiln::testing::IsOk;

TEST(UrlTest, ParsesAndResolvesLocations) {
  auto u = ParseUrl("https://auth.example.com:8443/token?x=1");
  ASSERT_THAT(u, IsOk());
  EXPECT_TRUE(u->endpoint.https);
  EXPECT_EQ(u->endpoint.authority, "auth.example.com:8443");
  EXPECT_EQ(u->target, "/token?x=1");
  EXPECT_EQ(ParseUrl("http://h")->target, "/");
  EXPECT_FALSE(ParseUrl("ftp://h/x").ok());
  EXPECT_FALSE(ParseUrl("https:///x").ok());

  Url base{.endpoint = {.authority = "reg:5000", .https = false, .insecure = true},
           .target = "/v2/a/blobs/uploads/"};
  auto rel = ResolveLocation(base, "/v2/a/blobs/uploads/uuid?_state=abc");
  ASSERT_THAT(rel, IsOk());
  EXPECT_EQ(rel->endpoint, base.endpoint);
  EXPECT_EQ(rel->target, "/v2/a/blobs/uploads/uuid?_state=abc");
  auto abs = ResolveLocation(base, "http://reg:5000/v2/a/blobs/uploads/u2");
  ASSERT_THAT(abs, IsOk());
  EXPECT_TRUE(abs->endpoint.insecure);  // same host keeps its settings
  EXPECT_EQ(abs->target, "/v2/a/blobs/uploads/u2");
  auto other = ResolveLocation(base, "https://s3.example.com/bucket/x?sig=1");
  ASSERT_THAT(other, IsOk());
  EXPECT_EQ(other->endpoint.authority, "s3.example.com");
  EXPECT_TRUE(other->endpoint.https);
  EXPECT_FALSE(other->endpoint.insecure);
  EXPECT_EQ(ResolveLocation(base, "uuid3")->target, "/v2/a/blobs/uploads/uuid3");
}

TEST(UrlTest, QueryHelpers) {
  EXPECT_EQ(QueryEscape("repository:a/b:pull,push"), "repository%3Aa%2Fb%3Apull%2Cpush");
  EXPECT_EQ(AppendQuery("/x", "digest", "sha256:ab"), "/x?digest=sha256%3Aab");
  EXPECT_EQ(AppendQuery("/x?_state=1", "digest", "d"), "/x?_state=1&digest=d");
  EXPECT_EQ(AppendQuery("/x?", "a", "b"), "/x?a=b");
}

}  // namespace
}  // namespace kiln::http
