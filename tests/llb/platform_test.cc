#include "llb/platform.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/testutil/status_matchers.h"

namespace kiln::llb {
namespace {

using ::kiln::testing::IsOk;
using ::kiln::testing::StatusIs;
using ::testing::HasSubstr;

TEST(PlatformTest, NormalizesLikeContainerd) {
  EXPECT_EQ(NormalizePlatform({.os = "Linux", .architecture = "x86_64"}),
            (Platform{.os = "linux", .architecture = "amd64"}));
  EXPECT_EQ(NormalizePlatform({.os = "linux", .architecture = "aarch64", .variant = "v8"}),
            (Platform{.os = "linux", .architecture = "arm64"}));
  EXPECT_EQ(NormalizePlatform({.os = "linux", .architecture = "armhf"}),
            (Platform{.os = "linux", .architecture = "arm", .variant = "v7"}));
  EXPECT_EQ(NormalizePlatform({.os = "linux", .architecture = "arm", .variant = "6"}),
            (Platform{.os = "linux", .architecture = "arm", .variant = "v6"}));
  EXPECT_EQ(HostPlatform().os, "linux");
  EXPECT_FALSE(HostPlatform().architecture.empty());
}

TEST(PlatformTest, ParsesAndFormats) {
  auto p = ParsePlatform("linux/aarch64");
  ASSERT_THAT(p, IsOk());
  EXPECT_EQ(FormatPlatform(*p), "linux/arm64");
  EXPECT_EQ(FormatPlatform(*ParsePlatform("linux/arm")), "linux/arm/v7");
  EXPECT_THAT(ParsePlatform("linux/amd64/"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("os/arch[/variant]")));
  EXPECT_THAT(ParsePlatform("linux"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("\"linux\"")));
}

}  // namespace
}  // namespace kiln::llb
