#include "llb/source.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "llb/marshal.h"
#include "tests/testutil/status_matchers.h"

namespace kiln::llb {
namespace {

using ::kiln::testing::IsOk;
using ::kiln::testing::StatusIs;
using ::testing::HasSubstr;

TEST(NormalizeImageRefTest, NormalizesLikeDistributionReference) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"busybox", "docker.io/library/busybox:latest"},
      {"ubuntu:22.04", "docker.io/library/ubuntu:22.04"},
      {"foo/bar", "docker.io/foo/bar:latest"},
      {"index.docker.io/foo", "docker.io/library/foo:latest"},
      {"localhost/x", "localhost/x:latest"},
      {"registry:5000/team/app:v1", "registry:5000/team/app:v1"},
      {"ghcr.io/a/b:t@sha256:" + std::string(64, 'a'),
       "ghcr.io/a/b:t@sha256:" + std::string(64, 'a')},
      {"Upper.io/a", "Upper.io/a:latest"},
  };
  for (const auto& [in, want] : cases) {
    absl::StatusOr<std::string> got = NormalizeImageRef(in);
    ASSERT_THAT(got, IsOk()) << in;
    EXPECT_EQ(*got, want) << in;
  }
}

TEST(NormalizeImageRefTest, RejectsMalformedReferences) {
  EXPECT_THAT(NormalizeImageRef("Busybox"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("must be lowercase")));
  EXPECT_THAT(NormalizeImageRef(std::string(64, 'a')),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("64-byte hexadecimal")));
  EXPECT_THAT(NormalizeImageRef("a@sha256:abc"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("invalid reference format")));
  EXPECT_THAT(NormalizeImageRef("a@sha256:" + std::string(64, 'A')),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("digest")));
  EXPECT_THAT(NormalizeImageRef("a b"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("format")));
  EXPECT_THAT(NormalizeImageRef(""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("format")));
}

TEST(ImageTest, MalformedReferenceFailsAtMarshal) {
  State bad = Image("Not/Valid");
  EXPECT_THAT(Marshal(bad), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("Not/Valid")));
}

}  // namespace
}  // namespace kiln::llb
