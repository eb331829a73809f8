// The http(s) source op against a real loopback HTTP server: graphs built with llb::Http,
// solved over a real cache manager on disk, and the result trees read back. Covers ETag
// revalidation, pinned checksums, status errors, the file's name, mode, owner and time, and the
// Authorization header from a session secret.

#include "daemon/ops/http_source.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <filesystem>
#include <fstream>
#include <random>

#include "base/digest.h"
#include "base/status.h"
#include "client/secrets.h"
#include "daemon/ops/read_ref.h"
#include "daemon/ops/vertices.h"
#include "daemon/solver/solver.h"
#include "llb/llb.h"
#include "tests/daemon/ops/test_http_server.h"
#include "tests/testutil/session_pair.h"
#include "tests/testutil/status_matchers.h"

namespace kiln::ops {
namespace {

namespace fs = std::filesystem;
using ::kiln::testing::IsOk;
using ::kiln::testing::StatusIs;
using ::kiln::testing::TestHttpServer;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using Reply = TestHttpServer::Reply;
using Request = TestHttpServer::Request;

constexpr char kLastModified[] = "Wed, 21 Oct 2015 07:28:00 GMT";
constexpr int64_t kLastModifiedUnix = 1445412480;

// Serves `body` at every path with `etag` (when not empty), answering a matching
// If-None-Match with 304.
TestHttpServer::Handler Serve(std::string body, std::string etag,
                              std::string last_modified = kLastModified) {
  return [=](const Request& req) {
    Reply r;
    if (!etag.empty()) r.headers.emplace_back("ETag", etag);
    if (!last_modified.empty()) r.headers.emplace_back("Last-Modified", last_modified);
    if (!etag.empty() && req.Header("if-none-match").find(etag) != std::string::npos) {
      r.status = 304;
      return r;
    }
    r.body = body;
    return r;
  };
}

class HttpSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::path(::testing::TempDir()) /
            ("kiln_http_source_test_" + std::to_string(std::random_device{}()));
    for (const char* d : {"snapshots", "tmp"}) fs::create_directories(root_ / d);
    auto m = cache::Manager::Open({.root = root_});
    ASSERT_THAT(m, IsOk());
    cache_ = std::move(*m);
    store_ = std::make_unique<CacheStore>(*cache_);
    solver_ = std::make_unique<solver::Solver>(solver::Solver::Options{
        .post = [this](std::function<void()> fn) { boost::asio::post(pool_, std::move(fn)); },
        .cache = store_.get(),
        .on_exec = [this](const solver::Vertex&, const std::string&) { ++execs_; }});
    auto server = TestHttpServer::Start(Serve("hello\n", "\"v1\""));
    ASSERT_THAT(server, IsOk());
    server_ = std::move(*server);
  }
  void TearDown() override {
    pool_.join();
    solver_.reset();
    store_.reset();
    pair_.reset();
    cache_.reset();
    server_.reset();
    fs::remove_all(root_);
  }

  absl::StatusOr<solver::ResultPtr> Solve(const llb::State& state) {
    KILN_ASSIGN_OR_RETURN(pb::Definition def, llb::Marshal(state));
    KILN_ASSIGN_OR_RETURN(llb::Graph graph, llb::LoadDefinition(def));
    Worker worker{.cache = cache_.get()};
    if (pair_) {
      worker.sessions = &pair_->manager();
      worker.session_id = pair_->session()->id();
    }
    KILN_ASSIGN_OR_RETURN(solver::Edge target, BuildVertices(graph, worker, {}));
    return solver_->Solve(ctx_, target, nullptr);
  }
  static const cache::ImmutableRef* Tree(const solver::ResultPtr& r) { return AsRef(r).ref(); }
  static std::string Read(const solver::ResultPtr& r, const std::string& path) {
    auto data = ReadFileInRef(Tree(r), path, std::nullopt, 1 << 20);
    return data.ok() ? *data : "<" + std::string(data.status().message()) + ">";
  }
  static std::vector<std::string> List(const solver::ResultPtr& r) {
    std::vector<std::string> names;
    auto entries = ReadDirInRef(Tree(r), "/", "");
    EXPECT_THAT(entries, IsOk());
    if (entries.ok()) {
      for (const auto& e : *entries) names.push_back(e.path());
    }
    return names;
  }

