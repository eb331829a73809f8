#include "fsutil/internal/validator.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "fsutil/stat.h"
#include "tests/testutil/status_matchers.h"

namespace kiln::fsutil::internal {
namespace {

using ::kiln::testing::IsOk;
using ::kiln::testing::StatusIs;
using ::testing::HasSubstr;

::fsutil::types::Stat Entry(const std::string& path, uint32_t mode, const std::string& link = "") {
  ::fsutil::types::Stat st;
  st.set_path(path);
  st.set_mode(mode);
  st.set_linkname(link);
  return st;
}

TEST(StatValidatorTest, AcceptsAWalk) {
  StatValidator v;
  for (const auto& st :
       {Entry("a", kModeDir | 0755), Entry("a/b", kModeDir | 0755), Entry("a/b/c", 0644),
        Entry("a/d", 0644), Entry("a-b", 0644), Entry("a.b", kModeDir | 0755),
        Entry("a.b/x", 0644, "a/d"), Entry("b", kModeSymlink | 0777, "/anywhere/../at/all")}) {
    EXPECT_THAT(v.Check(st), IsOk()) << st.path();
  }
}

TEST(StatValidatorTest, RejectsOrderViolations) {
  {
    StatValidator v;
    ASSERT_THAT(v.Check(Entry("a", kModeDir | 0755)), IsOk());
    ASSERT_THAT(v.Check(Entry("a.b", 0644)), IsOk());
    // "a/..." sorts before "a.b": too late.
    EXPECT_THAT(v.Check(Entry("a/x", 0644)),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("out of order")));
  }
  {
    StatValidator v;
    ASSERT_THAT(v.Check(Entry("a.b", 0644)), IsOk());
    EXPECT_THAT(v.Check(Entry("a", kModeDir | 0755)),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("out of order")));
  }
  {
    StatValidator v;
    ASSERT_THAT(v.Check(Entry("f", 0644)), IsOk());  // a file, not a directory
    EXPECT_THAT(v.Check(Entry("f/x", 0644)),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("out of order")));
  }
  {
    StatValidator v;
    ASSERT_THAT(v.Check(Entry("a", kModeDir | 0755)), IsOk());
    ASSERT_THAT(v.Check(Entry("b", 0644)), IsOk());
    EXPECT_THAT(v.Check(Entry("a/late", 0644)),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("out of order")));
  }
}

TEST(StatValidatorTest, RejectsBadPathsAndLinks) {
  for (const std::string& p :
       {std::string(".."), std::string("../x"), std::string("/x"), std::string("a/./b"),
        std::string("a/"), std::string("."), std::string(), std::string("a\0b", 3)}) {
    StatValidator v;
    EXPECT_THAT(v.Check(Entry(p, 0644)), StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_))
        << p;
  }
  StatValidator v;
  ASSERT_THAT(v.Check(Entry("d", kModeDir | 0755)), IsOk());
  ASSERT_THAT(v.Check(Entry("l", kModeSymlink | 0777, "x")), IsOk());
  EXPECT_THAT(v.Check(Entry("m", 0644, "d")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unknown path")));
  EXPECT_THAT(v.Check(Entry("n", 0644, "l")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unknown path")));
  EXPECT_THAT(v.Check(Entry("o", kModeSymlink | 0777, std::string("x\0y", 3))),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("NUL")));
}

}  // namespace
}  // namespace kiln::fsutil::internal
