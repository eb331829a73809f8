#include "daemon/snapshot/snapshotter.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <random>

#include "tests/testutil/status_matchers.h"

namespace kiln::snapshot {
namespace {

namespace fs = std::filesystem;
using ::kiln::testing::IsOk;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

std::string Read(const fs::path& p) {
  std::ifstream in(p);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void Write(const fs::path& p, const std::string& data) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << data;
}

// path -> contents ("<dir>" for directories, "-> target" for symlinks), whiteouts excluded.
std::map<std::string, std::string> Tree(const fs::path& root) {
  std::map<std::string, std::string> out;
  for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator();
       ++it) {
    std::string rel = it->path().lexically_relative(root).string();
    if (it->is_symlink()) {
      out[rel] = "-> " + fs::read_symlink(it->path()).string();
    } else if (it->is_directory()) {
      out[rel] = "<dir>";
    } else {
      out[rel] = Read(it->path());
    }
  }
  return out;
}

class SnapshotterTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (mount, mknod)";
    dir_ = fs::path(::testing::TempDir()) / ("kiln_snap_" + std::to_string(std::random_device{}()));
    fs::create_directories(dir_);
    if (GetParam() == "overlayfs") {
      if (!OverlaySupported(dir_)) GTEST_SKIP() << "overlayfs unavailable";
      snap_ = NewOverlaySnapshotter();
    } else {
      snap_ = NewNativeSnapshotter();
    }
    // base: a, d/b, d/c, link -> a ; top: deletes d/b, replaces a, adds e, makes o opaque.
    Write(dir_ / "base/a", "a0");
    Write(dir_ / "base/d/b", "b0");
    Write(dir_ / "base/d/c", "c0");
    Write(dir_ / "base/o/old", "old");
    fs::create_symlink("a", dir_ / "base/link");
    Write(dir_ / "top/a", "a1");
    Write(dir_ / "top/e", "e1");
    fs::create_directories(dir_ / "top/d");
    ASSERT_EQ(::mknod((dir_ / "top/d/b").c_str(), S_IFCHR | 0, makedev(0, 0)), 0);
    Write(dir_ / "top/o/new", "new");
    ASSERT_EQ(::lsetxattr((dir_ / "top/o").c_str(), "trusted.overlay.opaque", "y", 1, 0), 0);
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  fs::path Fresh(const std::string& name) {
    fs::create_directories(dir_ / name);
    return dir_ / name;
  }

  fs::path dir_;
  std::unique_ptr<Snapshotter> snap_;
};

const std::map<std::string, std::string> kMerged = {
    {"a", "a1"},      {"d", "<dir>"}, {"d/c", "c0"},   {"e", "e1"},
    {"link", "-> a"}, {"o", "<dir>"}, {"o/new", "new"}};

TEST_P(SnapshotterTest, ReadOnlyViewMergesLayers) {
  auto m = snap_->MountReadOnly({dir_ / "base", dir_ / "top"}, Fresh("ro"));
  ASSERT_THAT(m, IsOk());
  EXPECT_EQ(Tree((*m)->root()), kMerged);
  ASSERT_THAT((*m)->Unmount(), IsOk());
}

TEST_P(SnapshotterTest, SingleLayerReadsAlone) {
  // A lone layer's whiteouts have nothing to hide; overlayfs shows them as they are in
  // directories that exist in no other layer, so only the regular content is checked.
  auto m = snap_->MountReadOnly({dir_ / "top"}, Fresh("ro1"));
  ASSERT_THAT(m, IsOk());
  auto tree = Tree((*m)->root());
  EXPECT_EQ(tree.at("e"), "e1");
  EXPECT_EQ(tree.at("o/new"), "new");
}

TEST_P(SnapshotterTest, EmptyStackIsEmpty) {
  auto m = snap_->MountReadOnly({}, Fresh("ro0"));
  ASSERT_THAT(m, IsOk());
  EXPECT_THAT(Tree((*m)->root()), IsEmpty());
}

