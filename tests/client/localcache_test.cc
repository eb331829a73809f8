// The client's type=local cache directory: blobs stay inside the directory whatever a digest or
// the directory's own links say, writes become visible only complete and verified, and
// index.json is read and updated the way buildctl does.

#include "client/localcache.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <random>

#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "base/digest.h"
#include "tests/testutil/files.h"
#include "tests/testutil/status_matchers.h"

namespace kiln::client {
namespace {

namespace fs = std::filesystem;
namespace v1 = moby::buildkit::v1;
using ::kiln::testing::IsOk;
using ::kiln::testing::ReadFile;
using ::kiln::testing::StatusIs;
using ::kiln::testing::WriteFile;
using ::testing::_;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::string Hex(const std::string& digest) { return digest.substr(7); }

class OciLayoutStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::path(::testing::TempDir()) /
            ("kiln_localcache_test_" + std::to_string(std::random_device{}()));
    dir_ = root_ / "cache";
    auto s = OciLayoutStore::Open(dir_.string(), true);
    ASSERT_THAT(s, IsOk());
    store_ = *std::move(s);
  }
  void TearDown() override { fs::remove_all(root_); }

  // Puts `data` where blob `digest` belongs, bypassing the store.
  void PlantBlob(const std::string& data) {
    WriteFile(dir_ / "blobs/sha256" / Hex(Sha256Digest(data)), data);
  }
  std::vector<std::string> IngestFiles() const {
    std::vector<std::string> out;
    if (!fs::exists(dir_ / "ingest")) return out;
    for (const auto& e : fs::directory_iterator(dir_ / "ingest")) out.push_back(e.path().string());
    return out;
  }

  fs::path root_, dir_;
  std::unique_ptr<OciLayoutStore> store_;
};

TEST_F(OciLayoutStoreTest, ReadsBlobsByDigest) {
  PlantBlob("hello");
  EXPECT_EQ(*store_->Size(Sha256Digest("hello")), 5);
  auto fd = store_->OpenBlob(Sha256Digest("hello"));
  ASSERT_THAT(fd, IsOk());
  char buf[16];
  EXPECT_EQ(::read(fd->get(), buf, sizeof(buf)), 5);
  EXPECT_THAT(store_->Size(Sha256Digest("absent")), StatusIs(absl::StatusCode::kNotFound, _));
}

TEST_F(OciLayoutStoreTest, RejectsDigestsThatAreNotSha256Hex) {
  WriteFile(root_ / "secret", "secret");
  const std::string valid = Sha256Digest("x");
  for (const std::string& bad :
       {std::string("sha256:../../secret"), std::string("sha256:../../../cache/../secret"),
        std::string("/etc/passwd"), std::string(""), std::string("sha256:"), "sha512:" + Hex(valid),
        "sha256:" + absl::AsciiStrToUpper(Hex(valid)), valid + "/..",
        valid.substr(0, valid.size() - 1)}) {
    SCOPED_TRACE(bad);
    EXPECT_THAT(store_->Size(bad), StatusIs(absl::StatusCode::kInvalidArgument, _));
    EXPECT_THAT(store_->OpenBlob(bad), StatusIs(absl::StatusCode::kInvalidArgument, _));
    if (bad.empty()) continue;  // a commit without an expected digest is fine
    auto ingest = store_->NewIngest();
    ASSERT_THAT(ingest, IsOk());
    ASSERT_THAT((*ingest)->Write("x"), IsOk());
    EXPECT_THAT((*ingest)->Commit(1, bad), StatusIs(absl::StatusCode::kInvalidArgument, _));
  }
  EXPECT_EQ(ReadFile(root_ / "secret"), "secret");
}

