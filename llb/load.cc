#include "llb/load.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "base/digest.h"
#include "base/status.h"
#include "llb/internal/gopath.h"
#include "llb/internal/load_graph.h"

namespace kiln::llb {
namespace {

absl::Status Invalid(std::string_view digest, std::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat("op ", AV(digest), ": ", AV(message)));
}

// Strings that become paths or process arguments may not carry NUL bytes.
absl::Status CheckNoNul(std::string_view what, std::string_view value) {
  if (value.find('\0') != std::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat(AV(what), " contains a NUL byte"));
  }
  return absl::OkStatus();
}

// A path inside an op's root: no NUL, and no ".." that climbs above "/".
absl::Status CheckPath(std::string_view what, std::string_view path) {
  KILN_RETURN_IF_ERROR(CheckNoNul(what, path));
  if (internal::EscapesRoot(path)) {
    return absl::InvalidArgumentError(
        absl::StrCat(AV(what), " \"", AV(path), "\" escapes the root"));
  }
  return absl::OkStatus();
}

absl::Status CheckIndex(std::string_view what, int64_t index, int64_t min, int64_t limit) {
  if (index < min || index >= limit) {
    return absl::InvalidArgumentError(
        absl::StrCat(AV(what), " ", index, " is out of range [", min, ", ", limit, ")"));
  }
  return absl::OkStatus();
}

// Checks an exec op; returns its output count (bind mounts with an output, and cache mounts with
// an output and a base, as BuildKit's PrepareMounts counts them).
absl::StatusOr<int64_t> CheckExec(const pb::Op& op) {
  const pb::ExecOp& exec = op.exec();
  if (!exec.has_meta()) return absl::InvalidArgumentError("exec op has no meta");
  const pb::Meta& meta = exec.meta();
  if (meta.args().empty()) return absl::InvalidArgumentError("exec op has no args");
  for (const std::string& arg : meta.args()) KILN_RETURN_IF_ERROR(CheckNoNul("exec arg", arg));
  for (const std::string& env : meta.env()) KILN_RETURN_IF_ERROR(CheckNoNul("exec env", env));
  KILN_RETURN_IF_ERROR(CheckNoNul("exec user", meta.user()));
  KILN_RETURN_IF_ERROR(CheckNoNul("exec hostname", meta.hostname()));
  KILN_RETURN_IF_ERROR(CheckPath("exec cwd", meta.cwd()));
  bool has_root = false;
  int64_t outputs = 0;
  for (const pb::Mount& m : exec.mounts()) {
    const std::string what = absl::StrCat("mount ", m.dest());
    KILN_RETURN_IF_ERROR(CheckPath("mount target", m.dest()));
    KILN_RETURN_IF_ERROR(CheckPath(absl::StrCat(what, ": selector"), m.selector()));
    KILN_RETURN_IF_ERROR(
        CheckIndex(absl::StrCat(what, ": input"), m.input(), -1, op.inputs_size()));
    if (m.dest() == "/") {
      if (m.mounttype() != pb::BIND) {
        return absl::InvalidArgumentError("root mount must be a bind mount");
      }
      has_root = true;
    }
    if (m.output() != -1 &&
        (m.mounttype() == pb::BIND || (m.mounttype() == pb::CACHE && m.input() != -1))) {
      ++outputs;
    }
  }
  if (!has_root) return absl::InvalidArgumentError("exec op has no root mount");
  return outputs;
}

absl::Status CheckFileActionPaths(const pb::FileAction& a) {
  switch (a.action_case()) {
    case pb::FileAction::kCopy:
      KILN_RETURN_IF_ERROR(CheckPath("copy src", a.copy().src()));
      return CheckPath("copy dest", a.copy().dest());
    case pb::FileAction::kMkfile:
      return CheckPath("mkfile path", a.mkfile().path());
    case pb::FileAction::kMkdir:
      return CheckPath("mkdir path", a.mkdir().path());
    case pb::FileAction::kRm:
      return CheckPath("rm path", a.rm().path());
    case pb::FileAction::kSymlink:
      // The link target is stored verbatim and may point anywhere (it is resolved inside the
      // root when followed); only the link itself must stay inside.
      KILN_RETURN_IF_ERROR(CheckNoNul("symlink oldpath", a.symlink().oldpath()));
      return CheckPath("symlink newpath", a.symlink().newpath());
    case pb::FileAction::ACTION_NOT_SET:
      break;
  }
  return absl::InvalidArgumentError("has no action kind");
}

