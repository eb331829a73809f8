#include "fsutil/internal/fd.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/fsutil/test_util.h"
#include "tests/testutil/status_matchers.h"

namespace kiln::fsutil::internal {
namespace {

using ::kiln::fsutil::testing::MakeDirs;
using ::kiln::fsutil::testing::TempDir;
using ::kiln::fsutil::testing::WriteFile;
using ::kiln::testing::IsOk;
using ::kiln::testing::StatusIs;

// Runs each case with openat2 and with the per-component fallback.
class OpenBeneathTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    UseOpenBeneathFallbackForTesting(GetParam());
    WriteFile(tmp_.Sub("root/a/b/file"), "x");
    WriteFile(tmp_.Sub("outside/secret"), "s");
    ASSERT_EQ(symlink("../outside", tmp_.Sub("root/a/up").c_str()), 0);
    ASSERT_EQ(symlink("b", tmp_.Sub("root/a/inner").c_str()), 0);
    absl::StatusOr<UniqueFd> root = OpenDirectory(tmp_.Sub("root"));
    ASSERT_THAT(root, IsOk());
    root_ = *std::move(root);
  }
  void TearDown() override { UseOpenBeneathFallbackForTesting(false); }

  TempDir tmp_;
  UniqueFd root_;
};

TEST_P(OpenBeneathTest, OpensPathsBelowTheRoot) {
  EXPECT_THAT(OpenBeneath(root_.get(), "a/b/file", O_RDONLY), IsOk());
  EXPECT_THAT(OpenBeneath(root_.get(), "a/b", O_RDONLY | O_DIRECTORY), IsOk());
  EXPECT_THAT(OpenBeneath(root_.get(), "", O_RDONLY | O_DIRECTORY), IsOk());
  absl::StatusOr<UniqueFd> created =
      OpenBeneath(root_.get(), "a/new", O_WRONLY | O_CREAT | O_EXCL, 0600);
  ASSERT_THAT(created, IsOk());
  struct stat st;
  ASSERT_EQ(fstat(created->get(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_P(OpenBeneathTest, RefusesSymlinksAndEscapes) {
  for (const char* rel :
       {"a/up/secret", "a/inner/file", "a/inner", "../outside/secret", "a/../../outside/secret"}) {
    SCOPED_TRACE(rel);
    EXPECT_THAT(OpenBeneath(root_.get(), rel, O_RDONLY),
                StatusIs(absl::StatusCode::kFailedPrecondition, ::testing::_));
  }
  EXPECT_THAT(OpenBeneath(root_.get(), tmp_.Sub("outside/secret"), O_RDONLY),
              StatusIs(absl::StatusCode::kFailedPrecondition, ::testing::_));
  EXPECT_THAT(OpenBeneath(root_.get(), "a/missing", O_RDONLY),
              StatusIs(absl::StatusCode::kNotFound, ::testing::_));
}

INSTANTIATE_TEST_SUITE_P(Openat2AndFallback, OpenBeneathTest, ::testing::Bool());

TEST(FdTest, RemoveAllAtRemovesTreesWithoutFollowingSymlinks) {
  TempDir tmp;
  WriteFile(tmp.Sub("outside/keep"), "k");
  WriteFile(tmp.Sub("root/victim/x/y"), "y");
  ASSERT_EQ(symlink(tmp.Sub("outside").c_str(), tmp.Sub("root/victim/link").c_str()), 0);
  ASSERT_EQ(chmod(tmp.Sub("root/victim/x").c_str(), 0500), 0);
  absl::StatusOr<UniqueFd> root = OpenDirectory(tmp.Sub("root"));
  ASSERT_THAT(root, IsOk());
  EXPECT_THAT(RemoveAllAt(root->get(), "victim"), IsOk());
  EXPECT_FALSE(::kiln::fsutil::testing::Exists(tmp.Sub("root/victim")));
  EXPECT_EQ(::kiln::fsutil::testing::ReadFile(tmp.Sub("outside/keep")), "k");
  EXPECT_THAT(RemoveAllAt(root->get(), "victim"), IsOk());  // already gone
}

TEST(FdTest, ReadDirSortedIsBytewise) {
  TempDir tmp;
  for (const char* name : {"b", "a.b", "a", "B", "a-b", "\xc3\xa9"}) WriteFile(tmp.Sub(name), "");
  MakeDirs(tmp.Sub("dir"));
  absl::StatusOr<UniqueFd> root = OpenDirectory(tmp.path());
  ASSERT_THAT(root, IsOk());
  absl::StatusOr<std::vector<DirName>> names = ReadDirSorted(root->get());
  ASSERT_THAT(names, IsOk());
  std::vector<std::string> got;
  for (const DirName& n : *names) got.push_back(n.name);
  EXPECT_EQ(got, (std::vector<std::string>{"B", "a", "a-b", "a.b", "b", "dir", "\xc3\xa9"}));
}

}  // namespace
}  // namespace kiln::fsutil::internal
