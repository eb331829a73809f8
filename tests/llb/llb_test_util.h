#pragma once
// Helpers shared by the llb tests: marshal with pinned options and pick ops out of the result.

#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "llb/marshal.h"
#include "llb/state.h"
#include "tests/testutil/status_matchers.h"

namespace kiln::llb::testing {

// Options that make marshaling independent of the host: linux/amd64, a fixed local.unique.
inline MarshalOptions Pinned() {
  MarshalOptions options;
  options.platform = Platform{.os = "linux", .architecture = "amd64"};
  options.local_unique_id = "test";
  return options;
}

inline pb::Definition MustMarshal(const State& state, const MarshalOptions& options = Pinned()) {
  absl::StatusOr<pb::Definition> def = Marshal(state, options);
  EXPECT_THAT(def, ::kiln::testing::IsOk());
  return def.ok() ? *def : pb::Definition();
}

inline pb::Op Parse(const std::string& bytes) {
  pb::Op op;
  EXPECT_TRUE(op.ParseFromString(bytes));
  return op;
}

// The op that produces the marshaled state: the entry just before the terminal.
inline pb::Op ResultOp(const pb::Definition& def) { return Parse(def.def(def.def_size() - 2)); }

}  // namespace kiln::llb::testing
