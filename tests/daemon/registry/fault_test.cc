// Fault injection the real registry cannot do: 500s, 429 with Retry-After, bodies cut short,
// bytes that do not match their digest. A tiny in-process HTTP server on 127.0.0.1 answers with
// raw bytes chosen by each test.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <functional>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "base/digest.h"
#include "daemon/registry/client.h"
#include "tests/testutil/status_matchers.h"

namespace kiln::registry {
namespace {

namespace fs = std::filesystem;
using ::kiln::testing::IsOk;
using ::kiln::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;

struct SeenRequest {
  std::string method, target;
  std::string headers;  // raw header block
};

// Serves one connection at a time; `handler` returns the raw bytes to send back, after which
// the connection is closed. Stopped (and joined) by the destructor.
class FakeServer {
 public:
  using Handler = std::function<std::string(const SeenRequest&)>;
  explicit FakeServer(Handler handler) : handler_(std::move(handler)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        ::listen(fd_, 16) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      std::abort();
    }
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~FakeServer() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    thread_.join();
  }
  std::string host() const { return absl::StrCat("127.0.0.1:", port_); }
  std::vector<SeenRequest> requests() {
    std::lock_guard lock(mu_);
    return seen_;
  }

 private:
  void Serve() {
    while (!stop_) {
      int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) return;
      std::string in;
      char buf[4096];
      size_t header_end;
      while ((header_end = in.find("\r\n\r\n")) == std::string::npos) {
        ssize_t n = ::read(c, buf, sizeof(buf));
        if (n <= 0) break;
        in.append(buf, static_cast<size_t>(n));
      }
      if (header_end == std::string::npos) {
        ::close(c);
        continue;
      }
      SeenRequest req;
      req.headers = in.substr(0, header_end);
      size_t sp1 = in.find(' '), sp2 = in.find(' ', sp1 + 1);
      req.method = in.substr(0, sp1);
      req.target = in.substr(sp1 + 1, sp2 - sp1 - 1);
      {
        std::lock_guard lock(mu_);
        seen_.push_back(req);
      }
      std::string out = handler_(req);
      size_t off = 0;
      while (off < out.size()) {
        ssize_t n = ::send(c, out.data() + off, out.size() - off, MSG_NOSIGNAL);
        if (n <= 0) break;
        off += static_cast<size_t>(n);
      }
      ::shutdown(c, SHUT_WR);
      while (::read(c, buf, sizeof(buf)) > 0) {
      }
      ::close(c);
    }
  }

  Handler handler_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mu_;
  std::vector<SeenRequest> seen_;
};

std::string HttpResponse(int status, const std::string& reason, const std::string& body,
                         const std::string& extra_headers = "", int64_t content_length = -1) {
  return absl::StrCat("HTTP/1.1 ", status, " ", reason, "\r\nContent-Length: ",
                      content_length >= 0 ? content_length : static_cast<int64_t>(body.size()),
                      "\r\n", extra_headers, "Connection: close\r\n\r\n", body);
}

class FaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/kiln-fault-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    tmp_ = tmpl;
    auto s = content::Store::Open(tmp_ / "content");
    ASSERT_THAT(s, IsOk());
    store_ = std::move(*s);
  }
  void TearDown() override { fs::remove_all(tmp_); }

  std::unique_ptr<Client> MakeClient(const std::string& host) {
    Client::Options o;
    o.hosts[host].http = true;
    o.retry = {.max_attempts = 3,
               .initial_backoff = std::chrono::milliseconds(10),
               .max_backoff = std::chrono::milliseconds(100)};
    o.io_timeout = std::chrono::seconds(5);
    return std::make_unique<Client>(o);
  }

  fs::path tmp_;
  std::unique_ptr<content::Store> store_;
};

