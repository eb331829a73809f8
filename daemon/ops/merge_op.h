#pragma once
// MergeOp: its inputs' trees stacked in order, later inputs on top, without copying data.

#include "daemon/ops/worker.h"
#include "daemon/solver/types.h"

namespace kiln::ops {

class MergeOp final : public solver::Op {
 public:
  MergeOp(Worker worker, std::string digest) : worker_(worker), digest_(std::move(digest)) {}
  absl::StatusOr<solver::CacheMap> GetCacheMap(const Context&) override {
    return solver::CacheMap{.digest = digest_};
  }
  absl::StatusOr<std::vector<solver::ResultPtr>> Exec(
      const Context& ctx, const std::vector<solver::ResultPtr>& inputs) override;

 private:
  Worker worker_;
  std::string digest_;
};

}  // namespace kiln::ops
