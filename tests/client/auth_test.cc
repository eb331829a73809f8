// Registry credentials from a docker config, and through a real session to the daemon side.

#include "client/auth.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>

#include "daemon/session/auth.h"
#include "tests/testutil/session_pair.h"
#include "tests/testutil/status_matchers.h"

namespace kiln::client {
namespace {

namespace fs = std::filesystem;
using ::kiln::testing::IsOk;
using ::kiln::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Optional;

class AuthTest : public ::testing::Test {
 protected:
  void SetUp() override { fs::create_directories(dir_); }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path Write(const std::string& text) {
    fs::path f = dir_ / "config.json";
    std::ofstream(f) << text;
    return f;
  }
  // A credential helper program `docker-credential-NAME` on PATH that runs `script`.
  void Helper(const std::string& name, const std::string& script) {
    fs::path bin = dir_ / "bin";
    fs::create_directories(bin);
    fs::path p = bin / ("docker-credential-" + name);
    std::ofstream(p) << "#!/bin/sh\n" << script << "\n";
    chmod(p.c_str(), 0755);
    std::string path = bin.string() + ":" + std::getenv("PATH");
    setenv("PATH", path.c_str(), 1);
  }
  fs::path dir_ =
      fs::path(::testing::TempDir()) / ("kiln_auth_test_" + std::to_string(std::random_device{}()));
};

TEST_F(AuthTest, HostsNormalizeLikeDocker) {
  EXPECT_EQ(NormalizeRegistryHost("https://index.docker.io/v1/"), "docker.io");
  EXPECT_EQ(NormalizeRegistryHost("registry-1.docker.io"), "docker.io");
  EXPECT_EQ(NormalizeRegistryHost("http://Localhost:5000/v2/"), "localhost:5000");
  EXPECT_EQ(NormalizeRegistryHost("ghcr.io"), "ghcr.io");
}

TEST_F(AuthTest, AuthsEntriesInEveryForm) {
  auto cfg = DockerConfig::Load(Write(R"({"auths": {
      "https://index.docker.io/v1/": {"auth": "aHViLXVzZXI6aHViLXBhc3M="},
      "localhost:5000": {"username": "u", "password": "p"},
      "ghcr.io": {"auth": "", "identitytoken": "refresh-token"},
      "empty.example": {}}})"));
  ASSERT_THAT(cfg, IsOk());
  EXPECT_THAT(cfg->Lookup("docker.io"), IsOk());
  EXPECT_THAT(*cfg->Lookup("docker.io"), Optional(Credentials{"hub-user", "hub-pass"}));
  EXPECT_THAT(*cfg->Lookup("localhost:5000"), Optional(Credentials{"u", "p"}));
  EXPECT_THAT(*cfg->Lookup("ghcr.io"), Optional(Credentials{"", "refresh-token"}));
  EXPECT_EQ(*cfg->Lookup("empty.example"), std::nullopt);
  EXPECT_EQ(*cfg->Lookup("quay.io"), std::nullopt);
}

TEST_F(AuthTest, MissingFileIsAnonymousAndJunkIsAnError) {
  auto none = DockerConfig::Load(dir_ / "nope.json");
  ASSERT_THAT(none, IsOk());
  EXPECT_EQ(*none->Lookup("docker.io"), std::nullopt);
  EXPECT_THAT(DockerConfig::Load(Write("{not json")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("config.json")));
  EXPECT_THAT(DockerConfig::Load(Write(R"({"auths": {"h": {"auth": "!!!"}}})")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("auths.h.auth")));
}

TEST_F(AuthTest, CredentialHelpersAndStore) {
  Helper("kilnhelper",
         R"(read server; if [ "$server" = "https://index.docker.io/v1/" ]; then
  echo '{"ServerURL":"x","Username":"from-helper","Secret":"s1"}'; else
  echo "credentials not found in native keychain"; exit 1; fi)");
  Helper("kilnstore",
         R"(read server; echo "{\"Username\":\"<token>\",\"Secret\":\"tok-for-$server\"}")");
  Helper("kilnbroken", "echo 'keychain locked' >&2; echo 'keychain locked'; exit 3");
  auto cfg = DockerConfig::Load(Write(R"({
      "auths": {"registry.example": {"auth": "dTpw"}},
      "credHelpers": {"docker.io": "kilnhelper", "quay.io": "kilnhelper",
                      "broken.example": "kilnbroken", "gone.example": "nosuchhelper"},
      "credsStore": "kilnstore"})"));
  ASSERT_THAT(cfg, IsOk());
  EXPECT_THAT(*cfg->Lookup("docker.io"), Optional(Credentials{"from-helper", "s1"}));
  EXPECT_EQ(*cfg->Lookup("quay.io"), std::nullopt);  // the helper has none
  EXPECT_THAT(*cfg->Lookup("other.example"),
              Optional(Credentials{"", "tok-for-other.example"}));  // credsStore, identity token
  EXPECT_THAT(cfg->Lookup("broken.example"),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("keychain locked")));
  EXPECT_THAT(cfg->Lookup("gone.example"),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("not installed")));
}

TEST_F(AuthTest, DaemonGetsCredentialsThroughTheSession) {
  auto cfg =
      DockerConfig::Load(Write(R"({"auths": {"localhost:5000": {"auth": "YWxpY2U6czNjcjN0"}}})"));
  ASSERT_THAT(cfg, IsOk());
  AuthService auth(*cfg);
  auto pair = testing::SessionPair::Start(dir_.string(), {{&auth, "moby.filesync.v1.Auth"}});
  ASSERT_THAT(pair, IsOk());
  auto creds = session::GetRegistryCredentials(Context(), *(*pair)->session(), "localhost:5000");
  ASSERT_THAT(creds, IsOk());
  EXPECT_EQ(creds->username, "alice");
  EXPECT_EQ(creds->secret, "s3cr3t");
  auto none = session::GetRegistryCredentials(Context(), *(*pair)->session(), "ghcr.io");
  ASSERT_THAT(none, IsOk());
  EXPECT_TRUE(none->empty());
}

TEST_F(AuthTest, ClientsWithoutAuthAreAnonymous) {
  auto pair = testing::SessionPair::Start(dir_.string(), {});
  ASSERT_THAT(pair, IsOk());
  auto creds = session::GetRegistryCredentials(Context(), *(*pair)->session(), "docker.io");
  ASSERT_THAT(creds, IsOk());
  EXPECT_TRUE(creds->empty());
}

}  // namespace
}  // namespace kiln::client
