#include "fsutil/walk.h"

#include <sys/stat.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "fsutil/stat.h"
#include "tests/fsutil/test_util.h"
#include "tests/testutil/status_matchers.h"

namespace kiln::fsutil {
namespace {

using ::kiln::fsutil::testing::MakeDirs;
using ::kiln::fsutil::testing::TempDir;
using ::kiln::fsutil::testing::WalkPaths;
using ::kiln::fsutil::testing::WriteFile;
using ::kiln::testing::IsOk;
using ::kiln::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using V = std::vector<std::string>;

// A small context in the shape of a real project.
class WalkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    WriteFile(root("Dockerfile"), "FROM scratch\n");
    WriteFile(root("a/b/c/f1"), "f1");
    WriteFile(root("a/f2"), "f2");
    WriteFile(root("a.b/g"), "g");
    WriteFile(root("a-b/q"), "q");
    WriteFile(root("docs/README.md"), "readme");
    WriteFile(root("docs/other.md"), "other");
    WriteFile(root("node_modules/keep.txt"), "k");
    WriteFile(root("node_modules/x/y/j.js"), "j");
    MakeDirs(root("empty"));
    ASSERT_EQ(symlink("Dockerfile", root("Dockerfile.link").c_str()), 0);
    ASSERT_EQ(symlink("a/b", root("dlink").c_str()), 0);
    ASSERT_EQ(symlink("/etc", root("abs").c_str()), 0);
  }

  std::string root(std::string_view rel = "") const {
    return rel.empty() ? dir_.path() : dir_.Sub(rel);
  }

  V Paths(WalkOptions options) { return WalkPaths(root(), options); }

  TempDir dir_;
};

TEST_F(WalkTest, OrderIsDepthFirstWithSortedNames) {
  EXPECT_EQ(Paths({}), (V{"Dockerfile",
                          "Dockerfile.link",
                          "a",
                          "a/b",
                          "a/b/c",
                          "a/b/c/f1",
                          "a/f2",
                          "a-b",
                          "a-b/q",
                          "a.b",
                          "a.b/g",
                          "abs",
                          "dlink",
                          "docs",
                          "docs/README.md",
                          "docs/other.md",
                          "empty",
                          "node_modules",
                          "node_modules/keep.txt",
                          "node_modules/x",
                          "node_modules/x/y",
                          "node_modules/x/y/j.js"}));
}

TEST_F(WalkTest, ReportsSymlinksWithoutFollowingThem) {
  std::map<std::string, ::fsutil::types::Stat> stats;
  ASSERT_THAT(Walk(root(), {},
                   [&](::fsutil::types::Stat& st) {
                     stats[st.path()] = st;
                     return absl::OkStatus();
                   }),
              IsOk());
  EXPECT_TRUE(IsSymlink(stats["dlink"]));
  EXPECT_EQ(stats["dlink"].linkname(), "a/b");
  EXPECT_EQ(stats["abs"].linkname(), "/etc");
  EXPECT_EQ(stats.count("dlink/c"), 0u);
  EXPECT_TRUE(IsDir(stats["empty"]));
  EXPECT_EQ(stats["a/f2"].size(), 2);
}

TEST_F(WalkTest, ExcludePatternsAndExceptions) {
  EXPECT_EQ(Paths({.exclude_patterns = {"node_modules", "docs/*.md", "*.link", "abs", "dlink"}}),
            (V{"Dockerfile", "a", "a/b", "a/b/c", "a/b/c/f1", "a/f2", "a-b", "a-b/q", "a.b",
               "a.b/g", "docs", "empty"}));
  // An exception inside an excluded directory brings back its parents, not its siblings.
  EXPECT_EQ(Paths({.exclude_patterns = {"*", "!a/b/c"}}), (V{"a", "a/b", "a/b/c", "a/b/c/f1"}));
  EXPECT_EQ(Paths({.exclude_patterns = {"node_modules", "!node_modules/keep.txt"}}).size(), 19u);
  EXPECT_EQ(Paths({.exclude_patterns = {"**", "!**/*.md"}}),
            (V{"docs", "docs/README.md", "docs/other.md"}));
  EXPECT_TRUE(Paths({.exclude_patterns = {"**"}}).empty());
}

TEST_F(WalkTest, IncludePatternsBringParentDirectories) {
  EXPECT_EQ(Paths({.include_patterns = {"a/b/c/f1", "docs"}}),
            (V{"a", "a/b", "a/b/c", "a/b/c/f1", "docs", "docs/README.md", "docs/other.md"}));
  EXPECT_EQ(Paths({.include_patterns = {"**/*.md"}}),
            (V{"docs", "docs/README.md", "docs/other.md"}));
  EXPECT_EQ(Paths({.include_patterns = {"*/f2*"}}), (V{"a", "a/f2"}));
  EXPECT_EQ(Paths({.include_patterns = {"a"}, .exclude_patterns = {"a/b"}}), (V{"a", "a/f2"}));
}

