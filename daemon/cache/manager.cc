#include "daemon/cache/manager.h"

#include <fcntl.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/ids.h"
#include "base/status.h"
#include "daemon/cache/filter.h"
#include "daemon/snapshot/diff.h"
#include "daemon/util/fs.h"
#include "daemon/util/logging.h"

namespace kiln::cache {
namespace fs = std::filesystem;
namespace {

int64_t SystemNowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Filter::Adaptor AdaptUsage(const UsageInfo& u) {
  return [&u](std::string_view field) -> std::optional<std::string> {
    const Record& r = u.record;
    auto flag = [](bool b) { return b ? std::optional<std::string>("") : std::nullopt; };
    auto nonempty = [](const std::string& s) {
      return s.empty() ? std::nullopt : std::optional<std::string>(s);
    };
    if (field == "id") return nonempty(r.id);
    if (field == "parents") return nonempty(absl::StrJoin(r.parents, ";"));
    if (field == "description") return nonempty(r.description);
    if (field == "inuse") return flag(u.in_use);
    if (field == "mutable") return flag(r.is_mutable);
    if (field == "immutable") return flag(!r.is_mutable);
    if (field == "type") return nonempty(r.record_type);
    if (field == "shared") return flag(r.shared);
    if (field == "private") return flag(!r.shared);
    return std::nullopt;
  };
}

int64_t LastUsed(const Record& r) { return r.last_used_at_ns.value_or(r.created_at_ns); }

}  // namespace

absl::StatusOr<std::unique_ptr<Manager>> Manager::Open(ManagerOptions options) {
  if (!options.now_ns) options.now_ns = SystemNowNs;
  KILN_RETURN_IF_ERROR(util::EnsureDir(options.root / "snapshots"));
  KILN_RETURN_IF_ERROR(util::EnsureDir(options.root / "tmp"));
  if (!options.snapshotter) {
    if (snapshot::OverlaySupported(options.root / "tmp")) {
      options.snapshotter = snapshot::NewOverlaySnapshotter();
    } else {
      Logger("cache")->warn(
          "overlayfs is not available under {}; using the native (copying) "
          "snapshotter",
          options.root.string());
      options.snapshotter = snapshot::NewNativeSnapshotter();
    }
  }
  KILN_ASSIGN_OR_RETURN(auto store, MetadataStore::Open((options.root / "kiln.db").string()));
  std::unique_ptr<Manager> manager(new Manager(std::move(options), std::move(store)));
  KILN_RETURN_IF_ERROR(manager->SweepOrphans());
  return manager;
}

absl::Status Manager::SweepOrphans() {
  KILN_ASSIGN_OR_RETURN(std::vector<Record> records, store_->List());
  std::set<std::string, std::less<>> known;
  for (const Record& r : records) known.insert(r.id);
  std::error_code ec;
  for (fs::directory_iterator it(options_.root / "snapshots", ec), end; !ec && it != end;
       it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (known.contains(name)) continue;
    Logger("cache")->info("removing snapshot {} left without a record", name);
    std::error_code rm_ec;
    fs::remove_all(it->path(), rm_ec);
    if (rm_ec) {
      return absl::InternalError(
          absl::StrCat("remove orphan snapshot ", it->path().string(), ": ", rm_ec.message()));
    }
  }
  if (ec) return absl::InternalError(absl::StrCat("list snapshots: ", ec.message()));
  return absl::OkStatus();
}

std::vector<PruneOptions> DefaultGcPolicy(int64_t keep_bytes, int64_t fs_total_bytes) {
  constexpr int64_t kHour = 3600LL * 1'000'000'000;
  int64_t reserved = keep_bytes;
  int64_t max_used = 0;
  int64_t min_free = 0;
  if (keep_bytes == 0) {
    // buildkitd's DetectDefaultGCCap: reserve 10% (at most 10GB), use at most 80% (at most
    // 100GB), keep 20% of the filesystem free.
    auto pct = [&](int64_t p) {
      if (fs_total_bytes <= 0) return int64_t{2'000'000'000};
      return (fs_total_bytes * p / 100 / (int64_t{1} << 30) + 1) * 1'000'000'000;
    };
    reserved = std::min(pct(10), int64_t{10'000'000'000});
    max_used = std::min(pct(80), int64_t{100'000'000'000});
    min_free = pct(20);
  }
  return {
      // buildkitd writes these as one comma-joined filter, which containerd's grammar reads as
      // an AND that nothing matches; as separate filters they mean what was intended.
      PruneOptions{
          .filters = {"type==source.local", "type==exec.cachemount", "type==source.git.checkout"},
          .keep_duration_ns = 48 * kHour,
          .max_used_space = 512'000'000},
      PruneOptions{.keep_duration_ns = 60 * 24 * kHour,
                   .reserved_space = reserved,
                   .max_used_space = max_used,
                   .min_free_space = min_free},
      PruneOptions{
          .reserved_space = reserved, .max_used_space = max_used, .min_free_space = min_free},
      PruneOptions{.all = true,
                   .reserved_space = reserved,
                   .max_used_space = max_used,
                   .min_free_space = min_free},
  };
}

fs::path Manager::SnapshotDir(const std::string& id) const {
  KILN_RELEASE_ASSERT(!id.empty() && id.find('/') == std::string::npos && id != "." && id != "..");
  return options_.root / "snapshots" / id;
}

absl::StatusOr<std::vector<UsageInfo>> Manager::AllRecords() {
  KILN_ASSIGN_OR_RETURN(std::vector<Record> records, store_->List());
  std::vector<UsageInfo> out;
  out.reserve(records.size());
  for (Record& r : records) {
    if (r.size < 0) {
      KILN_ASSIGN_OR_RETURN(r.size, util::DiskUsageBytes(SnapshotDir(r.id)));
      KILN_RETURN_IF_ERROR(store_->SetSize(r.id, r.size));
    }
    bool in_use = InUse(r.id);
    out.push_back(UsageInfo{.record = std::move(r), .in_use = in_use});
  }
  return out;
}

absl::StatusOr<std::vector<UsageInfo>> Manager::DiskUsage(const std::vector<std::string>& filters) {
  KILN_ASSIGN_OR_RETURN(Filter filter, Filter::Parse(filters));
  KILN_ASSIGN_OR_RETURN(std::vector<UsageInfo> all, AllRecords());
  std::vector<UsageInfo> out;
  for (UsageInfo& u : all) {
    if (filter.Match(AdaptUsage(u))) out.push_back(std::move(u));
  }
  return out;
}

absl::Status Manager::Prune(const PruneOptions& options,
                            const std::function<void(const UsageInfo&)>& on_removed) {
  KILN_ASSIGN_OR_RETURN(Filter filter, Filter::Parse(options.filters));
  std::lock_guard lock(prune_mu_);
  KILN_ASSIGN_OR_RETURN(std::vector<UsageInfo> all, AllRecords());

  int64_t total = 0;
  for (const UsageInfo& u : all) {
    if (!u.record.shared) total += u.record.size;
  }
  // Same arithmetic as buildkitd's calculateKeepBytes: 0 means "no size cap".
  int64_t keep_bytes = 0;
  if (options.max_used_space != 0 || options.reserved_space != 0 || options.min_free_space != 0) {
    keep_bytes = options.max_used_space;
    int64_t free_bytes = 0;
    if (options.min_free_space != 0) {
      struct statvfs vfs;
      if (::statvfs(options_.root.c_str(), &vfs) != 0) {
        return absl::ErrnoToStatus(errno, absl::StrCat("statvfs ", options_.root.string()));
      }
      free_bytes = static_cast<int64_t>(vfs.f_bavail) * static_cast<int64_t>(vfs.f_frsize);
    }
    if (int64_t excess = options.min_free_space - free_bytes;
        options.min_free_space != 0 && excess > 0) {
      keep_bytes = keep_bytes == 0 ? total - excess : std::min(keep_bytes, total - excess);
    } else if (options.min_free_space != 0 && keep_bytes == 0) {
      keep_bytes = total;
    }
    keep_bytes = std::max(keep_bytes, options.reserved_space);
  }
  const bool gc_mode = keep_bytes != 0;
  const int64_t cutoff = options_.now_ns() - options.keep_duration_ns;

  std::map<std::string, UsageInfo> live;
  for (UsageInfo& u : all) live.emplace(u.record.id, std::move(u));

  while (!live.empty()) {
    if (gc_mode && total <= keep_bytes) break;
    std::map<std::string, int> children;
    for (const auto& [id, u] : live) {
      for (const std::string& p : u.record.parents) children[p]++;
    }
    std::vector<const UsageInfo*> candidates;
    for (const auto& [id, u] : live) {
      const Record& r = u.record;
      if (u.in_use || children.contains(id)) continue;
      if (!options.all &&
          (r.record_type == kTypeInternal || r.record_type == kTypeFrontend || r.shared)) {
        continue;
      }
      if (options.keep_duration_ns != 0 && LastUsed(r) > cutoff) continue;
      if (!filter.Match(AdaptUsage(u))) continue;
      candidates.push_back(&u);
    }
    if (candidates.empty()) break;
    // Least recently used first, then least used.
    std::sort(candidates.begin(), candidates.end(), [](const UsageInfo* a, const UsageInfo* b) {
      if (LastUsed(a->record) != LastUsed(b->record)) {
        return LastUsed(a->record) < LastUsed(b->record);
      }
      return a->record.usage_count < b->record.usage_count;
    });
    if (gc_mode) candidates.resize(1);  // re-check the cap after every removal
    for (const UsageInfo* u : candidates) {
      const std::string id = u->record.id;
      // Record first, then data: a crash in between leaves an orphan directory that the next
      // start sweeps away, never a record pointing at missing data.
      KILN_RETURN_IF_ERROR(store_->Delete(id));
      std::error_code ec;
      fs::remove_all(SnapshotDir(id), ec);
      if (ec) {
        Logger("cache")->warn("prune {}: removing {}: {}", id, SnapshotDir(id).string(),
                              ec.message());
      }
      if (!u->record.shared) total -= u->record.size;
      on_removed(*u);
      live.erase(id);
    }
  }
  return absl::OkStatus();
}

}  // namespace kiln::cache

namespace kiln::cache {

// ---- refs -----------------------------------------------------------------------------------

ImmutableRef::ImmutableRef(Manager* manager, std::string id, std::vector<std::string> stack)
    : manager_(manager), id_(std::move(id)), stack_(std::move(stack)) {
  manager_->Acquire(id_);
}

ImmutableRef::ImmutableRef(ImmutableRef&& other) noexcept
    : manager_(std::exchange(other.manager_, nullptr)),
      id_(std::move(other.id_)),
      stack_(std::move(other.stack_)) {}

ImmutableRef& ImmutableRef::operator=(ImmutableRef&& other) noexcept {
  if (this != &other) {
    if (manager_) manager_->Release(id_);
    manager_ = std::exchange(other.manager_, nullptr);
    id_ = std::move(other.id_);
    stack_ = std::move(other.stack_);
  }
  return *this;
}

ImmutableRef::~ImmutableRef() {
  if (manager_) manager_->Release(id_);
}

ImmutableRef ImmutableRef::Clone() const { return ImmutableRef(manager_, id_, stack_); }

std::vector<fs::path> ImmutableRef::LayerPaths() const {
  std::vector<fs::path> out;
  out.reserve(stack_.size());
  for (const std::string& id : stack_) out.push_back(manager_->SnapshotDir(id) / "fs");
  return out;
}

namespace {

// A mount whose scratch directory goes away with it.
class ScratchMount final : public snapshot::Mount {
 public:
  ScratchMount(snapshot::MountPtr inner, fs::path scratch)
      : inner_(std::move(inner)), scratch_(std::move(scratch)) {}
  ~ScratchMount() override {
    if (inner_->Unmount().ok()) {
      std::error_code ec;
      fs::remove_all(scratch_, ec);
    }
  }
  const fs::path& root() const override { return inner_->root(); }
  absl::Status Unmount() override { return inner_->Unmount(); }

 private:
  snapshot::MountPtr inner_;
  fs::path scratch_;
};

}  // namespace

absl::StatusOr<snapshot::MountPtr> ImmutableRef::Mount() const {
  KILN_ASSIGN_OR_RETURN(fs::path scratch, manager_->TempDir("ro-"));
  fs::path mountpoint = scratch / "m";
  KILN_RETURN_IF_ERROR(util::EnsureDir(mountpoint, 0755));
  auto m = manager_->snapshotter().MountReadOnly(LayerPaths(), mountpoint);
  if (!m.ok()) {
    std::error_code ec;
    fs::remove_all(scratch, ec);
    return Annotate(m.status(), absl::StrCat("mount ", id_));
  }
  return snapshot::MountPtr(new ScratchMount(*std::move(m), scratch));
}

MutableRef::MutableRef(MutableRef&& other) noexcept
    : manager_(std::exchange(other.manager_, nullptr)),
      id_(std::move(other.id_)),
      record_type_(std::move(other.record_type_)),
      parents_(std::move(other.parents_)),
      mount_(std::move(other.mount_)),
      scratch_(std::move(other.scratch_)),
      committed_(other.committed_) {}

MutableRef& MutableRef::operator=(MutableRef&& other) noexcept {
  if (this != &other) {
    Discard();
    manager_ = std::exchange(other.manager_, nullptr);
    id_ = std::move(other.id_);
    record_type_ = std::move(other.record_type_);
    parents_ = std::move(other.parents_);
    mount_ = std::move(other.mount_);
    scratch_ = std::move(other.scratch_);
    committed_ = other.committed_;
  }
  return *this;
}

MutableRef::~MutableRef() { Discard(); }

void MutableRef::Discard() {
  if (manager_ == nullptr || committed_ || id_.empty()) return;
  if (mount_) (void)mount_->Unmount();
  std::error_code ec;
  fs::remove_all(scratch_, ec);
  fs::remove_all(manager_->SnapshotDir(id_), ec);
}

absl::StatusOr<ImmutableRef> MutableRef::Commit(const std::string& description) {
  KILN_RELEASE_ASSERT(manager_ != nullptr && !committed_);
  KILN_RETURN_IF_ERROR(mount_->Unmount());
  fs::path dir = manager_->SnapshotDir(id_);
  std::error_code ec;
  fs::remove_all(scratch_, ec);
  fs::remove_all(dir / "work", ec);
  // The layer's data reaches the disk before the record that makes it visible.
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoToStatus(errno, absl::StrCat("open ", dir.string()));
  int rc = ::syncfs(fd);
  ::close(fd);
  if (rc != 0) return ErrnoToStatus(errno, absl::StrCat("syncfs ", dir.string()));
  KILN_ASSIGN_OR_RETURN(int64_t size, util::DiskUsageBytes(dir / "fs"));
  int64_t now = manager_->options_.now_ns();
  Record r{.id = id_,
           .record_type = record_type_,
           .description = description,
           .size = size,
           .created_at_ns = now,
           .last_used_at_ns = now,
           .usage_count = 1,
           .parents = parents_};
  KILN_RETURN_IF_ERROR(manager_->store().Put(r));
  committed_ = true;
  std::vector<std::string> stack = parents_;
  stack.push_back(id_);
  return ImmutableRef(manager_, id_, std::move(stack));
}

void Manager::Acquire(const std::string& id) {
  std::lock_guard lock(refs_mu_);
  ++refs_[id];
}

void Manager::Release(const std::string& id) {
  std::lock_guard lock(refs_mu_);
  auto it = refs_.find(id);
  if (it != refs_.end() && --it->second == 0) refs_.erase(it);
}

bool Manager::InUse(const std::string& id) const {
  std::lock_guard lock(refs_mu_);
  return refs_.contains(id);
}

std::string Manager::NewId() { return NewRandomId(); }

absl::StatusOr<fs::path> Manager::TempDir(const std::string& prefix) {
  fs::path dir = options_.root / "tmp" / (prefix + NewId());
  KILN_RETURN_IF_ERROR(util::EnsureDir(dir, 0700));
  return dir;
}

absl::StatusOr<MutableRef> Manager::New(const ImmutableRef* parent,
                                        const std::string& record_type) {
  MutableRef ref;
  ref.manager_ = this;
  ref.id_ = NewId();
  ref.record_type_ = record_type;
  fs::path dir = SnapshotDir(ref.id_);
  KILN_RETURN_IF_ERROR(util::EnsureDir(dir / "fs", 0755));
  KILN_ASSIGN_OR_RETURN(ref.scratch_, TempDir("rw-"));
  fs::path mountpoint = ref.scratch_ / "m";
  fs::path work = dir / "work";  // same filesystem as the upper dir, as overlayfs requires
  KILN_RETURN_IF_ERROR(util::EnsureDir(mountpoint, 0755));
  KILN_RETURN_IF_ERROR(util::EnsureDir(work, 0700));
  std::vector<fs::path> layers = parent ? parent->LayerPaths() : std::vector<fs::path>{};
  snapshot::Snapshotter* snap = options_.snapshotter.get();
  std::unique_ptr<snapshot::Snapshotter> flattener;
  if (layers.size() >= options_.max_stack_depth && !snap->flattens()) {
    flattener = snapshot::NewNativeSnapshotter();  // too deep to mount: start a flat layer
    snap = flattener.get();
  }
  if (parent && !snap->flattens()) ref.parents_ = parent->stack();
  auto m = snap->MountWritable(layers, dir / "fs", work, mountpoint);
  if (!m.ok()) return Annotate(m.status(), "prepare a writable snapshot");
  ref.mount_ = *std::move(m);
  return ref;
}

absl::StatusOr<ImmutableRef> Manager::Get(const std::string& id) {
  KILN_ASSIGN_OR_RETURN(std::optional<Record> r, store_->Get(id));
  if (!r) return absl::NotFoundError(absl::StrCat("cache record ", id, " does not exist"));
  KILN_RETURN_IF_ERROR(store_->Touch(id, options_.now_ns()));
  std::vector<std::string> stack = r->parents;
  stack.push_back(id);
  return ImmutableRef(this, id, std::move(stack));
}

absl::StatusOr<ImmutableRef> Manager::Merge(const std::vector<const ImmutableRef*>& inputs,
                                            const std::string& description) {
  std::vector<std::string> parents;
  std::set<std::string> seen;
  for (const ImmutableRef* in : inputs) {
    for (const std::string& layer : in->stack()) {
      if (seen.insert(layer).second) parents.push_back(layer);
    }
  }
  KILN_ASSIGN_OR_RETURN(MutableRef ref, New(nullptr, kTypeRegular));
  ref.parents_ = std::move(parents);
  return ref.Commit(description);
}

absl::StatusOr<ImmutableRef> Manager::Diff(const ImmutableRef* lower, const ImmutableRef& upper,
                                           const std::string& description) {
  if (lower == nullptr) return upper.Clone();
  const auto& lo = lower->stack();
  const auto& up = upper.stack();
  if (lo.size() <= up.size() && std::equal(lo.begin(), lo.end(), up.begin())) {
    KILN_ASSIGN_OR_RETURN(MutableRef ref, New(nullptr, kTypeRegular));
    ref.parents_.assign(up.begin() + static_cast<std::ptrdiff_t>(lo.size()), up.end());
    return ref.Commit(description);
  }
  // Unrelated stacks: compare the trees. The layer is written directly (whiteouts are device
  // nodes, which must not pass through an overlay mount), then committed like any other.
  KILN_ASSIGN_OR_RETURN(snapshot::MountPtr lower_view, lower->Mount());
  KILN_ASSIGN_OR_RETURN(snapshot::MountPtr upper_view, upper.Mount());
  return ImportLayer(
      nullptr,
      [&](const fs::path& layer) {
        return snapshot::ComputeDiff(lower_view->root(), upper_view->root(), layer);
      },
      kTypeRegular, description);
}

absl::StatusOr<ImmutableRef> Manager::ImportLayer(const ImmutableRef* parent,
                                                  const LayerFillFn& fill,
                                                  const std::string& record_type,
                                                  const std::string& description,
                                                  int64_t created_at_ns) {
  std::string id = NewId();
  fs::path dir = SnapshotDir(id);
  KILN_RETURN_IF_ERROR(util::EnsureDir(dir / "fs", 0755));
  absl::Status st = fill(dir / "fs");
  if (st.ok()) {
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || ::syncfs(fd) != 0)
      st = ErrnoToStatus(errno, absl::StrCat("syncfs ", dir.string()));
    if (fd >= 0) ::close(fd);
  }
  std::vector<std::string> parents = parent ? parent->stack() : std::vector<std::string>{};
  if (st.ok()) {
    auto measured = util::DiskUsageBytes(dir / "fs");
    int64_t size = measured.ok() ? *measured : 0;
    int64_t now = options_.now_ns();
    st = store_->Put(Record{.id = id,
                            .record_type = record_type,
                            .description = description,
                            .size = size,
                            .created_at_ns = created_at_ns > 0 ? created_at_ns : now,
                            .last_used_at_ns = now,
                            .usage_count = 1,
                            .parents = parents});
  }
  if (!st.ok()) {
    std::error_code ec;
    fs::remove_all(dir, ec);
    return st;
  }
  parents.push_back(id);
  return ImmutableRef(this, id, std::move(parents));
}

absl::Status Manager::SaveCacheKey(const std::string& key,
                                   const std::vector<const ImmutableRef*>& outputs) {
  std::vector<std::string> ids;
  for (const ImmutableRef* r : outputs) ids.push_back(r->id());
  return store_->PutCacheKey(key, ids);
}

absl::StatusOr<std::vector<ImmutableRef>> Manager::LoadCacheKey(const std::string& key) {
  KILN_ASSIGN_OR_RETURN(std::vector<std::string> ids, store_->GetCacheKey(key));
  std::vector<ImmutableRef> out;
  for (const std::string& id : ids) {
    auto ref = Get(id);
    if (absl::IsNotFound(ref.status())) return std::vector<ImmutableRef>{};
    if (!ref.ok()) return ref.status();
    out.push_back(*std::move(ref));
  }
  return out;
}

}  // namespace kiln::cache
