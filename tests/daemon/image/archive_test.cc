#include "daemon/image/archive.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>

#include "daemon/image/layer.h"
#include "daemon/image/media_types.h"
#include "daemon/image/spec.h"
#include "tests/daemon/image/image_testutil.h"
#include "tests/testutil/status_matchers.h"

namespace kiln::image {
namespace {

using ::kiln::image::testing::ListTar;
using ::kiln::image::testing::ReadAll;
using ::kiln::image::testing::WriteAll;
using ::kiln::testing::IsOk;
using ::kiln::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
namespace fs = std::filesystem;

// Runs a shell command; returns its exit code and stdout+stderr.
std::pair<int, std::string> Shell(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) return {-1, ""};
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  int rc = ::pclose(p);
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, out};
}

bool HaveTool(const std::string& name) { return Shell("command -v " + name).first == 0; }

class ArchiveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (layer export of a chowned tree)";
    dir_ = testing::MakeTempDir("kiln_archive_");
    auto store = content::Store::Open(dir_ / "content");
    ASSERT_THAT(store, IsOk());
    store_ = std::move(*store);
    WriteAll(dir_ / "rootfs/hello", "hello world\n");
    WriteAll(dir_ / "rootfs/etc/motd", "hi\n");
    testing::SetTimes(dir_ / "rootfs", 1700000000);
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  // A one-layer image in the store; returns the manifest descriptor.
  Descriptor MakeImage(bool oci) {
    absl::StatusOr<LayerBlob> layer =
        WriteLayer(Context(), dir_ / "rootfs",
                   {.compression = Compression::kGzip, .oci_media_types = oci}, *store_);
    EXPECT_THAT(layer, IsOk());
    ConfigInput in;
    in.platform = Platform{.os = "linux", .architecture = "amd64"};
    in.config = nlohmann::json{{"Cmd", {"/hello"}}};
    in.diff_ids = {layer->diff_id};
    in.history = std::vector<History>{{.created = FormatTime(1700000000), .created_by = "test"}};
    absl::StatusOr<std::string> config = MakeImageConfig(in);
    EXPECT_THAT(config, IsOk());
    EXPECT_THAT(store_->Put(*config), IsOk());
    Descriptor cd = DescriptorOf(ConfigMediaType(oci), *config);
    Descriptor ld{.media_type = layer->media_type, .digest = layer->digest, .size = layer->size};
    absl::StatusOr<std::string> manifest = MakeManifest(cd, {ld}, oci);
    EXPECT_THAT(manifest, IsOk());
    EXPECT_THAT(store_->Put(*manifest), IsOk());
    return DescriptorOf(ManifestMediaType(oci), *manifest);
  }

  std::string Archive(bool docker, const ArchiveOptions& opts, const fs::path& file) {
    int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    EXPECT_GE(fd, 0);
    absl::Status st = docker ? WriteDockerArchive(Context(), *store_, opts, fd)
                             : WriteOciArchive(Context(), *store_, opts, fd);
    ::close(fd);
    EXPECT_THAT(st, IsOk());
    return ReadAll(file);
  }

  fs::path dir_;
  std::unique_ptr<content::Store> store_;
};

// name -> entry
std::map<std::string, testing::ListedEntry> ByName(const std::string& tar) {
  std::map<std::string, testing::ListedEntry> out;
  for (auto& e : ListTar(tar)) out[e.name] = e;
  return out;
}

std::string BlobPath(const std::string& digest) { return "blobs/sha256/" + digest.substr(7); }

