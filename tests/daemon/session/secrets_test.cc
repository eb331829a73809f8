// GetSecret end to end: the daemon's call through a real session tunnel to the client's
// SecretsService (client/secrets.h), reading files and environment variables at request time.

#include "daemon/session/secrets.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "client/secrets.h"
#include "proto/moby/buildkit/secrets/v1/secrets.grpc.pb.h"
#include "tests/testutil/session_pair.h"
#include "tests/testutil/status_matchers.h"

namespace kiln::session {
namespace {

namespace fs = std::filesystem;
namespace pb = moby::buildkit::secrets::v1;
using ::kiln::testing::IsOk;
using ::kiln::testing::SessionPair;
using ::kiln::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

MATCHER_P(IsOkAndHolds, value, "") {
  if (!arg.ok()) {
    *result_listener << "status is " << arg.status();
    return false;
  }
  return *arg == value;
}

constexpr char kSecretsService[] = "moby.buildkit.secrets.v1.Secrets";

// A client that answers every id with `size` bytes, ignoring the limit honest clients keep.
class GreedySecrets final : public pb::Secrets::Service {
 public:
  explicit GreedySecrets(size_t size) : size_(size) {}
  grpc::Status GetSecret(grpc::ServerContext*, const pb::GetSecretRequest*,
                         pb::GetSecretResponse* resp) override {
    resp->set_data(std::string(size_, 'x'));
    return grpc::Status::OK;
  }

 private:
  size_t size_;
};

class SecretsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           ("kiln_secrets_test_" + std::to_string(std::random_device{}()));
    fs::create_directories(dir_);
  }
  void TearDown() override {
    pair_.reset();
    fs::remove_all(dir_);
  }

  std::string WriteFile(const std::string& name, const std::string& data) {
    fs::path p = dir_ / name;
    std::ofstream(p, std::ios::binary) << data;
    return p.string();
  }

  // Connects a session whose client serves `service` (nothing but Health when null).
  const Session& Connect(grpc::Service* service) {
    std::vector<std::pair<grpc::Service*, std::string>> services;
    if (service != nullptr) services.push_back({service, kSecretsService});
    auto pair = SessionPair::Start(dir_.string(), std::move(services));
    EXPECT_THAT(pair, IsOk());
    pair_ = std::move(*pair);
    return *pair_->session();
  }

  fs::path dir_;
  std::unique_ptr<SessionPair> pair_;
};

TEST_F(SecretsTest, ReadsAFileWhenTheDaemonAsks) {
  std::string file = WriteFile("npmrc", "token=abc\n");
  auto specs = client::ParseSecretSpecs({"id=npm,src=" + file});
  ASSERT_THAT(specs, IsOk());
  client::SecretsService service(*specs);
  const Session& s = Connect(&service);

  auto value = GetSecret(Context(), s, "npm");
  ASSERT_THAT(value, IsOk());
  EXPECT_EQ(*value, "token=abc\n");

  // Read at request time, not when the flag was parsed.
  WriteFile("npmrc", std::string("second\0value", 12));
  value = GetSecret(Context(), s, "npm");
  ASSERT_THAT(value, IsOk());
  EXPECT_EQ(*value, std::string("second\0value", 12));
}

TEST_F(SecretsTest, ReadsAnEnvironmentVariable) {
  ::setenv("KILN_TEST_SECRET_VAR", "from-env", 1);
  ::setenv("KILN_TEST_SECRET_BARE", "bare-id-env", 1);
  auto specs = client::ParseSecretSpecs({"id=tok,env=KILN_TEST_SECRET_VAR",
                                         "type=env,id=tok2,src=KILN_TEST_SECRET_VAR",
                                         "id=KILN_TEST_SECRET_BARE"});
  ASSERT_THAT(specs, IsOk());
  client::SecretsService service(*specs);
  const Session& s = Connect(&service);

  EXPECT_THAT(GetSecret(Context(), s, "tok"), IsOkAndHolds(std::string("from-env")));
  EXPECT_THAT(GetSecret(Context(), s, "tok2"), IsOkAndHolds(std::string("from-env")));
  EXPECT_THAT(GetSecret(Context(), s, "KILN_TEST_SECRET_BARE"),
              IsOkAndHolds(std::string("bare-id-env")));
  ::setenv("KILN_TEST_SECRET_VAR", "changed", 1);
  EXPECT_THAT(GetSecret(Context(), s, "tok"), IsOkAndHolds(std::string("changed")));
  ::unsetenv("KILN_TEST_SECRET_VAR");
  ::unsetenv("KILN_TEST_SECRET_BARE");
}

TEST_F(SecretsTest, UnknownSecretIsNotFound) {
  std::string file = WriteFile("a", "a");
  auto specs = client::ParseSecretSpecs({"id=a,src=" + file});
  ASSERT_THAT(specs, IsOk());
  client::SecretsService service(*specs);
  const Session& s = Connect(&service);
  EXPECT_THAT(GetSecret(Context(), s, "nope"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("secret nope not found")));
}

TEST_F(SecretsTest, ClientWithoutSecretsIsNotFound) {
  const Session& s = Connect(nullptr);
  EXPECT_THAT(GetSecret(Context(), s, "npm"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("secret npm not found")));
}

TEST_F(SecretsTest, FileThatGrewPastTheLimitIsRefusedByTheClient) {
  std::string file = WriteFile("big", "small");
  auto specs = client::ParseSecretSpecs({"id=big,src=" + file});
  ASSERT_THAT(specs, IsOk());
  client::SecretsService service(*specs);
  const Session& s = Connect(&service);
  WriteFile("big", std::string(client::kMaxSecretBytes + 1, 'b'));
  EXPECT_THAT(GetSecret(Context(), s, "big"),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("secret big"), HasSubstr("limit"))));
  WriteFile("big", std::string(client::kMaxSecretBytes, 'b'));
  auto value = GetSecret(Context(), s, "big");
  ASSERT_THAT(value, IsOk());
  EXPECT_EQ(value->size(), client::kMaxSecretBytes);
}

TEST_F(SecretsTest, DaemonRefusesOversizedSecrets) {
  GreedySecrets greedy(kMaxSecretBytes + 1);
  const Session& s = Connect(&greedy);
  auto value = GetSecret(Context(), s, "any");
  EXPECT_THAT(value, StatusIs(absl::StatusCode::kFailedPrecondition,
                              AllOf(HasSubstr("secret any is too big"), HasSubstr("512000"),
                                    Not(HasSubstr("xxxx")))));
}

TEST_F(SecretsTest, DaemonAcceptsASecretOfExactlyTheLimit) {
  GreedySecrets greedy(kMaxSecretBytes);
  const Session& s = Connect(&greedy);
  auto value = GetSecret(Context(), s, "any");
  ASSERT_THAT(value, IsOk());
  EXPECT_EQ(value->size(), kMaxSecretBytes);
}

TEST_F(SecretsTest, CancelledContextStopsTheCall) {
  GreedySecrets greedy(1);
  const Session& s = Connect(&greedy);
  Context ctx;
  ctx.Cancel();
  EXPECT_THAT(GetSecret(ctx, s, "any"),
              StatusIs(absl::StatusCode::kCancelled, HasSubstr("secret")));
}

TEST_F(SecretsTest, ClosedSessionIsUnavailable) {
  GreedySecrets greedy(1);
  Connect(&greedy);
  std::shared_ptr<Session> s = pair_->session();
  pair_->CloseClient();
  for (int i = 0; i < 200 && !s->closed(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_THAT(GetSecret(Context(), *s, "any"),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("closed")));
}

}  // namespace
}  // namespace kiln::session
