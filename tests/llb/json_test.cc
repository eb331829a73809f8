#include "llb/json.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "base/digest.h"
#include "llb/internal/gojson.h"
#include "llb/llb.h"
#include "tests/testutil/status_matchers.h"

namespace kiln::llb {
namespace {

using ::kiln::testing::IsOk;
using ::testing::HasSubstr;

TEST(DefinitionToJsonTest, OneObjectPerOpInDefinitionOrder) {
  absl::StatusOr<pb::Definition> def =
      Marshal(Scratch().File(Mkfile("/<a&b>", 0644, "hi").Symlink("t", "/l")),
              {.platform = Platform{.os = "linux", .architecture = "amd64"}});
  ASSERT_THAT(def, IsOk());
  const std::string json = DefinitionToJson(*def);
  std::vector<std::string> lines;
  std::istringstream in(json);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(json.back(), '\n');
  nlohmann::json first = nlohmann::json::parse(lines[0]);
  EXPECT_EQ(first["Digest"], Sha256Digest(def->def(0)));
  EXPECT_EQ(first["OpMetadata"]["caps"]["file.base"], true);
  const auto& actions = first["Op"]["Op"]["file"]["actions"];
  EXPECT_EQ(actions[0]["Action"]["mkfile"]["data"], "aGk=");  // bytes are base64
  EXPECT_EQ(actions[0]["output"], -1);
  EXPECT_EQ(actions[1]["Action"]["symlink"]["newpath"], "/l");
  // Go's encoder escapes HTML characters.
  EXPECT_THAT(lines[0], HasSubstr(R"("path":"/\u003ca\u0026b\u003e")"));
  nlohmann::json terminal = nlohmann::json::parse(lines[1]);
  EXPECT_EQ(terminal["Op"]["Op"], nlohmann::json::object());
  EXPECT_FALSE(terminal["Op"]["inputs"][0].contains("index"));  // zero values are omitted
}

TEST(DefinitionToJsonTest, UnparseableEntryIsReportedInline) {
  pb::Definition def;
  def.add_def(std::string("\x0a\xff", 2));
  EXPECT_EQ(DefinitionToJson(def),
            "{\"Digest\":\"" + Sha256Digest(def.def(0)) + "\",\"Error\":\"cannot parse op\"}\n");
}

TEST(GoJsonTest, EscapesLikeGo) {
  EXPECT_EQ(internal::GoJsonDump(nlohmann::ordered_json(
                std::vector<std::string>{"a<b>&c", "\xe2\x80\xa8", "tab\t", "\x01"})),
            R"(["a\u003cb\u003e\u0026c","\u2028","tab\t","\u0001"])");
}

}  // namespace
}  // namespace kiln::llb
