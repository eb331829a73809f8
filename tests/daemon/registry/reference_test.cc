#include "daemon/registry/reference.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "base/digest.h"
#include "tests/testutil/status_matchers.h"

namespace kiln::registry {
namespace {

using ::kiln::testing::IsOk;
using ::kiln::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;

const std::string kDigest = Sha256Digest("x");

struct Case {
  std::string in, domain, path, tag, digest, full, familiar;
};

TEST(ReferenceTest, NormalizesLikeDocker) {
  std::vector<Case> cases = {
      {"busybox", "docker.io", "library/busybox", "latest", "", "docker.io/library/busybox:latest",
       "busybox:latest"},
      {"user/app", "docker.io", "user/app", "latest", "", "docker.io/user/app:latest",
       "user/app:latest"},
      {"docker.io/library/alpine:3.19", "docker.io", "library/alpine", "3.19", "",
       "docker.io/library/alpine:3.19", "alpine:3.19"},
      {"index.docker.io/user/app:1", "docker.io", "user/app", "1", "", "docker.io/user/app:1",
       "user/app:1"},
      {"localhost:5000/x:tag", "localhost:5000", "x", "tag", "", "localhost:5000/x:tag",
       "localhost:5000/x:tag"},
      {"localhost/x", "localhost", "x", "latest", "", "localhost/x:latest", "localhost/x:latest"},
      {"ghcr.io/o/a/b@" + kDigest, "ghcr.io", "o/a/b", "", kDigest, "ghcr.io/o/a/b@" + kDigest,
       "ghcr.io/o/a/b@" + kDigest},
      {"host:443/x:v1.2-rc_3@" + kDigest, "host:443", "x", "v1.2-rc_3", kDigest,
       "host:443/x:v1.2-rc_3@" + kDigest, "host:443/x:v1.2-rc_3@" + kDigest},
      {"127.0.0.1:5000/a__b/c-d.e", "127.0.0.1:5000", "a__b/c-d.e", "latest", "",
       "127.0.0.1:5000/a__b/c-d.e:latest", "127.0.0.1:5000/a__b/c-d.e:latest"},
      {"[::1]:5000/x", "[::1]:5000", "x", "latest", "", "[::1]:5000/x:latest",
       "[::1]:5000/x:latest"},
  };
  for (const auto& c : cases) {
    auto r = ParseReference(c.in);
    ASSERT_THAT(r, IsOk()) << c.in;
    EXPECT_EQ(r->domain, c.domain) << c.in;
    EXPECT_EQ(r->path, c.path) << c.in;
    EXPECT_EQ(r->tag, c.tag) << c.in;
    EXPECT_EQ(r->digest, c.digest) << c.in;
    EXPECT_EQ(r->String(), c.full) << c.in;
    EXPECT_EQ(r->FamiliarString(), c.familiar) << c.in;
  }
}

TEST(ReferenceTest, LocatorPrefersDigest) {
  auto r = ParseReference("a:b@" + kDigest);
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->Locator(), kDigest);
  EXPECT_EQ(ParseReference("a:b")->Locator(), "b");
  Reference d = WithDigest(*r, Sha256Digest("y"));
  EXPECT_EQ(d.tag, "");
  EXPECT_EQ(d.String(), "docker.io/library/a@" + Sha256Digest("y"));
}

TEST(ReferenceTest, RejectsBadReferencesNamingThem) {
  for (const std::string& bad : std::vector<std::string>{
           "", "Busybox", "user/App", "busybox:", "busybox:-bad", "a//b", "a/b/", "-a",
           "busybox@sha256:abc", "busybox@md5:" + std::string(32, 'a'), "bad_host:x/y/z",
           "a:" + std::string(129, 't'), "host:5000/x:tag:tag", std::string(64, 'a')}) {
    EXPECT_THAT(ParseReference(bad),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         AllOf(HasSubstr("\"" + bad + "\""), HasSubstr("invalid image reference"))))
        << bad;
  }
  EXPECT_THAT(ParseReference("ghcr.io/Owner/app"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("lowercase")));
  EXPECT_THAT(ParseReference("x@sha512:" + std::string(128, 'a')),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("only sha256")));
}

}  // namespace
}  // namespace kiln::registry
