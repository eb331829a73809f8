// Registry client's Bearer token flow against a real docker-registry in `auth: token` mode, with
// the token server (token_server.h) running in the test process.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>

#include "base/digest.h"
#include "daemon/registry/client.h"
#include "tests/daemon/registry/registry_fixture.h"
#include "tests/daemon/registry/registry_testutil.h"
#include "tests/daemon/registry/token_server.h"
#include "tests/testutil/status_matchers.h"

namespace kiln::registry {
namespace {

using ::kiln::registry::testing::Ref;
using ::kiln::registry::testing::StoreBlob;

namespace fs = std::filesystem;
using ::kiln::testing::IsOk;
using ::kiln::testing::RegistryProcess;
using ::kiln::testing::StatusIs;
using ::kiln::testing::TokenServer;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using json = nlohmann::json;

constexpr char kLayerType[] = "application/vnd.oci.image.layer.v1.tar+gzip";
constexpr char kConfigType[] = "application/vnd.oci.image.config.v1+json";

std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

json DescJson(const Descriptor& d) {
  return {{"mediaType", d.media_type}, {"digest", d.digest}, {"size", d.size}};
}

class TokenAuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/kiln-tokentest-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    tmp_ = tmpl;
    auto store = content::Store::Open(tmp_ / "src");
    ASSERT_THAT(store, IsOk());
    src_ = std::move(*store);
    store = content::Store::Open(tmp_ / "dst");
    ASSERT_THAT(store, IsOk());
    dst_ = std::move(*store);

    auto tokens = TokenServer::Start(tmp_, {.users = {{"alice", "wonderland"}}});
    ASSERT_THAT(tokens, IsOk());
    tokens_ = std::move(*tokens);
    auto reg = RegistryProcess::Start({.token = RegistryProcess::Options::TokenAuth{
                                           .realm = tokens_->realm(),
                                           .service = tokens_->options().service,
                                           .issuer = tokens_->options().issuer,
                                           .rootcertbundle = tokens_->cert_path().string()}});
    ASSERT_THAT(reg, IsOk());
    registry_ = std::move(*reg);
  }
  void TearDown() override {
    registry_.reset();
    tokens_.reset();
    fs::remove_all(tmp_);
  }

  Client::Options Options(std::string user, std::string password) {
    Client::Options o;
    o.retry = {.max_attempts = 3,
               .initial_backoff = std::chrono::milliseconds(10),
               .max_backoff = std::chrono::milliseconds(50)};
    o.connect_timeout = std::chrono::seconds(5);
    o.io_timeout = std::chrono::seconds(10);
    o.hosts[registry_->host()].http = true;
    if (!user.empty()) {
      o.credentials = [this, user,
                       password](const std::string& host) -> absl::StatusOr<Credentials> {
        asked_hosts_.push_back(host);
        return Credentials{.username = user, .secret = password};
      };
    }
    return o;
  }

  Descriptor PutBlob(const std::string& data, const std::string& media_type) {
    return StoreBlob(*src_, data, media_type);
  }

  struct Image {
    Descriptor config, layer;
    std::string manifest;
    std::string digest;
  };

  Image MakeImage(uint32_t seed) {
    Image img;
    img.config = PutBlob(json({{"architecture", "amd64"}, {"os", "linux"}, {"seed", seed}}).dump(),
                         kConfigType);
    img.layer = PutBlob(RandomBytes(3000, seed), kLayerType);
    img.manifest = json({{"schemaVersion", 2},
                         {"mediaType", kMediaTypeOciManifest},
                         {"config", DescJson(img.config)},
                         {"layers", {DescJson(img.layer)}}})
                       .dump();
    img.digest = Sha256Digest(img.manifest);
    return img;
  }

  void PushImage(Client& client, const Reference& ref, const Image& img) {
    Context ctx;
    ASSERT_THAT(client.PushBlob(ctx, ref, img.config, *src_), IsOk());
    ASSERT_THAT(client.PushBlob(ctx, ref, img.layer, *src_), IsOk());
    auto digest = client.PushManifest(ctx, ref, kMediaTypeOciManifest, img.manifest);
    ASSERT_THAT(digest, IsOk());
    EXPECT_EQ(*digest, img.digest);
  }

  fs::path tmp_;
  std::unique_ptr<content::Store> src_, dst_;
  std::unique_ptr<TokenServer> tokens_;
  std::unique_ptr<RegistryProcess> registry_;
  std::vector<std::string> asked_hosts_;
};

// UNAUTHENTICATED or PERMISSION_DENIED, with a message matching `message_matcher`.
MATCHER_P(Denied, message_matcher, "") {
  const absl::Status& s = ::kiln::testing::GetStatus(arg);
  *result_listener << "status is " << s;
  return (s.code() == absl::StatusCode::kUnauthenticated ||
          s.code() == absl::StatusCode::kPermissionDenied) &&
         ::testing::ExplainMatchResult(message_matcher, std::string(s.message()), result_listener);
}

auto SeenRequest(const std::string& user, bool authenticated, const std::string& scope) {
  return AllOf(::testing::Field(&TokenServer::Seen::user, user),
               ::testing::Field(&TokenServer::Seen::authenticated, authenticated),
               ::testing::Field(&TokenServer::Seen::service, "kiln-registry"),
               ::testing::Field(&TokenServer::Seen::scopes, ElementsAre(scope)),
               ::testing::Field(&TokenServer::Seen::status, 200));
}