  fs::path root_;
  std::unique_ptr<cache::Manager> cache_;
  std::unique_ptr<CacheStore> store_;
  boost::asio::thread_pool pool_{4};
  std::unique_ptr<solver::Solver> solver_;
  std::atomic<int> execs_{0};
  Context ctx_;
  std::unique_ptr<TestHttpServer> server_;
  std::unique_ptr<::kiln::testing::SessionPair> pair_;
};

TEST_F(HttpSourceTest, DownloadsOnceThenRevalidatesWithTheStoredETag) {
  const llb::State src = llb::Http(server_->Url("/dir/file.txt"));
  auto first = Solve(src);
  ASSERT_THAT(first, IsOk());
  EXPECT_THAT(List(*first), ElementsAre("file.txt"));
  EXPECT_EQ(Read(*first, "/file.txt"), "hello\n");
  ASSERT_EQ(server_->requests().size(), 1u);
  EXPECT_EQ(server_->requests()[0].method, "GET");
  EXPECT_EQ(server_->requests()[0].target, "/dir/file.txt");
  EXPECT_EQ(server_->requests()[0].Header("if-none-match"), "");
  EXPECT_THAT(server_->requests()[0].Header("user-agent"), HasSubstr("kiln/"));
  EXPECT_EQ(execs_, 1);

  // Unchanged: one conditional request, a 304, the same record and a cache hit.
  auto second = Solve(src);
  ASSERT_THAT(second, IsOk());
  ASSERT_EQ(server_->requests().size(), 2u);
  EXPECT_EQ(server_->requests()[1].Header("if-none-match"), "\"v1\"");
  EXPECT_EQ((*second)->id(), (*first)->id());
  EXPECT_EQ(execs_, 1);

  // Changed: the old ETag is offered, the server answers with the new content.
  server_->SetHandler(Serve("hello again\n", "\"v2\""));
  auto third = Solve(src);
  ASSERT_THAT(third, IsOk());
  ASSERT_EQ(server_->requests().size(), 3u);
  EXPECT_EQ(server_->requests()[2].Header("if-none-match"), "\"v1\"");
  EXPECT_EQ(Read(*third, "/file.txt"), "hello again\n");
  EXPECT_NE((*third)->id(), (*first)->id());
  EXPECT_EQ(execs_, 2);

  // Both versions are known now: either may come back as not modified.
  server_->SetHandler(Serve("hello\n", "\"v1\""));
  auto fourth = Solve(src);
  ASSERT_THAT(fourth, IsOk());
  EXPECT_THAT(server_->requests()[3].Header("if-none-match"),
              AllOf(HasSubstr("\"v1\""), HasSubstr("\"v2\"")));
  EXPECT_EQ((*fourth)->id(), (*first)->id());
  EXPECT_EQ(server_->requests().size(), 4u);
}

TEST_F(HttpSourceTest, SameContentWithoutETagIsACacheHit) {
  server_->SetHandler(Serve("same\n", ""));
  const llb::State src = llb::Http(server_->Url("/f"));
  auto first = Solve(src);
  ASSERT_THAT(first, IsOk());
  auto second = Solve(src);
  ASSERT_THAT(second, IsOk());
  EXPECT_EQ(server_->requests().size(), 2u);  // downloaded twice, but one key
  EXPECT_EQ((*second)->id(), (*first)->id());
  EXPECT_EQ(execs_, 1);
}

TEST_F(HttpSourceTest, PinnedChecksumNeedsNoRequestOnAWarmCache) {
  const llb::State src =
      llb::Http(server_->Url("/file.txt"), {.checksum = Sha256Digest("hello\n")});
  auto first = Solve(src);
  ASSERT_THAT(first, IsOk());
  EXPECT_EQ(Read(*first, "/file.txt"), "hello\n");
  EXPECT_EQ(server_->requests().size(), 1u);
  auto second = Solve(src);
  ASSERT_THAT(second, IsOk());
  EXPECT_EQ(Read(*second, "/file.txt"), "hello\n");
  EXPECT_EQ(server_->requests().size(), 1u);  // the key needs no request, the record is cached
  EXPECT_EQ(execs_, 1);
}