// Checks a file op; returns its output count. Like BuildKit's FileOpSolver: indexes at or above
// the input count name earlier actions' results, outputs are unique and dense from 0, and no
// action may (transitively) read its own result.
absl::StatusOr<int64_t> CheckFile(const pb::Op& op) {
  const auto& actions = op.file().actions();
  if (actions.empty()) return absl::InvalidArgumentError("file op has no actions");
  const int64_t num_inputs = op.inputs_size();
  const int64_t limit = num_inputs + actions.size();
  std::vector<bool> seen_output(actions.size(), false);
  int64_t outputs = 0;
  for (int i = 0; i < actions.size(); ++i) {
    const pb::FileAction& a = actions[i];
    const std::string what = absl::StrCat("file action ", i);
    KILN_RETURN_IF_ERROR(Annotate(CheckFileActionPaths(a), what));
    KILN_RETURN_IF_ERROR(CheckIndex(absl::StrCat(what, ": input"), a.input(), -1, limit));
    KILN_RETURN_IF_ERROR(
        CheckIndex(absl::StrCat(what, ": secondary input"), a.secondaryinput(), -1, limit));
    if (a.output() == -1) continue;
    if (a.output() < 0 || a.output() >= actions.size() || seen_output[a.output()]) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": output ", a.output(), " is invalid or duplicated"));
    }
    seen_output[a.output()] = true;
    ++outputs;
  }
  if (outputs == 0) return absl::InvalidArgumentError("file op has no outputs");
  for (int64_t i = 0; i < outputs; ++i) {
    if (!seen_output[i]) return absl::InvalidArgumentError(absl::StrCat("missing output ", i));
  }
  // Loops between actions: walk each action's chain of action-to-action reads.
  std::vector<int> state(actions.size(), 0);  // 0 new, 1 on stack, 2 done
  auto visit = [&](auto& self, int i) -> absl::Status {
    if (state[i] == 2) return absl::OkStatus();
    if (state[i] == 1) {
      return absl::InvalidArgumentError(absl::StrCat("file action ", i, " depends on itself"));
    }
    state[i] = 1;
    for (int64_t ref : {actions[i].input(), actions[i].secondaryinput()}) {
      if (ref >= num_inputs) KILN_RETURN_IF_ERROR(self(self, static_cast<int>(ref - num_inputs)));
    }
    state[i] = 2;
    return absl::OkStatus();
  };
  for (int i = 0; i < actions.size(); ++i) KILN_RETURN_IF_ERROR(visit(visit, i));
  return outputs;
}

// Structural checks per op kind; returns the op's number of outputs.
absl::StatusOr<int64_t> CheckOp(const pb::Op& op) {
  switch (op.op_case()) {
    case pb::Op::kSource:
      if (op.source().identifier().empty()) {
        return absl::InvalidArgumentError("source op has no identifier");
      }
      return 1;
    case pb::Op::kExec:
      return CheckExec(op);
    case pb::Op::kFile:
      return CheckFile(op);
    case pb::Op::kMerge:
      if (op.merge().inputs().empty()) return absl::InvalidArgumentError("merge op has no inputs");
      for (const pb::MergeInput& in : op.merge().inputs()) {
        KILN_RETURN_IF_ERROR(CheckIndex("merge input", in.input(), 0, op.inputs_size()));
      }
      return 1;
    case pb::Op::kDiff:
      if (!op.diff().has_lower() || !op.diff().has_upper()) {
        return absl::InvalidArgumentError("diff op needs both lower and upper");
      }
      KILN_RETURN_IF_ERROR(
          CheckIndex("diff lower", op.diff().lower().input(), -1, op.inputs_size()));
      KILN_RETURN_IF_ERROR(
          CheckIndex("diff upper", op.diff().upper().input(), -1, op.inputs_size()));
      return 1;
    case pb::Op::kBuild:
      return absl::InvalidArgumentError("build ops are not supported");
    case pb::Op::OP_NOT_SET:
      break;
  }
  return absl::InvalidArgumentError(
      "op has no known kind (not exec, source, file, merge or diff); only the last op, the "
      "terminal, may have none");
}

}  // namespace

const LoadedOp* Graph::Find(std::string_view digest) const {
  auto it = index_.find(std::string(digest));
  return it == index_.end() ? nullptr : &ops_[it->second];
}

