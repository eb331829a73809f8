#include "llb/fileop.h"

#include <variant>

#include "absl/container/flat_hash_map.h"
#include "base/status.h"
#include "llb/internal/gopath.h"
#include "llb/internal/vertex.h"

namespace kiln::llb {
namespace internal {

struct MkdirAction {
  std::string path;
  uint32_t mode;
  MkdirOptions options;
};
struct MkfileAction {
  std::string path;
  uint32_t mode;
  std::string data;
  MkfileOptions options;
};
struct RmAction {
  std::string path;
  RmOptions options;
};
struct SymlinkAction {
  std::string oldpath;
  std::string newpath;
  SymlinkOptions options;
};
struct CopyAction {
  std::optional<State> from_state;                   // copy from a state...
  std::shared_ptr<const FileActionNode> from_chain;  // ...or from a bound action chain
  std::string src;
  std::string dest;
  CopyOptions options;
};

// One action; `prev` is the action it applies on top of. Immutable once built.
struct FileActionNode {
  std::shared_ptr<const FileActionNode> prev;
  std::optional<State> state;  // the state the chain is bound to (BuildKit's FileAction.state)
  std::variant<MkdirAction, MkfileAction, RmAction, SymlinkAction, CopyAction> action;
};

}  // namespace internal

namespace {

using internal::FileActionNode;
using NodePtr = std::shared_ptr<const FileActionNode>;

// A copy of the chain ending at `node` with every action bound to `state`.
NodePtr Bind(const NodePtr& node, const State& state) {
  if (node == nullptr) return nullptr;
  auto bound = std::make_shared<FileActionNode>(*node);
  bound->prev = Bind(node->prev, state);
  bound->state = state;
  return bound;
}

// BuildKit's normalizePath: absolute paths are cleaned, relative ones joined to the working dir;
// with `keep_slash` a trailing "/" or "/." on the original survives.
std::string NormalizePath(const std::string& parent, const std::string& path, bool keep_slash) {
  std::string p = internal::CleanPath(path);
  if (!internal::IsAbsPath(p)) p = internal::JoinPath("/", parent, p);
  if (keep_slash) {
    if (path.ends_with("/") && !p.ends_with("/")) {
      p += "/";
    } else if (path.ends_with("/.")) {
      if (p != "/") p += "/";
      p += ".";
    }
  }
  return p;
}

void SetUser(const UserOpt& user, int64_t base, pb::UserOpt* out) {
  if (!user.name.empty()) {
    pb::NamedUserOpt* named = out->mutable_byname();
    named->set_name(user.name);
    named->set_input(base);
  } else {
    out->set_byid(user.id);
  }
}

pb::ChownOpt MarshalChown(const ChownOpt& chown, int64_t base) {
  pb::ChownOpt out;
  if (chown.user) SetUser(*chown.user, base, out.mutable_user());
  if (chown.group) SetUser(*chown.group, base, out.mutable_group());
  return out;
}

// A file op: one bound action chain. Immutable, so thread-safe to share; numbering happens per
// Marshal() call.
class FileVertex : public internal::Vertex {
 public:
  FileVertex(NodePtr last, OpOptions options)
      : last_(std::move(last)), options_(std::move(options)) {}

  std::vector<internal::Output> Inputs() const override {
    std::vector<internal::Output> outputs;
    CollectOutputs(last_.get(), &outputs);
    return outputs;
  }

