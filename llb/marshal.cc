#include "llb/marshal.h"

#include <random>

#include "absl/container/flat_hash_set.h"
#include "base/digest.h"
#include "base/status.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "llb/internal/vertex.h"

namespace kiln::llb {
namespace {

std::string DeterministicBytes(const google::protobuf::MessageLite& message) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream stream(&out);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    KILN_RELEASE_ASSERT(message.SerializeToCodedStream(&coded));
  }
  return out;
}

void AppendVarint(uint64_t value, std::string* out) {
  while (value >= 0x80) {
    out->push_back(static_cast<char>((value & 0x7f) | 0x80));
    value >>= 7;
  }
  out->push_back(static_cast<char>(value));
}

// Like BuildKit's identity.NewID: 25 random base-36 characters.
std::string RandomId() {
  static constexpr char kAlphabet[] = "0123456789abcdefghijklmnopqrstuvwxyz";
  std::random_device rd;
  std::string id(25, '0');
  for (char& c : id) c = kAlphabet[rd() % 36];
  return id;
}

// BuildKit's mergeMetadata: flags are or-ed, maps merged, later singular values win.
void MergeMetadata(const pb::OpMetadata& from, pb::OpMetadata* into) {
  if (from.ignore_cache()) into->set_ignore_cache(true);
  for (const auto& [k, v] : from.description()) (*into->mutable_description())[k] = v;
  if (from.has_export_cache()) *into->mutable_export_cache() = from.export_cache();
  for (const auto& [k, v] : from.caps()) (*into->mutable_caps())[k] = true;
  if (from.has_progress_group()) *into->mutable_progress_group() = from.progress_group();
}

}  // namespace

std::string SerializeOp(pb::Op op) {
  int field = 0;
  std::string kind;
  switch (op.op_case()) {
    case pb::Op::kExec:
      field = pb::Op::kExecFieldNumber;
      kind = DeterministicBytes(op.exec());
      break;
    case pb::Op::kSource:
      field = pb::Op::kSourceFieldNumber;
      kind = DeterministicBytes(op.source());
      break;
    case pb::Op::kFile:
      field = pb::Op::kFileFieldNumber;
      kind = DeterministicBytes(op.file());
      break;
    case pb::Op::kBuild:
      field = pb::Op::kBuildFieldNumber;
      kind = DeterministicBytes(op.build());
      break;
    case pb::Op::kMerge:
      field = pb::Op::kMergeFieldNumber;
      kind = DeterministicBytes(op.merge());
      break;
    case pb::Op::kDiff:
      field = pb::Op::kDiffFieldNumber;
      kind = DeterministicBytes(op.diff());
      break;
    case pb::Op::OP_NOT_SET:
      break;
  }
  op.clear_op();
  std::string out = DeterministicBytes(op);
  if (field != 0) {
    // Go's protobuf runtime writes oneof members after all other fields (its "legacy field
    // order"), so platform (10) and constraints (11) precede the op kind (2..7).
    AppendVarint(static_cast<uint64_t>(field) << 3 | 2, &out);
    AppendVarint(kind.size(), &out);
    out += kind;
  }
  return out;
}

std::string SerializeDefinition(const pb::Definition& definition) {
  return DeterministicBytes(definition);
}