namespace internal {

absl::StatusOr<Graph> BuildGraph(
    std::vector<RawOp> raw, const google::protobuf::Map<std::string, pb::OpMetadata>& metadata) {
  if (raw.empty()) return absl::InvalidArgumentError("definition has no ops and no terminal");

  // The terminal: the last entry, an op of no kind whose one input is the build result.
  const RawOp terminal_raw = raw.back();
  pb::Op terminal;
  if (!terminal.ParseFromString(terminal_raw.bytes)) {
    return Invalid(terminal_raw.digest, "cannot parse op bytes");
  }
  if (terminal.op_case() != pb::Op::OP_NOT_SET || terminal.inputs_size() != 1) {
    return Invalid(terminal_raw.digest,
                   "definition has no terminal: the last op must have no op kind and exactly one "
                   "input");
  }

  // Parse the rest, keeping the first of identical entries.
  std::vector<LoadedOp> ops;
  absl::flat_hash_map<std::string, size_t> index;
  for (size_t i = 0; i < raw.size(); ++i) {
    RawOp& r = raw[i];
    if (auto it = index.find(r.digest); it != index.end()) {
      if (ops[it->second].bytes != r.bytes) {
        return Invalid(r.digest, absl::StrCat("entries ", it->second, " and ", i,
                                              " have this digest but different bytes"));
      }
      continue;
    }
    if (r.digest == terminal_raw.digest) {
      if (r.bytes != terminal_raw.bytes) {
        return Invalid(r.digest,
                       absl::StrCat("entry ", i, " has the terminal's digest but different bytes"));
      }
      continue;
    }
    LoadedOp op;
    if (!op.op.ParseFromString(r.bytes)) {
      return Invalid(r.digest, absl::StrCat("cannot parse op bytes (definition entry ", i, ")"));
    }
    absl::StatusOr<int64_t> outputs = CheckOp(op.op);
    if (!outputs.ok()) return Invalid(r.digest, SV(outputs.status().message()));
    op.num_outputs = *outputs;
    op.digest = std::move(r.digest);
    op.bytes = std::move(r.bytes);
    index.emplace(op.digest, ops.size());
    ops.push_back(std::move(op));
  }

  auto check_input = [&](std::string_view user, const pb::Input& in) -> absl::Status {
    auto it = index.find(in.digest());
    if (it == index.end()) {
      return Invalid(user, absl::StrCat("input ", in.digest().empty() ? "(empty)" : in.digest(),
                                        " is not in the definition"));
    }
    if (in.index() < 0 || in.index() >= ops[it->second].num_outputs) {
      return Invalid(user,
                     absl::StrCat("input ", in.digest(), " has output index ", in.index(),
                                  " but that op has ", ops[it->second].num_outputs, " output(s)"));
    }
    return absl::OkStatus();
  };
  for (const LoadedOp& op : ops) {
    for (const pb::Input& in : op.op.inputs()) KILN_RETURN_IF_ERROR(check_input(op.digest, in));
  }
  KILN_RETURN_IF_ERROR(check_input(terminal_raw.digest, terminal.inputs(0)));

  for (const auto& [digest, md] : metadata) {
    if (digest != terminal_raw.digest && !index.contains(digest)) {
      return absl::InvalidArgumentError(
          absl::StrCat("metadata for ", digest, " matches no op in the definition"));
    }
  }

  // Topological order by iterative depth-first search; a back edge is a cycle.
  std::vector<int> state(ops.size(), 0);  // 0 new, 1 on stack, 2 done
  std::vector<size_t> order;
  order.reserve(ops.size());
  for (size_t start = 0; start < ops.size(); ++start) {
    if (state[start] != 0) continue;
    std::vector<std::pair<size_t, int>> stack{{start, 0}};
    state[start] = 1;
    while (!stack.empty()) {
      auto& [node, next] = stack.back();
      const pb::Op& op = ops[node].op;
      if (next < op.inputs_size()) {
        const size_t in = index.at(op.inputs(next++).digest());
        if (state[in] == 1) {
          return Invalid(ops[node].digest,
                         absl::StrCat("cycle: its input ", ops[in].digest, " depends on it"));
        }
        if (state[in] == 0) {
          state[in] = 1;
          stack.emplace_back(in, 0);
        }
        continue;
      }
      state[node] = 2;
      order.push_back(node);
      stack.pop_back();
    }
  }

  Graph graph;
  graph.ops_.reserve(ops.size());
  for (size_t i : order) {
    LoadedOp& op = ops[i];
    if (auto it = metadata.find(op.digest); it != metadata.end()) op.metadata = it->second;
    graph.index_.emplace(op.digest, graph.ops_.size());
    graph.ops_.push_back(std::move(op));
  }
  graph.terminal_ = terminal.inputs(0);
  graph.terminal_op_digest_ = terminal_raw.digest;
  if (auto it = metadata.find(terminal_raw.digest); it != metadata.end()) {
    graph.terminal_metadata_ = it->second;
  }
  return graph;
}

}  // namespace internal

absl::StatusOr<Graph> LoadDefinition(const pb::Definition& definition, const LoadOptions& options) {
  const size_t size = definition.ByteSizeLong();
  if (size > options.max_total_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "definition is ", size, " bytes, over the limit of ", options.max_total_bytes));
  }
  if (static_cast<size_t>(definition.def_size()) > options.max_ops) {
    return absl::InvalidArgumentError(absl::StrCat("definition has ", definition.def_size(),
                                                   " ops, over the limit of ", options.max_ops));
  }
  std::vector<internal::RawOp> raw;
  raw.reserve(definition.def_size());
  for (const std::string& bytes : definition.def()) raw.push_back({Sha256Digest(bytes), bytes});
  return internal::BuildGraph(std::move(raw), definition.metadata());
}

}  // namespace kiln::llb
