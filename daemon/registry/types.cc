#include "daemon/registry/types.h"

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "base/status.h"

namespace kiln::registry {
namespace {

using json = nlohmann::json;

std::string MediaTypeOnly(std::string_view content_type) {
  std::string_view mt = content_type.substr(0, content_type.find(';'));
  while (!mt.empty() && mt.back() == ' ') mt.remove_suffix(1);
  return std::string(mt);
}

absl::StatusOr<Descriptor> ParseDescriptor(const json& j) {
  if (!j.is_object()) return absl::InvalidArgumentError("descriptor is not an object");
  Descriptor d;
  if (auto it = j.find("mediaType"); it != j.end() && it->is_string()) d.media_type = *it;
  auto digest = j.find("digest");
  if (digest == j.end() || !digest->is_string()) {
    return absl::InvalidArgumentError("descriptor has no digest");
  }
  d.digest = *digest;
  if (auto it = j.find("size"); it != j.end() && it->is_number_integer()) {
    d.size = it->get<int64_t>();
  } else {
    return absl::InvalidArgumentError(absl::StrCat("descriptor ", d.digest, " has no size"));
  }
  if (auto it = j.find("platform"); it != j.end() && it->is_object()) {
    Platform p;
    p.os = it->value("os", "");
    p.architecture = it->value("architecture", "");
    p.variant = it->value("variant", "");
    p.os_version = it->value("os.version", "");
    if (auto f = it->find("os.features"); f != it->end() && f->is_array()) {
      for (const auto& feature : *f) {
        if (feature.is_string()) p.os_features.push_back(feature);
      }
    }
    d.platform = std::move(p);
  }
  if (auto it = j.find("annotations"); it != j.end() && it->is_object()) {
    for (const auto& [k, v] : it->items()) {
      if (v.is_string()) d.annotations[k] = v;
    }
  }
  return d;
}

// The variant as a number for ordering ("v7" -> 7); the architecture's default when empty.
std::optional<int> VariantNumber(const std::string& arch, const std::string& variant) {
  if (variant.empty()) {
    if (arch == "arm64") return 8;
    if (arch == "arm") return 7;
    if (arch == "amd64") return 1;
    return 0;
  }
  if (variant.size() < 2 || variant[0] != 'v') return std::nullopt;
  int n = 0;
  for (char c : variant.substr(1)) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + (c - '0');
  }
  return n;
}

}  // namespace

bool IsIndexMediaType(std::string_view media_type) {
  return media_type == kMediaTypeOciIndex || media_type == kMediaTypeDockerList;
}

bool IsManifestMediaType(std::string_view media_type) {
  return media_type == kMediaTypeOciManifest || media_type == kMediaTypeDockerManifest;
}

absl::StatusOr<ParsedManifest> ParseManifest(std::string_view bytes,
                                             std::string_view content_type) {
  json doc = json::parse(bytes.begin(), bytes.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    return absl::InvalidArgumentError("manifest is not a JSON object");
  }
  ParsedManifest out;
  if (auto it = doc.find("mediaType"); it != doc.end() && it->is_string()) {
    out.media_type = *it;
  } else {
    out.media_type = MediaTypeOnly(content_type);
  }
  auto fail = [&](const absl::Status& st) { return Annotate(st, "malformed manifest"); };
  if (auto it = doc.find("manifests"); it != doc.end() && it->is_array()) {
    if (!IsIndexMediaType(out.media_type)) out.media_type = kMediaTypeOciIndex;
    for (const auto& m : *it) {
      auto d = ParseDescriptor(m);
      if (!d.ok()) return fail(d.status());
      out.manifests.push_back(std::move(*d));
    }
    return out;
  }
  if (auto it = doc.find("config"); it != doc.end()) {
    if (!IsManifestMediaType(out.media_type)) out.media_type = kMediaTypeOciManifest;
    auto config = ParseDescriptor(*it);
    if (!config.ok()) return fail(config.status());
    out.config = std::move(*config);
    if (auto layers = doc.find("layers"); layers != doc.end() && layers->is_array()) {
      for (const auto& l : *layers) {
        auto d = ParseDescriptor(l);
        if (!d.ok()) return fail(d.status());
        out.layers.push_back(std::move(*d));
      }
    }
    return out;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unsupported manifest (media type \"", out.media_type, "\"): neither an index nor an image"));
}

std::optional<int> PlatformRank(const Platform& want_in, const Platform& have_in) {
  if (have_in.os.empty() || have_in.architecture.empty()) return std::nullopt;
  Platform want = llb::NormalizePlatform(want_in);
  Platform have = llb::NormalizePlatform(have_in);
  if (want.os != have.os) return std::nullopt;
  if (!want.os_version.empty() && !have.os_version.empty() && want.os_version != have.os_version) {
    return std::nullopt;
  }
  auto w = VariantNumber(want.architecture, want.variant);
  auto h = VariantNumber(have.architecture, have.variant);
  if (want.architecture == have.architecture) {
    if (want.variant == have.variant) return 0;
    if (w && h && *h <= *w) return *w - *h;
    return std::nullopt;
  }
  // 64-bit ARM machines run 32-bit ARM binaries (containerd's matcher for arm64 agrees).
  if (want.architecture == "arm64" && have.architecture == "arm" && h && *h <= 8) {
    return 10 + (8 - *h);
  }
  return std::nullopt;
}

absl::StatusOr<size_t> SelectPlatform(const std::vector<Descriptor>& manifests,
                                      const Platform& want) {
  std::optional<size_t> best;
  int best_rank = 0;
  std::vector<std::string> offered;
  for (size_t i = 0; i < manifests.size(); ++i) {
    if (!manifests[i].platform) continue;
    offered.push_back(FormatPlatform(*manifests[i].platform));
    auto rank = PlatformRank(want, *manifests[i].platform);
    if (rank && (!best || *rank < best_rank)) {
      best = i;
      best_rank = *rank;
    }
  }
  if (!best) {
    return absl::NotFoundError(absl::StrCat(
        "no image for platform ", FormatPlatform(llb::NormalizePlatform(want)),
        offered.empty() ? " (the index lists no platforms)"
                        : absl::StrCat(" (available: ", absl::StrJoin(offered, ", "), ")")));
  }
  return *best;
}

}  // namespace kiln::registry
