// Registry client against a real docker-registry process (see registry_fixture.h).
#include "daemon/registry/client.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>

#include "base/digest.h"
#include "tests/daemon/registry/registry_fixture.h"
#include "tests/daemon/registry/registry_testutil.h"
#include "tests/testutil/status_matchers.h"

namespace kiln::registry {
namespace {

using ::kiln::registry::testing::Ref;
using ::kiln::registry::testing::StoreBlob;

namespace fs = std::filesystem;
using ::kiln::testing::IsOk;
using ::kiln::testing::RegistryProcess;
using ::kiln::testing::StatusIs;
using ::testing::AllOf;
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

// Delegates to a real store and counts reads of blob data, to tell an upload from a skip or a
// mount.
class CountingStore : public content::Store {
 public:
  explicit CountingStore(content::Store& inner) : inner_(inner) {}
  bool Has(std::string_view d) const override { return inner_.Has(d); }
  absl::StatusOr<int64_t> Size(std::string_view d) const override { return inner_.Size(d); }
  absl::StatusOr<fs::path> BlobPath(std::string_view d) const override {
    ++reads;
    return inner_.BlobPath(d);
  }
  absl::StatusOr<std::string> Read(std::string_view d, int64_t max) const override {
    ++reads;
    return inner_.Read(d, max);
  }
  absl::StatusOr<std::string> Put(std::string_view data,
                                  std::optional<std::string> expected) override {
    return inner_.Put(data, std::move(expected));
  }
  absl::StatusOr<std::unique_ptr<content::Writer>> OpenWriter(const Context& ctx,
                                                              const std::string& key,
                                                              const std::string& digest,
                                                              int64_t size) override {
    return inner_.OpenWriter(ctx, key, digest, size);
  }
  absl::Status Delete(std::string_view d) override { return inner_.Delete(d); }
  absl::StatusOr<std::vector<std::string>> List() const override { return inner_.List(); }
  mutable int reads = 0;

 private:
  content::Store& inner_;
};

class RegistryClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/kiln-regtest-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    tmp_ = tmpl;
    auto a = content::Store::Open(tmp_ / "a");
    auto b = content::Store::Open(tmp_ / "b");
    ASSERT_THAT(a, IsOk());
    ASSERT_THAT(b, IsOk());
    src_ = std::move(*a);
    dst_ = std::move(*b);
  }
  void TearDown() override { fs::remove_all(tmp_); }

  void StartRegistry(RegistryProcess::Options options = {}) {
    auto reg = RegistryProcess::Start(options);
    ASSERT_THAT(reg, IsOk());
    registry_ = std::move(*reg);
  }

  Client::Options FastOptions() {
    Client::Options o;
    o.retry = {.max_attempts = 3,
               .initial_backoff = std::chrono::milliseconds(10),
               .max_backoff = std::chrono::milliseconds(50)};
    o.connect_timeout = std::chrono::seconds(5);
    o.io_timeout = std::chrono::seconds(10);
    return o;
  }

  Descriptor PutBlob(const std::string& data, const std::string& media_type) {
    return StoreBlob(*src_, data, media_type);
  }

  static json DescJson(const Descriptor& d) {
    json j = {{"mediaType", d.media_type}, {"digest", d.digest}, {"size", d.size}};
    if (d.platform) {
      j["platform"] = {{"os", d.platform->os}, {"architecture", d.platform->architecture}};
      if (!d.platform->variant.empty()) j["platform"]["variant"] = d.platform->variant;
    }
    return j;
  }

  struct Image {
    Descriptor config;
    std::vector<Descriptor> layers;
    std::string manifest;
    Descriptor manifest_desc;
  };

  // Makes an image in the source store: a config and layers of the given sizes.
  Image MakeImage(const std::string& arch, std::vector<size_t> layer_sizes, uint32_t seed) {
    Image img;
    img.config = PutBlob(json({{"architecture", arch}, {"os", "linux"}, {"seed", seed}}).dump(),
                         kConfigType);
    json layers = json::array();
    for (size_t i = 0; i < layer_sizes.size(); ++i) {
      img.layers.push_back(
          PutBlob(RandomBytes(layer_sizes[i], seed * 100 + static_cast<uint32_t>(i)), kLayerType));
      layers.push_back(DescJson(img.layers.back()));
    }
    img.manifest = json({{"schemaVersion", 2},
                         {"mediaType", kMediaTypeOciManifest},
                         {"config", DescJson(img.config)},
                         {"layers", layers}})
                       .dump();
    img.manifest_desc = Descriptor{.media_type = kMediaTypeOciManifest,
                                   .digest = Sha256Digest(img.manifest),
                                   .size = static_cast<int64_t>(img.manifest.size())};
    return img;
  }

