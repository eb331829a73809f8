#pragma once
// Helpers shared by the Dockerfile frontend tests.

#include <utility>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/status/statusor.h"
#include "tests/testutil/status_matchers.h"

namespace kiln::dockerfile::testutil {

// The value of a parse that should succeed. On an error the test fails and a default value is
// returned, so the test goes on (failing its later checks) instead of crashing.
template <typename T>
T ValueOrFail(absl::StatusOr<T> parsed) {
  EXPECT_THAT(parsed, ::kiln::testing::IsOk());
  if (!parsed.ok()) return T{};
  return *std::move(parsed);
}

}  // namespace kiln::dockerfile::testutil
