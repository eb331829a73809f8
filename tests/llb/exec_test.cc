#include "llb/exec.h"

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
using ::kiln::testing::IsOk;
using ::kiln::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(ExecTest, MountsAreSortedAndOnlyWritableBindsGetOutputs) {
  State src = Local("src");
  ExecState run = Image("busybox").Run({
      .args = {"build"},
      .mounts = {{.target = "/z"},
                 {.target = "/a", .source = src, .readonly = true},
                 {.target = "/m", .type = MountType::kCache, .cache_id = "c"},
                 {.target = "/b", .type = MountType::kTmpfs},
                 {.target = "/n", .source = src, .no_output = true}},
  });
  absl::StatusOr<State> z = run.GetMount("/z");
  ASSERT_THAT(z, IsOk());
  pb::Definition def = MustMarshal(*z);
  pb::Op op = ResultOp(def);
  std::vector<std::string> dests;
  std::vector<int64_t> outputs;
  std::vector<int64_t> inputs;
  for (const pb::Mount& m : op.exec().mounts()) {
    dests.push_back(m.dest());
    outputs.push_back(m.output());
    inputs.push_back(m.input());
  }
  EXPECT_THAT(dests, ElementsAre("/", "/a", "/b", "/m", "/n", "/z"));
  EXPECT_THAT(outputs, ElementsAre(0, -1, -1, -1, -1, 1));
  EXPECT_THAT(inputs, ElementsAre(0, 1, -1, -1, 1, -1));  // src listed once
  EXPECT_EQ(op.inputs_size(), 2);
  pb::Op terminal = Parse(def.def(def.def_size() - 1));
  EXPECT_EQ(terminal.inputs(0).index(), 1);

  EXPECT_THAT(run.GetMount("/b"), StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("/b")));
  EXPECT_THAT(run.GetMount("/m"), StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("/m")));
  EXPECT_THAT(run.GetMount("/n"), StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("/n")));
  EXPECT_THAT(run.GetMount("/nope"), StatusIs(absl::StatusCode::kNotFound, HasSubstr("/nope")));
  absl::StatusOr<State> a = run.GetMount("/a");  // readonly: the source itself
  ASSERT_THAT(a, IsOk());
  EXPECT_EQ(MustMarshal(*a).def(0), MustMarshal(src).def(0));
}

TEST(ExecTest, MetaComesFromStateAndRunOptions) {
  State base = Image("busybox").AddEnv("A", "1").AddEnv("B", "2").Dir("/src").User("u");
  pb::Definition def = MustMarshal(
      base.Run({.args = {"sh"}, .env = {{"A", "3"}}, .cwd = "sub", .hostname = "h"}).Root());
  const pb::Op op = ResultOp(def);
  const pb::Meta& meta = op.exec().meta();
  EXPECT_THAT(meta.env(), ElementsAre("B=2", "A=3"));
  EXPECT_EQ(meta.cwd(), "/src/sub");
  EXPECT_EQ(meta.user(), "u");
  EXPECT_EQ(meta.hostname(), "h");
  EXPECT_TRUE(meta.removemountstubsrecursive());
}

TEST(ExecTest, RootStateKeepsTheMetadataOfTheBase) {
  State base = Image("busybox").AddEnv("K", "v").Dir("/w");
  State root = base.Run({.args = {"true"}, .env = {{"ONLY", "exec"}}, .cwd = "/elsewhere"}).Root();
  EXPECT_EQ(root.GetDir(), "/w");
  EXPECT_EQ(root.GetEnv("K"), "v");
  EXPECT_FALSE(root.GetEnv("ONLY").has_value());
}

TEST(ExecTest, InvalidRunsFailAtMarshal) {
  EXPECT_THAT(Marshal(Image("busybox").Run({}).Root()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("arguments are required")));
  EXPECT_THAT(
      Marshal(Image("busybox")
                  .Run({.args = {"x"}, .mounts = {{.target = "/c", .type = MountType::kCache}}})
                  .Root()),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("cache id")));
  EXPECT_THAT(Marshal(Image("busybox")
                          .Run({.args = {"x"},
                                .mounts = {{.target = "/t",
                                            .source = Image("alpine"),
                                            .type = MountType::kTmpfs}}})
                          .Root()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("scratch")));
}

}  // namespace
}  // namespace kiln::llb