  void PushImage(Client& client, const Reference& ref, const Image& img) {
    Context ctx;
    ASSERT_THAT(client.PushBlob(ctx, ref, img.config, *src_), IsOk());
    for (const auto& l : img.layers) ASSERT_THAT(client.PushBlob(ctx, ref, l, *src_), IsOk());
    auto digest = client.PushManifest(ctx, ref, kMediaTypeOciManifest, img.manifest);
    ASSERT_THAT(digest, IsOk());
    EXPECT_EQ(*digest, img.manifest_desc.digest);
  }

  fs::path tmp_;
  std::unique_ptr<content::Store> src_, dst_;
  std::unique_ptr<RegistryProcess> registry_;
};

TEST_F(RegistryClientTest, PushesMonolithicAndChunkedBlobsAndPullsThemBack) {
  StartRegistry();
  Client::Options options = FastOptions();
  options.monolithic_upload_limit = 4096;  // the 100 KiB layer goes up in PATCH chunks
  options.upload_chunk_size = 30000;
  Client client(options);  // no host config: loopback falls back from HTTPS to HTTP
  Image img = MakeImage("amd64", {1000, 100 * 1024}, 1);
  Reference ref = Ref(registry_->host() + "/kiln/app:v1");
  PushImage(client, ref, img);

  Context ctx;
  auto by_tag = client.Resolve(ctx, ref);
  ASSERT_THAT(by_tag, IsOk());
  EXPECT_EQ(by_tag->root.digest, img.manifest_desc.digest);
  EXPECT_EQ(by_tag->manifest.digest, img.manifest_desc.digest);
  EXPECT_EQ(by_tag->manifest.media_type, kMediaTypeOciManifest);
  EXPECT_EQ(by_tag->manifest_bytes, img.manifest);
  EXPECT_TRUE(by_tag->index_bytes.empty());
  EXPECT_EQ(by_tag->registry_host, registry_->host());

  auto by_digest =
      client.Resolve(ctx, Ref(registry_->host() + "/kiln/app@" + img.manifest_desc.digest));
  ASSERT_THAT(by_digest, IsOk());
  EXPECT_EQ(by_digest->manifest_bytes, img.manifest);

  auto fetched = client.FetchManifest(ctx, ref, img.manifest_desc);
  ASSERT_THAT(fetched, IsOk());
  EXPECT_EQ(*fetched, img.manifest);

  for (const Descriptor& d : {img.config, img.layers[0], img.layers[1]}) {
    ASSERT_THAT(client.FetchBlob(ctx, ref, d, *dst_), IsOk()) << d.digest;
    EXPECT_EQ(*dst_->Read(d.digest, 1 << 20), *src_->Read(d.digest, 1 << 20));
  }
}

TEST_F(RegistryClientTest, ExplicitHttpConfigAndSkipsExistingBlobs) {
  StartRegistry();
  Client::Options options = FastOptions();
  options.hosts[registry_->host()].http = true;
  Client client(options);
  Reference ref = Ref(registry_->host() + "/kiln/skip:1");
  Descriptor blob = PutBlob(RandomBytes(5000, 7), kLayerType);
  CountingStore counting(*src_);
  Context ctx;
  ASSERT_THAT(client.PushBlob(ctx, ref, blob, counting), IsOk());
  EXPECT_GT(counting.reads, 0);
  counting.reads = 0;
  ASSERT_THAT(client.PushBlob(ctx, ref, blob, counting), IsOk());
  EXPECT_EQ(counting.reads, 0) << "an existing blob was uploaded again";
}

TEST_F(RegistryClientTest, MountsBlobsAcrossRepositories) {
  StartRegistry();
  Client client(FastOptions());
  Context ctx;
  Descriptor blob = PutBlob(RandomBytes(20000, 9), kLayerType);
  Reference from = Ref(registry_->host() + "/team/base");
  Reference to = Ref(registry_->host() + "/team/app");
  ASSERT_THAT(client.PushBlob(ctx, from, blob, *src_), IsOk());
  CountingStore counting(*src_);
  ASSERT_THAT(client.PushBlob(ctx, to, blob, counting, "team/base"), IsOk());
  EXPECT_EQ(counting.reads, 0) << "the blob was uploaded instead of mounted";
  ASSERT_THAT(client.FetchBlob(ctx, to, blob, *dst_), IsOk());
  EXPECT_TRUE(dst_->Has(blob.digest));

  // Mounting from a repository that lacks the blob falls back to a plain upload (202).
  Descriptor other = PutBlob(RandomBytes(3000, 10), kLayerType);
  counting.reads = 0;
  ASSERT_THAT(client.PushBlob(ctx, to, other, counting, "team/empty"), IsOk());
  EXPECT_GT(counting.reads, 0);
  ASSERT_THAT(client.FetchBlob(ctx, to, other, *dst_), IsOk());
}

