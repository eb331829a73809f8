// In-process tests of kilnd's gRPC surface: real server on a temp unix socket, real client stub.

#include <netinet/in.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>

#include <boost/asio/post.hpp>
#include <thread>

#include "absl/strings/str_cat.h"
#include "daemon/cache/manager.h"
#include "daemon/content/store.h"
#include "daemon/ops/worker.h"
#include "daemon/registry/client.h"
#include "daemon/registry/reference.h"
#include "daemon/server/control_service.h"
#include "daemon/server/gateway.h"
#include "daemon/server/server.h"
#include "daemon/server/tls_terminator.h"
#include "daemon/server/worker_info.h"
#include "llb/llb.h"
#include "proto/moby/buildkit/v1/control.grpc.pb.h"
#include "proto/moby/buildkit/v1/frontend/gateway.grpc.pb.h"
#include "tests/daemon/registry/registry_fixture.h"
#include "tests/testutil/status_matchers.h"

namespace kiln::server {
namespace {

namespace fs = std::filesystem;
namespace v1 = moby::buildkit::v1;
using ::kiln::testing::IsOk;
using ::kiln::testing::StatusIs;
using ::testing::HasSubstr;

TEST(ListenAddressTest, Parses) {
  auto u = ParseListenAddress("unix:///run/kiln/kilnd.sock");
  ASSERT_THAT(u, IsOk());
  EXPECT_EQ(u->kind, ListenAddress::Kind::kUnix);
  EXPECT_EQ(u->path, "/run/kiln/kilnd.sock");
  auto t = ParseListenAddress("tcp://0.0.0.0:1234");
  ASSERT_THAT(t, IsOk());
  EXPECT_EQ(t->hostport, "0.0.0.0:1234");
  EXPECT_THAT(ParseListenAddress("http://x"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("http://x")));
  EXPECT_THAT(ParseListenAddress("tcp://nohost"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("tcp://HOST:PORT")));
  EXPECT_THAT(ParseListenAddress("unix://rel.sock"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("absolute")));
}

class ControlServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::path(::testing::TempDir()) /
            ("kiln_server_test_" + std::to_string(std::random_device{}()));
    fs::create_directories(root_);
    auto cache = cache::Manager::Open({.root = root_});
    ASSERT_THAT(cache, IsOk());
    cache_ = std::move(*cache);
    WorkerInfo worker{.id = "testworker",
                      .labels = WorkerLabels("crun"),
                      .platforms = DetectPlatforms(),
                      .gc_policy = cache::DefaultGcPolicy(0, int64_t{100} << 30)};
    base_.worker.cache = cache_.get();
    control_ = std::make_unique<ControlService>(ControlService::Options{
        .base = &base_, .pool = &pool_, .progress = &progress_, .worker = worker});
    socket_ = (root_ / "k.sock").string();
    auto srv = Server::Start(
        {.addresses = {"unix://" + socket_}, .services = {control_.get()}, .fallback = &fallback_});
    ASSERT_THAT(srv, IsOk());
    server_ = std::move(*srv);
    channel_ = grpc::CreateChannel("unix:" + socket_, grpc::InsecureChannelCredentials());
    stub_ = v1::Control::NewStub(channel_);
  }
  void TearDown() override {
    server_.reset();
    pool_.join();
    fs::remove_all(root_);
  }

  fs::path root_;
  std::string socket_;
  boost::asio::thread_pool pool_{2};
  ProgressRegistry progress_;
  std::unique_ptr<cache::Manager> cache_;
  WorkerBase base_;
  std::unique_ptr<ControlService> control_;
  UnimplementedService fallback_;
  std::unique_ptr<Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Control::Stub> stub_;
};

TEST_F(ControlServiceTest, SocketIsGroupAccessibleOnly) {
  EXPECT_EQ(fs::status(socket_).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                fs::perms::group_write);
}

TEST_F(ControlServiceTest, InfoReportsBuildkitCompatibleVersion) {
  grpc::ClientContext ctx;
  v1::InfoResponse resp;
  ASSERT_TRUE(stub_->Info(&ctx, v1::InfoRequest(), &resp).ok());
  EXPECT_THAT(resp.buildkitversion().version(), ::testing::StartsWith("v0.24.0+kiln."));
  EXPECT_FALSE(resp.buildkitversion().package().empty());
}

