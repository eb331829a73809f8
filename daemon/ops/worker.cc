#include "daemon/ops/worker.h"

#include "absl/strings/str_cat.h"
#include "base/digest.h"
#include "base/status.h"
#include "nlohmann/json.hpp"

namespace kiln::ops {
namespace fs = std::filesystem;

const RefResult& AsRef(const solver::ResultPtr& r) { return static_cast<const RefResult&>(*r); }

absl::StatusOr<std::vector<solver::ResultPtr>> CacheStore::Load(const Context&,
                                                                const std::string& key) {
  KILN_ASSIGN_OR_RETURN(std::vector<cache::ImmutableRef> refs, cache_.LoadCacheKey(key));
  std::vector<solver::ResultPtr> out;
  for (auto& r : refs) {
    // Synced local contexts keep their content index beside the layer.
    std::shared_ptr<const fsutil::ContentIndex> index;
    fs::path index_file = cache_.SnapshotDir(r.id()) / "index";
    if (fs::exists(index_file)) {
      auto loaded = fsutil::ContentIndex::Load(index_file.string());
      if (loaded.ok()) index = std::make_shared<fsutil::ContentIndex>(*std::move(loaded));
    }
    out.push_back(std::make_shared<RefResult>(std::move(r), std::move(index)));
  }
  return out;
}

absl::Status CacheStore::Save(const std::string& key,
                              const std::vector<solver::ResultPtr>& results) {
  std::vector<const cache::ImmutableRef*> refs;
  for (const auto& r : results) {
    // Scratch outputs have no record to point at: such results are cheap to recompute.
    if (AsRef(r).ref() == nullptr) return absl::OkStatus();
    refs.push_back(AsRef(r).ref());
  }
  return cache_.SaveCacheKey(key, refs);
}

absl::StatusOr<std::optional<solver::CacheStore::Alias>> CacheStore::LoadAlias(
    const Context&, const std::string& fast) {
  KILN_ASSIGN_OR_RETURN(std::optional<std::string> value,
                        cache_.store().GetValue(absl::StrCat("key-alias\n", fast)));
  if (!value) return std::nullopt;
  try {
    const nlohmann::json j = nlohmann::json::parse(*value);
    return Alias{.key = j.at("key").get<std::string>(),
                 .contents = j.at("contents").get<std::vector<std::string>>()};
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;  // unreadable: as if unknown
  }
}

absl::Status CacheStore::SaveAlias(const std::string& fast, const Alias& alias) {
  const nlohmann::json j = {{"key", alias.key}, {"contents", alias.contents}};
  return cache_.store().SetValue(absl::StrCat("key-alias\n", fast), j.dump());
}

absl::StatusOr<std::string> ContentChecksum(const Context& ctx, cache::Manager& cache,
                                            const solver::ResultPtr& result,
                                            const std::vector<std::string>& selectors) {
  const RefResult& r = AsRef(result);
  std::vector<std::string> rel;
  for (const std::string& s : selectors) {
    std::string x = s;
    while (!x.empty() && x.front() == '/') x.erase(0, 1);
    // A wildcard selects an unknown set of entries: checksum the directory above the first
    // component with a wildcard, which covers whatever it may match.
    if (size_t w = x.find_first_of("*?["); w != std::string::npos) {
      size_t slash = x.rfind('/', w);
      x = slash == std::string::npos ? "" : x.substr(0, slash);
    }
    rel.push_back(x);
  }
  std::string text = "kiln.content.v1\n";
  auto add = [&](const std::string& sel, const absl::StatusOr<std::string>& sum) -> absl::Status {
    if (absl::IsNotFound(sum.status())) {
      absl::StrAppend(&text, sel, " missing\n");
      return absl::OkStatus();
    }
    if (!sum.ok()) return sum.status();
    absl::StrAppend(&text, sel, " ", *sum, "\n");
    return absl::OkStatus();
  };
  if (r.ref() == nullptr) {
    for (const auto& sel : rel) absl::StrAppend(&text, sel, " missing\n");
    return Sha256Digest(text);
  }
  if (r.index() != nullptr) {
    for (const auto& sel : rel) KILN_RETURN_IF_ERROR(add(sel, r.index()->Checksum(sel)));
    return Sha256Digest(text);
  }
  KILN_RETURN_IF_ERROR(ctx.Check("content checksum"));
  KILN_ASSIGN_OR_RETURN(snapshot::MountPtr view, r.ref()->Mount());
  KILN_ASSIGN_OR_RETURN(fs::path scratch, cache.TempDir("sum-"));
  auto index = fsutil::BuildIndex(view->root().string(), nullptr);
  std::error_code ec;
  fs::remove_all(scratch, ec);
  if (!index.ok()) return Annotate(index.status(), "content checksum");
  for (const auto& sel : rel) KILN_RETURN_IF_ERROR(add(sel, index->Checksum(sel)));
  return Sha256Digest(text);
}

}  // namespace kiln::ops
