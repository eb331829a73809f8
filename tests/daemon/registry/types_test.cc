#include "daemon/registry/types.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/testutil/status_matchers.h"

namespace kiln::registry {
namespace {

using ::kiln::testing::IsOk;
using ::kiln::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;

Platform P(std::string os, std::string arch, std::string variant = "") {
  return Platform{
      .os = std::move(os), .architecture = std::move(arch), .variant = std::move(variant)};
}

TEST(PlatformRankTest, MatchesLikeContainerd) {
  EXPECT_EQ(PlatformRank(P("linux", "amd64"), P("linux", "amd64")), 0);
  EXPECT_EQ(PlatformRank(P("linux", "x86_64"), P("linux", "amd64", "v1")), 0);
  EXPECT_EQ(PlatformRank(P("linux", "amd64"), P("linux", "arm64")), std::nullopt);
  EXPECT_EQ(PlatformRank(P("linux", "amd64"), P("windows", "amd64")), std::nullopt);
  // arm64 means arm64/v8.
  EXPECT_EQ(PlatformRank(P("linux", "arm64"), P("linux", "arm64", "v8")), 0);
  EXPECT_EQ(PlatformRank(P("linux", "aarch64", "v8"), P("linux", "arm64")), 0);
  // arm means arm/v7; older variants run, newer do not.
  EXPECT_EQ(PlatformRank(P("linux", "arm"), P("linux", "arm", "v7")), 0);
  EXPECT_EQ(PlatformRank(P("linux", "arm", "v7"), P("linux", "arm", "v6")), 1);
  EXPECT_EQ(PlatformRank(P("linux", "arm", "v6"), P("linux", "arm", "v7")), std::nullopt);
  EXPECT_EQ(PlatformRank(P("linux", "arm", "v7"), P("linux", "arm")), 0);
  // 64-bit ARM runs 32-bit ARM, as a fallback.
  auto arm_on_arm64 = PlatformRank(P("linux", "arm64"), P("linux", "arm", "v7"));
  ASSERT_TRUE(arm_on_arm64.has_value());
  EXPECT_GT(*arm_on_arm64, 0);
  EXPECT_EQ(PlatformRank(P("linux", "amd64"), P("", "")), std::nullopt);
}

TEST(SelectPlatformTest, PicksBestAndExplainsMisses) {
  std::vector<Descriptor> m = {
      {.digest = "sha256:1", .platform = P("linux", "arm", "v6")},
      {.digest = "sha256:att"},  // attestation manifest: no platform
      {.digest = "sha256:2", .platform = P("linux", "arm", "v7")},
      {.digest = "sha256:3", .platform = P("linux", "amd64")},
      {.digest = "sha256:4", .platform = P("linux", "amd64")},
  };
  EXPECT_EQ(*SelectPlatform(m, P("linux", "arm")), 2u);
  EXPECT_EQ(*SelectPlatform(m, P("linux", "arm", "v6")), 0u);
  EXPECT_EQ(*SelectPlatform(m, P("linux", "amd64")), 3u);  // first on ties
  EXPECT_EQ(*SelectPlatform(m, P("linux", "arm64")), 2u);  // arm/v7 fallback
  EXPECT_THAT(SelectPlatform(m, P("linux", "s390x")),
              StatusIs(absl::StatusCode::kNotFound,
                       AllOf(HasSubstr("linux/s390x"), HasSubstr("linux/arm/v6"),
                             HasSubstr("linux/amd64"))));
}

TEST(ParseManifestTest, IndexAndManifest) {
  auto index = ParseManifest(R"({"schemaVersion":2,"manifests":[
      {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:a","size":10,
       "platform":{"os":"linux","architecture":"arm","variant":"v7"},
       "annotations":{"k":"v"}}]})",
                             "application/vnd.docker.distribution.manifest.list.v2+json");
  ASSERT_THAT(index, IsOk());
  EXPECT_TRUE(index->IsIndex());
  EXPECT_EQ(index->media_type, kMediaTypeDockerList);
  ASSERT_EQ(index->manifests.size(), 1u);
  EXPECT_EQ(index->manifests[0].size, 10);
  EXPECT_EQ(index->manifests[0].platform->variant, "v7");
  EXPECT_EQ(index->manifests[0].annotations.at("k"), "v");

  auto manifest = ParseManifest(
      R"({"mediaType":"application/vnd.docker.distribution.manifest.v2+json",
          "config":{"digest":"sha256:c","size":2},"layers":[{"digest":"sha256:l","size":3}]})",
      "");
  ASSERT_THAT(manifest, IsOk());
  EXPECT_FALSE(manifest->IsIndex());
  EXPECT_EQ(manifest->config->digest, "sha256:c");
  EXPECT_EQ(manifest->layers.size(), 1u);

  EXPECT_THAT(ParseManifest("{", ""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("JSON")));
  EXPECT_THAT(ParseManifest(R"({"config":{"size":2}})", ""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("digest")));
  EXPECT_THAT(ParseManifest(R"({"schemaVersion":1})", ""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unsupported")));
}

}  // namespace
}  // namespace kiln::registry
