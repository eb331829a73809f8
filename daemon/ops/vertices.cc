#include "daemon/ops/vertices.h"

#include <map>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/digest.h"
#include "base/status.h"
#include "daemon/ops/diff_op.h"
#include "daemon/ops/exec_op.h"
#include "daemon/ops/file_op.h"
#include "daemon/ops/git_source.h"
#include "daemon/ops/http_source.h"
#include "daemon/ops/image_source.h"
#include "daemon/ops/local_source.h"
#include "daemon/ops/merge_op.h"
#include "llb/errdefs.h"
#include "llb/marshal.h"

namespace kiln::ops {
namespace {

std::string FileOpName(const pb::FileOp& f) {
  std::vector<std::string> parts;
  for (const auto& a : f.actions()) {
    switch (a.action_case()) {
      case pb::FileAction::kCopy:
        parts.push_back(absl::StrCat("copy ", a.copy().src(), " ", a.copy().dest()));
        break;
      case pb::FileAction::kMkfile:
        parts.push_back(absl::StrCat("mkfile ", a.mkfile().path()));
        break;
      case pb::FileAction::kMkdir:
        parts.push_back(absl::StrCat("mkdir ", a.mkdir().path()));
        break;
      case pb::FileAction::kRm:
        parts.push_back(absl::StrCat("rm ", a.rm().path()));
        break;
      case pb::FileAction::kSymlink:
        parts.push_back(absl::StrCat("symlink ", a.symlink().newpath()));
        break;
      default:
        break;
    }
  }
  return absl::StrJoin(parts, ", ");
}

// The op's identity for caching: its bytes without the input digests, which the solver
// replaces with the inputs' cache keys (a local source's digest changes every build, its
// content-based key does not).
std::string CacheDigest(const pb::Op& op) {
  pb::Op copy = op;
  copy.clear_inputs();
  return Sha256Digest(llb::SerializeOp(copy));
}

absl::Status Unsupported(const llb::LoadedOp& op, std::string_view what) {
  return absl::UnimplementedError(
      absl::StrCat("op ", op.digest, ": ", AV(what), " is not supported by this kilnd yet"));
}

}  // namespace

absl::Status WithFailedOpSource(absl::Status st, const pb::Definition& definition) {
  if (st.ok() || st.GetPayload(llb::kSourcesPayload).has_value()) return st;
  auto digest = st.GetPayload(solver::kVertexPayload);
  if (!digest) return st;
  return llb::WithDefinitionSource(std::move(st), definition, std::string(*digest));
}

absl::StatusOr<solver::Edge> BuildVertices(const llb::Graph& graph, const Worker& worker,
                                           const BuildOptions& options) {
  std::map<std::string, std::shared_ptr<solver::Vertex>> built;
  for (const llb::LoadedOp& op : graph.ops()) {
    auto v = std::make_shared<solver::Vertex>();
    v->digest = op.digest;
    v->ignore_cache = options.no_cache || op.metadata.ignore_cache();
    for (const pb::Input& in : op.op.inputs()) {
      auto it = built.find(in.digest());
      KILN_RELEASE_ASSERT(it != built.end());  // LoadDefinition orders inputs first
      v->inputs.push_back(solver::Edge{it->second, static_cast<int>(in.index())});
    }
    std::string name;
    switch (op.op.op_case()) {
      case pb::Op::kSource: {
        const std::string& id = op.op.source().identifier();
        name = id;
        if (absl::StartsWith(id, "local://")) {
          KILN_ASSIGN_OR_RETURN(LocalSourceAttrs attrs,
                                ParseLocalSource(id, op.op.source().attrs()));
          v->op = std::make_shared<LocalSourceOp>(worker, std::move(attrs));
        } else if (absl::StartsWith(id, "docker-image://")) {
          std::optional<llb::Platform> platform;
          if (op.op.has_platform()) {
            const pb::Platform& p = op.op.platform();
            platform = llb::NormalizePlatform(
                {.os = p.os(), .architecture = p.architecture(), .variant = p.variant()});
          }
          KILN_ASSIGN_OR_RETURN(ImageSourceAttrs attrs,
                                ParseImageSource(id, op.op.source().attrs(), platform));
          v->op = std::make_shared<ImageSourceOp>(worker, std::move(attrs));
        } else if (absl::StartsWith(id, "http://") || absl::StartsWith(id, "https://")) {
          KILN_ASSIGN_OR_RETURN(HttpSourceAttrs attrs, ParseHttpSource(id, op.op.source().attrs()));
          v->op = std::make_shared<HttpSourceOp>(worker, std::move(attrs));
        } else if (absl::StartsWith(id, "git://")) {
          KILN_ASSIGN_OR_RETURN(GitSourceAttrs attrs, ParseGitSource(id, op.op.source().attrs()));
          v->op = std::make_shared<GitSourceOp>(worker, std::move(attrs));
        } else {
          return Unsupported(op, absl::StrCat("source ", id));
        }
        break;
      }
      case pb::Op::kFile:
        name = FileOpName(op.op.file());
        v->op = std::make_shared<FileOp>(worker, op.op.file(), CacheDigest(op.op),
                                         static_cast<size_t>(op.op.inputs_size()));
        break;
      case pb::Op::kMerge:
        name = "merge";
        v->op = std::make_shared<MergeOp>(worker, CacheDigest(op.op));
        break;
      case pb::Op::kExec:
        name = ExecOp::DisplayName(op.op.exec());
        if (worker.secret_ids) {
          for (const pb::Mount& m : op.op.exec().mounts()) {
            if (m.mounttype() == pb::SECRET) worker.secret_ids->Add(m.secretopt().id());
          }
          for (const auto& se : op.op.exec().secretenv()) worker.secret_ids->Add(se.id());
        }
        v->op = std::make_shared<ExecOp>(worker, op.op.exec(), CacheDigest(op.op),
                                         static_cast<size_t>(op.op.inputs_size()));
        break;
      case pb::Op::kDiff:
        name = "diff";
        v->op = std::make_shared<DiffOp>(worker, op.op.diff(), CacheDigest(op.op));
        break;
      default:
        return Unsupported(op, "this op kind");
    }
    auto custom = op.metadata.description().find("llb.customname");
    v->name = custom != op.metadata.description().end() ? custom->second : name;
    built[op.digest] = v;
  }
  auto it = built.find(graph.terminal().digest());
  if (it == built.end()) {
    return absl::InvalidArgumentError("the definition's result names no op");
  }
  return solver::Edge{it->second, static_cast<int>(graph.terminal().index())};
}

}  // namespace kiln::ops