TEST_F(ArchiveTest, OciArchiveIsAnImageLayoutWithNamedManifests) {
  const Descriptor root = MakeImage(true);
  const std::string tar = Archive(
      false, {.root = root, .names = {"busybox", "registry.test:5000/app:v1"}}, dir_ / "oci.tar");
  std::vector<std::string> names;
  for (const auto& e : ListTar(tar)) {
    names.push_back(e.name);
    EXPECT_EQ(e.mtime, 0) << e.name;
    EXPECT_EQ(e.uname, "") << e.name;
  }
  ASSERT_EQ(names.size(), 7u);
  EXPECT_EQ(names[0], "blobs/");
  EXPECT_EQ(names[1], "blobs/sha256/");
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
  EXPECT_EQ(names[5], "index.json");
  EXPECT_EQ(names[6], "oci-layout");

  auto entries = ByName(tar);
  EXPECT_EQ(entries["oci-layout"].data, R"({"imageLayoutVersion":"1.0.0"})");
  absl::StatusOr<Index> index = ParseIndex(entries["index.json"].data);
  ASSERT_THAT(index, IsOk());
  EXPECT_EQ(index->media_type, kOciIndex);
  ASSERT_EQ(index->manifests.size(), 2u);
  EXPECT_EQ(index->manifests[0].digest, root.digest);
  EXPECT_EQ(index->manifests[0].annotations.at(kAnnotationImageName),
            "docker.io/library/busybox:latest");
  EXPECT_EQ(index->manifests[0].annotations.at(kAnnotationRefName), "latest");
  EXPECT_EQ(index->manifests[1].annotations.at(kAnnotationImageName), "registry.test:5000/app:v1");
  EXPECT_EQ(index->manifests[1].annotations.at(kAnnotationRefName), "v1");

  // Every blob is there and matches its digest.
  absl::StatusOr<Manifest> m = ParseManifest(entries[BlobPath(root.digest)].data);
  ASSERT_THAT(m, IsOk());
  std::vector<Descriptor> blobs = {root, m->config};
  blobs.insert(blobs.end(), m->layers.begin(), m->layers.end());
  for (const Descriptor& d : blobs) {
    ASSERT_TRUE(entries.count(BlobPath(d.digest))) << d.digest;
    EXPECT_EQ(Sha256Digest(entries[BlobPath(d.digest)].data), d.digest);
    EXPECT_EQ(static_cast<int64_t>(entries[BlobPath(d.digest)].data.size()), d.size);
  }
  EXPECT_EQ(entries.count("manifest.json"), 0u);

  // Deterministic.
  EXPECT_EQ(Archive(false, {.root = root, .names = {"busybox", "registry.test:5000/app:v1"}},
                    dir_ / "oci2.tar"),
            tar);
}

TEST_F(ArchiveTest, DockerArchiveHasManifestJson) {
  const Descriptor root = MakeImage(false);
  const std::string tar =
      Archive(true, {.root = root, .names = {"kiln/test:1", "other"}}, dir_ / "docker.tar");
  auto entries = ByName(tar);
  ASSERT_TRUE(entries.count("manifest.json"));
  ASSERT_TRUE(entries.count("index.json"));
  ASSERT_TRUE(entries.count("oci-layout"));
  nlohmann::json mj = nlohmann::json::parse(entries["manifest.json"].data);
  ASSERT_TRUE(mj.is_array());
  ASSERT_EQ(mj.size(), 1u);
  absl::StatusOr<Manifest> m = ParseManifest(entries[BlobPath(root.digest)].data);
  ASSERT_THAT(m, IsOk());
  EXPECT_EQ(mj[0]["Config"], BlobPath(m->config.digest));
  EXPECT_EQ(mj[0]["RepoTags"], nlohmann::json({"kiln/test:1", "other:latest"}));
  ASSERT_EQ(mj[0]["Layers"].size(), 1u);
  const std::string layer_path = mj[0]["Layers"][0];
  EXPECT_EQ(Sha256Digest(entries[layer_path].data), m->layers[0].digest);
  EXPECT_EQ(Sha256Digest(entries[mj[0]["Config"].get<std::string>()].data), m->config.digest);
  // The member order matches Go's struct: Config, RepoTags, Layers.
  EXPECT_EQ(entries["manifest.json"].data.rfind(R"([{"Config":)", 0), 0u);
  // docker save's legacy repositories file names the top layer under each tag.
  ASSERT_TRUE(entries.count("repositories"));
  const std::string top = m->layers.back().digest.substr(7);
  EXPECT_EQ(entries["repositories"].data,
            R"({"kiln/test":{"1":")" + top + R"("},"other":{"latest":")" + top + R"("}})");
}

TEST_F(ArchiveTest, DockerArchiveRefusesIndexes) {
  const Descriptor m = MakeImage(true);
  Descriptor md = m;
  md.platform = Platform{.os = "linux", .architecture = "amd64"};
  absl::StatusOr<std::string> index = MakeIndex({md}, true);
  ASSERT_THAT(index, IsOk());
  ASSERT_THAT(store_->Put(*index), IsOk());
  const Descriptor root = DescriptorOf(kOciIndex, *index);
  int fd = ::open((dir_ / "x.tar").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  EXPECT_THAT(WriteDockerArchive(Context(), *store_, {.root = root}, fd),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("manifest")));
  ::close(fd);
  // The OCI archive takes the index and everything below it.
  auto entries = ByName(Archive(false, {.root = root}, dir_ / "idx.tar"));
  EXPECT_TRUE(entries.count(BlobPath(root.digest)));
  EXPECT_TRUE(entries.count(BlobPath(m.digest)));
}

