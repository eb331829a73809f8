#include "llb/errdefs.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "base/digest.h"
#include "base/status.h"
#include "llb/llb.h"
#include "tests/llb/llb_test_util.h"

namespace kiln::llb {
namespace {

using ::kiln::llb::testing::MustMarshal;

constexpr char kData[] =
    "FROM scratch\nCOPY a b\nRUN one\nRUN two && \\\n    three\nRUN four\nRUN five\nRUN six\n";
constexpr char kDataBase64[] =
    "RlJPTSBzY3JhdGNoCkNPUFkgYSBiClJVTiBvbmUKUlVOIHR3byAmJiBcCiAgICB0aHJlZQpSVU4gZm91cgpSVU4gZml2"
    "ZQpSVU4gc2l4Cg==";

ErrorSource Src(const std::string& filename, const std::string& language,
                std::vector<pb::Range> ranges) {
  ErrorSource s;
  s.info.set_filename(filename);
  s.info.set_language(language);
  s.info.set_data(kData);
  s.ranges = std::move(ranges);
  return s;
}

// The expected strings below were produced by BuildKit v0.24.0's Go code (encoding/json of
// errdefs.Source and errdefs.Vertex, and (*errdefs.Source).Print) for the same inputs.
TEST(ErrdefsTest, SourceJsonIsGoEncodingOfErrdefsSource) {
  EXPECT_EQ(SourceDetailJson(Src("Dockerfile", "Dockerfile", {LineRange(1, 1)})),
            absl::StrCat(
                R"({"info":{"filename":"Dockerfile","data":")", kDataBase64,
                R"(","language":"Dockerfile"},"ranges":[{"start":{"line":1},"end":{"line":1}}]})"));
  pb::Range chars;
  chars.mutable_start()->set_line(2);
  chars.mutable_start()->set_character(5);
  chars.mutable_end()->set_line(2);
  chars.mutable_end()->set_character(8);
  EXPECT_EQ(
      SourceDetailJson(Src("Dockerfile", "", {chars})),
      absl::StrCat(
          R"({"info":{"filename":"Dockerfile","data":")", kDataBase64,
          R"("},"ranges":[{"start":{"line":2,"character":5},"end":{"line":2,"character":8}}]})"));
  EXPECT_EQ(VertexDetailJson("sha256:abc"), R"({"digest":"sha256:abc"})");
}

TEST(ErrdefsTest, SourceJsonRoundTrips) {
  ErrorSource in = Src("dir/app.Dockerfile", "Dockerfile", {LineRange(4, 5), LineRange(8, 8)});
  auto out = ParseSourceDetail(SourceDetailJson(in));
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->info.filename(), "dir/app.Dockerfile");
  EXPECT_EQ(out->info.language(), "Dockerfile");
  EXPECT_EQ(out->info.data(), kData);
  ASSERT_EQ(out->ranges.size(), 2u);
  EXPECT_EQ(out->ranges[0].start().line(), 4);
  EXPECT_EQ(out->ranges[0].end().line(), 5);
  EXPECT_EQ(out->ranges[1].start().line(), 8);
  EXPECT_FALSE(ParseSourceDetail("{").ok());
  EXPECT_FALSE(ParseSourceDetail(R"({"info":{"data":"%%%"}})").ok());
  EXPECT_EQ(*ParseVertexDetail(R"({"digest":"sha256:abc"})"), "sha256:abc");
  EXPECT_FALSE(ParseVertexDetail("[]").ok());
}

TEST(ErrdefsTest, FormatSourceMatchesBuildkitsPrint) {
  EXPECT_EQ(FormatSource(Src("Dockerfile", "Dockerfile", {LineRange(1, 1)})),
            "Dockerfile:1\n"
            "--------------------\n"
            "   1 | >>> FROM scratch\n"
            "   2 |     COPY a b\n"
            "   3 |     RUN one\n"
            "--------------------\n");
  EXPECT_EQ(FormatSource(Src("Dockerfile", "Dockerfile", {LineRange(4, 5)})),
            "Dockerfile:4\n"
            "--------------------\n"
            "   3 |     RUN one\n"
            "   4 | >>> RUN two && \\\n"
            "   5 | >>>     three\n"
            "   6 |     RUN four\n"
            "--------------------\n");
  EXPECT_EQ(FormatSource(Src("dir/app.Dockerfile", "", {LineRange(8, 8)})),
            "dir/app.Dockerfile:8\n"
            "--------------------\n"
            "   6 |     RUN four\n"
            "   7 |     RUN five\n"
            "   8 | >>> RUN six\n"
            "   9 |     \n"
            "--------------------\n");
  EXPECT_EQ(FormatSource(Src("Dockerfile", "", {LineRange(3, 3), LineRange(6, 6)})),
            "Dockerfile:3\n"
            "--------------------\n"
            "   2 |     COPY a b\n"
            "   3 | >>> RUN one\n"
            "   4 |     RUN two && \\\n"
            "   5 |         three\n"
            "   6 | >>> RUN four\n"
            "   7 |     RUN five\n"
            "--------------------\n");
  // Out of range, or no ranges: nothing, as BuildKit prints nothing.
  EXPECT_EQ(FormatSource(Src("Dockerfile", "", {LineRange(20, 20)})), "");
  EXPECT_EQ(FormatSource(Src("Dockerfile", "", {})), "");
}

