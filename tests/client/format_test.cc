#include "client/format.h"

#include <gtest/gtest.h>

namespace kiln::client {
namespace {

TEST(FormatTest, HumanSizeLikeGoUnits) {
  EXPECT_EQ(HumanSize(0), "0B");
  EXPECT_EQ(HumanSize(999), "999B");
  EXPECT_EQ(HumanSize(1000), "1kB");
  EXPECT_EQ(HumanSize(1234567), "1.235MB");
  EXPECT_EQ(HumanSize(10'000'000'000), "10GB");
}

TEST(FormatTest, ParseHumanSize) {
  EXPECT_EQ(ParseHumanSize("10GB"), 10'000'000'000);
  EXPECT_EQ(ParseHumanSize("512MiB"), int64_t{512} << 20);
  EXPECT_EQ(ParseHumanSize("42"), 42);
  EXPECT_EQ(ParseHumanSize("1.5k"), 1500);
  EXPECT_EQ(ParseHumanSize("ten"), std::nullopt);
  EXPECT_EQ(ParseHumanSize("10XB"), std::nullopt);
}

TEST(FormatTest, ParseDuration) {
  EXPECT_EQ(ParseDurationNs("48h"), int64_t{48} * 3600 * 1'000'000'000);
  EXPECT_EQ(ParseDurationNs("1h30m"), int64_t{90} * 60 * 1'000'000'000);
  EXPECT_EQ(ParseDurationNs("90"), int64_t{90} * 1'000'000'000);
  EXPECT_EQ(ParseDurationNs("250ms"), 250'000'000);
  EXPECT_EQ(ParseDurationNs("3 days"), std::nullopt);
  EXPECT_EQ(ParseDurationNs(""), std::nullopt);
}

TEST(FormatTest, HumanAge) {
  EXPECT_EQ(HumanAge(100, 100), "Less than a second ago");
  EXPECT_EQ(HumanAge(100, 101), "1 second ago");
  EXPECT_EQ(HumanAge(0, 7200), "2 hours ago");
}

TEST(FormatTest, TableAligns) {
  Table t;
  t.Row({"ID", "PLATFORMS"});
  t.Row({"abcdef", "linux/amd64"});
  EXPECT_EQ(t.Render(), "ID       PLATFORMS\nabcdef   linux/amd64\n");
}

}  // namespace
}  // namespace kiln::client