TEST_F(FaultTest, RetriesServerErrorsAndHonoursRetryAfter) {
  const std::string manifest =
      R"({"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"digest":"sha256:)" +
      std::string(64, 'c') + R"(","size":2},"layers":[]})";
  std::atomic<int> calls{0};
  FakeServer server([&](const SeenRequest&) {
    int n = calls++;
    if (n == 0) return HttpResponse(503, "Service Unavailable", "busy");
    if (n == 1) return HttpResponse(429, "Too Many Requests", "", "Retry-After: 0\r\n");
    return HttpResponse(200, "OK", manifest,
                        "Content-Type: application/vnd.oci.image.manifest.v1+json\r\n");
  });
  auto client = MakeClient(server.host());
  auto ref = ParseReference(server.host() + "/a/b:1");
  ASSERT_THAT(ref, IsOk());
  auto result = client->Resolve(Context(), *ref);
  ASSERT_THAT(result, IsOk());
  EXPECT_EQ(result->manifest_bytes, manifest);
  EXPECT_EQ(calls.load(), 3);
  auto seen = server.requests();
  EXPECT_EQ(seen[0].target, "/v2/a/b/manifests/1");
  EXPECT_THAT(seen[0].headers, HasSubstr(kMediaTypeOciIndex));
}

TEST_F(FaultTest, PersistentServerErrorIsReportedWithTheRegistryMessage) {
  FakeServer server([](const SeenRequest&) {
    return HttpResponse(500, "Internal Server Error",
                        R"({"errors":[{"code":"UNKNOWN","message":"storage is on fire"}]})");
  });
  auto client = MakeClient(server.host());
  auto result = client->Resolve(Context(), *ParseReference(server.host() + "/a/b:1"));
  EXPECT_THAT(result,
              StatusIs(absl::StatusCode::kUnavailable,
                       AllOf(HasSubstr("500 storage is on fire"), HasSubstr(server.host()))));
  EXPECT_EQ(server.requests().size(), 3u);
}

TEST_F(FaultTest, TruncatedBodyResumesWithRange) {
  std::string blob(50000, '\0');
  for (size_t i = 0; i < blob.size(); ++i) blob[i] = static_cast<char>(i * 31 % 256);
  std::string digest = Sha256Digest(blob);
  std::atomic<int> calls{0};
  FakeServer server([&](const SeenRequest& req) {
    if (calls++ == 0) {  // promise everything, deliver 20000 bytes, hang up
      return HttpResponse(200, "OK", blob.substr(0, 20000), "", static_cast<int64_t>(blob.size()));
    }
    const std::string range = "Range: bytes=20000-";
    if (req.headers.find(range) == std::string::npos) {
      return HttpResponse(400, "Bad Request", "no range");
    }
    return HttpResponse(
        206, "Partial Content", blob.substr(20000),
        absl::StrCat("Content-Range: bytes 20000-", blob.size() - 1, "/", blob.size(), "\r\n"));
  });
  auto client = MakeClient(server.host());
  Descriptor desc{.media_type = "application/octet-stream",
                  .digest = digest,
                  .size = static_cast<int64_t>(blob.size())};
  ASSERT_THAT(client->FetchBlob(Context(), *ParseReference(server.host() + "/a/b"), desc, *store_),
              IsOk());
  EXPECT_EQ(*store_->Read(digest, 1 << 20), blob);
  EXPECT_EQ(calls.load(), 2);
}

TEST_F(FaultTest, BodiesAlwaysCutShortFailAndLeaveNoPartialData) {
  std::string blob(50000, 'q');
  std::string digest = Sha256Digest(blob);
  FakeServer server([&](const SeenRequest&) {  // every answer promises all and sends 100 bytes
    return HttpResponse(200, "OK", blob.substr(0, 100), "", static_cast<int64_t>(blob.size()));
  });
  auto client = MakeClient(server.host());
  Descriptor desc{.digest = digest, .size = static_cast<int64_t>(blob.size())};
  absl::Status st =
      client->FetchBlob(Context(), *ParseReference(server.host() + "/a/b"), desc, *store_);
  EXPECT_THAT(st, StatusIs(absl::StatusCode::kUnavailable,
                           AllOf(HasSubstr(digest), HasSubstr(server.host()))));
  EXPECT_FALSE(store_->Has(digest));
  EXPECT_TRUE(fs::is_empty(tmp_ / "content" / "ingest"));
}

