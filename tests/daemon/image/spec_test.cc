#include "daemon/image/spec.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "base/digest.h"
#include "daemon/image/media_types.h"
#include "tests/testutil/status_matchers.h"

namespace kiln::image {
namespace {

using ::kiln::testing::IsOk;
using ::kiln::testing::StatusIs;
using ::testing::HasSubstr;

const std::string kDiff1 = Sha256Digest("layer1");
const std::string kDiff2 = Sha256Digest("layer2");

TEST(FormatTimeTest, IsGoRfc3339Nano) {
  EXPECT_EQ(FormatTime(0), "1970-01-01T00:00:00Z");
  EXPECT_EQ(FormatTime(1700000000, 500000000), "2023-11-14T22:13:20.5Z");
  EXPECT_EQ(FormatTime(1700000000, 123), "2023-11-14T22:13:20.000000123Z");
}

TEST(MakeImageConfigTest, OrdersFieldsLikeTheGoStructs) {
  ConfigInput in;
  // A base config as a registry might serve it: sorted keys, Docker's nulls, extra members.
  in.base = R"({"architecture":"amd64","config":{"Cmd":["sh"],"Entrypoint":null,
    "Env":["PATH=/bin"],"Labels":{"z":"1","a":"<&>"},"OnBuild":null,"User":"",
    "Healthcheck":{"Retries":3,"Test":["CMD","true"],"Interval":1000000000},
    "ExposedPorts":{"80/tcp":{}},"WorkingDir":"/w","XUnknown":true},
    "container_config":{"Cmd":["ignored"]},"created":"2024-01-01T00:00:00Z",
    "docker_version":"20.10","history":[{"created":"2024-01-01T00:00:00Z","created_by":"ADD x"},
    {"created_by":"CMD [\"sh\"]","empty_layer":true}],"os":"linux",
    "rootfs":{"type":"layers","diff_ids":["sha256:old"]}})";
  in.diff_ids = {kDiff1};
  absl::StatusOr<std::string> config = MakeImageConfig(in);
  ASSERT_THAT(config, IsOk());
  EXPECT_EQ(*config,
            R"({"created":"2024-01-01T00:00:00Z","architecture":"amd64","os":"linux",)"
            R"("config":{"ExposedPorts":{"80/tcp":{}},"Env":["PATH=/bin"],"Cmd":["sh"],)"
            R"("WorkingDir":"/w","Labels":{"a":"\u003c\u0026\u003e","z":"1"},)"
            R"("Healthcheck":{"Test":["CMD","true"],"Interval":1000000000,"Retries":3},)"
            R"("XUnknown":true},)"
            R"("rootfs":{"type":"layers","diff_ids":[")" +
                kDiff1 +
                R"("]},"history":[{"created":"2024-01-01T00:00:00Z","created_by":"ADD x"},)"
                R"({"created_by":"CMD [\"sh\"]","empty_layer":true}]})");
}

TEST(MakeImageConfigTest, OverridesAndScratch) {
  ConfigInput in;
  in.platform = Platform{.os = "linux", .architecture = "arm64", .variant = "v8"};
  in.config = nlohmann::json{{"Cmd", {"sh"}}, {"Env", {"PATH=/usr/bin"}}};
  in.diff_ids = {kDiff1, kDiff2};
  in.history = std::vector<History>{{.created = "2024-02-02T00:00:00Z", .created_by = "a"},
                                    {.created = "2024-03-03T00:00:00Z", .created_by = "b"}};
  absl::StatusOr<std::string> config = MakeImageConfig(in);
  ASSERT_THAT(config, IsOk());
  EXPECT_EQ(*config, R"({"created":"2024-03-03T00:00:00Z","architecture":"arm64","os":"linux",)"
                     R"("variant":"v8","config":{"Env":["PATH=/usr/bin"],"Cmd":["sh"]},)"
                     R"("rootfs":{"type":"layers","diff_ids":[")" +
                         kDiff1 + R"(",")" + kDiff2 +
                         R"("]},"history":[{"created":"2024-02-02T00:00:00Z","created_by":"a"},)"
                         R"({"created":"2024-03-03T00:00:00Z","created_by":"b"}]})");
  // Same input, same bytes.
  EXPECT_EQ(*MakeImageConfig(in), *config);
}

TEST(MakeImageConfigTest, RejectsHistoryThatDoesNotMatchTheLayers) {
  ConfigInput in;
  in.diff_ids = {kDiff1};
  in.history = std::vector<History>{{.created_by = "a"}, {.created_by = "b"}};
  EXPECT_THAT(MakeImageConfig(in),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("names 2 layers")));
  in.history.reset();
  in.base = "[1]";
  EXPECT_THAT(MakeImageConfig(in), StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
}

TEST(MakeManifestTest, OciAndDocker) {
  Descriptor config = DescriptorOf(kOciConfig, "{}");
  Descriptor layer{.media_type = kOciLayerGzip, .digest = kDiff1, .size = 10};
  absl::StatusOr<std::string> m = MakeManifest(config, {layer}, true, {{"k", "v"}});
  ASSERT_THAT(m, IsOk());
  EXPECT_EQ(*m, R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",)"
                R"("config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":")" +
                    config.digest + R"(","size":2},"layers":[{"mediaType":")" + kOciLayerGzip +
                    R"(","digest":")" + kDiff1 + R"(","size":10}],"annotations":{"k":"v"}})");
  absl::StatusOr<Manifest> parsed = ParseManifest(*m);
  ASSERT_THAT(parsed, IsOk());
  EXPECT_EQ(parsed->config.digest, config.digest);
  ASSERT_EQ(parsed->layers.size(), 1u);
  EXPECT_EQ(parsed->layers[0].size, 10);
  EXPECT_EQ(parsed->annotations.at("k"), "v");

  config.media_type = ConfigMediaType(false);
  layer.media_type = kDockerLayerGzip;
  absl::StatusOr<std::string> d = MakeManifest(config, {layer}, false);
  ASSERT_THAT(d, IsOk());
  EXPECT_THAT(*d,
              HasSubstr(R"("mediaType":"application/vnd.docker.distribution.manifest.v2+json")"));
  EXPECT_THAT(MakeManifest(config, {layer}, false, {{"k", "v"}}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("annotations")));
}

TEST(MakeIndexTest, CarriesPlatforms) {
  Descriptor m{.media_type = kOciManifest, .digest = kDiff1, .size = 5};
  m.platform = Platform{.os = "linux", .architecture = "amd64"};
  absl::StatusOr<std::string> index = MakeIndex({m}, true);
  ASSERT_THAT(index, IsOk());
  EXPECT_EQ(*index, R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",)"
                    R"("manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json",)"
                    R"("digest":")" +
                        kDiff1 +
                        R"(","size":5,"platform":{"architecture":"amd64","os":"linux"}}]})");
  absl::StatusOr<Index> parsed = ParseIndex(*index);
  ASSERT_THAT(parsed, IsOk());
  ASSERT_EQ(parsed->manifests.size(), 1u);
  ASSERT_TRUE(parsed->manifests[0].platform.has_value());
  EXPECT_EQ(parsed->manifests[0].platform->architecture, "amd64");
  EXPECT_THAT(ParseIndex(R"({"manifests":[{"digest":"sha256:zz","size":1}]})"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("digest")));
}

}  // namespace
}  // namespace kiln::image
