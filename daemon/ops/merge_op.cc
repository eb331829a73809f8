#include "daemon/ops/merge_op.h"

#include "base/status.h"

namespace kiln::ops {

absl::StatusOr<std::vector<solver::ResultPtr>> MergeOp::Exec(
    const Context& ctx, const std::vector<solver::ResultPtr>& inputs) {
  KILN_RETURN_IF_ERROR(ctx.Check("merge"));
  std::vector<const cache::ImmutableRef*> refs;
  for (const auto& in : inputs) {
    if (const cache::ImmutableRef* r = AsRef(in).ref()) refs.push_back(r);  // scratch adds nothing
  }
  if (refs.empty())
    return std::vector<solver::ResultPtr>{std::make_shared<RefResult>(std::nullopt)};
  KILN_ASSIGN_OR_RETURN(cache::ImmutableRef merged, worker_.cache->Merge(refs, "merge"));
  return std::vector<solver::ResultPtr>{std::make_shared<RefResult>(std::move(merged))};
}

}  // namespace kiln::ops