TEST(ErrdefsTest, StatusCarriesSourcesInOrderThroughAnnotation) {
  absl::Status st = absl::InvalidArgumentError("bad");
  EXPECT_TRUE(SourcesOf(st).empty());
  st = WithSource(st, Src("Dockerfile", "Dockerfile", {LineRange(2, 2)}));
  st = Annotate(WithSource(st, Src("other", "", {LineRange(3, 3)})), "[step]");
  EXPECT_EQ(st.message(), "[step]: bad");
  std::vector<ErrorSource> sources = SourcesOf(st);
  ASSERT_EQ(sources.size(), 2u);
  EXPECT_EQ(sources[0].info.filename(), "Dockerfile");
  EXPECT_EQ(sources[1].info.filename(), "other");
  EXPECT_TRUE(WithSource(absl::OkStatus(), sources[0]).ok());
}

TEST(ErrdefsTest, MarshalRecordsLocationsAndSolveErrorsFindThem) {
  auto map = std::make_shared<const SourceMap>(
      SourceMap{.filename = "Dockerfile", .language = "Dockerfile", .data = kData});
  ImageOptions io;
  io.op.source_locations = {{.map = map, .ranges = {LineRange(1, 1)}}};
  State base = Image("busybox@sha256:" + std::string(64, 'a'), io);
  RunOptions ro{.args = {"/bin/sh", "-c", "two && three"}};
  ro.op.source_locations = {{.map = map, .ranges = {LineRange(4, 5)}}};
  State run = base.Run(ro).Root();
  pb::Definition def = MustMarshal(run);

  ASSERT_EQ(def.source().infos_size(), 1);  // one map, shared by both ops
  EXPECT_EQ(def.source().infos(0).filename(), "Dockerfile");
  EXPECT_EQ(def.source().infos(0).language(), "Dockerfile");
  EXPECT_EQ(def.source().infos(0).data(), kData);
  ASSERT_EQ(def.source().locations_size(), 2);
  const std::string image_digest = Sha256Digest(def.def(0));
  const std::string exec_digest = Sha256Digest(def.def(1));
  ASSERT_TRUE(def.source().locations().contains(exec_digest));
  const pb::Location& loc = def.source().locations().at(exec_digest).locations(0);
  EXPECT_EQ(loc.sourceindex(), 0);
  EXPECT_EQ(loc.ranges(0).start().line(), 4);
  EXPECT_EQ(loc.ranges(0).end().line(), 5);
  EXPECT_EQ(def.source().locations().at(image_digest).locations(0).ranges(0).start().line(), 1);

  absl::Status failed = WithDefinitionSource(absl::InternalError("exit code: 1"), def, exec_digest);
  std::vector<ErrorSource> sources = SourcesOf(failed);
  ASSERT_EQ(sources.size(), 1u);
  EXPECT_THAT(FormatSource(sources[0]), ::testing::HasSubstr("   4 | >>> RUN two && \\\n"));
  // An op without locations, or another digest: unchanged.
  EXPECT_TRUE(
      SourcesOf(WithDefinitionSource(absl::InternalError("x"), def, "sha256:nope")).empty());
}

TEST(ErrdefsTest, DefinitionsWithoutLocationsHaveAnEmptySource) {
  pb::Definition def = MustMarshal(Image("busybox").Run({.args = {"true"}}).Root());
  EXPECT_TRUE(def.has_source());
  EXPECT_EQ(def.source().infos_size(), 0);
  EXPECT_EQ(def.source().locations_size(), 0);
}

}  // namespace
}  // namespace kiln::llb
