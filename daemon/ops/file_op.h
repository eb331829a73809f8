#pragma once
// FileOp: a sequence of file actions (mkdir, mkfile, rm, symlink, copy) over the op's inputs
// and the results of earlier actions, as BuildKit's fileop solver runs them. An action's
// input/secondaryInput index below the number of op inputs names an op input; above, an
// earlier action's result (index - number of inputs); -1 is scratch. Actions with an output
// index produce the op's outputs.

#include "daemon/ops/worker.h"
#include "daemon/solver/types.h"
#include "proto/pb/ops.pb.h"

namespace kiln::ops {

class FileOp final : public solver::Op {
 public:
  FileOp(Worker worker, pb::FileOp op, std::string digest, size_t num_inputs)
      : worker_(worker), op_(std::move(op)), digest_(std::move(digest)), num_inputs_(num_inputs) {}
  absl::StatusOr<solver::CacheMap> GetCacheMap(const Context& ctx) override;
  absl::StatusOr<std::vector<solver::ResultPtr>> Exec(
      const Context& ctx, const std::vector<solver::ResultPtr>& inputs) override;

  // Number of outputs: one per action with an output index.
  static size_t NumOutputs(const pb::FileOp& op);

 private:
  Worker worker_;
  pb::FileOp op_;
  std::string digest_;
  size_t num_inputs_;
};

}  // namespace kiln::ops
