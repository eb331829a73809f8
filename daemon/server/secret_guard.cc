#include "daemon/server/secret_guard.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "base/status.h"
#include "daemon/session/secrets.h"
#include "frontend/dockerfile/convert/convert.h"

namespace kiln::server {

absl::StatusOr<SecretScanMode> SecretScanModeOf(
    const std::map<std::string, std::string>& frontend_attrs) {
  auto it = frontend_attrs.find("secret-scan");
  if (it == frontend_attrs.end() || it->second.empty() || it->second == "warn") {
    return SecretScanMode::kWarn;
  }
  if (it->second == "error") return SecretScanMode::kError;
  if (it->second == "off" || it->second == "false") return SecretScanMode::kOff;
  return absl::InvalidArgumentError(
      absl::StrCat("secret-scan=", it->second, ": want warn, error or off"));
}

absl::StatusOr<std::vector<secretscan::Secret>> BuildSecrets(
    const Context& ctx, const session::Session* session, const std::set<std::string>& ids,
    const std::map<std::string, std::string>& frontend_attrs) {
  std::vector<secretscan::Secret> out;
  // The kiln client names every secret it offers (ids only), mounted or not.
  std::set<std::string> all = ids;
  if (auto it = frontend_attrs.find(std::string(kSecretScanIdsAttr)); it != frontend_attrs.end()) {
    for (absl::string_view id : absl::StrSplit(it->second, ',', absl::SkipEmpty())) {
      all.insert(std::string(id));
    }
  }
  if (session != nullptr) {
    for (const std::string& id : all) {
      absl::StatusOr<std::string> value = session::GetSecret(ctx, *session, id);
      if (absl::IsNotFound(value.status())) continue;
      KILN_RETURN_IF_ERROR(value.status());
      out.push_back({absl::StrCat("secret ", id), *std::move(value)});
    }
  }
  for (const auto& [k, v] : frontend_attrs) {
    absl::string_view name = k;
    if (!absl::ConsumePrefix(&name, "build-arg:")) continue;
    if (dockerfile::LooksLikeSecretName(std::string_view(name.data(), name.size()))) {
      out.push_back({absl::StrCat("build-arg ", name), v});
    }
  }
  return secretscan::Searchable(std::move(out));
}

absl::StatusOr<std::vector<secretscan::Finding>> ScanExports(
    const Context& ctx, cache::Manager& cache, const ScanTargets& targets,
    const std::vector<secretscan::Secret>& secrets) {
  std::vector<secretscan::Finding> out;
  if (secrets.empty()) return out;
  if (!targets.image_config.empty()) {
    for (auto& f : secretscan::ScanJson(targets.image_config, secrets, "the image config")) {
      out.push_back(std::move(f));
    }
  }
  std::set<std::string> scanned;
  auto scan_ref = [&](const cache::ImmutableRef& ref, const std::string& what) -> absl::Status {
    const std::vector<std::string>& ids = ref.stack();
    const std::vector<std::filesystem::path> dirs = ref.LayerPaths();
    for (size_t i = 0; i < ids.size() && i < dirs.size(); ++i) {
      if (!scanned.insert(ids[i]).second) continue;
      KILN_ASSIGN_OR_RETURN(std::optional<cache::Record> rec, cache.store().Get(ids[i]));
      const std::string description = rec ? rec->description : "";
      if (absl::StartsWith(description, "pulled layer")) continue;  // a base image's
      const std::string where = absl::StrCat(
          what, " layer ", i + 1, description.empty() ? "" : absl::StrCat(" (", description, ")"));
      KILN_ASSIGN_OR_RETURN(std::vector<secretscan::Finding> found,
                            secretscan::ScanTree(ctx, dirs[i], secrets, where));
      for (auto& f : found) out.push_back(std::move(f));
    }
    return absl::OkStatus();
  };
  if (targets.result != nullptr) KILN_RETURN_IF_ERROR(scan_ref(*targets.result, "the result's"));
  for (const cache::ImmutableRef* ref : targets.cache_results) {
    KILN_RETURN_IF_ERROR(scan_ref(*ref, "a cache export's"));
  }
  return out;
}

}  // namespace kiln::server
