#include "daemon/image/layer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "daemon/image/internal/codec.h"
#include "daemon/image/media_types.h"
#include "tests/daemon/image/image_testutil.h"
#include "tests/testutil/status_matchers.h"

namespace kiln::image {
namespace {

using ::kiln::image::testing::ListTar;
using ::kiln::image::testing::MakeTar;
using ::kiln::image::testing::ReadAll;
using ::kiln::image::testing::Snapshot;
using ::kiln::image::testing::TarEntry;
using ::kiln::image::testing::WriteAll;
using ::kiln::testing::IsOk;
using ::kiln::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
namespace fs = std::filesystem;

std::string Compress(Compression c, const std::string& data) {
  std::string out;
  auto enc = internal::NewEncoder(c, c == Compression::kZstd ? 3 : 6, [&](std::string_view d) {
    out.append(d);
    return absl::OkStatus();
  });
  EXPECT_THAT(enc, IsOk());
  EXPECT_THAT((*enc)->Write(data), IsOk());
  EXPECT_THAT((*enc)->Finish(), IsOk());
  return out;
}

class LayerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (mknod, chown, trusted.* xattrs)";
    dir_ = testing::MakeTempDir("kiln_layer_");
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  fs::path Fresh(const std::string& name) {
    fs::path p = dir_ / name;
    fs::create_directories(p);
    return p;
  }

  // A layer with every kind of entry, whole-second times.
  fs::path MakeLayer(const std::string& name) {
    fs::path l = Fresh(name);
    WriteAll(l / "file", "hello");
    WriteAll(l / "bin/tool", std::string(200000, 'x'));
    fs::permissions(l / "bin/tool", fs::perms(0755));
    WriteAll(l / "suid", "s");
    EXPECT_EQ(::chown((l / "suid").c_str(), 1000, 1001), 0);
    EXPECT_EQ(::chmod((l / "suid").c_str(), 04755), 0);
    fs::create_directories(l / "private");
    EXPECT_EQ(::chmod((l / "private").c_str(), 0700), 0);
    WriteAll(l / "private/a", "a");
    fs::create_symlink("../file", l / "private/link");
    fs::create_hard_link(l / "file", l / "hardlink");
    EXPECT_EQ(::mkfifo((l / "fifo").c_str(), 0600), 0);
    EXPECT_EQ(::mknod((l / "null").c_str(), S_IFCHR | 0666, makedev(1, 3)), 0);
    EXPECT_EQ(::mknod((l / "gone").c_str(), S_IFCHR, makedev(0, 0)), 0);           // whiteout
    EXPECT_EQ(::mknod((l / "private/gone2").c_str(), S_IFCHR, makedev(0, 0)), 0);  // whiteout
    WriteAll(l / "opq/new", "new");
    EXPECT_EQ(::lsetxattr((l / "opq").c_str(), "trusted.overlay.opaque", "y", 1, 0), 0);
    EXPECT_EQ(::lsetxattr((l / "file").c_str(), "user.k", "v", 1, 0), 0);
    WriteAll(l / std::string(150, 'n') / std::string(120, 'm'), "long names");
    WriteAll(l / "F\xc5\x91t\xc3\xa1n\xc3\xba.crt", "utf-8 name");
    WriteAll(l / "latin1-\xe9", "not utf-8");
    testing::SetTimes(l, 1700000000);
    return l;
  }

  absl::StatusOr<LayerBlob> Export(const fs::path& layer, const LayerOptions& opts,
                                   std::string* out) {
    out->clear();
    return WriteLayerTo(Context(), layer, opts, [out](std::string_view d) {
      out->append(d);
      return absl::OkStatus();
    });
  }

  fs::path Blob(const std::string& name, const std::string& data) {
    fs::path p = dir_ / name;
    WriteAll(p, data);
    return p;
  }

