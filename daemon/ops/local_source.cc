#include "daemon/ops/local_source.h"

#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/digest.h"
#include "base/status.h"
#include "daemon/util/fs.h"
#include "daemon/util/logging.h"
#include "nlohmann/json.hpp"

namespace kiln::ops {
namespace fs = std::filesystem;
namespace {

absl::StatusOr<std::vector<std::string>> JsonList(const std::string& key, const std::string& v) {
  try {
    auto j = nlohmann::json::parse(v);
    if (!j.is_array()) throw std::runtime_error("not an array");
    std::vector<std::string> out;
    for (const auto& e : j) out.push_back(e.get<std::string>());
    return out;
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("local source attr ", key, ": want a JSON array of strings, got ", v));
  }
}

}  // namespace

absl::StatusOr<LocalSourceAttrs> ParseLocalSource(
    const std::string& identifier, const google::protobuf::Map<std::string, std::string>& attrs) {
  LocalSourceAttrs out;
  out.name = identifier.substr(std::string_view("local://").size());
  if (out.name.empty()) return absl::InvalidArgumentError("local source without a name");
  for (const auto& [k, v] : attrs) {
    if (k == "local.session") {
      out.session_id = v;
    } else if (k == "local.sharedkeyhint") {
      out.shared_key_hint = v;
    } else if (k == "local.includepattern" || k == "local.includepatterns") {
      KILN_ASSIGN_OR_RETURN(out.include_patterns, JsonList(k, v));
    } else if (k == "local.excludepatterns") {
      KILN_ASSIGN_OR_RETURN(out.exclude_patterns, JsonList(k, v));
    } else if (k == "local.followpaths") {
      KILN_ASSIGN_OR_RETURN(out.follow_paths, JsonList(k, v));
    }
    // Other attrs (local.unique, local.differ, local.metadatatransfer) need no action here.
  }
  return out;
}

absl::StatusOr<solver::CacheMap> LocalSourceOp::GetCacheMap(const Context& ctx) {
  const std::string sid = attrs_.session_id.empty() ? worker_.session_id : attrs_.session_id;
  KILN_ASSIGN_OR_RETURN(auto session,
                        worker_.sessions->Get(ctx, sid, std::chrono::milliseconds(5000)));
  cache::Manager& cache = *worker_.cache;

  // The synced copy is per client directory: the shared key identifies the client's
  // checkout, the name the directory within the build.
  const std::string shared =
      attrs_.shared_key_hint.empty() ? session->shared_key() : attrs_.shared_key_hint;
  const std::string head = Sha256Digest(absl::StrCat(
      "local\n", shared, "\n", attrs_.name, "\n", absl::StrJoin(attrs_.include_patterns, ","), "\n",
      absl::StrJoin(attrs_.exclude_patterns, ","), "\n", absl::StrJoin(attrs_.follow_paths, ",")));
  std::optional<cache::ImmutableRef> parent;
  KILN_ASSIGN_OR_RETURN(std::optional<std::string> head_id, cache.store().GetHead(head));
  if (head_id) {
    auto ref = cache.Get(*head_id);
    if (ref.ok()) parent = *std::move(ref);
  }
  KILN_ASSIGN_OR_RETURN(cache::MutableRef layer,
                        cache.New(parent ? &*parent : nullptr, cache::kTypeLocalSource));
  // The index of the previous sync seeds this one's, so unchanged files are not re-hashed.
  const fs::path index_tmp = layer.root().parent_path() / "index";
  if (parent) {
    std::error_code ec;
    fs::copy_file(cache.SnapshotDir(parent->id()) / "index", index_tmp,
                  fs::copy_options::overwrite_existing, ec);
  }
  fsutil::ReceiveOptions opts;
  opts.index_path = index_tmp.string();
  // Shown while the context moves, as BuildKit shows it: "transferring NAME: 12.3MB 0.4s".
  ReportStarted();
  const std::string status_id = absl::StrCat("transferring ", attrs_.name, ":");
  auto last_report = std::chrono::steady_clock::now() - std::chrono::seconds(1);
  opts.progress = [&](int64_t bytes, bool last) {
    auto now = std::chrono::steady_clock::now();
    if (!last && now - last_report < std::chrono::milliseconds(100)) return;
    last_report = now;
    ReportStatus(status_id, bytes, 0, last);
  };
  size_t changes = 0;
  opts.notify = [&changes](fsutil::ChangeKind, std::string_view) { ++changes; };
  session::SyncRequest req{.dir_name = attrs_.name,
                           .include_patterns = attrs_.include_patterns,
                           .exclude_patterns = attrs_.exclude_patterns,
                           .follow_paths = attrs_.follow_paths};
  auto stats = session::SyncFromClient(ctx, *session, req, layer.root().string(), opts);
  if (!stats.ok()) return stats.status();
  stats_ = *stats;
  if (changes == 0 && parent) {
    // Nothing changed since the last sync: keep using it rather than record an empty layer.
    layer = cache::MutableRef();
    return UseSynced(cache, std::move(*parent));
  }
  KILN_ASSIGN_OR_RETURN(auto index_data, util::ReadFile(index_tmp));
  KILN_ASSIGN_OR_RETURN(cache::ImmutableRef ref,
                        layer.Commit(absl::StrCat("local source for ", attrs_.name)));
  KILN_RETURN_IF_ERROR(
      util::WriteFileAtomic(cache.SnapshotDir(ref.id()) / "index", index_data, 0600));
  KILN_RETURN_IF_ERROR(cache.store().SetHead(head, ref.id()));
  return UseSynced(cache, std::move(ref));
}

absl::StatusOr<solver::CacheMap> LocalSourceOp::UseSynced(cache::Manager& cache,
                                                          cache::ImmutableRef ref) {
  KILN_ASSIGN_OR_RETURN(
      fsutil::ContentIndex index,
      fsutil::ContentIndex::Load((cache.SnapshotDir(ref.id()) / "index").string()));
  KILN_ASSIGN_OR_RETURN(std::string checksum, index.Checksum(""));
  Logger("ops")->debug("local {}: {} entries, {} files ({} bytes) transferred", attrs_.name,
                       stats_.entries, stats_.files_requested, stats_.bytes_received);
  synced_ = std::make_shared<RefResult>(std::move(ref),
                                        std::make_shared<fsutil::ContentIndex>(std::move(index)));
  return solver::CacheMap{
      .digest = Sha256Digest(absl::StrCat("local://", attrs_.name, "\n", checksum, "\n",
                                          absl::StrJoin(attrs_.include_patterns, ","), "\n",
                                          absl::StrJoin(attrs_.exclude_patterns, ","), "\n",
                                          absl::StrJoin(attrs_.follow_paths, ",")))};
}

absl::StatusOr<std::vector<solver::ResultPtr>> LocalSourceOp::Exec(
    const Context&, const std::vector<solver::ResultPtr>&) {
  KILN_RELEASE_ASSERT(synced_ != nullptr);  // GetCacheMap runs first
  return std::vector<solver::ResultPtr>{synced_};
}

}  // namespace kiln::ops
