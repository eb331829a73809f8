// The session tunnel end to end in one process: a real kilnd gRPC server on a unix socket, a
// real client session (gRPC server inside the Control.Session stream), and daemon-side calls
// back through the tunnel.

#include "daemon/session/manager.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <random>
#include <thread>

#include "client/session.h"
#include "daemon/server/control_service.h"
#include "daemon/server/server.h"
#include "daemon/util/logging.h"
#include "proto/moby/buildkit/secrets/v1/secrets.grpc.pb.h"
#include "tests/testutil/status_matchers.h"

namespace kiln::session {
namespace {

namespace fs = std::filesystem;
namespace secrets = moby::buildkit::secrets::v1;
using ::kiln::testing::IsOk;
using ::kiln::testing::StatusIs;
using ::testing::HasSubstr;
using namespace std::chrono_literals;

// Serves one secret of `size` bytes, to push large messages through the tunnel.
class BigSecrets final : public secrets::Secrets::Service {
 public:
  explicit BigSecrets(size_t size) : data_(size, 's') {
    for (size_t i = 0; i < size; i += 4096) data_[i] = static_cast<char>('a' + (i / 4096) % 26);
  }
  grpc::Status GetSecret(grpc::ServerContext*, const secrets::GetSecretRequest* req,
                         secrets::GetSecretResponse* resp) override {
    if (req->id() != "big") return grpc::Status(grpc::StatusCode::NOT_FOUND, "no such secret");
    resp->set_data(data_);
    return grpc::Status::OK;
  }
  const std::string& data() const { return data_; }

 private:
  std::string data_;
};

class SickHealth final : public grpc::health::v1::Health::Service {
  grpc::Status Check(grpc::ServerContext*, const grpc::health::v1::HealthCheckRequest*,
                     grpc::health::v1::HealthCheckResponse* resp) override {
    resp->set_status(grpc::health::v1::HealthCheckResponse::NOT_SERVING);
    return grpc::Status::OK;
  }
};

class SessionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    InitLogging(getenv("KILN_TEST_DEBUG") != nullptr);
    root_ = fs::path(::testing::TempDir()) /
            ("kiln_session_test_" + std::to_string(std::random_device{}()));
    fs::create_directories(root_);
    auto cache = cache::Manager::Open({.root = root_});
    ASSERT_THAT(cache, IsOk());
    cache_ = std::move(*cache);
    sessions_ = std::make_unique<Manager>(
        Manager::Options{.health_interval = 50ms, .health_timeout = 2000ms});
    base_.worker = {.cache = cache_.get(), .sessions = sessions_.get()};
    control_ = std::make_unique<server::ControlService>(
        server::ControlService::Options{.base = &base_, .pool = &pool_});
    auto srv = server::Server::Start(
        {.addresses = {"unix://" + (root_ / "k.sock").string()}, .services = {control_.get()}});
    ASSERT_THAT(srv, IsOk());
    server_ = std::move(*srv);
    channel_ = grpc::CreateChannel("unix:" + (root_ / "k.sock").string(),
                                   grpc::InsecureChannelCredentials());
  }
  void TearDown() override {
    sessions_->Shutdown();
    server_.reset();
    pool_.join();
    fs::remove_all(root_);
  }

  std::unique_ptr<client::SessionServer> Connect(grpc::Service* health,
                                                 grpc::Service* extra = nullptr) {
    client::SessionOptions opts{.name = "test", .shared_key = "key1"};
    opts.services.push_back({health, "grpc.health.v1.Health"});
    if (extra) opts.services.push_back({extra, "moby.buildkit.secrets.v1.Secrets"});
    auto s = client::SessionServer::Start(channel_, std::move(opts));
    EXPECT_THAT(s, IsOk());
    return std::move(*s);
  }

  fs::path root_;
  boost::asio::thread_pool pool_{2};
  std::unique_ptr<cache::Manager> cache_;
  std::unique_ptr<Manager> sessions_;
  server::WorkerBase base_;
  std::unique_ptr<server::ControlService> control_;
  std::unique_ptr<server::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
};