TEST_F(ArchiveTest, MissingBlobFails) {
  Descriptor root = MakeImage(true);
  root.digest = Sha256Digest("not stored");
  int fd = ::open((dir_ / "x.tar").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  EXPECT_THAT(WriteOciArchive(Context(), *store_, {.root = root}, fd),
              StatusIs(absl::StatusCode::kNotFound, ::testing::_));
  ::close(fd);
}

// A client that stops reading mid-transfer (buildx --load with no docker engine to load into):
// the export fails with the sink's own error, and the sink hears nothing more once it failed.
TEST_F(ArchiveTest, SinkFailureMidArchiveIsReported) {
  std::string noise(300 * 1024, '\0');  // incompressible: the archive spans several blocks
  uint32_t x = 12345;
  for (char& c : noise) c = static_cast<char>((x = x * 1103515245 + 12345) >> 24);
  WriteAll(dir_ / "rootfs/noise", noise);
  testing::SetTimes(dir_ / "rootfs", 1700000000);
  const Descriptor root = MakeImage(true);
  for (bool docker : {false, true}) {
    int calls = 0;
    int calls_after_failure = 0;
    ArchiveSink sink = [&](std::string_view) -> absl::Status {
      if (++calls < 2) return absl::OkStatus();
      if (calls > 2) ++calls_after_failure;
      return absl::UnavailableError("the client closed the transfer");
    };
    absl::Status st = docker ? WriteDockerArchiveTo(Context(), *store_, {.root = root}, sink)
                             : WriteOciArchiveTo(Context(), *store_, {.root = root}, sink);
    EXPECT_THAT(st, StatusIs(absl::StatusCode::kUnavailable,
                             ::testing::Eq("the client closed the transfer")))
        << (docker ? "docker" : "oci");
    EXPECT_EQ(calls_after_failure, 0) << (docker ? "docker" : "oci");
  }
}

TEST_F(ArchiveTest, SkopeoReadsBothArchives) {
  if (!HaveTool("skopeo")) GTEST_SKIP() << "skopeo not installed";
  const Descriptor oci = MakeImage(true);
  Archive(false, {.root = oci, .names = {"kiln/test:1"}}, dir_ / "oci.tar");
  auto [rc, out] = Shell("skopeo inspect --raw oci-archive:" + (dir_ / "oci.tar").string());
  EXPECT_EQ(rc, 0) << out;
  EXPECT_EQ(Sha256Digest(out), oci.digest) << out;
  std::tie(rc, out) = Shell("skopeo inspect oci-archive:" + (dir_ / "oci.tar").string());
  EXPECT_EQ(rc, 0) << out;
  EXPECT_THAT(out, HasSubstr("\"Architecture\": \"amd64\""));

  const Descriptor docker = MakeImage(false);
  Archive(true, {.root = docker, .names = {"kiln/test:1"}}, dir_ / "docker.tar");
  std::tie(rc, out) =
      Shell("skopeo inspect docker-archive:" + (dir_ / "docker.tar").string() + ":kiln/test:1");
  EXPECT_EQ(rc, 0) << out;
  EXPECT_THAT(out, HasSubstr("\"Architecture\": \"amd64\""));
}

TEST_F(ArchiveTest, UmociUnpacksTheLayout) {
  if (!HaveTool("umoci")) GTEST_SKIP() << "umoci not installed";
  const Descriptor root = MakeImage(true);
  ASSERT_THAT(
      WriteOciLayout(Context(), *store_, {.root = root, .names = {"kiln/test:1"}}, dir_ / "layout"),
      IsOk());
  auto [rc, out] = Shell("umoci ls --layout " + (dir_ / "layout").string());
  EXPECT_EQ(rc, 0) << out;
  EXPECT_THAT(out, HasSubstr("1"));
  std::tie(rc, out) = Shell("umoci unpack --image " + (dir_ / "layout").string() + ":1 " +
                            (dir_ / "bundle").string());
  ASSERT_EQ(rc, 0) << out;
  EXPECT_EQ(ReadAll(dir_ / "bundle/rootfs/hello"), "hello world\n");
  EXPECT_EQ(ReadAll(dir_ / "bundle/rootfs/etc/motd"), "hi\n");
}

}  // namespace
}  // namespace kiln::image
