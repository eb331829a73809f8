#include "daemon/cache/filter.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>

#include "tests/testutil/status_matchers.h"

namespace kiln::cache {
namespace {

using ::kiln::testing::IsOk;
using ::kiln::testing::StatusIs;
using ::testing::HasSubstr;

Filter::Adaptor Fields(std::map<std::string, std::string> m) {
  return [m = std::move(m)](std::string_view f) -> std::optional<std::string> {
    auto it = m.find(std::string(f));
    if (it == m.end()) return std::nullopt;
    return it->second;
  };
}

bool Matches(std::vector<std::string> filters, std::map<std::string, std::string> fields) {
  auto f = Filter::Parse(filters);
  EXPECT_THAT(f, IsOk());
  return f->Match(Fields(std::move(fields)));
}

TEST(FilterTest, EmptyMatchesAll) { EXPECT_TRUE(Matches({}, {})); }

TEST(FilterTest, Operators) {
  EXPECT_TRUE(Matches({"type==regular"}, {{"type", "regular"}}));
  EXPECT_FALSE(Matches({"type==regular"}, {{"type", "internal"}}));
  EXPECT_TRUE(Matches({"type!=regular"}, {{"type", "internal"}}));
  EXPECT_TRUE(Matches({"type!=regular"}, {}));
  EXPECT_TRUE(Matches({"description~=^pulled from"}, {{"description", "pulled from x"}}));
  EXPECT_FALSE(Matches({"description~=^pulled"}, {{"description", "local"}}));
  EXPECT_TRUE(Matches({"inuse"}, {{"inuse", ""}}));
  EXPECT_FALSE(Matches({"inuse"}, {}));
  EXPECT_TRUE(Matches({"id==\"abc\""}, {{"id", "abc"}}));
}

TEST(FilterTest, CommaIsAndListIsOr) {
  std::map<std::string, std::string> r = {{"type", "regular"}, {"mutable", ""}};
  EXPECT_TRUE(Matches({"type==regular,mutable"}, r));
  EXPECT_FALSE(Matches({"type==regular,shared"}, r));
  EXPECT_TRUE(Matches({"type==internal", "mutable"}, r));
  EXPECT_FALSE(Matches({"type==internal", "shared"}, r));
}

TEST(FilterTest, BadFiltersAreErrors) {
  EXPECT_THAT(Filter::Parse({"==x"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no field name")));
  EXPECT_THAT(Filter::Parse({"ty pe==x"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("bad field name")));
  EXPECT_THAT(Filter::Parse({"id~=("}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("bad regular expression")));
}

}  // namespace
}  // namespace kiln::cache