TEST_F(ControlServiceTest, ListWorkersReportsOneOciWorker) {
  grpc::ClientContext ctx;
  v1::ListWorkersResponse resp;
  ASSERT_TRUE(stub_->ListWorkers(&ctx, v1::ListWorkersRequest(), &resp).ok());
  ASSERT_EQ(resp.record_size(), 1);
  const auto& w = resp.record(0);
  EXPECT_EQ(w.id(), "testworker");
  EXPECT_EQ(w.labels().at("org.mobyproject.buildkit.worker.executor"), "oci");
  EXPECT_EQ(w.labels().at("org.mobyproject.buildkit.worker.snapshotter"), "overlayfs");
  ASSERT_GE(w.platforms_size(), 1);
  EXPECT_EQ(w.platforms(0).os(), "linux");
  EXPECT_EQ(w.gcpolicy_size(), 4);
}

TEST_F(ControlServiceTest, ListWorkersFilters) {
  v1::ListWorkersRequest req;
  req.add_filter("id==other");
  grpc::ClientContext ctx;
  v1::ListWorkersResponse resp;
  ASSERT_TRUE(stub_->ListWorkers(&ctx, req, &resp).ok());
  EXPECT_EQ(resp.record_size(), 0);
  req.set_filter(0, "labels.org.mobyproject.buildkit.worker.executor==oci");
  grpc::ClientContext ctx2;
  ASSERT_TRUE(stub_->ListWorkers(&ctx2, req, &resp).ok());
  EXPECT_EQ(resp.record_size(), 1);
}

TEST_F(ControlServiceTest, DiskUsageAndPruneOverTheStateRoot) {
  // One record as the solver will leave them: data under snapshots/<id>, a row in kiln.db.
  fs::create_directories(cache_->SnapshotDir("r1") / "fs");
  std::ofstream(cache_->SnapshotDir("r1") / "fs" / "f") << std::string(10000, 'x');
  ASSERT_THAT(cache_->store().Put({.id = "r1", .description = "test", .created_at_ns = 1}), IsOk());

  grpc::ClientContext ctx;
  v1::DiskUsageResponse du;
  ASSERT_TRUE(stub_->DiskUsage(&ctx, v1::DiskUsageRequest(), &du).ok());
  ASSERT_EQ(du.record_size(), 1);
  EXPECT_EQ(du.record(0).id(), "r1");
  EXPECT_GE(du.record(0).size(), 10000);
  EXPECT_EQ(du.record(0).recordtype(), "regular");

  grpc::ClientContext pctx;
  auto reader = stub_->Prune(&pctx, v1::PruneRequest());
  std::vector<std::string> removed;
  v1::UsageRecord rec;
  while (reader->Read(&rec)) removed.push_back(rec.id());
  ASSERT_TRUE(reader->Finish().ok());
  EXPECT_EQ(removed, std::vector<std::string>{"r1"});
  EXPECT_FALSE(fs::exists(cache_->SnapshotDir("r1")));

  grpc::ClientContext ctx2;
  ASSERT_TRUE(stub_->DiskUsage(&ctx2, v1::DiskUsageRequest(), &du).ok());
  EXPECT_EQ(du.record_size(), 0);
}

TEST_F(ControlServiceTest, BadPruneFilterIsInvalidArgument) {
  v1::PruneRequest req;
  req.add_filter("id~=(");
  grpc::ClientContext ctx;
  auto reader = stub_->Prune(&ctx, req);
  v1::UsageRecord rec;
  while (reader->Read(&rec)) {
  }
  grpc::Status st = reader->Finish();
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(st.error_message(), HasSubstr("invalid filter"));
}

TEST_F(ControlServiceTest, ListenBuildHistoryEndsCleanly) {
  grpc::ClientContext ctx;
  v1::BuildHistoryRequest req;
  req.set_earlyexit(true);
  auto reader = stub_->ListenBuildHistory(&ctx, req);
  v1::BuildHistoryEvent ev;
  EXPECT_FALSE(reader->Read(&ev));
  EXPECT_TRUE(reader->Finish().ok());
}