TEST_F(OciLayoutStoreTest, NeverFollowsSymlinksOutOfTheDirectory) {
  // A blob that is a link to a file outside.
  WriteFile(root_ / "outside/secret", "secret");
  const std::string digest = Sha256Digest("secret");
  fs::create_directories(dir_ / "blobs/sha256");
  fs::create_symlink(root_ / "outside/secret", dir_ / "blobs/sha256" / Hex(digest));
  EXPECT_THAT(store_->Size(digest),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("symlink")));
  EXPECT_THAT(store_->OpenBlob(digest), StatusIs(absl::StatusCode::kInvalidArgument, _));
  // A blobs directory that is a link to a directory outside.
  fs::remove_all(dir_ / "blobs");
  WriteFile(root_ / "outside/sha256" / Hex(digest), "secret");
  fs::create_directory_symlink(root_ / "outside", dir_ / "blobs");
  EXPECT_THAT(store_->OpenBlob(digest), StatusIs(absl::StatusCode::kInvalidArgument, _));
  // Nor is anything written through it.
  auto ingest = store_->NewIngest();
  ASSERT_THAT(ingest, IsOk());
  ASSERT_THAT((*ingest)->Write("new"), IsOk());
  EXPECT_THAT((*ingest)->Commit(3, Sha256Digest("new")),
              StatusIs(absl::StatusCode::kInvalidArgument, _));
  EXPECT_FALSE(fs::exists(root_ / "outside/sha256" / Hex(Sha256Digest("new"))));
  // An ingest directory that is a link.
  fs::remove_all(dir_ / "ingest");
  fs::create_directory_symlink(root_ / "outside", dir_ / "ingest");
  EXPECT_THAT(store_->NewIngest(), StatusIs(absl::StatusCode::kInvalidArgument, _));
}

TEST_F(OciLayoutStoreTest, AFifoIsNotABlob) {
  const std::string digest = Sha256Digest("fifo");
  fs::create_directories(dir_ / "blobs/sha256");
  ASSERT_EQ(::mkfifo((dir_ / "blobs/sha256" / Hex(digest)).c_str(), 0644), 0);
  EXPECT_THAT(store_->Size(digest), StatusIs(absl::StatusCode::kNotFound, _));
}

TEST_F(OciLayoutStoreTest, CommitPublishesAVerifiedBlobAtomically) {
  const std::string data = "layer bytes";
  const std::string digest = Sha256Digest(data);
  auto ingest = store_->NewIngest();
  ASSERT_THAT(ingest, IsOk());
  ASSERT_THAT((*ingest)->Write("layer "), IsOk());
  ASSERT_THAT((*ingest)->Write("bytes"), IsOk());
  EXPECT_EQ((*ingest)->offset(), 11);
  // Nothing is visible before the commit.
  EXPECT_FALSE(fs::exists(dir_ / "blobs/sha256" / Hex(digest)));
  EXPECT_THAT(IngestFiles(), ::testing::SizeIs(1));
  auto committed = (*ingest)->Commit(11, digest);
  ASSERT_THAT(committed, IsOk());
  EXPECT_EQ(*committed, digest);
  EXPECT_EQ(ReadFile(dir_ / "blobs/sha256" / Hex(digest)), data);
  EXPECT_THAT(IngestFiles(), IsEmpty());
  // Without an expected digest, the blob is published under the digest of its bytes.
  auto other = store_->NewIngest();
  ASSERT_THAT(other, IsOk());
  ASSERT_THAT((*other)->Write("other"), IsOk());
  EXPECT_EQ(*(*other)->Commit(0, ""), Sha256Digest("other"));
}

TEST_F(OciLayoutStoreTest, CommitRefusesWrongBytesAndLeavesNothing) {
  auto ingest = store_->NewIngest();
  ASSERT_THAT(ingest, IsOk());
  ASSERT_THAT((*ingest)->Write("tampered"), IsOk());
  EXPECT_THAT(
      (*ingest)->Commit(8, Sha256Digest("original")),
      StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("unexpected commit digest")));
  EXPECT_FALSE(fs::exists(dir_ / "blobs/sha256" / Hex(Sha256Digest("tampered"))));
  EXPECT_FALSE(fs::exists(dir_ / "blobs/sha256" / Hex(Sha256Digest("original"))));
  EXPECT_THAT(IngestFiles(), IsEmpty());

  auto short_write = store_->NewIngest();
  ASSERT_THAT(short_write, IsOk());
  ASSERT_THAT((*short_write)->Write("abc"), IsOk());
  EXPECT_THAT((*short_write)->Commit(4, ""),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("unexpected commit size")));
  EXPECT_THAT(IngestFiles(), IsEmpty());
}

