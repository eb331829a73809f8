#include "llb/marshal.h"

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

State SampleGraph() {
  State src = Local("context");
  return Image("busybox")
      .Dir("/app")
      .File(Mkdir("out", 0755).Copy(src, "/", "out/", {.copy_dir_contents_only = true}))
      .Run({.args = {"make"}, .mounts = {{.target = "/cache", .source = src, .readonly = true}}})
      .Root();
}

TEST(MarshalTest, SameGraphTwiceGivesIdenticalBytes) {
  State graph = SampleGraph();
  EXPECT_EQ(SerializeDefinition(MustMarshal(graph)), SerializeDefinition(MustMarshal(graph)));
  // An independently built but identical graph marshals to the same bytes too.
  EXPECT_EQ(SerializeDefinition(MustMarshal(graph)),
            SerializeDefinition(MustMarshal(SampleGraph())));
}

TEST(MarshalTest, LocalSourcesWithoutSessionAreUniquePerMarshalByDefault) {
  State local = Local("context");
  MarshalOptions options;
  EXPECT_NE(MustMarshal(local, options).def(0), MustMarshal(local, options).def(0));
  State with_session = Local("context", {.session_id = "s1"});
  EXPECT_EQ(MustMarshal(with_session, options).def(0), MustMarshal(with_session, options).def(0));
  EXPECT_EQ(Parse(MustMarshal(with_session).def(0)).source().attrs().count("local.unique"), 0u);
}

TEST(MarshalTest, IdenticalSubgraphsDedupeToOneOp) {
  auto make = [] { return Scratch().File(Mkfile("/f", 0644, "same")); };
  State a = make();
  State b = make();  // different objects, same op
  pb::Definition def = MustMarshal(Merge({a, b, Image("alpine")}));
  // file op, image, merge, terminal
  ASSERT_EQ(def.def_size(), 4);
  pb::Op merge = ResultOp(def);
  ASSERT_EQ(merge.inputs_size(), 3);
  EXPECT_EQ(merge.inputs(0).digest(), merge.inputs(1).digest());
  EXPECT_EQ(merge.inputs(0).digest(), Sha256Digest(def.def(0)));
}

TEST(MarshalTest, DigestsAreSha256OfOpBytesAndInputsComeFirst) {
  pb::Definition def = MustMarshal(SampleGraph());
  std::set<std::string> seen;
  for (const std::string& bytes : def.def()) {
    const pb::Op op = Parse(bytes);
    for (const pb::Input& input : op.inputs()) {
      EXPECT_TRUE(seen.contains(input.digest())) << "input after its user: " << input.digest();
    }
    const std::string digest = Sha256Digest(bytes);
    EXPECT_TRUE(seen.insert(digest).second) << "op twice: " << digest;
    EXPECT_TRUE(def.metadata().contains(digest)) << "no metadata for " << digest;
  }
  EXPECT_EQ(def.metadata_size(), def.def_size());
}

TEST(MarshalTest, TerminalOpReferencesTheResult) {
  ExecState run = Image("busybox").Run(
      {.args = {"true"}, .mounts = {{.target = "/a"}, {.target = "/b", .readonly = true}}});
  absl::StatusOr<State> a = run.GetMount("/a");
  ASSERT_THAT(a, IsOk());
  pb::Definition def = MustMarshal(*a);
  pb::Op terminal = Parse(def.def(def.def_size() - 1));
  EXPECT_EQ(terminal.op_case(), pb::Op::OP_NOT_SET);
  ASSERT_EQ(terminal.inputs_size(), 1);
  EXPECT_EQ(terminal.inputs(0).digest(), Sha256Digest(def.def(def.def_size() - 2)));
  EXPECT_EQ(terminal.inputs(0).index(), 1);  // "/" is output 0, "/a" output 1
  EXPECT_FALSE(terminal.has_platform());
  const pb::OpMetadata& md = def.metadata().at(Sha256Digest(def.def(def.def_size() - 1)));
  EXPECT_TRUE(md.caps().at("constraints"));
  EXPECT_TRUE(md.caps().at("platform"));
  EXPECT_TRUE(def.has_source());
}

TEST(MarshalTest, TerminalRecordsMetadataCapsOfAllOps) {
  pb::Definition def = MustMarshal(Image(
      "busybox", {.op = {.custom_name = "base", .ignore_cache = true, .export_cache = true}}));
  const pb::OpMetadata& md = def.metadata().at(Sha256Digest(def.def(1)));
  EXPECT_TRUE(md.caps().contains("meta.description"));
  EXPECT_TRUE(md.caps().contains("meta.ignorecache"));
  EXPECT_TRUE(md.caps().contains("meta.exportcache"));
  const pb::OpMetadata& image_md = def.metadata().at(Sha256Digest(def.def(0)));
  EXPECT_EQ(image_md.description().at("llb.customname"), "base");
  EXPECT_TRUE(image_md.ignore_cache());
}

TEST(MarshalTest, ScratchMarshalsToEmptyDefinition) {
  pb::Definition def = MustMarshal(Scratch());
  EXPECT_EQ(def.def_size(), 0);
  EXPECT_EQ(def.metadata_size(), 0);
}

TEST(MarshalTest, OpKindIsSerializedAfterPlatformAndConstraints) {
  pb::Definition def = MustMarshal(Image("busybox"));
  const std::string& bytes = def.def(0);
  // Field 10 (platform) first, then 11 (constraints, empty), then 3 (source), as Go writes it.
  ASSERT_GT(bytes.size(), 2u);
  EXPECT_EQ(static_cast<unsigned char>(bytes[0]), 0x52);
  EXPECT_NE(bytes.find(std::string("\x5a\x00\x1a", 3)), std::string::npos);
  // Parsing and re-serializing with our rule is the identity.
  EXPECT_EQ(SerializeOp(Parse(bytes)), bytes);
}

TEST(MarshalTest, DefaultPlatformAppliesToImagesAndExecsOnly) {
  MarshalOptions options = Pinned();
  options.platform = Platform{.os = "linux", .architecture = "arm64"};
  pb::Definition def =
      MustMarshal(Image("busybox").Run({.args = {"true"}}).Root().File(Mkdir("/x", 0755)), options);
  EXPECT_EQ(Parse(def.def(0)).platform().architecture(), "arm64");  // image
  EXPECT_EQ(Parse(def.def(1)).platform().architecture(), "arm64");  // exec
  EXPECT_FALSE(Parse(def.def(2)).has_platform());                   // file
}

TEST(MarshalTest, StatePlatformFlowsFromImageToExec) {
  State arm =
      Image("busybox", {.op = {.platform = Platform{.os = "linux", .architecture = "arm64"}}});
  ASSERT_TRUE(arm.GetPlatform().has_value());
  EXPECT_EQ(arm.GetPlatform()->architecture, "arm64");
  pb::Definition def = MustMarshal(arm.Run({.args = {"true"}}).Root());
  EXPECT_EQ(Parse(def.def(1)).platform().architecture(), "arm64");
}

}  // namespace
}  // namespace kiln::llb
