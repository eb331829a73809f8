#include "daemon/ops/file_op.h"

#include <map>
#include <set>
#include <variant>

#include "absl/strings/str_cat.h"
#include "base/digest.h"
#include "base/status.h"
#include "daemon/ops/file_actions.h"

namespace kiln::ops {
namespace {

std::string ActionName(const pb::FileAction& a) {
  switch (a.action_case()) {
    case pb::FileAction::kCopy:
      return absl::StrCat("copy ", a.copy().src(), " ", a.copy().dest());
    case pb::FileAction::kMkfile:
      return absl::StrCat("mkfile ", a.mkfile().path());
    case pb::FileAction::kMkdir:
      return absl::StrCat("mkdir ", a.mkdir().path());
    case pb::FileAction::kRm:
      return absl::StrCat("rm ", a.rm().path());
    case pb::FileAction::kSymlink:
      return absl::StrCat("symlink ", a.symlink().oldpath(), " -> ", a.symlink().newpath());
    default:
      return "unknown action";
  }
}

}  // namespace

size_t FileOp::NumOutputs(const pb::FileOp& op) {
  int64_t max = -1;
  for (const auto& a : op.actions()) max = std::max(max, a.output());
  return static_cast<size_t>(max + 1);
}

absl::StatusOr<solver::CacheMap> FileOp::GetCacheMap(const Context&) {
  // Inputs read only as copy sources contribute the content at the copied paths; inputs that
  // actions build upon contribute their cache keys.
  std::map<size_t, std::vector<std::string>> copy_selectors;
  std::set<size_t> base_inputs;
  for (const auto& a : op_.actions()) {
    if (a.input() >= 0 && static_cast<size_t>(a.input()) < num_inputs_) {
      base_inputs.insert(static_cast<size_t>(a.input()));
    }
    if (a.has_copy() && a.secondaryinput() >= 0 &&
        static_cast<size_t>(a.secondaryinput()) < num_inputs_) {
      copy_selectors[static_cast<size_t>(a.secondaryinput())].push_back(a.copy().src());
    }
  }
  solver::CacheMap cm;
  // The op's own bytes, which hold every action and option, identify it.
  cm.digest = digest_;
  cm.deps.resize(num_inputs_);
  for (auto& [i, selectors] : copy_selectors) {
    if (base_inputs.contains(i)) continue;
    cache::Manager* cache = worker_.cache;
    cm.deps[i].content_digest = [cache, selectors](const Context& ctx, const solver::ResultPtr& r) {
      return ContentChecksum(ctx, *cache, r, selectors);
    };
  }
  return cm;
}

absl::StatusOr<std::vector<solver::ResultPtr>> FileOp::Exec(
    const Context& ctx, const std::vector<solver::ResultPtr>& inputs) {
  cache::Manager& cache = *worker_.cache;
  const int n = op_.actions_size();
  // Each action's result: still mutable (mounted, writable) or committed.
  std::vector<std::optional<cache::MutableRef>> mutables(n);
  std::vector<std::optional<cache::ImmutableRef>> committed(n);
  std::vector<bool> is_scratch(n, false);
  std::vector<int> consumers(n, 0);
  for (const auto& a : op_.actions()) {
    int64_t in = a.input() - static_cast<int64_t>(num_inputs_);
    if (a.input() >= 0 && in >= 0 && in < n) consumers[in]++;
  }

  // Commits action `j`'s result (once) so that it can be read or built upon.
  auto commit = [&](int j) -> absl::Status {
    if (mutables[j]) {
      KILN_ASSIGN_OR_RETURN(committed[j], mutables[j]->Commit(ActionName(op_.actions(j))));
      mutables[j].reset();
    }
    return absl::OkStatus();
  };
  std::vector<snapshot::MountPtr> views;  // read-only views of copy sources, kept until done

  for (int i = 0; i < n; ++i) {
    KILN_RETURN_IF_ERROR(ctx.Check("file op"));
    const pb::FileAction& a = op_.actions(i);
    // The tree this action changes.
    std::optional<cache::MutableRef> target;
    int64_t in = a.input();
    if (in < 0) {
      KILN_ASSIGN_OR_RETURN(target, cache.New(nullptr));
    } else if (static_cast<size_t>(in) < num_inputs_) {
      KILN_ASSIGN_OR_RETURN(target, cache.New(AsRef(inputs[in]).ref()));
    } else {
      int j = static_cast<int>(in - static_cast<int64_t>(num_inputs_));
      // Continue in place when this is the only user of a result that is not an output.
      if (mutables[j] && consumers[j] == 1 && op_.actions(j).output() < 0) {
        target = std::move(mutables[j]);
        mutables[j].reset();
      } else {
        KILN_RETURN_IF_ERROR(commit(j));
        KILN_ASSIGN_OR_RETURN(target, cache.New(committed[j] ? &*committed[j] : nullptr));
      }
    }
    const std::string root = target->root().string();
    absl::Status st;
    switch (a.action_case()) {
      case pb::FileAction::kMkdir:
        st = Mkdir(root, a.mkdir());
        break;
      case pb::FileAction::kMkfile:
        st = Mkfile(root, a.mkfile());
        break;
      case pb::FileAction::kRm:
        st = Rm(root, a.rm());
        break;
      case pb::FileAction::kSymlink:
        st = Symlink(root, a.symlink());
        break;
      case pb::FileAction::kCopy: {
        std::string src_root;
        std::optional<cache::MutableRef> empty;
        if (a.secondaryinput() < 0) {
          KILN_ASSIGN_OR_RETURN(empty, cache.New(nullptr));  // scratch source: an empty tree
          src_root = empty->root().string();
        } else {
          int64_t si = a.secondaryinput();
          const cache::ImmutableRef* ref = nullptr;
          if (static_cast<size_t>(si) < num_inputs_) {
            ref = AsRef(inputs[si]).ref();
          } else {
            int j = static_cast<int>(si - static_cast<int64_t>(num_inputs_));
            if (mutables[j]) {
              src_root = mutables[j]->root().string();
            } else if (committed[j]) {
              ref = &*committed[j];
            }
          }
          if (src_root.empty()) {
            if (ref == nullptr) {
              KILN_ASSIGN_OR_RETURN(empty, cache.New(nullptr));
              src_root = empty->root().string();
            } else {
              KILN_ASSIGN_OR_RETURN(snapshot::MountPtr view, ref->Mount());
              views.push_back(std::move(view));
              src_root = views.back()->root().string();
            }
          }
        }
        st = Copy(ctx, src_root, root, a.copy());
        break;
      }
      default:
        st = absl::InvalidArgumentError(absl::StrCat("file action ", i, " has no action set"));
    }
    if (!st.ok()) return st;
    mutables[i] = std::move(target);
  }
  views.clear();

  std::vector<solver::ResultPtr> outputs(NumOutputs(op_));
  for (int i = 0; i < n; ++i) {
    int64_t out = op_.actions(i).output();
    if (out < 0) continue;
    KILN_RETURN_IF_ERROR(commit(i));
    outputs[out] = std::make_shared<RefResult>(committed[i]->Clone());
  }
  for (auto& o : outputs) {
    if (!o) o = std::make_shared<RefResult>(std::nullopt);
  }
  return outputs;
}

}  // namespace kiln::ops
