#include "client/build.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kiln::client {
namespace {

using ::testing::ElementsAre;

TEST(ExpandOutputsTest, TagsPushAndLoadToBecomeOutputs) {
  BuildFlags f;
  f.outputs = {"type=local,dest=out"};
  f.tags = {"reg/app:1", "reg/app:latest"};
  f.push = true;
  f.load_to = "app.tar";
  auto o = ExpandOutputs(f);
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_THAT(*o, ElementsAre("type=local,dest=out",
                              "type=image,\"name=reg/app:1,reg/app:latest\",push=true",
                              "type=docker,dest=app.tar,\"name=reg/app:1,reg/app:latest\""));
}

TEST(ExpandOutputsTest, TagWithoutPushStaysLocalToTheDaemon) {
  BuildFlags f;
  f.tags = {"app"};
  auto o = ExpandOutputs(f);
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_THAT(*o, ElementsAre("type=image,\"name=app\""));
}

TEST(ExpandOutputsTest, PushNeedsATag) {
  BuildFlags f;
  f.push = true;
  EXPECT_EQ(ExpandOutputs(f).status().message(), "--push needs an image name: add -t NAME");
}

}  // namespace
}  // namespace kiln::client
