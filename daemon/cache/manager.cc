#include "daemon/cache/manager.h"

#include <sys/statvfs.h>

#include <algorithm>
#include <chrono>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "daemon/cache/filter.h"
#include "daemon/util/fs.h"
#include "daemon/util/logging.h"
#include "base/status.h"

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
    // Records become in use once the solver holds refs to them; nothing holds refs between
    // builds, so an idle daemon reports every record as not in use.
    out.push_back(UsageInfo{.record = std::move(r), .in_use = false});
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