TEST_F(FaultTest, CancelledPullKeepsPartialDataForTheNextAttempt) {
  std::string blob(50000, 'k');
  std::string digest = Sha256Digest(blob);
  Context ctx;
  std::atomic<int> calls{0};
  FakeServer server([&](const SeenRequest&) {
    if (calls++ == 0) {  // a transfer broken off at 20000 bytes
      return HttpResponse(200, "OK", blob.substr(0, 20000), "", static_cast<int64_t>(blob.size()));
    }
    ctx.Cancel();  // the build is cancelled while resuming
    return HttpResponse(503, "Service Unavailable", "busy");
  });
  auto client = MakeClient(server.host());
  Descriptor desc{.digest = digest, .size = static_cast<int64_t>(blob.size())};
  EXPECT_FALSE(client->FetchBlob(ctx, *ParseReference(server.host() + "/a/b"), desc, *store_).ok());
  auto w = store_->OpenWriter(Context(), "fetch-" + digest, digest, desc.size);
  ASSERT_THAT(w, IsOk());
  EXPECT_EQ((*w)->offset(), 20000);
}

TEST_F(FaultTest, ServerIgnoringRangeStartsOver) {
  std::string blob(30000, 'z');
  std::string digest = Sha256Digest(blob);
  FakeServer server([&](const SeenRequest&) { return HttpResponse(200, "OK", blob); });
  {
    auto w =
        store_->OpenWriter(Context(), "fetch-" + digest, digest, static_cast<int64_t>(blob.size()));
    ASSERT_THAT(w, IsOk());
    ASSERT_THAT((*w)->Write(blob.substr(0, 1000)), IsOk());
  }
  auto client = MakeClient(server.host());
  Descriptor desc{.digest = digest, .size = static_cast<int64_t>(blob.size())};
  ASSERT_THAT(client->FetchBlob(Context(), *ParseReference(server.host() + "/a/b"), desc, *store_),
              IsOk());
  EXPECT_THAT(server.requests().at(0).headers, HasSubstr("Range: bytes=1000-"));
  EXPECT_EQ(*store_->Read(digest, 1 << 20), blob);
}

TEST_F(FaultTest, WrongBytesFailVerificationAndLeaveNothing) {
  std::string served(1000, 'x');
  std::string expected_digest = Sha256Digest(std::string(1000, 'y'));
  FakeServer server([&](const SeenRequest&) { return HttpResponse(200, "OK", served); });
  auto client = MakeClient(server.host());
  Descriptor desc{.digest = expected_digest, .size = 1000};
  absl::Status st =
      client->FetchBlob(Context(), *ParseReference(server.host() + "/a/b"), desc, *store_);
  EXPECT_THAT(st, StatusIs(absl::StatusCode::kFailedPrecondition,
                           AllOf(HasSubstr(expected_digest), HasSubstr(Sha256Digest(served)),
                                 HasSubstr(server.host()))));
  EXPECT_FALSE(store_->Has(expected_digest));
  EXPECT_TRUE(store_->List()->empty());
  // The bad partial data is gone too: a new writer starts at 0.
  auto w = store_->OpenWriter(Context(), "fetch-" + expected_digest, expected_digest, 1000);
  ASSERT_THAT(w, IsOk());
  EXPECT_EQ((*w)->offset(), 0);

  // A manifest fetched by digest is verified the same way.
  auto ref = ParseReference(server.host() + "/a/b@" + expected_digest);
  EXPECT_THAT(client->Resolve(Context(), *ref),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("does not match")));
}

TEST_F(FaultTest, DeadlineClosesAStalledConnection) {
  std::atomic<bool> release{false};
  FakeServer server([&](const SeenRequest&) {
    while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return std::string();
  });
  auto client = MakeClient(server.host());
  Context ctx = Context().WithDeadline(Context::Clock::now() + std::chrono::milliseconds(300));
  auto start = std::chrono::steady_clock::now();
  auto result = client->Resolve(ctx, *ParseReference(server.host() + "/a/b:1"));
  release = true;
  EXPECT_THAT(result, StatusIs(absl::StatusCode::kDeadlineExceeded, ::testing::_));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
}

}  // namespace
}  // namespace kiln::registry