  absl::Status Marshal(internal::MarshalContext& ctx, pb::Op* op,
                       pb::OpMetadata* metadata) const override {
    // BuildKit means to add per-action caps (file.symlink.create, ...) but its loop runs over an
    // empty list, so only "file.base" is ever recorded; we record the same.
    ctx.ApplyConstraints(options_, {"file.base"}, op, metadata);
    op->clear_platform();  // file ops are not platform specific

    Numbering numbering{ctx, op};
    KILN_RETURN_IF_ERROR(numbering.Add(last_.get()).status());

    const int64_t num_inputs = op->inputs_size();
    pb::FileOp* file = op->mutable_file();
    for (size_t i = 0; i < numbering.actions.size(); ++i) {
      const ActionIndexes& st = numbering.actions[i];
      pb::FileAction* action = file->add_actions();
      action->set_input(st.input_relative ? num_inputs + *st.input_relative : st.input);
      action->set_secondaryinput(st.input2_relative ? num_inputs + *st.input2_relative : st.input2);
      action->set_output(i + 1 == numbering.actions.size() ? 0 : -1);
      MarshalAction(*st.node, st.base, action);
    }
    return absl::OkStatus();
  }

 private:
  // Where one action reads from: real inputs (indexes into op.inputs) or earlier actions
  // (relative indexes, offset by the number of inputs once that is known).
  struct ActionIndexes {
    const FileActionNode* node = nullptr;
    int64_t base = -1;  // input of the state the action is bound to; for chown by name
    int64_t input = -1;
    std::optional<int64_t> input_relative;
    int64_t input2 = -1;
    std::optional<int64_t> input2_relative;
  };

  // BuildKit's marshalState: numbers actions depth-first, previous action (and copy source
  // chains) before the action itself; inputs are deduplicated.
  struct Numbering {
    internal::MarshalContext& ctx;
    pb::Op* op;
    std::vector<ActionIndexes> actions;
    absl::flat_hash_map<const FileActionNode*, int64_t> visited;

    absl::StatusOr<int64_t> AddInput(const internal::Output& output) {
      KILN_ASSIGN_OR_RETURN(pb::Input input, ctx.ToInput(output));
      for (int i = 0; i < op->inputs_size(); ++i) {
        if (op->inputs(i).digest() == input.digest() && op->inputs(i).index() == input.index()) {
          return i;
        }
      }
      *op->add_inputs() = std::move(input);
      return op->inputs_size() - 1;
    }

    absl::StatusOr<int64_t> Add(const FileActionNode* node) {
      if (auto it = visited.find(node); it != visited.end()) return it->second;
      ActionIndexes st;
      st.node = node;
      std::optional<int64_t> prev;
      if (node->prev != nullptr) {
        KILN_ASSIGN_OR_RETURN(prev, Add(node->prev.get()));
      }
      if (const auto& out = node->state->output(); out.has_value()) {
        KILN_ASSIGN_OR_RETURN(st.base, AddInput(*out));
      }
      if (prev.has_value()) {
        st.input_relative = prev;
      } else {
        st.input = st.base;
      }
      if (const auto* copy = std::get_if<internal::CopyAction>(&node->action)) {
        if (copy->from_state.has_value()) {
          if (const auto& out = copy->from_state->output(); out.has_value()) {
            KILN_ASSIGN_OR_RETURN(st.input2, AddInput(*out));
          }
        } else {
          KILN_ASSIGN_OR_RETURN(st.input2_relative, Add(copy->from_chain.get()));
        }
      }
      const int64_t target = static_cast<int64_t>(actions.size());
      visited.emplace(node, target);
      actions.push_back(st);
      return target;
    }
  };

  // BuildKit's FileAction.allOutputs: walks from the last action back, copy sources included.
  static void CollectOutputs(const FileActionNode* node, std::vector<internal::Output>* outputs) {
    auto add = [outputs](const std::optional<internal::Output>& out) {
      if (!out.has_value()) return;
      for (const internal::Output& seen : *outputs) {
        if (seen.SameEdge(*out)) return;
      }
      outputs->push_back(*out);
    };
    for (; node != nullptr; node = node->prev.get()) {
      add(node->state->output());
      if (const auto* copy = std::get_if<internal::CopyAction>(&node->action)) {
        if (copy->from_state.has_value()) {
          add(copy->from_state->output());
        } else {
          CollectOutputs(copy->from_chain.get(), outputs);
        }
      }
    }
  }

