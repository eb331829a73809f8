#include "fsutil/paths.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

namespace kiln::fsutil {
namespace {

TEST(PathsTest, CleanMatchesGo) {
  const std::pair<std::string, std::string> cases[] = {
      {"", "."},
      {".", "."},
      {"a", "a"},
      {"a/", "a"},
      {"a//b", "a/b"},
      {"./a", "a"},
      {"a/./b", "a/b"},
      {"a/../b", "b"},
      {"a/..", "."},
      {"..", ".."},
      {"../a", "../a"},
      {"a/../..", ".."},
      {"/", "/"},
      {"/..", "/"},
      {"/../a", "/a"},
      {"//a//", "/a"},
      {"a/b/c/../../d", "a/d"},
      {"!./foo", "!./foo"},
      {"**/", "**"},
      {"./**/*.go", "**/*.go"},
  };
  for (const auto& [in, want] : cases) EXPECT_EQ(CleanPath(in), want) << in;
}

TEST(PathsTest, DirBaseJoin) {
  EXPECT_EQ(DirPath("a/b/c"), "a/b");
  EXPECT_EQ(DirPath("a"), ".");
  EXPECT_EQ(DirPath("/a"), "/");
  EXPECT_EQ(DirPath(""), ".");
  EXPECT_EQ(BasePath("a/b/c"), "c");
  EXPECT_EQ(BasePath("a/b/"), "b");
  EXPECT_EQ(BasePath("/"), "/");
  EXPECT_EQ(BasePath(""), ".");
  EXPECT_EQ(JoinPath({".", "a/b"}), "a/b");
  EXPECT_EQ(JoinPath({".", "/abs"}), "abs");
  EXPECT_EQ(JoinPath({"/", "a/../../b"}), "/b");
  EXPECT_EQ(JoinPath({"", ""}), "");
  EXPECT_EQ(JoinPath({"a", ""}), "a");
}

TEST(PathsTest, ComparePathSortsSlashFirst) {
  std::vector<std::string> paths = {"a.b", "a/c", "a", "a-b", "a/b/c", "b", "a/b"};
  std::sort(paths.begin(), paths.end(),
            [](const std::string& x, const std::string& y) { return ComparePath(x, y) < 0; });
  EXPECT_EQ(paths, (std::vector<std::string>{"a", "a/b", "a/b/c", "a/c", "a-b", "a.b", "b"}));
  EXPECT_EQ(ComparePath("a", "a"), 0);
  EXPECT_LT(ComparePath("", "a"), 0);
  // Bytes compare unsigned.
  EXPECT_LT(ComparePath("a", "\xc3\xa9"), 0);
}

TEST(PathsTest, PathWithin) {
  EXPECT_TRUE(PathWithin("a/b", "a"));
  EXPECT_TRUE(PathWithin("a", "a"));
  EXPECT_TRUE(PathWithin("anything", ""));
  EXPECT_FALSE(PathWithin("ab", "a"));
  EXPECT_FALSE(PathWithin("a", "a/b"));
}

}  // namespace
}  // namespace kiln::fsutil