TEST_F(ControlServiceTest, StatusReplaysAndFollowsProgressUntilClosed) {
  auto a = std::make_shared<solver::Vertex>();
  a->digest = "sha256:a";
  a->name = "step a";
  auto b = std::make_shared<solver::Vertex>();
  b->digest = "sha256:b";
  b->name = "step b";
  b->inputs.push_back({a, 0});
  auto p = progress_.Get("build1");
  p->Completed(*a, /*cached=*/true, absl::OkStatus());  // before the stream attaches

  grpc::ClientContext ctx;
  v1::StatusRequest req;
  req.set_ref("build1");
  auto reader = stub_->Status(&ctx, req);
  std::thread producer([&] {
    p->Started(*b);
    p->Log("sha256:b", 1, "hello\n");
    p->Completed(*b, false, absl::InternalError("boom"));
    p->Close();
  });
  std::map<std::string, v1::Vertex> seen;
  std::string logs;
  v1::StatusResponse resp;
  while (reader->Read(&resp)) {
    for (const auto& v : resp.vertexes()) seen[v.digest()] = v;
    for (const auto& l : resp.logs()) logs += l.msg();
  }
  producer.join();
  grpc::Status fin = reader->Finish();
  ASSERT_TRUE(fin.ok()) << fin.error_code() << " " << fin.error_message();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_TRUE(seen["sha256:a"].cached());
  EXPECT_TRUE(seen["sha256:a"].has_completed());
  EXPECT_EQ(seen["sha256:b"].name(), "step b");
  EXPECT_EQ(seen["sha256:b"].inputs(0), "sha256:a");
  EXPECT_EQ(seen["sha256:b"].error(), "boom");
  EXPECT_TRUE(seen["sha256:b"].has_started());
  EXPECT_EQ(logs, "hello\n");
}

TEST_F(ControlServiceTest, SolveWithoutRefOrDefinitionFailsClearly) {
  grpc::ClientContext ctx;
  v1::SolveResponse resp;
  grpc::Status st = stub_->Solve(&ctx, v1::SolveRequest(), &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(st.error_message(), HasSubstr("ref"));
}

TEST_F(ControlServiceTest, LaterMethodsAreUnimplementedAndNamed) {
  grpc::Status st;
  auto bridge = moby::buildkit::v1::frontend::LLBBridge::NewStub(channel_);
  grpc::ClientContext gctx;
  moby::buildkit::v1::frontend::PongResponse pong;
  st = bridge->Ping(&gctx, moby::buildkit::v1::frontend::PingRequest(), &pong);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_THAT(st.error_message(), HasSubstr("moby.buildkit.v1.frontend.LLBBridge/Ping"));
}

TEST_F(ControlServiceTest, SecondServerOnSameSocketIsRefused) {
  auto again = Server::Start({.addresses = {"unix://" + socket_}, .fallback = &fallback_});
  EXPECT_THAT(again, StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("already listening")));
}

TEST_F(ControlServiceTest, ShutdownRemovesSocket) {
  server_->Shutdown(100);
  EXPECT_FALSE(fs::exists(socket_));
}

TEST(ServerTest, TcpWithoutTlsNeedsExplicitInsecure) {
  UnimplementedService fallback;
  auto srv = Server::Start({.addresses = {"tcp://127.0.0.1:0"}, .fallback = &fallback});
  EXPECT_THAT(srv, StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("--insecure-tcp")));
  srv = Server::Start(
      {.addresses = {"tcp://127.0.0.1:0"}, .tls = {.cert = "/x.pem"}, .fallback = &fallback});
  EXPECT_THAT(srv, StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("--tlskey")));
  srv = Server::Start(
      {.addresses = {"tcp://127.0.0.1:0"}, .insecure_tcp = true, .fallback = &fallback});
  ASSERT_THAT(srv, IsOk());
  EXPECT_THAT((*srv)->listening()[0], ::testing::StartsWith("tcp://127.0.0.1:"));
  EXPECT_NE((*srv)->listening()[0], "tcp://127.0.0.1:0");
}