TEST_F(RegistryClientTest, SelectsThePlatformFromAnIndex) {
  StartRegistry();
  Client client(FastOptions());
  Context ctx;
  Reference ref = Ref(registry_->host() + "/multi/app:latest");
  Image amd = MakeImage("amd64", {500}, 21);
  Image arm = MakeImage("arm64", {600}, 22);
  for (const Image* img : {&amd, &arm}) {
    ASSERT_THAT(client.PushBlob(ctx, ref, img->config, *src_), IsOk());
    ASSERT_THAT(client.PushBlob(ctx, ref, img->layers[0], *src_), IsOk());
    ASSERT_THAT(client.PushManifest(ctx, WithDigest(ref, img->manifest_desc.digest),
                                    kMediaTypeOciManifest, img->manifest),
                IsOk());
  }
  Descriptor amd_desc = amd.manifest_desc, arm_desc = arm.manifest_desc;
  amd_desc.platform = Platform{.os = "linux", .architecture = "amd64"};
  arm_desc.platform = Platform{.os = "linux", .architecture = "arm64", .variant = "v8"};
  std::string index = json({{"schemaVersion", 2},
                            {"mediaType", kMediaTypeOciIndex},
                            {"manifests", {DescJson(amd_desc), DescJson(arm_desc)}}})
                          .dump();
  auto index_digest = client.PushManifest(ctx, ref, kMediaTypeOciIndex, index);
  ASSERT_THAT(index_digest, IsOk());

  auto arm_result = client.Resolve(ctx, ref, Platform{.os = "linux", .architecture = "arm64"});
  ASSERT_THAT(arm_result, IsOk());
  EXPECT_EQ(arm_result->root.digest, *index_digest);
  EXPECT_EQ(arm_result->root.media_type, kMediaTypeOciIndex);
  EXPECT_EQ(arm_result->manifest.digest, arm.manifest_desc.digest);
  EXPECT_EQ(arm_result->manifest_bytes, arm.manifest);
  EXPECT_EQ(arm_result->index_bytes, index);

  auto amd_result = client.Resolve(ctx, ref, Platform{.os = "linux", .architecture = "x86_64"});
  ASSERT_THAT(amd_result, IsOk());
  EXPECT_EQ(amd_result->manifest.digest, amd.manifest_desc.digest);

  EXPECT_THAT(
      client.Resolve(ctx, ref, Platform{.os = "linux", .architecture = "s390x"}),
      StatusIs(absl::StatusCode::kNotFound,
               AllOf(HasSubstr("linux/s390x"), HasSubstr("linux/arm64"), HasSubstr(ref.String()))));
}

TEST_F(RegistryClientTest, ResumesAnInterruptedBlobDownload) {
  StartRegistry();
  Client client(FastOptions());
  Context ctx;
  Reference ref = Ref(registry_->host() + "/kiln/resume:1");
  std::string data = RandomBytes(200000, 31);
  Descriptor blob = PutBlob(data, kLayerType);
  ASSERT_THAT(client.PushBlob(ctx, ref, blob, *src_), IsOk());
  {
    // What an interrupted fetch leaves behind: the first half under the fetch's ingest key.
    auto w = dst_->OpenWriter(ctx, "fetch-" + blob.digest, blob.digest, blob.size);
    ASSERT_THAT(w, IsOk());
    ASSERT_THAT((*w)->Write(std::string_view(data).substr(0, 100000)), IsOk());
  }
  EXPECT_FALSE(dst_->Has(blob.digest));
  ASSERT_THAT(client.FetchBlob(ctx, ref, blob, *dst_), IsOk());
  EXPECT_EQ(*dst_->Read(blob.digest, 1 << 20), data);
}

TEST_F(RegistryClientTest, DescriptorSizeMismatchLeavesNoBlob) {
  StartRegistry();
  Client client(FastOptions());
  Context ctx;
  Reference ref = Ref(registry_->host() + "/kiln/bad:1");
  Descriptor blob = PutBlob(RandomBytes(4000, 41), kLayerType);
  ASSERT_THAT(client.PushBlob(ctx, ref, blob, *src_), IsOk());
  Descriptor lying = blob;
  lying.size = 1000;
  absl::Status st = client.FetchBlob(ctx, ref, lying, *dst_);
  EXPECT_FALSE(st.ok());
  EXPECT_THAT(std::string(st.message()), HasSubstr(blob.digest));
  EXPECT_FALSE(dst_->Has(blob.digest));
  EXPECT_TRUE(dst_->List()->empty());

  // A by-digest reference whose digest is not the manifest's.
  Descriptor wrong_manifest{
      .media_type = kMediaTypeOciManifest, .digest = Sha256Digest("nope"), .size = 4};
  EXPECT_THAT(client.FetchManifest(ctx, ref, wrong_manifest),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr(wrong_manifest.digest)));
}

