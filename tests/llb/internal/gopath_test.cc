#include "llb/internal/gopath.h"

#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

namespace kiln::llb::internal {
namespace {

TEST(GoPathTest, CleanMatchesGo) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "."},
      {"/", "/"},
      {"a/b/", "a/b"},
      {"/a//b/./c/..", "/a/b"},
      {"/../a", "/a"},
      {"../../a", "../../a"},
      {"a/../..", ".."},
      {"./", "."},
      {"/a/b/../../..", "/"},
      {"abc/./../def", "def"},
  };
  for (const auto& [in, want] : cases) EXPECT_EQ(CleanPath(in), want) << in;
  EXPECT_EQ(JoinPath("/", "work", "a/../b"), "/work/b");
  EXPECT_EQ(JoinPath("", ""), "");
  EXPECT_EQ(JoinPath("/src", "."), "/src");
}

TEST(GoPathTest, EscapesRootOnlyWhenDotDotClimbsAboveIt) {
  EXPECT_TRUE(EscapesRoot(".."));
  EXPECT_TRUE(EscapesRoot("/.."));
  EXPECT_TRUE(EscapesRoot("/a/../../b"));
  EXPECT_TRUE(EscapesRoot("a/./../.."));
  EXPECT_FALSE(EscapesRoot("/a/../b"));
  EXPECT_FALSE(EscapesRoot("/a/b/../.."));
  EXPECT_FALSE(EscapesRoot("..."));
  EXPECT_FALSE(EscapesRoot(""));
}

}  // namespace
}  // namespace kiln::llb::internal