  fs::path dir_;
};

class LayerRoundTripTest : public LayerTest, public ::testing::WithParamInterface<Compression> {};

TEST_P(LayerRoundTripTest, UnpackOfExportReproducesTheLayer) {
  fs::path layer = MakeLayer("src");
  std::string bytes;
  LayerOptions opts;
  opts.compression = GetParam();
  absl::StatusOr<LayerBlob> blob = Export(layer, opts, &bytes);
  ASSERT_THAT(blob, IsOk());
  EXPECT_EQ(blob->digest, Sha256Digest(bytes));
  EXPECT_EQ(blob->size, static_cast<int64_t>(bytes.size()));
  EXPECT_EQ(blob->media_type, LayerMediaType(GetParam(), true));
  if (GetParam() == Compression::kUncompressed) {
    EXPECT_EQ(blob->diff_id, blob->digest);
  }

  fs::path dest = Fresh("dest");
  absl::StatusOr<UnpackResult> r =
      UnpackLayer(Context(), Blob("blob", bytes), blob->media_type, dest,
                  UnpackOptions{.expected_digest = blob->digest});
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->compression, GetParam());
  EXPECT_EQ(r->diff_id, blob->diff_id);
  EXPECT_EQ(r->digest, blob->digest);
  EXPECT_EQ(r->size, blob->size);
  EXPECT_EQ(r->uncompressed_size, blob->uncompressed_size);
  EXPECT_EQ(Snapshot(dest), Snapshot(layer));
}

INSTANTIATE_TEST_SUITE_P(Compressions, LayerRoundTripTest,
                         ::testing::Values(Compression::kUncompressed, Compression::kGzip,
                                           Compression::kZstd),
                         [](const auto& info) {
                           switch (info.param) {
                             case Compression::kGzip:
                               return std::string("gzip");
                             case Compression::kZstd:
                               return std::string("zstd");
                             default:
                               return std::string("uncompressed");
                           }
                         });

TEST_F(LayerTest, ExportWritesOciWhiteoutsAndNoOverlayXattrs) {
  fs::path layer = MakeLayer("src");
  std::string bytes;
  ASSERT_THAT(Export(layer, {.compression = Compression::kUncompressed}, &bytes), IsOk());
  std::vector<std::string> names;
  for (const auto& e : ListTar(bytes)) {
    names.push_back(e.name);
    EXPECT_EQ(e.uname, "") << e.name;
    EXPECT_FALSE(e.has_mtime_nsec) << e.name;
    for (const std::string& x : e.xattrs) EXPECT_THAT(x, ::testing::Not(HasSubstr("overlay")));
    if (e.name == "hardlink") {
      EXPECT_EQ(e.hardlink, "file");
    }
    if (e.name == "file") {
      EXPECT_THAT(e.xattrs, ElementsAre("user.k"));
    }
  }
  const std::string long_dir(150, 'n');
  EXPECT_THAT(names, ElementsAre(".wh.gone", "F\xc5\x91t\xc3\xa1n\xc3\xba.crt", "bin/", "bin/tool",
                                 "fifo", "file", "hardlink", "latin1-\xe9", long_dir + "/",
                                 long_dir + "/" + std::string(120, 'm'), "null", "opq/",
                                 "opq/.wh..wh..opq", "opq/new", "private/", "private/.wh.gone2",
                                 "private/a", "private/link", "suid"));
}

TEST_F(LayerTest, GzipHeaderHasNoNameNoTimeAndUnknownOs) {
  fs::path layer = MakeLayer("src");
  std::string bytes;
  ASSERT_THAT(Export(layer, {.compression = Compression::kGzip}, &bytes), IsOk());
  ASSERT_GT(bytes.size(), 10u);
  EXPECT_EQ(bytes.substr(0, 3), std::string("\x1f\x8b\x08", 3));
  EXPECT_EQ(bytes[3], '\0');                              // flags: no name, comment, extra
  EXPECT_EQ(bytes.substr(4, 4), std::string(4, '\0'));    // mtime
  EXPECT_EQ(static_cast<unsigned char>(bytes[9]), 255u);  // OS unknown
}

TEST_F(LayerTest, ExportIsDeterministicAcrossAtimeAndCtimeChanges) {
  fs::path layer = MakeLayer("src");
  for (Compression c : {Compression::kGzip, Compression::kZstd}) {
    std::string a, b;
    absl::StatusOr<LayerBlob> first = Export(layer, {.compression = c}, &a);
    ASSERT_THAT(first, IsOk());
    // New atimes and ctimes (a chmod to the same mode), subsecond mtimes on files.
    for (auto it = fs::recursive_directory_iterator(layer);
         it != fs::recursive_directory_iterator(); ++it) {
      struct stat st;
      ASSERT_EQ(::lstat(it->path().c_str(), &st), 0);
      const struct timespec times[2] = {{12345, 6789}, {st.st_mtim.tv_sec, 500}};
      ::utimensat(AT_FDCWD, it->path().c_str(), times, AT_SYMLINK_NOFOLLOW);
      if (!S_ISLNK(st.st_mode)) ::chmod(it->path().c_str(), st.st_mode & 07777);
    }
    absl::StatusOr<LayerBlob> second = Export(layer, {.compression = c}, &b);
    ASSERT_THAT(second, IsOk());
    EXPECT_EQ(first->digest, second->digest);
    EXPECT_EQ(first->diff_id, second->diff_id);
    EXPECT_EQ(a, b);
  }
}