TEST_F(OciLayoutStoreTest, AnAbandonedIngestLeavesNothing) {
  {
    auto ingest = store_->NewIngest();
    ASSERT_THAT(ingest, IsOk());
    ASSERT_THAT((*ingest)->Write("partial"), IsOk());
  }
  EXPECT_THAT(IngestFiles(), IsEmpty());
  EXPECT_FALSE(fs::exists(dir_ / "blobs"));
}

TEST_F(OciLayoutStoreTest, TruncateRestartsTheBlob) {
  auto ingest = store_->NewIngest();
  ASSERT_THAT(ingest, IsOk());
  ASSERT_THAT((*ingest)->Write("garbage"), IsOk());
  ASSERT_THAT((*ingest)->Truncate(), IsOk());
  ASSERT_THAT((*ingest)->Write("good"), IsOk());
  EXPECT_EQ(*(*ingest)->Commit(4, Sha256Digest("good")), Sha256Digest("good"));
}

TEST_F(OciLayoutStoreTest, CommitOfAPresentBlobIsAlreadyExists) {
  PlantBlob("same");
  auto ingest = store_->NewIngest();
  ASSERT_THAT(ingest, IsOk());
  ASSERT_THAT((*ingest)->Write("same"), IsOk());
  EXPECT_THAT((*ingest)->Commit(4, Sha256Digest("same")),
              StatusIs(absl::StatusCode::kAlreadyExists, _));
  EXPECT_THAT(IngestFiles(), IsEmpty());
}

TEST_F(OciLayoutStoreTest, PutTagReplacesTheEntryWithTheSameTag) {
  EXPECT_THAT(store_->ResolveTag("latest"), StatusIs(absl::StatusCode::kNotFound, _));
  const std::string d1 = Sha256Digest("m1"), d2 = Sha256Digest("m2"), d3 = Sha256Digest("m3");
  auto desc = [](const std::string& d) {
    return nlohmann::json{
        {"mediaType", "application/vnd.oci.image.manifest.v1+json"}, {"digest", d}, {"size", 10}}
        .dump();
  };
  ASSERT_THAT(store_->PutTag(desc(d1), "latest"), IsOk());
  ASSERT_THAT(store_->PutTag(desc(d2), "v2"), IsOk());
  ASSERT_THAT(store_->PutTag(desc(d3), "latest"), IsOk());
  EXPECT_EQ(*store_->ResolveTag("latest"), d3);
  EXPECT_EQ(*store_->ResolveTag("v2"), d2);
  EXPECT_THAT(store_->ResolveTag("v1"), StatusIs(absl::StatusCode::kNotFound, _));

  auto index = nlohmann::json::parse(ReadFile(dir_ / "index.json"));
  EXPECT_EQ(index["schemaVersion"], 2);
  EXPECT_EQ(index["mediaType"], "application/vnd.oci.image.index.v1+json");
  std::vector<std::string> digests;
  for (const auto& m : index["manifests"]) digests.push_back(m["digest"]);
  EXPECT_THAT(digests, ElementsAre(d2, d3));
  EXPECT_EQ(index["manifests"][1]["annotations"]["org.opencontainers.image.ref.name"], "latest");
  EXPECT_EQ(nlohmann::json::parse(ReadFile(dir_ / "oci-layout"))["imageLayoutVersion"], "1.0.0");
  EXPECT_FALSE(fs::exists(dir_ / "index.json.lock"));
}