  static void MarshalAction(const FileActionNode& node, int64_t base, pb::FileAction* out) {
    const std::string& parent = node.state->GetDir();
    std::visit(
        [&](const auto& a) {
          using T = std::decay_t<decltype(a)>;
          if constexpr (std::is_same_v<T, internal::MkdirAction>) {
            pb::FileActionMkDir* mkdir = out->mutable_mkdir();
            mkdir->set_path(NormalizePath(parent, a.path, false));
            mkdir->set_mode(static_cast<int32_t>(a.mode & 0777));
            mkdir->set_makeparents(a.options.make_parents);
            if (a.options.chown) *mkdir->mutable_owner() = MarshalChown(*a.options.chown, base);
            mkdir->set_timestamp(a.options.timestamp_ns.value_or(-1));
          } else if constexpr (std::is_same_v<T, internal::MkfileAction>) {
            pb::FileActionMkFile* mkfile = out->mutable_mkfile();
            mkfile->set_path(NormalizePath(parent, a.path, false));
            mkfile->set_mode(static_cast<int32_t>(a.mode & 0777));
            mkfile->set_data(a.data);
            if (a.options.chown) *mkfile->mutable_owner() = MarshalChown(*a.options.chown, base);
            mkfile->set_timestamp(a.options.timestamp_ns.value_or(-1));
          } else if constexpr (std::is_same_v<T, internal::RmAction>) {
            pb::FileActionRm* rm = out->mutable_rm();
            rm->set_path(NormalizePath(parent, a.path, false));
            rm->set_allownotfound(a.options.allow_not_found);
            rm->set_allowwildcard(a.options.allow_wildcard);
          } else if constexpr (std::is_same_v<T, internal::SymlinkAction>) {
            pb::FileActionSymlink* symlink = out->mutable_symlink();
            symlink->set_oldpath(a.oldpath);
            symlink->set_newpath(a.newpath);
            if (a.options.chown) *symlink->mutable_owner() = MarshalChown(*a.options.chown, base);
            symlink->set_timestamp(a.options.timestamp_ns.value_or(-1));
          } else {
            MarshalCopy(a, parent, base, out->mutable_copy());
          }
        },
        node.action);
  }

  static void MarshalCopy(const internal::CopyAction& a, const std::string& parent, int64_t base,
                          pb::FileActionCopy* copy) {
    // Copy sources resolve against the working dir of the state copied from.
    std::string src = internal::CleanPath(a.src);
    std::string dir = "/";
    if (!internal::IsAbsPath(src)) {
      dir = a.from_state ? a.from_state->GetDir() : a.from_chain->state->GetDir();
    }
    copy->set_src(internal::JoinPath(dir, src));
    copy->set_dest(NormalizePath(parent, a.dest, true));
    const CopyOptions& o = a.options;
    if (o.chown) *copy->mutable_owner() = MarshalChown(*o.chown, base);
    for (const std::string& p : o.include_patterns) copy->add_include_patterns(p);
    for (const std::string& p : o.exclude_patterns) copy->add_exclude_patterns(p);
    for (const std::string& p : o.required_paths) copy->add_required_paths(p);
    copy->set_allowwildcard(o.allow_wildcard);
    copy->set_allowemptywildcard(o.allow_empty_wildcard);
    copy->set_followsymlink(o.follow_symlinks);
    copy->set_dircopycontents(o.copy_dir_contents_only);
    copy->set_attemptunpackdockercompatibility(o.attempt_unpack);
    copy->set_createdestpath(o.create_dest_path);
    copy->set_timestamp(o.timestamp_ns.value_or(-1));
    copy->set_alwaysreplaceexistingdestpaths(o.always_replace_existing_dest_paths);
    if (!o.mode_str.empty()) {
      copy->set_modestr(o.mode_str);
    } else {
      copy->set_mode(o.mode.value_or(-1));
    }
  }

