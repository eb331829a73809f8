#include "frontend/dockerfile/convert/subrequests.h"

#include "absl/strings/escaping.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace kiln::dockerfile {
namespace {

using ::testing::HasSubstr;
using Json = nlohmann::json;

Json ResultJson(const SubrequestMetadata& m) { return Json::parse(m.at("result.json")); }

TEST(SubrequestsTest, DescribeListsOutlineTargetsAndItselfAsBuildKit) {
  SubrequestMetadata m = DescribeResult();
  EXPECT_EQ(m.at("version"), "1.0.0");
  Json j = ResultJson(m);
  ASSERT_EQ(j.size(), 3u);
  EXPECT_EQ(j[0]["name"], "frontend.outline");
  EXPECT_EQ(j[0]["opts"][0]["name"], "target");
  EXPECT_EQ(j[1]["name"], "frontend.targets");
  EXPECT_EQ(j[2]["name"], "frontend.subrequests.describe");
  EXPECT_TRUE(j[2]["opts"].is_null());
  // Go's field order and indentation.
  EXPECT_THAT(m.at("result.json"), HasSubstr("[\n  {\n    \"name\": \"frontend.outline\",\n"
                                             "    \"version\": \"1.0.0\",\n"
                                             "    \"type\": \"rpc\",\n"));
  EXPECT_EQ(m.at("result.txt"),
            "NAME                 VERSION DESCRIPTION\n"
            "outline              1.0.0   List all parameters current build target supports\n"
            "targets              1.0.0   List all targets current build supports\n"
            "subrequests.describe 1.0.0   List available subrequest types\n");
}

TEST(SubrequestsTest, TabWriteAlignsTerminatedCells) {
  EXPECT_EQ(TabWrite("a\tbb\tc\nccc\td\te\n", 1), "a   bb c\nccc d  e\n");
  EXPECT_EQ(TabWrite("x\ty\nlonely\n", 3), "x   y\nlonely\n");
}

constexpr char kMultiStage[] =
    "ARG GO_VERSION=1.22\n"
    "# base the toolchain\n"
    "FROM golang:${GO_VERSION} AS base\n"
    "# VERSION the version to stamp\n"
    "ARG VERSION=dev\n"
    "RUN --mount=type=secret,id=token,required=true --mount=type=ssh true\n"
    "FROM base AS build\n"
    "ARG UNUSED_HERE\n"
    "RUN true\n"
    "\n"
    "FROM alpine AS other\n"
    "ARG OTHER=1\n"
    "# release the final image\n"
    "FROM scratch AS release\n"
    "COPY --from=build /out /out\n";

TEST(SubrequestsTest, TargetsListsStagesWithDescriptionsAndDefault) {
  auto m = TargetsResult(kMultiStage);
  ASSERT_TRUE(m.ok()) << m.status();
  Json j = ResultJson(*m);
  ASSERT_EQ(j["targets"].size(), 4u);
  EXPECT_EQ(j["targets"][0]["name"], "base");
  EXPECT_EQ(j["targets"][0]["description"], "the toolchain");
  EXPECT_EQ(j["targets"][0]["base"], "golang:${GO_VERSION}");
  EXPECT_EQ(j["targets"][0]["location"]["ranges"][0]["start"]["line"], 3);
  EXPECT_FALSE(j["targets"][0].contains("default"));
  EXPECT_EQ(j["targets"][3]["name"], "release");
  EXPECT_EQ(j["targets"][3]["default"], true);
  EXPECT_EQ(absl::Base64Escape(kMultiStage), j["sources"][0]);
  EXPECT_EQ(m->at("result.txt"),
            "TARGET            DESCRIPTION\n"
            "base              the toolchain\n"
            "build             \n"
            "other             \n"
            "release (default) the final image\n");
}

TEST(SubrequestsTest, OutlineFollowsTheTargetsBaseAndDependencies) {
  ConvertOptions o;
  o.build_args["VERSION"] = "1.0";
  auto m = OutlineResult(kMultiStage, o);
  ASSERT_TRUE(m.ok()) << m.status();
  Json j = ResultJson(*m);
  EXPECT_EQ(j["name"], "release");
  EXPECT_EQ(j["description"], "the final image");
  ASSERT_EQ(j["args"].size(), 3u) << j.dump();
  EXPECT_EQ(j["args"][0]["name"], "GO_VERSION");
  EXPECT_EQ(j["args"][0]["value"], "1.22");
  EXPECT_EQ(j["args"][1]["name"], "VERSION");
  EXPECT_EQ(j["args"][1]["value"], "1.0");
  EXPECT_EQ(j["args"][1]["description"], "the version to stamp");
  EXPECT_EQ(j["args"][2]["name"], "UNUSED_HERE");
  EXPECT_FALSE(j["args"][2].contains("value"));
  ASSERT_EQ(j["secrets"].size(), 1u);
  EXPECT_EQ(j["secrets"][0]["name"], "token");
  EXPECT_EQ(j["secrets"][0]["required"], true);
  EXPECT_EQ(j["secrets"][0]["location"]["ranges"][0]["start"]["line"], 6);
  ASSERT_EQ(j["ssh"].size(), 1u);
  EXPECT_EQ(j["ssh"][0]["name"], "default");
  EXPECT_FALSE(j["ssh"][0].contains("required"));
  EXPECT_THAT(m->at("result.txt"), HasSubstr("TARGET:      release\n"
                                             "DESCRIPTION: the final image\n\n"));
  EXPECT_THAT(m->at("result.txt"), HasSubstr("SECRET   REQUIRED\ntoken    true\n"));
}

TEST(SubrequestsTest, OutlineOfAnEarlierTargetOmitsLaterStages) {
  ConvertOptions o;
  o.target = "Base";
  auto m = OutlineResult(kMultiStage, o);
  ASSERT_TRUE(m.ok()) << m.status();
  Json j = ResultJson(*m);
  EXPECT_EQ(j["name"], "base");
  ASSERT_EQ(j["args"].size(), 2u) << j.dump();
  EXPECT_EQ(j["args"][1]["value"], "dev");

  o.target = "nope";
  EXPECT_EQ(OutlineResult(kMultiStage, o).status().message(),
            "target stage \"nope\" could not be found");
}

TEST(SubrequestsTest, LintReportsWarningsWithLocationsAndStatus) {
  ConvertResult conv;
  conv.warnings.push_back({.rule = "FromAsCasing",
                           .message = "'as' and 'FROM' keywords' casing do not match",
                           .line = 1,
                           .url = "https://docs.docker.com/go/dockerfile/rule/from-as-casing/",
                           .description = "The 'as' keyword should match the case of the 'from' "
                                          "keyword"});
  const std::string df = "FROM alpine as base\nRUN true\n";
  SubrequestMetadata m = LintResult(df, "Dockerfile", conv);
  EXPECT_EQ(m.at("result.statuscode"), "1");
  Json j = ResultJson(m);
  ASSERT_EQ(j["warnings"].size(), 1u);
  EXPECT_EQ(j["warnings"][0]["ruleName"], "FromAsCasing");
  EXPECT_EQ(j["warnings"][0]["detail"], "'as' and 'FROM' keywords' casing do not match");
  EXPECT_EQ(j["warnings"][0]["location"]["ranges"][0]["start"]["line"], 1);
  EXPECT_EQ(j["sources"][0]["filename"], "Dockerfile");
  EXPECT_EQ(j["sources"][0]["language"], "Dockerfile");
  EXPECT_EQ(j["sources"][0]["data"], absl::Base64Escape(df));
  EXPECT_FALSE(j.contains("buildError"));
  EXPECT_THAT(m.at("result.txt"),
              HasSubstr("\nWARNING: FromAsCasing - "
                        "https://docs.docker.com/go/dockerfile/rule/from-as-casing/\n"
                        "'as' and 'FROM' keywords' casing do not match\n"));
  EXPECT_THAT(m.at("result.txt"), HasSubstr(">>> FROM alpine as base"));
}

TEST(SubrequestsTest, LintWithoutWarningsSucceeds) {
  SubrequestMetadata m = LintResult("FROM alpine\n", "Dockerfile", ConvertResult{});
  EXPECT_EQ(m.at("result.statuscode"), "0");
  EXPECT_TRUE(ResultJson(m)["warnings"].is_null());
  EXPECT_EQ(m.at("result.txt"), "");
}

TEST(SubrequestsTest, LintCarriesABuildError) {
  absl::StatusOr<ConvertResult> failed = absl::InvalidArgumentError("unknown stage");
  SubrequestMetadata m = LintResult("FROM alpine\n", "Dockerfile", failed);
  EXPECT_EQ(m.at("result.statuscode"), "1");
  EXPECT_EQ(ResultJson(m)["buildError"]["message"], "unknown stage");
}

TEST(SubrequestsTest, UnsupportedRequestIsBuildKitsError) {
  absl::Status st = UnsupportedSubrequestError("frontend.nope");
  EXPECT_EQ(st.message(), "unsupported request frontend.nope");
  EXPECT_EQ(std::string(*st.GetPayload(kSubrequestPayload)), "frontend.nope");
  EXPECT_EQ(SubrequestDetailJson("frontend.nope"), R"({"name":"frontend.nope"})");
}

}  // namespace
}  // namespace kiln::dockerfile
