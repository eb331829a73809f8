// Merge and Diff: the two ops that combine whole filesystems.

#include "base/status.h"
#include "llb/internal/vertex.h"
#include "llb/state.h"

namespace kiln::llb {
namespace {

// A merge op: overlays its inputs in order. Immutable, so thread-safe to share.
class MergeVertex : public internal::Vertex {
 public:
  MergeVertex(std::vector<internal::Output> inputs, OpOptions options)
      : inputs_(std::move(inputs)), options_(std::move(options)) {}

  std::vector<internal::Output> Inputs() const override { return inputs_; }

  absl::Status Marshal(internal::MarshalContext& ctx, pb::Op* op,
                       pb::OpMetadata* metadata) const override {
    ctx.ApplyConstraints(options_, {"mergeop"}, op, metadata);
    op->clear_platform();  // merge is not platform specific
    pb::MergeOp* merge = op->mutable_merge();
    // No input dedupe: every merged layer keeps its own input slot, as in BuildKit.
    for (const internal::Output& input : inputs_) {
      merge->add_inputs()->set_input(op->inputs_size());
      KILN_ASSIGN_OR_RETURN(*op->add_inputs(), ctx.ToInput(input));
    }
    return absl::OkStatus();
  }

 private:
  const std::vector<internal::Output> inputs_;
  const OpOptions options_;
};

// A diff op: the changes from lower to upper (upper may be scratch). Immutable, so thread-safe.
class DiffVertex : public internal::Vertex {
 public:
  DiffVertex(internal::Output lower, std::optional<internal::Output> upper, OpOptions options)
      : lower_(std::move(lower)), upper_(std::move(upper)), options_(std::move(options)) {}

  std::vector<internal::Output> Inputs() const override {
    std::vector<internal::Output> inputs{lower_};
    if (upper_) inputs.push_back(*upper_);
    return inputs;
  }

  absl::Status Marshal(internal::MarshalContext& ctx, pb::Op* op,
                       pb::OpMetadata* metadata) const override {
    ctx.ApplyConstraints(options_, {"diffop"}, op, metadata);
    op->clear_platform();  // diff is not platform specific
    pb::DiffOp* diff = op->mutable_diff();
    diff->mutable_lower()->set_input(op->inputs_size());
    KILN_ASSIGN_OR_RETURN(*op->add_inputs(), ctx.ToInput(lower_));
    if (upper_) {
      diff->mutable_upper()->set_input(op->inputs_size());
      KILN_ASSIGN_OR_RETURN(*op->add_inputs(), ctx.ToInput(*upper_));
    } else {
      diff->mutable_upper()->set_input(-1);
    }
    return absl::OkStatus();
  }

 private:
  const internal::Output lower_;
  const std::optional<internal::Output> upper_;
  const OpOptions options_;
};

}  // namespace

State Merge(const std::vector<State>& inputs, const OpOptions& options) {
  std::vector<const State*> layers;
  for (const State& input : inputs) {
    if (!input.IsScratch()) layers.push_back(&input);
  }
  if (layers.empty()) return Scratch();
  if (layers.size() == 1) return *layers.front();
  std::vector<internal::Output> outputs;
  for (const State* layer : layers) outputs.push_back(*layer->output());
  auto vertex = std::make_shared<MergeVertex>(std::move(outputs), options);
  return layers.front()->WithOutput(internal::Output{std::move(vertex), 0, std::nullopt});
}

State Diff(const State& lower, const State& upper, const OpOptions& options) {
  if (lower.IsScratch()) return upper.IsScratch() ? Scratch() : upper;
  auto vertex = std::make_shared<DiffVertex>(*lower.output(), upper.output(), options);
  return lower.WithOutput(internal::Output{std::move(vertex), 0, std::nullopt});
}

}  // namespace kiln::llb
