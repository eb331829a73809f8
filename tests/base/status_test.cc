#include "base/status.h"

#include <gtest/gtest.h>

namespace kiln {
namespace {

absl::StatusOr<int> Half(int x) {
  if (x % 2 != 0) return absl::InvalidArgumentError("odd");
  return x / 2;
}

absl::StatusOr<int> Quarter(int x) {
  KILN_ASSIGN_OR_RETURN(int h, Half(x));
  KILN_ASSIGN_OR_RETURN(int q, Half(h));
  return q;
}

absl::Status Check(int x) {
  KILN_RETURN_IF_ERROR(Half(x).status());
  return absl::OkStatus();
}

TEST(StatusTest, MacrosPropagate) {
  EXPECT_EQ(*Quarter(8), 2);
  EXPECT_EQ(Quarter(6).status().message(), "odd");
  EXPECT_TRUE(Check(2).ok());
  EXPECT_EQ(Check(3).code(), absl::StatusCode::kInvalidArgument);
}

TEST(StatusTest, AnnotateKeepsCodeAndPayload) {
  absl::Status s = absl::NotFoundError("no such file");
  s.SetPayload("kiln/vertex", absl::Cord("sha256:x"));
  absl::Status a = Annotate(s, "while loading");
  EXPECT_EQ(a.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(a.message(), "while loading: no such file");
  EXPECT_EQ(a.GetPayload("kiln/vertex"), absl::Cord("sha256:x"));
  EXPECT_TRUE(Annotate(absl::OkStatus(), "x").ok());
}

TEST(StatusTest, ErrnoToStatusNamesWhat) {
  absl::Status s = ErrnoToStatus(ENOENT, "open /x");
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(s.message().find("open /x"), absl::string_view::npos);
}

}  // namespace
}  // namespace kiln
