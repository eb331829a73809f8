#pragma once
// ExecOp: runs a command in a container (RUN), as BuildKit's exec op does. The root mount ("/")
// is a writable layer over its input; other mounts are binds of inputs (read-only, or writable
// layers when they have an output), persistent cache directories, tmpfs, secrets from the
// session (files on a private tmpfs, or environment variables) and SSH agent sockets forwarded
// to the client. Each mount with an output index yields one result.
//
// Cache key: the op's bytes (secrets appear only by id) plus, per input, its cache key, or the
// content checksum of its selected paths when the input is only mounted read-only.

#include <string>

#include "daemon/ops/worker.h"
#include "daemon/solver/types.h"
#include "proto/pb/ops.pb.h"

namespace kiln::ops {

class ExecOp final : public solver::Op {
 public:
  ExecOp(Worker worker, pb::ExecOp op, std::string digest, size_t num_inputs)
      : worker_(std::move(worker)),
        op_(std::move(op)),
        digest_(std::move(digest)),
        num_inputs_(num_inputs) {}
  absl::StatusOr<solver::CacheMap> GetCacheMap(const Context& ctx) override;
  absl::StatusOr<std::vector<solver::ResultPtr>> Exec(
      const Context& ctx, const std::vector<solver::ResultPtr>& inputs) override;

  // Number of outputs: one per mount with an output index.
  static size_t NumOutputs(const pb::ExecOp& op);
  // "/bin/sh -c echo hi": the name progress shows for a RUN.
  static std::string DisplayName(const pb::ExecOp& op);

  // Output kept per RUN in the progress stream; the rest is dropped with a notice.
  static constexpr size_t kMaxLogBytes = 2 << 20;

 private:
  Worker worker_;
  pb::ExecOp op_;
  std::string digest_;
  size_t num_inputs_;
};

}  // namespace kiln::ops