TEST_F(SessionTest, DaemonCallsClientServicesThroughTheTunnel) {
  client::HealthService health;
  auto client = Connect(&health);
  auto s = sessions_->Get(Context(), client->id(), 5000ms);
  ASSERT_THAT(s, IsOk());
  EXPECT_EQ((*s)->name(), "test");
  EXPECT_EQ((*s)->shared_key(), "key1");
  EXPECT_TRUE((*s)->Supports("/grpc.health.v1.Health/Check"));
  EXPECT_TRUE((*s)->Supports("/GRPC.HEALTH.V1.HEALTH/CHECK"));
  EXPECT_FALSE((*s)->Supports("/moby.filesync.v1.FileSync/DiffCopy"));
  EXPECT_THAT((*s)->CheckMethod("/moby.filesync.v1.FileSync/DiffCopy"),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("FileSync/DiffCopy")));

  auto stub = grpc::health::v1::Health::NewStub((*s)->channel());
  grpc::ClientContext ctx;
  grpc::health::v1::HealthCheckResponse resp;
  ASSERT_TRUE(stub->Check(&ctx, grpc::health::v1::HealthCheckRequest(), &resp).ok());
  EXPECT_EQ(resp.status(), grpc::health::v1::HealthCheckResponse::SERVING);
}

TEST_F(SessionTest, LargeMessagesCrossTheTunnelIntact) {
  client::HealthService health;
  BigSecrets big(12 << 20);  // 12 MiB: many chunks, exercises the pumps' backpressure
  auto client = Connect(&health, &big);
  auto s = sessions_->Get(Context(), client->id(), 5000ms);
  ASSERT_THAT(s, IsOk());
  auto stub = secrets::Secrets::NewStub((*s)->channel());
  for (int i = 0; i < 3; ++i) {
    grpc::ClientContext ctx;
    secrets::GetSecretRequest req;
    req.set_id("big");
    secrets::GetSecretResponse resp;
    grpc::Status st = stub->GetSecret(&ctx, req, &resp);
    ASSERT_TRUE(st.ok()) << st.error_message();
    EXPECT_TRUE(resp.data() == big.data());
  }
}

TEST_F(SessionTest, ClosingTheClientClosesTheSession) {
  client::HealthService health;
  auto client = Connect(&health);
  auto s = sessions_->Get(Context(), client->id(), 5000ms);
  ASSERT_THAT(s, IsOk());
  client->Close();
  for (int i = 0; i < 100 && !(*s)->closed(); ++i) std::this_thread::sleep_for(50ms);
  EXPECT_TRUE((*s)->closed());
  for (int i = 0; i < 100 && sessions_->open_sessions() > 0; ++i) std::this_thread::sleep_for(50ms);
  EXPECT_EQ(sessions_->open_sessions(), 0u);
  EXPECT_THAT((*s)->CheckMethod(session::kHealthCheckMethod),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("closed")));
}

TEST_F(SessionTest, TwoFailedHealthChecksCloseTheSession) {
  SickHealth sick;
  auto client = Connect(&sick);
  auto s = sessions_->Get(Context(), client->id(), 5000ms);
  ASSERT_THAT(s, IsOk());
  for (int i = 0; i < 100 && !(*s)->closed(); ++i) std::this_thread::sleep_for(50ms);
  EXPECT_TRUE((*s)->closed());
  EXPECT_THAT((*s)->close_reason(), HasSubstr("health checks"));
}

TEST_F(SessionTest, GetTimesOutNamingTheSession) {
  EXPECT_THAT(sessions_->Get(Context(), "nosuchsession", 200ms),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("nosuchsession")));
  Context cancelled;
  cancelled.Cancel();
  EXPECT_THAT(sessions_->Get(cancelled, "x", 5000ms),
              StatusIs(absl::StatusCode::kCancelled, HasSubstr("session")));
}

TEST_F(SessionTest, SessionWithoutIdIsRejected) {
  auto stub = moby::buildkit::v1::Control::NewStub(channel_);
  grpc::ClientContext ctx;
  auto stream = stub->Session(&ctx);
  stream->WritesDone();
  grpc::Status st = stream->Finish();
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(st.error_message(), HasSubstr("x-docker-expose-session-uuid"));
}

}  // namespace
}  // namespace kiln::session