TEST_F(OciLayoutStoreTest, ResolveTagPrefersTheImageNameAnnotation) {
  const std::string by_ref = Sha256Digest("a"), by_name = Sha256Digest("b");
  WriteFile(dir_ / "index.json",
            nlohmann::json{{"schemaVersion", 2},
                           {"manifests",
                            {{{"digest", by_ref},
                              {"size", 1},
                              {"annotations", {{"org.opencontainers.image.ref.name", "app"}}}},
                             {{"digest", by_name},
                              {"size", 1},
                              {"annotations", {{"io.containerd.image.name", "app"}}}}}}}
                .dump());
  EXPECT_EQ(*store_->ResolveTag("app"), by_name);
  WriteFile(dir_ / "index.json", "not json");
  EXPECT_THAT(store_->ResolveTag("app"), StatusIs(absl::StatusCode::kInvalidArgument, _));
  WriteFile(dir_ / "index.json", R"({"manifests":[{"digest":"sha256:../../x","annotations":{)"
                                 R"("org.opencontainers.image.ref.name":"latest"}}]})");
  EXPECT_THAT(store_->ResolveTag("latest"), StatusIs(absl::StatusCode::kInvalidArgument, _));
}

v1::CacheOptionsEntry Entry(const std::string& type, std::map<std::string, std::string> attrs) {
  v1::CacheOptionsEntry e;
  e.set_type(type);
  for (const auto& [k, v] : attrs) (*e.mutable_attrs())[k] = v;
  return e;
}

TEST_F(OciLayoutStoreTest, PrepareResolvesImportsAndDropsMissingOnesWithAWarning) {
  PlantBlob("manifest");
  const std::string manifest = Sha256Digest("manifest");
  ASSERT_THAT(store_->PutTag(nlohmann::json{{"digest", manifest}, {"size", 8}}.dump(), "latest"),
              IsOk());
  const std::string exported = (root_ / "new/export").string();
  std::vector<v1::CacheOptionsEntry> imports = {
      Entry("local", {{"src", dir_.string()}}),
      Entry("local", {{"src", dir_.string()}, {"tag", "nope"}}),
      Entry("local", {{"src", (root_ / "missing").string()}}),
      Entry("local", {{"src", dir_.string()}, {"digest", Sha256Digest("gone")}}),
      Entry("registry", {{"ref", "r/app:cache"}})};
  std::vector<v1::CacheOptionsEntry> exports = {Entry("local", {{"dest", exported}}),
                                                Entry("inline", {})};
  std::vector<std::string> warnings;
  auto caches =
      PrepareLocalCaches(imports, exports, [&](const std::string& w) { warnings.push_back(w); });
  ASSERT_THAT(caches, IsOk());
  ASSERT_EQ(imports.size(), 2u);
  EXPECT_EQ(imports[0].attrs().at("digest"), manifest);
  EXPECT_EQ(imports[1].type(), "registry");
  EXPECT_EQ(warnings.size(), 3u);
  EXPECT_THAT(warnings[0], HasSubstr("no digest found for tag nope"));
  EXPECT_THAT(warnings[2], HasSubstr("unavailable"));
  EXPECT_TRUE(fs::is_directory(exported));
  std::vector<std::string> ids;
  for (const auto& [id, s] : caches->stores) ids.push_back(id);
  EXPECT_THAT(ids, ElementsAre("local:" + dir_.string(), "local:" + exported));
  ASSERT_EQ(caches->exports.size(), 1u);
  EXPECT_EQ(caches->exports[0].second, "latest");

  // After the solve: the response's manifest is named in the exported directory.
  const std::string desc = nlohmann::json{{"digest", manifest}, {"size", 8}}.dump();
  ASSERT_THAT(UpdateLocalCacheIndexes(*caches, {{"cache.manifest", desc}}), IsOk());
  auto reopened = OciLayoutStore::Open(exported, false);
  ASSERT_THAT(reopened, IsOk());
  EXPECT_EQ(*(*reopened)->ResolveTag("latest"), manifest);
}

TEST(PrepareLocalCachesTest, NeedsDirectories) {
  std::vector<v1::CacheOptionsEntry> imports = {Entry("local", {})}, exports;
  EXPECT_THAT(PrepareLocalCaches(imports, exports, [](const std::string&) {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("src=DIR")));
  imports.clear();
  exports = {Entry("local", {{"mode", "max"}})};
  EXPECT_THAT(PrepareLocalCaches(imports, exports, [](const std::string&) {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("dest=DIR")));
}

}  // namespace
}  // namespace kiln::client