TEST_F(LayerTest, RewriteTimestampClampsOnlyLaterTimes) {
  fs::path layer = Fresh("src");
  WriteAll(layer / "new", "n");
  WriteAll(layer / "old", "o");
  const struct timespec newer[2] = {{2000000000, 0}, {2000000000, 0}};
  const struct timespec older[2] = {{500, 0}, {500, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, (layer / "new").c_str(), newer, 0), 0);
  ASSERT_EQ(::utimensat(AT_FDCWD, (layer / "old").c_str(), older, 0), 0);
  std::string bytes;
  ASSERT_THAT(
      Export(layer, {.compression = Compression::kUncompressed, .rewrite_timestamp = 1000000000},
             &bytes),
      IsOk());
  std::map<std::string, int64_t> mtimes;
  for (const auto& e : ListTar(bytes)) mtimes[e.name] = e.mtime;
  EXPECT_EQ(mtimes["new"], 1000000000);
  EXPECT_EQ(mtimes["old"], 500);

  std::string unclamped;
  ASSERT_THAT(Export(layer, {.compression = Compression::kUncompressed}, &unclamped), IsOk());
  EXPECT_NE(Sha256Digest(bytes), Sha256Digest(unclamped));
}

TEST_F(LayerTest, UnpackTurnsOciWhiteoutsIntoOverlayForm) {
  const std::string tar = MakeTar({
      {.name = "dir/", .type = AE_IFDIR, .perm = 0755},
      {.name = "dir/.wh..wh..opq"},
      {.name = "dir/keep", .data = "k"},
      {.name = ".wh.deleted"},
      {.name = "implied/.wh.x"},
      {.name = ".wh..wh.plnk/123"},  // aufs metadata: skipped
      {.name = "f", .data = "f", .xattrs = {{"trusted.overlay.redirect", "/etc"}}},
  });
  fs::path dest = Fresh("dest");
  ASSERT_THAT(UnpackLayer(Context(), Blob("l.tar", tar), kOciLayer, dest), IsOk());
  struct stat st;
  ASSERT_EQ(::lstat((dest / "deleted").c_str(), &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_EQ(st.st_rdev, makedev(0, 0));
  ASSERT_EQ(::lstat((dest / "implied/x").c_str(), &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  char v[8];
  ASSERT_EQ(::lgetxattr((dest / "dir").c_str(), "trusted.overlay.opaque", v, sizeof(v)), 1);
  EXPECT_EQ(v[0], 'y');
  EXPECT_EQ(ReadAll(dest / "dir/keep"), "k");
  EXPECT_FALSE(fs::exists(dest / ".wh..wh.plnk"));
  // A tar cannot plant overlay metadata of its own.
  EXPECT_LT(::lgetxattr((dest / "f").c_str(), "trusted.overlay.redirect", v, sizeof(v)), 0);
}

TEST_F(LayerTest, UnpackDetectsCompressionByMagicBytes) {
  const std::string tar = MakeTar({{.name = "a", .data = "alpha"}});
  for (Compression c : {Compression::kUncompressed, Compression::kGzip, Compression::kZstd}) {
    const std::string blob = Compress(c, tar);
    // Whatever the (layer) media type says, or none.
    for (std::string_view mt :
         {std::string_view(kOciLayerGzip), std::string_view(""), std::string_view(kOciLayer)}) {
      fs::path dest = Fresh(absl::StrCat("d", static_cast<int>(c), mt.size()));
      absl::StatusOr<UnpackResult> r = UnpackLayer(Context(), Blob("b", blob), mt, dest);
      ASSERT_THAT(r, IsOk());
      EXPECT_EQ(r->compression, c);
      EXPECT_EQ(r->diff_id, Sha256Digest(tar));
      EXPECT_EQ(r->digest, Sha256Digest(blob));
      EXPECT_EQ(ReadAll(dest / "a"), "alpha");
    }
  }
}

TEST_F(LayerTest, UnpackReadsConcatenatedGzipMembers) {
  const std::string tar = MakeTar({{.name = "a", .data = std::string(100000, 'a')}});
  const std::string blob = Compress(Compression::kGzip, tar.substr(0, 1000)) +
                           Compress(Compression::kGzip, tar.substr(1000));
  fs::path dest = Fresh("dest");
  absl::StatusOr<UnpackResult> r = UnpackLayer(Context(), Blob("b", blob), kOciLayerGzip, dest);
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->diff_id, Sha256Digest(tar));
  EXPECT_EQ(ReadAll(dest / "a"), std::string(100000, 'a'));
}

TEST_F(LayerTest, UnpackRejectsBadInput) {
  const std::string tar = MakeTar({{.name = "a", .data = std::string(300000, 'z')}});
  // Wrong media type family.
  EXPECT_THAT(UnpackLayer(Context(), Blob("b0", tar), kOciConfig, Fresh("d0")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("media type")));
  // Digest mismatch.
  EXPECT_THAT(UnpackLayer(Context(), Blob("b1", tar), kOciLayer, Fresh("d1"),
                          {.expected_digest = Sha256Digest("other")}),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("digest mismatch")));
  // Truncated compressed streams.
  for (Compression c : {Compression::kGzip, Compression::kZstd}) {
    std::string blob = Compress(c, tar);
    blob.resize(blob.size() - 8);
    EXPECT_THAT(UnpackLayer(Context(), Blob("b2", blob), "", Fresh("d2")),
                StatusIs(absl::StatusCode::kDataLoss, ::testing::_));
    fs::remove_all(dir_ / "d2");
  }
  // Garbage after a gzip member.
  EXPECT_THAT(UnpackLayer(Context(), Blob("b3", Compress(Compression::kGzip, tar) + "junkjunk"), "",
                          Fresh("d3")),
              StatusIs(absl::StatusCode::kDataLoss, ::testing::_));
  // Compressions that no OCI layer media type has are refused by name, not read as tar.
  EXPECT_THAT(UnpackLayer(Context(), Blob("b5", "BZh91AY&SY" + tar), "", Fresh("d5")),
              StatusIs(absl::StatusCode::kUnimplemented, HasSubstr("bzip2")));
  EXPECT_THAT(UnpackLayer(Context(),
                          Blob("b6", std::string("\xfd"
                                                 "7zXZ\0",
                                                 6) +
                                         tar),
                          "", Fresh("d6")),
              StatusIs(absl::StatusCode::kUnimplemented, HasSubstr("xz")));
  // A destination that is not empty.
  fs::path full = Fresh("d4");
  WriteAll(full / "x", "x");
  EXPECT_THAT(UnpackLayer(Context(), Blob("b4", tar), kOciLayer, full),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("not empty")));
}

TEST_F(LayerTest, UnpackRejectsPathsOutsideTheLayer) {
  fs::path outside = Fresh("outside");
  WriteAll(outside / "victim", "safe");
  const std::string rel_outside = "../outside";  // dest is dir_/dN: ../outside is a sibling
  struct Case {
    std::string name;
    std::vector<TarEntry> entries;
  };
  const std::vector<Case> cases = {
      {"dotdot", {{.name = "../outside/victim", .data = "pwned"}}},
      {"nested dotdot", {{.name = "a/../../outside/victim", .data = "pwned"}}},
      {"absolute", {{.name = (outside / "victim").string(), .data = "pwned"}}},
      {"write through symlink",
       {{.name = "link", .type = AE_IFLNK, .link = (outside).string()},
        {.name = "link/victim", .data = "pwned"}}},
      {"write through relative symlink",
       {{.name = "link", .type = AE_IFLNK, .link = rel_outside},
        {.name = "link/victim", .data = "pwned"}}},
      {"whiteout through symlink",
       {{.name = "link", .type = AE_IFLNK, .link = outside.string()}, {.name = "link/.wh.victim"}}},
      {"opaque through symlink",
       {{.name = "link", .type = AE_IFLNK, .link = outside.string()},
        {.name = "link/.wh..wh..opq"}}},
      {"mkdir through symlink",
       {{.name = "link", .type = AE_IFLNK, .link = outside.string()},
        {.name = "link/sub/", .type = AE_IFDIR}}},
      {"hardlink to outside", {{.name = "h", .hardlink = "../outside/victim"}}},
      {"hardlink to absolute", {{.name = "h", .hardlink = (outside / "victim").string()}}},
      {"hardlink through symlink",
       {{.name = "link", .type = AE_IFLNK, .link = outside.string()},
        {.name = "h", .hardlink = "link/victim"}}},
      {"hardlink to missing", {{.name = "h", .hardlink = "nothere"}}},
  };
  int i = 0;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    fs::path dest = Fresh(absl::StrCat("d", i++));
    absl::StatusOr<UnpackResult> r =
        UnpackLayer(Context(), Blob("evil.tar", MakeTar(c.entries)), kOciLayer, dest);
    EXPECT_THAT(r, StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
    EXPECT_EQ(ReadAll(outside / "victim"), "safe");
    EXPECT_THAT(Snapshot(outside), ::testing::SizeIs(1));
    struct stat st;
    EXPECT_EQ(::stat((outside / "victim").c_str(), &st), 0);
    EXPECT_EQ(st.st_nlink, 1u);
    char v[4];
    EXPECT_LT(::getxattr(outside.c_str(), "trusted.overlay.opaque", v, sizeof(v)), 0);
  }
}

TEST_F(LayerTest, LaterEntriesReplaceEarlierOnes) {
  const std::string tar = MakeTar({
      {.name = "x", .data = "first"},
      {.name = "x", .data = "second"},
      {.name = "d/", .type = AE_IFDIR},
      {.name = "d/inner", .data = "i"},
      {.name = "d", .data = "now a file"},
      {.name = "s", .type = AE_IFLNK, .link = "x"},
      {.name = "s", .data = "file, not through the link"},
  });
  fs::path dest = Fresh("dest");
  ASSERT_THAT(UnpackLayer(Context(), Blob("t", tar), kOciLayer, dest), IsOk());
  EXPECT_EQ(ReadAll(dest / "x"), "second");
  EXPECT_EQ(ReadAll(dest / "d"), "now a file");
  EXPECT_FALSE(fs::is_symlink(dest / "s"));
  EXPECT_EQ(ReadAll(dest / "s"), "file, not through the link");
}

TEST_F(LayerTest, WriteLayerStoresTheBlobInTheContentStore) {
  fs::path layer = MakeLayer("src");
  auto store = content::Store::Open(dir_ / "content");
  ASSERT_THAT(store, IsOk());
  for (bool oci : {true, false}) {
    absl::StatusOr<LayerBlob> blob = WriteLayer(
        Context(), layer, {.compression = Compression::kGzip, .oci_media_types = oci}, **store);
    ASSERT_THAT(blob, IsOk());
    EXPECT_EQ(blob->media_type, oci ? kOciLayerGzip : kDockerLayerGzip);
    ASSERT_TRUE((*store)->Has(blob->digest));
    auto path = (*store)->BlobPath(blob->digest);
    ASSERT_THAT(path, IsOk());
    EXPECT_EQ(Sha256Digest(ReadAll(*path)), blob->digest);
    EXPECT_EQ(fs::file_size(*path), static_cast<uintmax_t>(blob->size));
    fs::path dest = Fresh(oci ? "dest_oci" : "dest_docker");
    auto r = UnpackLayer(Context(), *path, blob->media_type, dest);
    ASSERT_THAT(r, IsOk());
    EXPECT_EQ(r->diff_id, blob->diff_id);
    EXPECT_EQ(Snapshot(dest), Snapshot(layer));
  }
  // zstd has no Docker media type.
  auto z = WriteLayer(Context(), layer,
                      {.compression = Compression::kZstd, .oci_media_types = false}, **store);
  ASSERT_THAT(z, IsOk());
  EXPECT_EQ(z->media_type, kOciLayerZstd);
}

TEST_F(LayerTest, CancelledContextStopsTheExport) {
  fs::path layer = MakeLayer("src");
  Context ctx;
  ctx.Cancel();
  EXPECT_THAT(WriteLayerTo(ctx, layer, {}, [](std::string_view) { return absl::OkStatus(); }),
              StatusIs(absl::StatusCode::kCancelled, ::testing::_));
}

TEST(LayerMediaTypeTest, FollowsBuildKit) {
  EXPECT_EQ(LayerMediaType(Compression::kGzip, true), kOciLayerGzip);
  EXPECT_EQ(LayerMediaType(Compression::kGzip, false), kDockerLayerGzip);
  EXPECT_EQ(LayerMediaType(Compression::kZstd, true), kOciLayerZstd);
  EXPECT_EQ(LayerMediaType(Compression::kZstd, false), kOciLayerZstd);
  EXPECT_EQ(LayerMediaType(Compression::kUncompressed, true), kOciLayer);
  EXPECT_THAT(ParseCompression("zstd"), IsOk());
  EXPECT_THAT(ParseCompression("lz4"), StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
}

}  // namespace
}  // namespace kiln::image