TEST_P(SnapshotterTest, WritableViewRecordsChangesInUpper) {
  auto m = snap_->MountWritable({dir_ / "base", dir_ / "top"}, Fresh("upper"), Fresh("work"),
                                Fresh("rw"));
  ASSERT_THAT(m, IsOk());
  const fs::path root = (*m)->root();
  EXPECT_EQ(Tree(root), kMerged);
  Write(root / "f", "f1");
  fs::remove(root / "d/c");
  ASSERT_THAT((*m)->Unmount(), IsOk());
  if (snap_->flattens()) {
    auto t = Tree(dir_ / "upper");
    EXPECT_EQ(t.at("f"), "f1");
    EXPECT_EQ(t.at("a"), "a1");
    EXPECT_FALSE(t.contains("d/c"));
  } else {
    struct stat st;
    ASSERT_EQ(::lstat((dir_ / "upper/d/c").c_str(), &st), 0);
    EXPECT_TRUE(S_ISCHR(st.st_mode));  // a whiteout
    EXPECT_EQ(Read(dir_ / "upper/f"), "f1");
    EXPECT_FALSE(fs::exists(dir_ / "upper/a"));  // unchanged files stay below
  }
  // Either way, the stack with the new layer reads the same.
  std::vector<fs::path> stack = {dir_ / "upper"};
  if (!snap_->flattens()) stack = {dir_ / "base", dir_ / "top", dir_ / "upper"};
  auto view = snap_->MountReadOnly(stack, Fresh("check"));
  ASSERT_THAT(view, IsOk());
  auto t = Tree((*view)->root());
  EXPECT_EQ(t.at("f"), "f1");
  EXPECT_FALSE(t.contains("d/c"));
  EXPECT_EQ(t.at("d"), "<dir>");
}

TEST_P(SnapshotterTest, ApplyLayerMatchesTheMergedView) {
  fs::path flat = Fresh("flat");
  ASSERT_THAT(ApplyLayer(dir_ / "base", flat), IsOk());
  ASSERT_THAT(ApplyLayer(dir_ / "top", flat), IsOk());
  EXPECT_EQ(Tree(flat), kMerged);
}

INSTANTIATE_TEST_SUITE_P(Kinds, SnapshotterTest, ::testing::Values("overlayfs", "native"));

TEST(OverlayLimitsTest, TooDeepStacksFailClearly) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  auto snap = NewOverlaySnapshotter();
  std::vector<fs::path> layers(200, fs::path(::testing::TempDir()) / "some/long/layer/path/x");
  auto m = snap->MountWritable(layers, "/tmp/u", "/tmp/w", "/tmp/m");
  EXPECT_EQ(m.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(m.status().message().find("flatten"), absl::string_view::npos);
}

}  // namespace
}  // namespace kiln::snapshot

#include "daemon/snapshot/diff.h"

namespace kiln::snapshot {
namespace {

TEST(DiffTest, ApplyingTheDiffToLowerGivesUpper) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root (whiteouts)";
  fs::path dir =
      fs::path(::testing::TempDir()) / ("kiln_diff_" + std::to_string(std::random_device{}()));
  Write(dir / "lower/keep", "k");
  Write(dir / "lower/change", "old");
  Write(dir / "lower/gone", "g");
  Write(dir / "lower/d/deep/keep2", "k2");
  Write(dir / "lower/d/deep/gone2", "g2");
  Write(dir / "lower/tobedir", "file");
  fs::create_directories(dir / "upper");
  fs::copy(dir / "lower", dir / "upper",
           fs::copy_options::recursive | fs::copy_options::copy_symlinks);
  // Same times as lower for the untouched entries, so only real changes show.
  for (auto& e : fs::recursive_directory_iterator(dir / "lower")) {
    fs::path rel = e.path().lexically_relative(dir / "lower");
    fs::last_write_time(dir / "upper" / rel, fs::last_write_time(e.path()));
  }
  Write(dir / "upper/change", "new!");
  fs::remove(dir / "upper/gone");
  fs::remove(dir / "upper/d/deep/gone2");
  Write(dir / "upper/d/deep/added", "a");
  fs::remove(dir / "upper/tobedir");
  Write(dir / "upper/tobedir/inside", "i");
  fs::create_symlink("keep", dir / "upper/link");

  fs::create_directories(dir / "layer");
  ASSERT_THAT(ComputeDiff(dir / "lower", dir / "upper", dir / "layer"), IsOk());
  EXPECT_FALSE(fs::exists(dir / "layer/keep"));  // unchanged files stay out of the layer
  EXPECT_FALSE(fs::exists(dir / "layer/d/deep/keep2"));
  struct stat st;
  ASSERT_EQ(::lstat((dir / "layer/gone").c_str(), &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));

  fs::create_directories(dir / "result");
  fs::copy(dir / "lower", dir / "result",
           fs::copy_options::recursive | fs::copy_options::copy_symlinks);
  ASSERT_THAT(ApplyLayer(dir / "layer", dir / "result"), IsOk());
  EXPECT_EQ(Tree(dir / "result"), Tree(dir / "upper"));
  fs::remove_all(dir);
}

TEST(DiffTest, IdenticalTreesGiveAnEmptyLayer) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  fs::path dir =
      fs::path(::testing::TempDir()) / ("kiln_diff0_" + std::to_string(std::random_device{}()));
  Write(dir / "a/x/y", "1");
  fs::create_directories(dir / "layer");
  ASSERT_THAT(ComputeDiff(dir / "a", dir / "a", dir / "layer"), IsOk());
  EXPECT_TRUE(fs::is_empty(dir / "layer"));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace kiln::snapshot
