#include "base/context.h"

#include <gtest/gtest.h>

namespace kiln {
namespace {

TEST(ContextTest, CancelPropagatesToChildrenNotParents) {
  Context root;
  Context child = root.Child();
  Context grandchild = child.Child();
  EXPECT_TRUE(root.Check().ok());
  grandchild.Cancel();
  EXPECT_TRUE(grandchild.Cancelled());
  EXPECT_FALSE(child.Cancelled());
  child.Cancel();
  EXPECT_FALSE(root.Cancelled());
  Context other = root.Child();
  root.Cancel();
  EXPECT_TRUE(other.Cancelled());
  EXPECT_EQ(other.Check("solve").code(), absl::StatusCode::kCancelled);
}

TEST(ContextTest, CopiesShareCancellation) {
  Context a;
  Context b = a.WithBuildId("build1");
  EXPECT_EQ(b.build_id(), "build1");
  a.Cancel();
  EXPECT_TRUE(b.Cancelled());
}

TEST(ContextTest, DeadlineExpires) {
  Context c = Context().WithDeadline(Context::Clock::now() - std::chrono::seconds(1));
  EXPECT_TRUE(c.Cancelled());
  EXPECT_EQ(c.Check("sync").code(), absl::StatusCode::kDeadlineExceeded);
}

}  // namespace
}  // namespace kiln