namespace internal {

MarshalContext::MarshalContext(const MarshalOptions& options)
    : options_(options),
      default_platform_(options.platform ? *options.platform : HostPlatform()),
      local_unique_id_(options.local_unique_id.empty() ? RandomId() : options.local_unique_id) {}

absl::StatusOr<const MarshalContext::Marshaled*> MarshalContext::Get(const Vertex& vertex) {
  if (auto it = done_.find(&vertex); it != done_.end()) return it->second.get();
  pb::Op op;
  auto marshaled = std::make_unique<Marshaled>();
  std::vector<SourceLocation> outer = std::exchange(pending_locations_, {});
  absl::Status st = vertex.Marshal(*this, &op, &marshaled->metadata);
  marshaled->locations = std::exchange(pending_locations_, std::move(outer));
  KILN_RETURN_IF_ERROR(st);
  marshaled->bytes = SerializeOp(std::move(op));
  marshaled->digest = Sha256Digest(marshaled->bytes);
  return done_.emplace(&vertex, std::move(marshaled)).first->second.get();
}

absl::StatusOr<pb::Input> MarshalContext::ToInput(const Output& output) {
  KILN_ASSIGN_OR_RETURN(const Marshaled* m, Get(*output.vertex));
  pb::Input input;
  input.set_digest(m->digest);
  input.set_index(output.index);
  return input;
}

void MarshalContext::ApplyConstraints(const OpOptions& options, const std::set<std::string>& caps,
                                      pb::Op* op, pb::OpMetadata* metadata) const {
  const Platform& p = options.platform ? *options.platform : default_platform_;
  pb::Platform* platform = op->mutable_platform();
  platform->set_os(p.os);
  platform->set_architecture(p.architecture);
  platform->set_variant(p.variant);
  platform->set_osversion(p.os_version);
  for (const std::string& f : p.os_features) platform->add_osfeatures(f);
  pb::WorkerConstraints* constraints = op->mutable_constraints();
  for (const std::string& f : options.worker_constraints) constraints->add_filter(f);

  metadata->set_ignore_cache(options.ignore_cache);
  for (const auto& [k, v] : options.description) (*metadata->mutable_description())[k] = v;
  pending_locations_.insert(pending_locations_.end(), options.source_locations.begin(),
                            options.source_locations.end());
  if (!options.custom_name.empty()) {
    (*metadata->mutable_description())["llb.customname"] = options.custom_name;
  }
  if (options.export_cache.has_value()) {
    metadata->mutable_export_cache()->set_value(*options.export_cache);
  }
  for (const std::string& cap : caps) (*metadata->mutable_caps())[cap] = true;
  if (options.progress_group.has_value()) {
    pb::ProgressGroup* group = metadata->mutable_progress_group();
    group->set_id(options.progress_group->id);
    group->set_name(options.progress_group->name);
    group->set_weak(options.progress_group->weak);
  }
}

}  // namespace internal

absl::StatusOr<pb::Definition> Marshal(const State& state, const MarshalOptions& options) {
  pb::Definition def;
  if (state.IsScratch()) return def;

  internal::MarshalContext ctx(options);
  absl::flat_hash_set<const internal::Vertex*> visited;
  absl::flat_hash_set<std::string> emitted;
  auto& metadata = *def.mutable_metadata();
  // BuildKit's sourceMapCollector: one infos entry per distinct map, locations per op digest.
  absl::flat_hash_map<const SourceMap*, int> source_index;
  auto add_locations = [&](const std::string& digest, const std::vector<SourceLocation>& locs) {
    pb::Source* source = def.mutable_source();
    for (const SourceLocation& l : locs) {
      if (l.map == nullptr) continue;
      auto [it, added] = source_index.try_emplace(l.map.get(), source->infos_size());
      if (added) {
        pb::SourceInfo* info = source->add_infos();
        info->set_filename(l.map->filename);
        info->set_data(l.map->data);
        info->set_language(l.map->language);
      }
      pb::Location* loc = (*source->mutable_locations())[digest].add_locations();
      loc->set_sourceindex(it->second);
      for (const pb::Range& r : l.ranges) *loc->add_ranges() = r;
    }
  };

  // Post-order walk like BuildKit's marshal(): inputs first, each vertex once; vertices that
  // marshal to the same bytes share one entry, and their metadata is merged.
  auto visit = [&](auto& self, const internal::Vertex& vertex) -> absl::Status {
    if (visited.contains(&vertex)) return absl::OkStatus();
    for (const internal::Output& input : vertex.Inputs()) {
      KILN_RETURN_IF_ERROR(self(self, *input.vertex));
    }
    KILN_ASSIGN_OR_RETURN(const internal::MarshalContext::Marshaled* m, ctx.Get(vertex));
    visited.insert(&vertex);
    MergeMetadata(m->metadata, &metadata[m->digest]);
    add_locations(m->digest, m->locations);
    if (emitted.insert(m->digest).second) def.add_def(m->bytes);
    return absl::OkStatus();
  };
  KILN_RETURN_IF_ERROR(visit(visit, *state.output()->vertex));

  pb::Op terminal;
  KILN_ASSIGN_OR_RETURN(*terminal.add_inputs(), ctx.ToInput(*state.output()));
  std::string bytes = SerializeOp(std::move(terminal));

  pb::OpMetadata terminal_metadata;
  auto& caps = *terminal_metadata.mutable_caps();
  caps["constraints"] = true;
  caps["platform"] = true;
  for (const auto& [digest, m] : metadata) {
    if (m.ignore_cache()) caps["meta.ignorecache"] = true;
    if (m.description_size() > 0) caps["meta.description"] = true;
    if (m.has_export_cache()) caps["meta.exportcache"] = true;
  }
  metadata[Sha256Digest(bytes)] = std::move(terminal_metadata);
  def.add_def(std::move(bytes));
  def.mutable_source();
  return def;
}

}  // namespace kiln::llb