TEST(ServerTest, ServesAHandedOverListeningSocket) {
  // What systemd socket activation gives kilnd: an already listening socket.
  const std::string path =
      (fs::path(::testing::TempDir()) / ("kiln_fd_" + std::to_string(std::random_device{}())))
          .string();
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path.c_str());
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(fd, 16), 0);
  UnimplementedService fallback;
  auto srv = Server::Start({.addresses = {"fd://" + std::to_string(fd)}, .fallback = &fallback});
  ASSERT_THAT(srv, IsOk());
  EXPECT_EQ((*srv)->listening()[0], "fd://" + std::to_string(fd));
  auto stub =
      v1::Control::NewStub(grpc::CreateChannel("unix:" + path, grpc::InsecureChannelCredentials()));
  for (int i = 0; i < 3; ++i) {  // several connections, each served
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::InfoResponse resp;
    grpc::Status st = stub->Info(&ctx, v1::InfoRequest(), &resp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::UNIMPLEMENTED) << st.error_message();
  }
  (*srv)->Shutdown(100);
  ::unlink(path.c_str());
  EXPECT_THAT(ParseListenAddress("fd://0"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a listening socket")));
  EXPECT_THAT(ParseListenAddress("fd://"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("LISTEN_FDS")));
}

// Runs a shell command; its exit code.
int Sh(const std::string& cmd) {
  int rc = std::system((cmd + " >/dev/null 2>&1").c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

std::string Slurp(const fs::path& p) {
  std::ifstream in(p);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// A TLS client made by hand with OpenSSL, as Go programs that wrap the connection in
// crypto/tls themselves (docker buildx's remote driver): ALPN only when `alpn`.
class RawTlsClient {
 public:
  RawTlsClient(int port, const fs::path& pki, bool client_cert, bool alpn)
      : ctx_(SSL_CTX_new(TLS_client_method()), &SSL_CTX_free) {
    SSL_CTX_load_verify_locations(ctx_.get(), (pki / "ca.pem").c_str(), nullptr);
    SSL_CTX_set_verify(ctx_.get(), SSL_VERIFY_PEER, nullptr);
    if (client_cert) {
      SSL_CTX_use_certificate_file(ctx_.get(), (pki / "client.pem").c_str(), SSL_FILETYPE_PEM);
      SSL_CTX_use_PrivateKey_file(ctx_.get(), (pki / "client.key").c_str(), SSL_FILETYPE_PEM);
    }
    static const unsigned char kH2[] = {2, 'h', '2'};
    if (alpn) SSL_CTX_set_alpn_protos(ctx_.get(), kH2, sizeof(kH2));
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<uint16_t>(port));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    timeval tv{.tv_sec = 10, .tv_usec = 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) == 0;
    ssl_ = SSL_new(ctx_.get());
    SSL_set_fd(ssl_, fd_);
    handshake_ok_ = connected_ && SSL_connect(ssl_) == 1;
  }
  ~RawTlsClient() {
    SSL_free(ssl_);
    ::close(fd_);
  }
  bool handshake_ok() const { return handshake_ok_; }

  // Speaks HTTP/2 over the connection: the client preface and an empty SETTINGS frame; true
  // when the server answers with its SETTINGS frame (gRPC got the plaintext).
  bool ServerSpeaksHttp2() {
    if (!handshake_ok_) return false;
    const std::string preface =
        std::string("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") + std::string("\0\0\0\x04\0\0\0\0\0", 9);
    if (SSL_write(ssl_, preface.data(), static_cast<int>(preface.size())) <= 0) return false;
    unsigned char frame[9];
    int got = 0;
    while (got < 9) {
      int n = SSL_read(ssl_, frame + got, 9 - got);
      if (n <= 0) return false;
      got += n;
    }
    return frame[3] == 0x04;  // SETTINGS
  }

 private:
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx_;
  SSL* ssl_ = nullptr;
  int fd_ = -1;
  bool connected_ = false;
  bool handshake_ok_ = false;
};

class TlsServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (Sh("command -v openssl") != 0) GTEST_SKIP() << "openssl not installed";
    // The raw client writes to connections the server refused (kilnd ignores SIGPIPE too).
    std::signal(SIGPIPE, SIG_IGN);
    pki_ = fs::path(::testing::TempDir()) /
           ("kiln_tls_test_" + std::to_string(std::random_device{}()));
    fs::create_directories(pki_);
    const std::string d = pki_.string();
    auto mkca = [&](const std::string& n) {
      return Sh("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=" + n + " -keyout " +
                d + "/" + n + ".key -out " + d + "/" + n + ".pem");
    };
    auto mkcert = [&](const std::string& n, const std::string& ca, const std::string& ext) {
      std::ofstream(pki_ / (n + ".ext")) << ext << "\n";
      return Sh("openssl req -newkey rsa:2048 -nodes -subj /CN=" + n + " -keyout " + d + "/" + n +
                ".key -out " + d + "/" + n + ".csr") |
             Sh("openssl x509 -req -in " + d + "/" + n + ".csr -CA " + d + "/" + ca +
                ".pem -CAkey " + d + "/" + ca + ".key -CAcreateserial -days 1 -extfile " + d + "/" +
                n + ".ext -out " + d + "/" + n + ".pem");
    };
    ASSERT_EQ(mkca("ca"), 0);
    ASSERT_EQ(mkcert("server", "ca",
                     "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth"),
              0);
    ASSERT_EQ(mkcert("client", "ca", "extendedKeyUsage=clientAuth"), 0);
    auto srv = Server::Start(
        {.addresses = {"tcp://127.0.0.1:0"},
         .tls = {.cert = d + "/server.pem", .key = d + "/server.key", .ca = d + "/ca.pem"},
         .fallback = &fallback_});
    ASSERT_THAT(srv, IsOk());
    server_ = std::move(*srv);
    const std::string addr = server_->listening()[0];
    ASSERT_THAT(addr, ::testing::StartsWith("tcp://127.0.0.1:"));
    port_ = std::stoi(addr.substr(addr.rfind(':') + 1));
  }
  void TearDown() override {
    server_.reset();
    if (!pki_.empty()) fs::remove_all(pki_);
  }

  fs::path pki_;
  UnimplementedService fallback_;
  std::unique_ptr<Server> server_;
  int port_ = 0;
};

TEST_F(TlsServerTest, GrpcClientWithClientCertificateIsServed) {
  grpc::SslCredentialsOptions o;
  o.pem_root_certs = Slurp(pki_ / "ca.pem");
  o.pem_cert_chain = Slurp(pki_ / "client.pem");
  o.pem_private_key = Slurp(pki_ / "client.key");
  auto stub = v1::Control::NewStub(
      grpc::CreateChannel("127.0.0.1:" + std::to_string(port_), grpc::SslCredentials(o)));
  for (int i = 0; i < 2; ++i) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::InfoResponse resp;
    grpc::Status st = stub->Info(&ctx, v1::InfoRequest(), &resp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::UNIMPLEMENTED) << st.error_message();
  }
}

