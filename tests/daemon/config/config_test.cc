#include "daemon/config/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include "tests/testutil/status_matchers.h"

namespace kiln::config {
namespace {

using ::kiln::testing::IsOk;
using ::kiln::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

TEST(ConfigTest, EmptyFileGivesDefaults) {
  auto r = ParseConfig("", "kilnd.toml");
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->config.root, "/var/lib/kiln");
  EXPECT_THAT(r->config.addresses, IsEmpty());
  EXPECT_FALSE(r->config.debug);
  EXPECT_FALSE(r->config.gc_keep_storage.IsSet());
  EXPECT_THAT(r->warnings, IsEmpty());
}

TEST(ConfigTest, ReadsEverySupportedKey) {
  auto r = ParseConfig(R"(
root = "/srv/kiln"
debug = true

[grpc]
address = ["unix:///run/k.sock", "tcp://0.0.0.0:1234"]
[grpc.tls]
cert = "/etc/k/cert.pem"
key = "/etc/k/key.pem"
ca = "/etc/k/ca.pem"

[worker.oci]
gckeepstorage = "10GB"
binary = "runc"

[registry."docker.io"]
mirrors = ["mirror.example.com:5000"]

[registry."localhost:5000"]
http = true
insecure = true
)",
                       "kilnd.toml");
  ASSERT_THAT(r, IsOk());
  const Config& c = r->config;
  EXPECT_EQ(c.root, "/srv/kiln");
  EXPECT_TRUE(c.debug);
  EXPECT_THAT(c.addresses, ElementsAre("unix:///run/k.sock", "tcp://0.0.0.0:1234"));
  EXPECT_EQ(c.tls, (TlsConfig{"/etc/k/cert.pem", "/etc/k/key.pem", "/etc/k/ca.pem"}));
  EXPECT_EQ(c.gc_keep_storage.bytes, int64_t{10} << 30);
  EXPECT_EQ(c.oci_binary, "runc");
  ASSERT_EQ(c.registries.size(), 2u);
  EXPECT_THAT(c.registries.at("docker.io").mirrors, ElementsAre("mirror.example.com:5000"));
  EXPECT_FALSE(c.registries.at("docker.io").http);
  EXPECT_TRUE(c.registries.at("localhost:5000").http);
  EXPECT_TRUE(c.registries.at("localhost:5000").insecure);
  EXPECT_THAT(r->warnings, IsEmpty());
}

TEST(ConfigTest, SingleAddressStringIsAccepted) {
  auto r = ParseConfig("[grpc]\naddress = \"unix:///x.sock\"\n", "f.toml");
  ASSERT_THAT(r, IsOk());
  EXPECT_THAT(r->config.addresses, ElementsAre("unix:///x.sock"));
}

TEST(ConfigTest, UnknownKeysWarnAndNameTheKey) {
  auto r = ParseConfig(R"(
bogus = 1
[grpc]
adress = ["typo"]
[worker.oci]
snapshotter = "overlayfs"
[registry."r.io"]
colour = "blue"
)",
                       "f.toml");
  ASSERT_THAT(r, IsOk());
  EXPECT_THAT(
      r->warnings,
      UnorderedElementsAre(
          "config f.toml: unknown key 'bogus'; ignored",
          "config f.toml: unknown key 'grpc.adress'; ignored",
          "config f.toml: key 'worker.oci.snapshotter' is a buildkitd setting that kiln does "
          "not support; ignored",
          "config f.toml: unknown key 'registry.\"r.io\".colour'; ignored"));
}

TEST(ConfigTest, WrongTypesFailNamingFileAndKey) {
  struct Case {
    const char* toml;
    const char* key;
    const char* want;
  };
  for (const Case& c : {
           Case{"root = 5", "'root'", "must be a string, got an integer"},
           Case{"debug = \"yes\"", "'debug'", "must be a boolean, got a string"},
           Case{"[grpc]\naddress = 3", "'grpc.address'", "must be an array of strings"},
           Case{"[grpc]\naddress = [\"a\", 2]", "'grpc.address[1]'", "must be a string"},
           Case{"[worker.oci]\ngckeepstorage = true", "'worker.oci.gckeepstorage'",
                "must be a size"},
           Case{"[worker.oci]\ngckeepstorage = \"lots\"", "'worker.oci.gckeepstorage'",
                "invalid size \"lots\""},
           Case{"[registry.\"a.io\"]\nhttp = \"true\"", "'registry.\"a.io\".http'",
                "must be a boolean"},
           Case{"registry = 1", "'registry'", "must be a table"},
       }) {
    auto r = ParseConfig(c.toml, "/etc/kiln/kilnd.toml");
    EXPECT_THAT(r, StatusIs(absl::StatusCode::kInvalidArgument,
                            ::testing::AllOf(HasSubstr("/etc/kiln/kilnd.toml"), HasSubstr(c.key),
                                             HasSubstr(c.want))))
        << c.toml;
  }
}

TEST(ConfigTest, MalformedTomlNamesFileAndLine) {
  auto r = ParseConfig("root = \"/x\"\n[grpc\naddress = []\n", "bad.toml");
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kInvalidArgument,
                          ::testing::AllOf(HasSubstr("bad.toml"), HasSubstr("line 2"))));
}

TEST(ConfigTest, IntegerKeepStorageIsBytes) {
  auto r = ParseConfig("[worker.oci]\ngckeepstorage = 5000000\n", "f.toml");
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->config.gc_keep_storage.bytes, 5000000);
}

TEST(ConfigTest, ParseDiskSpace) {
  EXPECT_EQ(ParseDiskSpace("1000")->bytes, 1000);
  EXPECT_EQ(ParseDiskSpace("512MiB")->bytes, int64_t{512} << 20);
  EXPECT_EQ(ParseDiskSpace("1.5g")->bytes, int64_t{3} << 29);
  EXPECT_EQ(ParseDiskSpace("2kb")->bytes, 2048);
  EXPECT_EQ(ParseDiskSpace("\"10%\"")->percentage, 10);
  EXPECT_THAT(ParseDiskSpace("101%"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("101%")));
  EXPECT_THAT(ParseDiskSpace("10XB"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("10XB")));
  EXPECT_THAT(ParseDiskSpace(""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("invalid")));
  EXPECT_EQ((DiskSpace{.percentage = 10}).AsBytes(1000), 100);
}

TEST(ConfigTest, LoadConfigFileReportsMissingFile) {
  auto r = LoadConfigFile("/nonexistent/kilnd.toml");
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kNotFound, HasSubstr("/nonexistent/kilnd.toml")));
}

TEST(ConfigTest, LoadConfigFileReadsDisk) {
  std::string path = ::testing::TempDir() + "/kiln_config_test.toml";
  std::ofstream(path) << "root = \"/tmp/kroot\"\n";
  auto r = LoadConfigFile(path);
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->config.root, "/tmp/kroot");
  std::remove(path.c_str());
}

}  // namespace
}  // namespace kiln::config
