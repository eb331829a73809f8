#pragma once
// DiffOp: what changes its lower input into its upper input, as a layer of its own (so that
// merging it onto another tree applies just those changes).

#include "daemon/ops/worker.h"
#include "daemon/solver/types.h"
#include "proto/pb/ops.pb.h"

namespace kiln::ops {

class DiffOp final : public solver::Op {
 public:
  DiffOp(Worker worker, pb::DiffOp op, std::string digest)
      : worker_(worker), op_(std::move(op)), digest_(std::move(digest)) {}
  absl::StatusOr<solver::CacheMap> GetCacheMap(const Context&) override {
    return solver::CacheMap{.digest = digest_};
  }
  absl::StatusOr<std::vector<solver::ResultPtr>> Exec(
      const Context& ctx, const std::vector<solver::ResultPtr>& inputs) override;

 private:
  Worker worker_;
  pb::DiffOp op_;
  std::string digest_;
};

}  // namespace kiln::ops