  const NodePtr last_;
  const OpOptions options_;
};

std::optional<int64_t> ParseId(std::string_view s) {
  if (s == "root") return 0;
  size_t i = (!s.empty() && (s[0] == '+' || s[0] == '-')) ? 1 : 0;
  if (i == s.size() || s.size() - i > 10) return std::nullopt;
  int64_t value = 0;
  for (; i < s.size(); ++i) {
    if (s[i] < '0' || s[i] > '9') return std::nullopt;
    value = value * 10 + (s[i] - '0');
  }
  if (s[0] == '-') value = -value;
  if (value < INT32_MIN || value > INT32_MAX) return std::nullopt;
  return value;
}

UserOpt ParseUser(std::string_view s) {
  if (std::optional<int64_t> id = ParseId(s)) return UserOpt{"", static_cast<uint32_t>(*id)};
  return UserOpt{std::string(s), 0};
}

}  // namespace

ChownOpt ParseChown(std::string_view user_group) {
  ChownOpt chown;
  const size_t colon = user_group.find(':');
  chown.user = ParseUser(user_group.substr(0, colon));
  if (colon != std::string_view::npos) chown.group = ParseUser(user_group.substr(colon + 1));
  return chown;
}

CopyInput::CopyInput(State state) : state_(std::move(state)) {}

FileAction FileAction::Mkdir(std::string_view path, uint32_t mode,
                             const MkdirOptions& options) const {
  return FileAction(std::make_shared<FileActionNode>(FileActionNode{
      last_, std::nullopt, internal::MkdirAction{std::string(path), mode, options}}));
}

FileAction FileAction::Mkfile(std::string_view path, uint32_t mode, std::string data,
                              const MkfileOptions& options) const {
  return FileAction(std::make_shared<FileActionNode>(
      FileActionNode{last_, std::nullopt,
                     internal::MkfileAction{std::string(path), mode, std::move(data), options}}));
}

FileAction FileAction::Rm(std::string_view path, const RmOptions& options) const {
  return FileAction(std::make_shared<FileActionNode>(
      FileActionNode{last_, std::nullopt, internal::RmAction{std::string(path), options}}));
}

FileAction FileAction::Symlink(std::string_view oldpath, std::string_view newpath,
                               const SymlinkOptions& options) const {
  return FileAction(std::make_shared<FileActionNode>(FileActionNode{
      last_, std::nullopt,
      internal::SymlinkAction{std::string(oldpath), std::string(newpath), options}}));
}

FileAction FileAction::Copy(const CopyInput& from, std::string_view src, std::string_view dest,
                            const CopyOptions& options) const {
  return FileAction(std::make_shared<FileActionNode>(
      FileActionNode{last_, std::nullopt,
                     internal::CopyAction{from.state_, from.chain_, std::string(src),
                                          std::string(dest), options}}));
}

CopyInput FileAction::WithState(const State& state) const { return CopyInput(Bind(last_, state)); }

FileAction Mkdir(std::string_view path, uint32_t mode, const MkdirOptions& options) {
  return FileAction(nullptr).Mkdir(path, mode, options);
}

FileAction Mkfile(std::string_view path, uint32_t mode, std::string data,
                  const MkfileOptions& options) {
  return FileAction(nullptr).Mkfile(path, mode, std::move(data), options);
}

FileAction Rm(std::string_view path, const RmOptions& options) {
  return FileAction(nullptr).Rm(path, options);
}

FileAction Symlink(std::string_view oldpath, std::string_view newpath,
                   const SymlinkOptions& options) {
  return FileAction(nullptr).Symlink(oldpath, newpath, options);
}

FileAction Copy(const CopyInput& from, std::string_view src, std::string_view dest,
                const CopyOptions& options) {
  return FileAction(nullptr).Copy(from, src, dest, options);
}

State State::File(const FileAction& action, const OpOptions& options) const {
  auto vertex = std::make_shared<FileVertex>(Bind(action.last_, *this), options);
  return WithOutput(internal::Output{std::move(vertex), 0, std::nullopt});
}

}  // namespace kiln::llb
