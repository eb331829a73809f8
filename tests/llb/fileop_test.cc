#include "llb/fileop.h"

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
using ::testing::ElementsAre;

TEST(FileOpTest, ChainedActionsReadEarlierActionsAfterRealInputs) {
  State base = Image("busybox");
  State other = Local("other");
  pb::Definition def = MustMarshal(base.File(Mkdir("/a", 0755)
                                                 .Copy(other, "/src", "/a/")
                                                 .Copy(base, "/etc", "/a/etc")
                                                 .Mkfile("/f", 0600, "x")));
  pb::Op op = ResultOp(def);
  ASSERT_EQ(op.inputs_size(), 2);  // base once, other once
  EXPECT_EQ(op.inputs(0).digest(), Sha256Digest(def.def(0)));
  EXPECT_EQ(op.inputs(1).digest(), Sha256Digest(def.def(1)));
  const auto& actions = op.file().actions();
  ASSERT_EQ(actions.size(), 4);
  // {input, secondaryInput, output}: action i reads action i-1 as index 2 + (i-1).
  auto triple = [](const pb::FileAction& a) {
    return std::vector<int64_t>{a.input(), a.secondaryinput(), a.output()};
  };
  EXPECT_THAT(triple(actions[0]), ElementsAre(0, -1, -1));
  EXPECT_THAT(triple(actions[1]), ElementsAre(2, 1, -1));
  EXPECT_THAT(triple(actions[2]), ElementsAre(3, 0, -1));
  EXPECT_THAT(triple(actions[3]), ElementsAre(4, -1, 0));
  EXPECT_EQ(def.metadata().at(Sha256Digest(def.def(2))).caps_size(), 1);
}

TEST(FileOpTest, CopyFromActionChainNumbersThatChainInline) {
  CopyInput generated = Mkdir("/g", 0755).Mkfile("/g/f", 0644, "x").WithState(Scratch());
  pb::Definition def = MustMarshal(Scratch().File(Copy(generated, "/g", "/out")));
  const pb::Op op = ResultOp(def);
  const auto& actions = op.file().actions();
  ASSERT_EQ(actions.size(), 3);
  EXPECT_EQ(op.inputs_size(), 0);
  EXPECT_TRUE(actions[0].has_mkdir());
  EXPECT_EQ(actions[1].input(), 0);  // no real inputs, so action 0 is index 0
  EXPECT_TRUE(actions[2].has_copy());
  EXPECT_EQ(actions[2].input(), -1);          // scratch
  EXPECT_EQ(actions[2].secondaryinput(), 1);  // the mkfile's result
  EXPECT_EQ(actions[2].output(), 0);
}

TEST(FileOpTest, PathsResolveAgainstWorkingDirectories) {
  State from = Scratch().Dir("/src");
  pb::Definition def = MustMarshal(Scratch().Dir("/work").File(Mkdir("a/../b", 0755)
                                                                   .Rm("c")
                                                                   .Copy(from, "f", "d/")
                                                                   .Copy(from, "/abs", "e/.")
                                                                   .Symlink("x", "y")));
  const pb::Op op = ResultOp(def);
  const auto& a = op.file().actions();
  EXPECT_EQ(a[0].mkdir().path(), "/work/b");
  EXPECT_EQ(a[1].rm().path(), "/work/c");
  EXPECT_EQ(a[2].copy().src(), "/src/f");
  EXPECT_EQ(a[2].copy().dest(), "/work/d/");
  EXPECT_EQ(a[3].copy().src(), "/abs");
  EXPECT_EQ(a[3].copy().dest(), "/work/e/.");
  EXPECT_EQ(a[4].symlink().oldpath(), "x");  // written as given
  EXPECT_EQ(a[4].symlink().newpath(), "y");
}

TEST(FileOpTest, ChownByNameRefersToTheBaseInput) {
  pb::Definition def =
      MustMarshal(Image("busybox").File(Mkfile("/f", 0644, "", {.chown = ParseChown("app:1000")})));
  const pb::Op op = ResultOp(def);
  const pb::ChownOpt& owner = op.file().actions(0).mkfile().owner();
  EXPECT_EQ(owner.user().byname().name(), "app");
  EXPECT_EQ(owner.user().byname().input(), 0);
  EXPECT_EQ(owner.group().byid(), 1000u);
  ChownOpt root = ParseChown("root");
  ASSERT_TRUE(root.user.has_value());
  EXPECT_EQ(root.user->name, "");
  EXPECT_FALSE(root.group.has_value());
}

}  // namespace
}  // namespace kiln::llb