TEST_F(TokenAuthTest, PushesAndPullsWithBearerTokensAndCachesThem) {
  Client client(Options("alice", "wonderland"));
  Context ctx;
  Reference ref = Ref(registry_->host() + "/private/app:1");
  Image img = MakeImage(1);
  PushImage(client, ref, img);
  // All pushes share one token for the push scope.
  EXPECT_THAT(tokens_->seen(),
              ElementsAre(SeenRequest("alice", true, "repository:private/app:pull,push")));

  auto resolved = client.Resolve(ctx, ref);
  ASSERT_THAT(resolved, IsOk());
  EXPECT_EQ(resolved->manifest.digest, img.digest);
  EXPECT_EQ(resolved->manifest_bytes, img.manifest);
  for (const Descriptor& d : {img.config, img.layer}) {
    ASSERT_THAT(client.FetchBlob(ctx, ref, d, *dst_), IsOk()) << d.digest;
    EXPECT_EQ(*dst_->Read(d.digest, 1 << 20), *src_->Read(d.digest, 1 << 20));
  }
  auto fetched =
      client.FetchManifest(ctx, ref,
                           Descriptor{.media_type = kMediaTypeOciManifest,
                                      .digest = img.digest,
                                      .size = static_cast<int64_t>(img.manifest.size())});
  ASSERT_THAT(fetched, IsOk());
  EXPECT_EQ(*fetched, img.manifest);
  EXPECT_THAT(tokens_->seen(),
              ElementsAre(SeenRequest("alice", true, "repository:private/app:pull,push"),
                          SeenRequest("alice", true, "repository:private/app:pull")));

  // Within the token's lifetime, more calls reuse the cached tokens.
  ASSERT_THAT(client.Resolve(ctx, ref), IsOk());
  ASSERT_THAT(client.PushBlob(ctx, ref, img.layer, *src_), IsOk());
  EXPECT_EQ(tokens_->seen().size(), 2u);
  ASSERT_FALSE(asked_hosts_.empty());
  for (const auto& host : asked_hosts_) EXPECT_EQ(host, registry_->host());

  // A second client has its own cache, and a different repository needs its own token.
  Client other(Options("alice", "wonderland"));
  ASSERT_THAT(other.Resolve(ctx, ref), IsOk());
  EXPECT_THAT(other.Resolve(ctx, Ref(registry_->host() + "/private/nosuch:1")),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("private/nosuch")));
  auto seen = tokens_->seen();
  ASSERT_EQ(seen.size(), 4u);
  EXPECT_THAT(seen[2], SeenRequest("alice", true, "repository:private/app:pull"));
  EXPECT_THAT(seen[3], SeenRequest("alice", true, "repository:private/nosuch:pull"));
}

TEST_F(TokenAuthTest, WrongPasswordFailsNamingImageAndRegistry) {
  Image img = MakeImage(2);
  Reference ref = Ref(registry_->host() + "/private/app:1");
  {
    Client alice(Options("alice", "wonderland"));
    PushImage(alice, ref, img);
  }
  Client bad(Options("alice", "not-the-password"));
  Context ctx;
  const std::string token_host = absl::StrCat("127.0.0.1:", tokens_->port());
  // The token server turns the password down: the error names the repository, the registry, the
  // token server and whether it was a push or a pull.
  EXPECT_THAT(
      bad.PushBlob(ctx, ref, img.layer, *src_),
      Denied(AllOf(HasSubstr("push access denied for " + registry_->host() + "/private/app"),
                   HasSubstr("(registry " + registry_->host() + ")"),
                   HasSubstr("token request to " + token_host), HasSubstr("401"))));
  EXPECT_THAT(
      bad.Resolve(ctx, ref),
      Denied(AllOf(HasSubstr("pull access denied for " + registry_->host() + "/private/app"),
                   HasSubstr("(registry " + registry_->host() + ")"),
                   HasSubstr("token request to " + token_host), HasSubstr("401"))));
  int refused = 0;
  for (const auto& s : tokens_->seen()) {
    if (s.user == "alice" && !s.authenticated) {
      EXPECT_EQ(s.status, 401);
      ++refused;
    }
  }
  EXPECT_EQ(refused, 2);
}

TEST_F(TokenAuthTest, AnonymousGetsNoAccess) {
  Image img = MakeImage(3);
  Reference ref = Ref(registry_->host() + "/private/app:1");
  {
    Client alice(Options("alice", "wonderland"));
    PushImage(alice, ref, img);
  }
  size_t before = tokens_->seen().size();
  Client anonymous(Options("", ""));
  Context ctx;
  auto pull = anonymous.Resolve(ctx, ref);
  EXPECT_THAT(pull, Denied(AllOf(HasSubstr("pull access denied"), HasSubstr(ref.String()),
                                 HasSubstr(registry_->host()))));
  absl::Status blob = anonymous.FetchBlob(ctx, ref, img.layer, *dst_);
  EXPECT_THAT(blob, Denied(AllOf(HasSubstr("pull access denied"), HasSubstr(registry_->host()))));
  EXPECT_FALSE(dst_->Has(img.layer.digest));
  absl::Status push = anonymous.PushBlob(ctx, ref, MakeImage(4).layer, *src_);
  EXPECT_THAT(push, Denied(AllOf(HasSubstr("push access denied"), HasSubstr(registry_->host()))));

  // The token server was asked anonymously and answered with tokens that grant nothing.
  auto seen = tokens_->seen();
  ASSERT_GT(seen.size(), before);
  for (size_t i = before; i < seen.size(); ++i) {
    EXPECT_EQ(seen[i].user, "");
    EXPECT_EQ(seen[i].status, 200);
  }
}

}  // namespace
}  // namespace kiln::registry