TEST_F(RegistryClientTest, MissingImageIsNotFoundNamingImageAndRegistry) {
  StartRegistry();
  Client client(FastOptions());
  auto result = client.Resolve(Context(), Ref(registry_->host() + "/library/nosuch"));
  EXPECT_THAT(result, StatusIs(absl::StatusCode::kNotFound,
                               AllOf(HasSubstr(registry_->host() + "/library/nosuch:latest"),
                                     HasSubstr("404"), HasSubstr("unknown"))));
}

TEST_F(RegistryClientTest, ConnectionRefusedFailsAfterRetries) {
  int port = ::kiln::testing::FreeLoopbackPort();
  Client client(FastOptions());
  auto start = std::chrono::steady_clock::now();
  auto result = client.Resolve(Context(), Ref(absl::StrCat("127.0.0.1:", port, "/x/y:1")));
  EXPECT_THAT(result, StatusIs(absl::StatusCode::kUnavailable,
                               AllOf(HasSubstr(absl::StrCat("127.0.0.1:", port)),
                                     HasSubstr("refused"), HasSubstr("3 attempts"))));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

TEST_F(RegistryClientTest, CancelledContextStopsTheCall) {
  StartRegistry();
  Client client(FastOptions());
  Context ctx;
  ctx.Cancel();
  EXPECT_THAT(client.Resolve(ctx, Ref(registry_->host() + "/x/y:1")),
              StatusIs(absl::StatusCode::kCancelled, ::testing::_));
}

TEST_F(RegistryClientTest, BasicAuthWithHtpasswd) {
  StartRegistry({.users = {{"alice", "s3cret"}}});
  Context ctx;
  Reference ref = Ref(registry_->host() + "/private/app:1");
  Image img = MakeImage("amd64", {700}, 51);
  std::vector<std::string> asked;
  Client::Options options = FastOptions();
  options.credentials = [&](const std::string& host) -> absl::StatusOr<Credentials> {
    asked.push_back(host);
    return Credentials{.username = "alice", .secret = "s3cret"};
  };
  Client good(options);
  PushImage(good, ref, img);
  auto resolved = good.Resolve(ctx, ref);
  ASSERT_THAT(resolved, IsOk());
  EXPECT_EQ(resolved->manifest_bytes, img.manifest);
  ASSERT_FALSE(asked.empty());
  EXPECT_EQ(asked.front(), registry_->host());

  Client anonymous(FastOptions());
  EXPECT_THAT(
      anonymous.Resolve(ctx, ref),
      StatusIs(absl::StatusCode::kUnauthenticated,
               AllOf(HasSubstr("pull access denied"), HasSubstr(ref.String()), HasSubstr("401"))));

  Client::Options bad_options = FastOptions();
  bad_options.credentials = [](const std::string&) -> absl::StatusOr<Credentials> {
    return Credentials{.username = "alice", .secret = "wrong"};
  };
  Client bad(bad_options);
  EXPECT_THAT(bad.PushBlob(ctx, ref, img.layers[0], *src_),
              StatusIs(absl::StatusCode::kUnauthenticated,
                       AllOf(HasSubstr("push access denied"), HasSubstr(registry_->host()))));
}

TEST_F(RegistryClientTest, PullsDockerHubImagesThroughAMirror) {
  StartRegistry();
  Context ctx;
  Image img = MakeImage("amd64", {900}, 61);
  {
    Client seeder(FastOptions());
    PushImage(seeder, Ref(registry_->host() + "/library/mirrored:latest"), img);
  }
  Client::Options options = FastOptions();
  options.hosts["docker.io"].mirrors = {registry_->host()};
  options.hosts[registry_->host()].http = true;
  Client client(options);
  Reference ref = Ref("mirrored");
  ASSERT_EQ(ref.String(), "docker.io/library/mirrored:latest");
  auto resolved = client.Resolve(ctx, ref);
  ASSERT_THAT(resolved, IsOk());
  EXPECT_EQ(resolved->registry_host, registry_->host());
  EXPECT_EQ(resolved->manifest_bytes, img.manifest);
  ASSERT_THAT(client.FetchBlob(ctx, ref, img.layers[0], *dst_), IsOk());
  EXPECT_TRUE(dst_->Has(img.layers[0].digest));
}

}  // namespace
}  // namespace kiln::registry