// gRPC C++'s own TLS would refuse this client ("missing selected ALPN property"); BuildKit
// serves it, and docker buildx's remote driver is such a client.
TEST_F(TlsServerTest, ClientWithoutAlpnIsServed) {
  RawTlsClient c(port_, pki_, /*client_cert=*/true, /*alpn=*/false);
  ASSERT_TRUE(c.handshake_ok());
  EXPECT_TRUE(c.ServerSpeaksHttp2());
  RawTlsClient h2(port_, pki_, /*client_cert=*/true, /*alpn=*/true);
  EXPECT_TRUE(h2.ServerSpeaksHttp2());
  // Shutting down with these connections open ends them.
  server_->Shutdown(100);
}

TEST_F(TlsServerTest, ClientWithoutCertificateIsRefused) {
  RawTlsClient c(port_, pki_, /*client_cert=*/false, /*alpn=*/false);
  EXPECT_FALSE(c.ServerSpeaksHttp2());
  RawTlsClient ok(port_, pki_, /*client_cert=*/true, /*alpn=*/false);  // still serving
  EXPECT_TRUE(ok.ServerSpeaksHttp2());
}

// Peers that never finish their handshake cannot pile up threads: past max_handshakes, new
// connections are closed at once; a slot frees when a handshake ends.
TEST_F(TlsServerTest, UnfinishedHandshakesAreCapped) {
  auto t = TlsTerminator::Create(Slurp(pki_ / "server.pem"), Slurp(pki_ / "server.key"),
                                 Slurp(pki_ / "ca.pem"));
  ASSERT_THAT(t, IsOk());
  (*t)->max_handshakes = 1;
  auto pair = [] {
    int sv[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    return std::make_pair(sv[0], sv[1]);
  };
  // True when the server closed its end within `ms` (the peer reads EOF).
  auto closed_within = [](int peer, int ms) {
    pollfd p{peer, POLLIN, 0};
    if (::poll(&p, 1, ms) <= 0) return false;
    char c;
    return ::read(peer, &c, 1) == 0;
  };
  auto no_hand_off = [](int fd) { ::close(fd); };
  auto [a_srv, a_peer] = pair();
  (*t)->Serve(a_srv, no_hand_off);  // silent: stays in its handshake
  auto [b_srv, b_peer] = pair();
  (*t)->Serve(b_srv, no_hand_off);
  EXPECT_TRUE(closed_within(b_peer, 2000)) << "a second unfinished handshake was accepted";
  ::close(a_peer);  // the first handshake fails, which frees its slot
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  auto [c_srv, c_peer] = pair();
  (*t)->Serve(c_srv, no_hand_off);
  EXPECT_FALSE(closed_within(c_peer, 300)) << "the slot was not freed";
  t->reset();  // Shutdown() ends the remaining connection
  EXPECT_TRUE(closed_within(c_peer, 2000));
  ::close(b_peer);
  ::close(c_peer);
}

TEST_F(TlsServerTest, BadTlsFilesFailStart) {
  UnimplementedService fallback;
  const std::string d = pki_.string();
  auto srv = Server::Start(
      {.addresses = {"tcp://127.0.0.1:0"},
       .tls = {.cert = d + "/server.pem", .key = d + "/client.key", .ca = d + "/ca.pem"},
       .fallback = &fallback});
  EXPECT_THAT(srv, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--tlskey")));
}

namespace gw = moby::buildkit::v1::frontend;

// The build flow of current buildctl/buildx over real gRPC: Control.Solve without a definition
// stays pending while LLBBridge calls (carrying the build id header) solve, read and return.
class GatewayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::path(::testing::TempDir()) /
            ("kiln_gateway_test_" + std::to_string(std::random_device{}()));
    for (const char* d : {"snapshots", "tmp"}) fs::create_directories(root_ / d);
    auto cache = cache::Manager::Open({.root = root_});
    ASSERT_THAT(cache, IsOk());
    cache_ = std::move(*cache);
    store_ = std::make_unique<ops::CacheStore>(*cache_);
    solver_ = std::make_unique<solver::Solver>(solver::Solver::Options{
        .post = [this](std::function<void()> fn) { boost::asio::post(pool_, std::move(fn)); },
        .cache = store_.get()});
    auto content = content::Store::Open(root_ / "content");
    ASSERT_THAT(content, IsOk());
    content_ = std::move(*content);
    base_.worker = {.cache = cache_.get(), .sessions = &sessions_, .content = content_.get()};
    gateway_ = std::make_unique<GatewayService>(
        GatewayService::Options{.base = &base_, .solver = solver_.get()});
    control_ = std::make_unique<ControlService>(ControlService::Options{.base = &base_,
                                                                        .pool = &pool_,
                                                                        .progress = &progress_,
                                                                        .solver = solver_.get(),
                                                                        .gateway = gateway_.get()});
    socket_ = (root_ / "k.sock").string();
    auto srv = Server::Start({.addresses = {"unix://" + socket_},
                              .services = {control_.get(), gateway_.get()},
                              .fallback = &fallback_});
    ASSERT_THAT(srv, IsOk());
    server_ = std::move(*srv);
    channel_ = grpc::CreateChannel("unix:" + socket_, grpc::InsecureChannelCredentials());
    control_stub_ = v1::Control::NewStub(channel_);
    bridge_ = gw::LLBBridge::NewStub(channel_);
  }
  void TearDown() override {
    server_.reset();
    pool_.join();
    fs::remove_all(root_);
  }
  // Starts Control.Solve for build `ref` in the background; Wait() returns its status.
  void StartBuild(const std::string& ref, v1::SolveRequest req = {}) {
    req.set_ref(ref);
    build_ = std::thread([this, req] {
      grpc::ClientContext ctx;
      v1::SolveResponse resp;
      build_status_ = control_stub_->Solve(&ctx, req, &resp);
    });
  }
  grpc::Status Wait() {
    build_.join();
    return build_status_;
  }
  std::unique_ptr<grpc::ClientContext> Ctx(const std::string& ref) {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->AddMetadata(kBuildIdHeader, ref);
    return ctx;
  }

  fs::path root_;
  std::string socket_;
  boost::asio::thread_pool pool_{4};
  ProgressRegistry progress_;
  session::Manager sessions_{{}};
  std::unique_ptr<cache::Manager> cache_;
  std::unique_ptr<ops::CacheStore> store_;
  std::unique_ptr<solver::Solver> solver_;
  std::unique_ptr<content::Store> content_;
  WorkerBase base_;
  std::unique_ptr<GatewayService> gateway_;
  std::unique_ptr<ControlService> control_;
  UnimplementedService fallback_;
  std::unique_ptr<Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Control::Stub> control_stub_;
  std::unique_ptr<gw::LLBBridge::Stub> bridge_;
  std::thread build_;
  grpc::Status build_status_;
};

