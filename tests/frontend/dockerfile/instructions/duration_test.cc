// ParseDuration: Go's time.ParseDuration.

#include <cstdint>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/status/status.h"
#include "frontend/dockerfile/instructions/instructions.h"
#include "tests/testutil/status_matchers.h"

namespace kiln::dockerfile::instructions {
namespace {

using ::kiln::testing::StatusIs;

constexpr int64_t kMs = 1000 * 1000;
constexpr int64_t kSec = 1000 * kMs;
constexpr int64_t kMin = 60 * kSec;
constexpr int64_t kHour = 60 * kMin;

struct Case {
  const char* text;
  int64_t ns;
};

TEST(DurationTest, Valid) {
  const Case cases[] = {
      {"0", 0},
      {"+0", 0},
      {"-0", 0},
      {"0s", 0},
      {"5s", 5 * kSec},
      {"30s", 30 * kSec},
      {"1478s", 1478 * kSec},
      {"-5s", -5 * kSec},
      {"+5s", 5 * kSec},
      {"5.0s", 5 * kSec},
      {"5.6s", 5 * kSec + 600 * kMs},
      {"5.s", 5 * kSec},
      {".5s", 500 * kMs},
      {"1.004s", 1 * kSec + 4 * kMs},
      {"1.0040s", 1 * kSec + 4 * kMs},
      {"100.00100s", 100 * kSec + 1 * kMs},
      {"10ns", 10},
      {"11us", 11 * 1000},
      {"12\xC2\xB5s", 12 * 1000},  // U+00B5
      {"12\xCE\xBCs", 12 * 1000},  // U+03BC
      {"13ms", 13 * kMs},
      {"14s", 14 * kSec},
      {"15m", 15 * kMin},
      {"16h", 16 * kHour},
      {"3h30m", 3 * kHour + 30 * kMin},
      {"10.5s4m", 4 * kMin + 10 * kSec + 500 * kMs},
      {"-2m3.4s", -(2 * kMin + 3 * kSec + 400 * kMs)},
      {"1h2m3s4ms5us6ns", kHour + 2 * kMin + 3 * kSec + 4 * kMs + 5 * 1000 + 6},
      {"39h9m14.425s", 39 * kHour + 9 * kMin + 14 * kSec + 425 * kMs},
      {"52763797000ns", 52763797000},
      {"0.3333333333333333333h", 20 * kMin},
      {"9007199254740993ns", 9007199254740993},
      {"9223372036854775807ns", INT64_MAX},
      {"9223372036854775.807us", INT64_MAX},
      {"-9223372036854775808ns", INT64_MIN},
      {"0.100000000000000000000h", 6 * kMin},
  };
  for (const Case& c : cases) {
    auto d = ParseDuration(c.text);
    ASSERT_TRUE(d.ok()) << c.text << ": " << d.status();
    EXPECT_EQ(*d, c.ns) << c.text;
  }
}

TEST(DurationTest, Invalid) {
  EXPECT_THAT(ParseDuration(""),
              StatusIs(absl::StatusCode::kInvalidArgument, "time: invalid duration \"\""));
  EXPECT_THAT(ParseDuration("3"),
              StatusIs(absl::StatusCode::kInvalidArgument, "time: missing unit in duration \"3\""));
  EXPECT_THAT(ParseDuration("3x"), StatusIs(absl::StatusCode::kInvalidArgument,
                                            "time: unknown unit \"x\" in duration \"3x\""));
  EXPECT_THAT(ParseDuration("1d"), StatusIs(absl::StatusCode::kInvalidArgument,
                                            "time: unknown unit \"d\" in duration \"1d\""));
  EXPECT_THAT(ParseDuration("3\xC3\xA9"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "time: unknown unit \"\\xc3\\xa9\" in duration \"3\\xc3\\xa9\""));
  for (const char* bad :
       {"-", "+", "s", ".", "-.", ".s", "+.s", "1s ", " 1s", "1.2.3s", "9223372036854775808ns",
        "9223372036854775.808us", "9223372036854ms775us808ns", "-9223372036854775809ns", "2562048h",
        "100000000000000000000h"}) {
    EXPECT_FALSE(ParseDuration(bad).ok()) << bad;
  }
}

}  // namespace
}  // namespace kiln::dockerfile::instructions
