#include "llb/state.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "base/digest.h"
#include "llb/llb.h"
#include "tests/llb/llb_test_util.h"
#include "tests/testutil/status_matchers.h"

namespace kiln::llb {
namespace {

using ::kiln::llb::testing::MustMarshal;
using ::kiln::llb::testing::Parse;
using ::kiln::llb::testing::Pinned;
using ::kiln::llb::testing::ResultOp;

TEST(StateTest, MetadataSettersReturnNewStates) {
  State a = Scratch();
  State b = a.AddEnv("X", "1").Dir("sub").Dir("../other").User("me");
  EXPECT_TRUE(a.Env().empty());
  EXPECT_EQ(a.GetDir(), "/");
  EXPECT_EQ(b.GetDir(), "/other");
  EXPECT_EQ(b.GetEnv("X"), "1");
  EXPECT_EQ(b.GetUser(), "me");
  EXPECT_EQ(b.AddEnv("X", "2").Env().size(), 1u);
  EXPECT_EQ(Scratch().Dir("/abs/").GetDir(), "/abs/");  // absolute dirs are kept as given
  EXPECT_EQ(a.WithPlatform({.os = "Linux", .architecture = "x86_64"}).GetPlatform()->architecture,
            "amd64");
}

TEST(StateTest, MergeAndDiffShortcutsForScratch) {
  State img = Image("busybox");
  EXPECT_TRUE(Merge({}).IsScratch());
  EXPECT_TRUE(Merge({Scratch(), Scratch()}).IsScratch());
  EXPECT_EQ(MustMarshal(Merge({Scratch(), img})).def(0), MustMarshal(img).def(0));
  EXPECT_TRUE(Diff(Scratch(), Scratch()).IsScratch());
  EXPECT_EQ(MustMarshal(Diff(Scratch(), img)).def_size(), 2);
}

}  // namespace
}  // namespace kiln::llb