TEST_F(HttpSourceTest, ChecksumMismatchFailsNamingBothDigests) {
  const std::string want = Sha256Digest("something else");
  auto r = Solve(llb::Http(server_->Url("/file.txt"), {.checksum = want}));
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kInvalidArgument,
                          AllOf(HasSubstr("digest mismatch"), HasSubstr(server_->Url("/file.txt")),
                                HasSubstr(want), HasSubstr(Sha256Digest("hello\n")))));
  // A stored download with other content does not satisfy the checksum either.
  ASSERT_THAT(Solve(llb::Http(server_->Url("/file.txt"))), IsOk());
  r = Solve(llb::Http(server_->Url("/file.txt"), {.checksum = want}));
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("digest mismatch")));
}

TEST_F(HttpSourceTest, ErrorStatusFailsNamingTheUrlAndStatus) {
  server_->SetHandler([](const Request&) { return Reply{.status = 404, .body = "nope"}; });
  auto r = Solve(llb::Http(server_->Url("/missing.txt")));
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kNotFound,
                          AllOf(HasSubstr(server_->Url("/missing.txt")), HasSubstr("404"))));
  server_->SetHandler([](const Request&) { return Reply{.status = 500}; });
  r = Solve(llb::Http(server_->Url("/broken"), {.checksum = Sha256Digest("x")}));
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kUnavailable, HasSubstr("500")));
}

TEST_F(HttpSourceTest, FollowsRedirectsUpToALimit) {
  server_->SetHandler([](const Request& req) {
    if (req.target == "/old") return Reply{.status = 302, .headers = {{"Location", "/new.txt"}}};
    if (req.target == "/loop") return Reply{.status = 301, .headers = {{"Location", "/loop"}}};
    return Reply{.body = "moved\n"};
  });
  auto r = Solve(llb::Http(server_->Url("/old")));
  ASSERT_THAT(r, IsOk());
  EXPECT_THAT(List(*r), ElementsAre("old"));  // named after the URL asked for
  EXPECT_EQ(Read(*r, "/old"), "moved\n");
  EXPECT_THAT(Solve(llb::Http(server_->Url("/loop"))),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("redirects")));
}

TEST_F(HttpSourceTest, FileModeOwnerAndTime) {
  auto r = Solve(llb::Http(server_->Url("/f.sh"),
                           {.filename = "run.sh", .perm = 0755, .uid = 1000, .gid = 1001}));
  ASSERT_THAT(r, IsOk());
  EXPECT_THAT(List(*r), ElementsAre("run.sh"));
  auto st = StatFileInRef(Tree(*r), "/run.sh");
  ASSERT_THAT(st, IsOk());
  EXPECT_EQ(st->mode(), 0755u);
  EXPECT_EQ(st->uid(), 1000u);
  EXPECT_EQ(st->gid(), 1001u);
  EXPECT_EQ(st->size(), 6);
  EXPECT_EQ(st->modtime(), kLastModifiedUnix * 1000000000);

  // Defaults: 0600, root, and the epoch without Last-Modified.
  server_->SetHandler(Serve("x", "", ""));
  r = Solve(llb::Http(server_->Url("/plain")));
  ASSERT_THAT(r, IsOk());
  st = StatFileInRef(Tree(*r), "/plain");
  ASSERT_THAT(st, IsOk());
  EXPECT_EQ(st->mode(), 0600u);
  EXPECT_EQ(st->uid(), 0u);
  EXPECT_EQ(st->gid(), 0u);
  EXPECT_EQ(st->modtime(), 0);
}

TEST_F(HttpSourceTest, AttrsChangeTheCacheKey) {
  auto a = Solve(llb::Http(server_->Url("/f"), {.perm = 0644}));
  ASSERT_THAT(a, IsOk());
  auto b = Solve(llb::Http(server_->Url("/f"), {.perm = 0640}));
  ASSERT_THAT(b, IsOk());
  EXPECT_NE((*a)->id(), (*b)->id());
  EXPECT_EQ(StatFileInRef(Tree(*b), "/f")->mode(), 0640u);
  EXPECT_EQ(execs_, 2);
}

