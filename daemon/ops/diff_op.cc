#include "daemon/ops/diff_op.h"

#include "base/status.h"

namespace kiln::ops {

absl::StatusOr<std::vector<solver::ResultPtr>> DiffOp::Exec(
    const Context& ctx, const std::vector<solver::ResultPtr>& inputs) {
  KILN_RETURN_IF_ERROR(ctx.Check("diff"));
  // An input index of -1 (or a missing lower/upper) is the empty tree.
  auto ref = [&](bool has, int64_t index) -> const cache::ImmutableRef* {
    if (!has || index < 0 || static_cast<size_t>(index) >= inputs.size()) return nullptr;
    return AsRef(inputs[index]).ref();
  };
  const cache::ImmutableRef* lower = ref(op_.has_lower(), op_.lower().input());
  const cache::ImmutableRef* upper = ref(op_.has_upper(), op_.upper().input());
  if (upper == nullptr) {
    // Everything in lower is deleted; an empty result is the closest a tree can express.
    return std::vector<solver::ResultPtr>{std::make_shared<RefResult>(std::nullopt)};
  }
  KILN_ASSIGN_OR_RETURN(cache::ImmutableRef diff, worker_.cache->Diff(lower, *upper, "diff"));
  return std::vector<solver::ResultPtr>{std::make_shared<RefResult>(std::move(diff))};
}

}  // namespace kiln::ops
