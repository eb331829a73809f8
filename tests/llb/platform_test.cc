#include "llb/platform.h"

#include <gtest/gtest.h>

namespace kiln::llb {
namespace {

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

}  // namespace
}  // namespace kiln::llb