TEST_F(HttpSourceTest, AuthHeaderSecretComesFromTheSession) {
  const fs::path secret = root_ / "auth-secret";
  std::ofstream(secret) << "Basic dXNlcjpwYXNz";
  auto specs = client::ParseSecretSpecs({"id=webauth,src=" + secret.string()});
  ASSERT_THAT(specs, IsOk());
  client::SecretsService service(*specs);
  auto pair = ::kiln::testing::SessionPair::Start(root_.string(),
                                                  {{&service, "moby.buildkit.secrets.v1.Secrets"}});
  ASSERT_THAT(pair, IsOk());
  pair_ = std::move(*pair);

  ASSERT_THAT(Solve(llb::Http(server_->Url("/private"), {.auth_header_secret = "webauth"})),
              IsOk());
  ASSERT_EQ(server_->requests().size(), 1u);
  EXPECT_EQ(server_->requests()[0].Header("authorization"), "Basic dXNlcjpwYXNz");

  // Without a named secret nothing is sent (there are no HTTP_AUTH_*_127.0.0.1 secrets).
  ASSERT_THAT(Solve(llb::Http(server_->Url("/public"))), IsOk());
  EXPECT_EQ(server_->requests().back().Header("authorization"), "");

  // A named secret the client does not have fails, naming it, before any request.
  EXPECT_THAT(Solve(llb::Http(server_->Url("/other"), {.auth_header_secret = "nosuch"})),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("nosuch")));
  EXPECT_EQ(server_->requests().size(), 2u);
}

TEST(HttpSourceAttrsTest, ParsesAndRejectsAttrs) {
  google::protobuf::Map<std::string, std::string> attrs;
  const std::string sum = Sha256Digest("x");
  attrs["http.checksum"] = sum;
  attrs["http.filename"] = "out.bin";
  attrs["http.perm"] = "0755";
  attrs["http.uid"] = "1000";
  attrs["http.gid"] = "0x10";
  attrs["http.authheadersecret"] = "tok";
  attrs["http.header.accept"] = "application/octet-stream";
  attrs["http.header.x-other"] = "dropped";
  auto a = ParseHttpSource("https://example.com/a/b.tgz", attrs);
  ASSERT_THAT(a, IsOk());
  EXPECT_EQ(a->checksum, sum);
  EXPECT_EQ(a->filename, "out.bin");
  EXPECT_EQ(a->perm, 0755u);
  EXPECT_EQ(a->uid, 1000u);
  EXPECT_EQ(a->gid, 16u);
  EXPECT_EQ(a->auth_header_secret, "tok");
  EXPECT_THAT(a->headers, ElementsAre(std::make_pair(std::string("accept"),
                                                     std::string("application/octet-stream"))));

  auto bad = [](const std::string& key, const std::string& value) {
    google::protobuf::Map<std::string, std::string> m;
    m[key] = value;
    return ParseHttpSource("http://example.com/f", m).status();
  };
  EXPECT_THAT(bad("http.checksum", "sha512:abcd"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("http.checksum"), HasSubstr("unsupported"))));
  EXPECT_THAT(bad("http.checksum", "sha256:xyz"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("http.checksum")));
  EXPECT_THAT(bad("http.checksum", "deadbeef"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("http.checksum")));
  EXPECT_THAT(bad("http.perm", "rwx"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("http.perm")));
  EXPECT_THAT(bad("http.perm", "077777"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("http.perm")));
  EXPECT_THAT(bad("http.uid", "-1"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("http.uid")));
  EXPECT_THAT(bad("http.gid", ""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("http.gid")));
  EXPECT_THAT(bad("http.sig.pubkey", "k"),
              StatusIs(absl::StatusCode::kUnimplemented, HasSubstr("http.sig.pubkey")));
  for (const char* name : {"a/b", "..", ".", "/etc/passwd", "", "a\nb"}) {
    EXPECT_THAT(bad("http.filename", name),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("http.filename")))
        << name;
  }
  EXPECT_THAT(ParseHttpSource("ftp://example.com/f", {}).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("ftp://")));
}

TEST(HttpSourceAttrsTest, FileNameComesFromTheUrlPath) {
  auto name = [](const std::string& url) {
    return HttpSourceFileName(HttpSourceAttrs{.url = url});
  };
  EXPECT_EQ(name("http://h/dir/x.tar.gz?sig=1#frag"), "x.tar.gz");
  EXPECT_EQ(name("http://h/a%20b.txt"), "a b.txt");
  EXPECT_EQ(name("http://h/dir/"), "dir");
  EXPECT_EQ(name("http://h/"), "__unnamed__");
  EXPECT_EQ(name("http://h"), "__unnamed__");
  EXPECT_EQ(name("http://h/a/.."), "__unnamed__");
  EXPECT_EQ(name("http://h/a%2Fb"), "b");
  EXPECT_EQ(HttpSourceFileName(HttpSourceAttrs{.url = "http://h/x", .filename = "y"}), "y");
}

}  // namespace
}  // namespace kiln::ops