TEST_F(GatewayTest, SolveReadAndReturn) {
  llb::State s = llb::Scratch().File(llb::Mkdir("/etc", 0755)
                                         .Mkfile("/etc/os-release", 0644, "ID=kiln\n")
                                         .Mkfile("/etc/hostname", 0600, "box\n")
                                         .Symlink("/etc/os-release", "/os"));
  auto def = llb::Marshal(s);
  ASSERT_THAT(def, IsOk());
  v1::SolveRequest breq;
  (*breq.mutable_frontendinputs())["context"] = *def;
  StartBuild("b1", breq);

  gw::PongResponse pong;
  ASSERT_TRUE(bridge_->Ping(Ctx("b1").get(), gw::PingRequest(), &pong).ok());
  std::set<std::string> caps;
  for (const auto& c : pong.frontendapicaps()) caps.insert(c.id());
  EXPECT_TRUE(caps.contains("readfile") && caps.contains("readdir") && caps.contains("statfile"));

  gw::InputsResponse inputs;
  ASSERT_TRUE(bridge_->Inputs(Ctx("b1").get(), gw::InputsRequest(), &inputs).ok());
  ASSERT_TRUE(inputs.definitions().contains("context"));
  EXPECT_EQ(inputs.definitions().at("context").def_size(), def->def_size());

  gw::SolveRequest sreq;
  *sreq.mutable_definition() = *def;
  sreq.set_allowresultreturn(true);
  gw::SolveResponse sresp;
  grpc::Status st = bridge_->Solve(Ctx("b1").get(), sreq, &sresp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  std::string id = sresp.result().ref().id();
  ASSERT_FALSE(id.empty());

  gw::ReadFileRequest rf;
  rf.set_ref(id);
  rf.set_filepath("/os");
  gw::ReadFileResponse data;
  st = bridge_->ReadFile(Ctx("b1").get(), rf, &data);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(data.data(), "ID=kiln\n");
  rf.mutable_range()->set_offset(3);
  rf.mutable_range()->set_length(4);
  ASSERT_TRUE(bridge_->ReadFile(Ctx("b1").get(), rf, &data).ok());
  EXPECT_EQ(data.data(), "kiln");
  rf.set_filepath("/nope");
  st = bridge_->ReadFile(Ctx("b1").get(), rf, &data);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(st.error_message(), HasSubstr("/nope"));

  gw::ReadDirRequest rd;
  rd.set_ref(id);
  rd.set_dirpath("/etc");
  gw::ReadDirResponse dir;
  ASSERT_TRUE(bridge_->ReadDir(Ctx("b1").get(), rd, &dir).ok());
  ASSERT_EQ(dir.entries_size(), 2);
  EXPECT_EQ(dir.entries(0).path(), "hostname");
  EXPECT_EQ(dir.entries(1).path(), "os-release");
  rd.set_includepattern("os-*");
  ASSERT_TRUE(bridge_->ReadDir(Ctx("b1").get(), rd, &dir).ok());
  ASSERT_EQ(dir.entries_size(), 1);

  gw::StatFileRequest sf;
  sf.set_ref(id);
  sf.set_path("/etc/hostname");
  gw::StatFileResponse stat;
  ASSERT_TRUE(bridge_->StatFile(Ctx("b1").get(), sf, &stat).ok());
  EXPECT_EQ(stat.stat().path(), "hostname");
  EXPECT_EQ(stat.stat().mode(), 0600u);
  EXPECT_EQ(stat.stat().size(), 4);
  sf.set_ref("no-such-ref");
  st = bridge_->StatFile(Ctx("b1").get(), sf, &stat);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(st.error_message(), HasSubstr("no-such-ref"));

  gw::ReturnRequest ret;
  ret.mutable_result()->mutable_ref()->set_id(id);
  gw::ReturnResponse rresp;
  ASSERT_TRUE(bridge_->Return(Ctx("b1").get(), ret, &rresp).ok());
  grpc::Status done = Wait();
  EXPECT_TRUE(done.ok()) << done.error_message();
}

TEST_F(GatewayTest, ResolveImageConfigFromARealRegistry) {
  auto reg = kiln::testing::RegistryProcess::Start();
  ASSERT_THAT(reg, IsOk());
  // An image with a config and no layers, pushed with our registry client.
  const std::string config =
      R"({"architecture":"amd64","os":"linux","config":{"Env":["GREETING=hi"],"Cmd":["sh"]},)"
      R"("rootfs":{"type":"layers","diff_ids":[]}})";
  auto config_digest = content_->Put(config);
  ASSERT_THAT(config_digest, IsOk());
  const std::string manifest = absl::StrCat(
      R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",)",
      R"("config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":")",
      *config_digest, R"(","size":)", config.size(), R"(},"layers":[]})");
  registry::Client client({});
  auto ref = registry::ParseReference((*reg)->host() + "/test/img:v1");
  ASSERT_THAT(ref, IsOk());
  ASSERT_THAT(client.PushBlob(Context(), *ref,
                              {.media_type = "application/vnd.oci.image.config.v1+json",
                               .digest = *config_digest,
                               .size = static_cast<int64_t>(config.size())},
                              *content_),
              IsOk());
  auto pushed =
      client.PushManifest(Context(), *ref, "application/vnd.oci.image.manifest.v1+json", manifest);
  ASSERT_THAT(pushed, IsOk());

  StartBuild("b3");
  gw::ResolveImageConfigRequest req;
  req.set_ref((*reg)->host() + "/test/img:v1");
  gw::ResolveImageConfigResponse resp;
  grpc::Status st = bridge_->ResolveImageConfig(Ctx("b3").get(), req, &resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(resp.digest(), *pushed);
  EXPECT_EQ(resp.config(), config);
  EXPECT_EQ(resp.ref(), (*reg)->host() + "/test/img:v1");

  req.set_ref((*reg)->host() + "/test/nosuch:v1");
  st = bridge_->ResolveImageConfig(Ctx("b3").get(), req, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(st.error_message(), HasSubstr("nosuch"));

  gw::ReturnRequest ret;
  gw::ReturnResponse rresp;
  ASSERT_TRUE(bridge_->Return(Ctx("b3").get(), ret, &rresp).ok());
  EXPECT_TRUE(Wait().ok());
}

TEST_F(GatewayTest, FrontendErrorFailsTheBuild) {
  StartBuild("b2");
  gw::ReturnRequest ret;
  ret.mutable_error()->set_code(static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
  ret.mutable_error()->set_message("dockerfile parse error on line 3");
  gw::ReturnResponse rresp;
  ASSERT_TRUE(bridge_->Return(Ctx("b2").get(), ret, &rresp).ok());
  grpc::Status done = Wait();
  EXPECT_EQ(done.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(done.error_message(), HasSubstr("line 3"));
}

TEST_F(GatewayTest, CallsWithoutABuildAreRejected) {
  gw::ReadFileRequest rf;
  gw::ReadFileResponse data;
  grpc::ClientContext ctx;
  grpc::Status st = bridge_->ReadFile(&ctx, rf, &data);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(st.error_message(), HasSubstr(kBuildIdHeader));
}

}  // namespace
}  // namespace kiln::server