TEST_F(WalkTest, FollowPathsIncludeSymlinkTargets) {
  EXPECT_EQ(Paths({.include_patterns = {"docs/README.md"}, .follow_paths = {"Dockerfile.link"}}),
            (V{"Dockerfile", "Dockerfile.link", "docs", "docs/README.md"}));
  EXPECT_EQ(Paths({.follow_paths = {"dlink/c/f1"}}), (V{"a", "a/b", "a/b/c", "a/b/c/f1", "dlink"}));
  // "." means everything.
  EXPECT_EQ(Paths({.follow_paths = {"."}}).size(), 22u);
}

TEST_F(WalkTest, FollowLinksResolvesWithinRoot) {
  absl::StatusOr<std::optional<V>> r = FollowLinks(root(), {"Dockerfile.link", "dlink/c/f1"});
  ASSERT_THAT(r, IsOk());
  ASSERT_TRUE(r->has_value());
  EXPECT_EQ(**r, (V{"Dockerfile", "Dockerfile.link", "a/b/c/f1", "dlink"}));
  // An absolute symlink target is taken relative to the root.
  r = FollowLinks(root(), {"abs/passwd"});
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(**r, (V{"abs", "etc/passwd"}));
  // Globs in the last element pick symlinks among the matches.
  r = FollowLinks(root(), {"*.link"});
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(**r, (V{"*.link", "Dockerfile"}));
  // ".." cannot climb out of the root.
  r = FollowLinks(root(), {"../x"});
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(**r, (V{"../x"}));
  r = FollowLinks(root(), {"."});
  ASSERT_THAT(r, IsOk());
  EXPECT_FALSE(r->has_value());
}

TEST_F(WalkTest, FollowLinksSurvivesCycles) {
  ASSERT_EQ(symlink("loop2", root("loop1").c_str()), 0);
  ASSERT_EQ(symlink("loop1", root("loop2").c_str()), 0);
  absl::StatusOr<std::optional<V>> r = FollowLinks(root(), {"loop1/x"});
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(**r, (V{"loop1", "loop2"}));
}

TEST_F(WalkTest, HardLinksPointAtTheFirstPath) {
  ASSERT_EQ(link(root("a/f2").c_str(), root("docs/zz-hard").c_str()), 0);
  ASSERT_EQ(link(root("a/f2").c_str(), root("empty/hard2").c_str()), 0);
  std::map<std::string, ::fsutil::types::Stat> stats;
  ASSERT_THAT(Walk(root(), {},
                   [&](::fsutil::types::Stat& st) {
                     stats[st.path()] = st;
                     return absl::OkStatus();
                   }),
              IsOk());
  EXPECT_EQ(stats["a/f2"].linkname(), "");
  EXPECT_EQ(stats["docs/zz-hard"].linkname(), "a/f2");
  EXPECT_EQ(stats["empty/hard2"].linkname(), "a/f2");
  EXPECT_EQ(stats["empty/hard2"].size(), 2);  // fsutil keeps the size on links
  // When the first path is filtered out, the first reported link is the file.
  stats.clear();
  ASSERT_THAT(Walk(root(), {.exclude_patterns = {"a"}},
                   [&](::fsutil::types::Stat& st) {
                     stats[st.path()] = st;
                     return absl::OkStatus();
                   }),
              IsOk());
  EXPECT_EQ(stats["docs/zz-hard"].linkname(), "");
  EXPECT_EQ(stats["empty/hard2"].linkname(), "docs/zz-hard");
}

TEST_F(WalkTest, CallbackErrorStopsTheWalk) {
  int calls = 0;
  absl::Status st = Walk(root(), {}, [&](::fsutil::types::Stat&) {
    return ++calls == 3 ? absl::CancelledError("enough") : absl::OkStatus();
  });
  EXPECT_THAT(st, StatusIs(absl::StatusCode::kCancelled, HasSubstr("enough")));
  EXPECT_EQ(calls, 3);
}

TEST_F(WalkTest, BadPatternsAreInvalidArgument) {
  absl::Status st;
  WalkPaths(root(), {.exclude_patterns = {"["}}, &st);
  EXPECT_THAT(st, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("excludepatterns")));
  WalkPaths(root(), {.include_patterns = {"[z-a]"}}, &st);
  EXPECT_THAT(st, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("includepatterns")));
}

TEST_F(WalkTest, UnreadableDirectoryFailsUnlessFilteredOut) {
  if (geteuid() == 0) GTEST_SKIP() << "root reads everything";
  WriteFile(root("locked/secret"), "s");
  ASSERT_EQ(chmod(root("locked").c_str(), 0), 0);
  absl::Status st;
  WalkPaths(root(), {}, &st);
  EXPECT_THAT(st, StatusIs(absl::StatusCode::kPermissionDenied, ::testing::_));
  WalkPaths(root(), {.exclude_patterns = {"locked"}}, &st);
  EXPECT_THAT(st, IsOk());
  chmod(root("locked").c_str(), 0700);
}

TEST_F(WalkTest, RootMayBeASymlinkToADirectory) {
  TempDir other;
  const std::string link = other.Sub("ctx");
  ASSERT_EQ(symlink(root().c_str(), link.c_str()), 0);
  EXPECT_EQ(WalkPaths(link, {}).size(), 22u);
  absl::Status st;
  WalkPaths(other.Sub("missing"), {}, &st);
  EXPECT_THAT(st, StatusIs(absl::StatusCode::kNotFound, ::testing::_));
}

}  // namespace
}  // namespace kiln::fsutil
