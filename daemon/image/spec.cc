#include "daemon/image/spec.h"

#include <time.h>

#include <cstdio>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/digest.h"
#include "base/status.h"
#include "daemon/image/internal/go_json.h"
#include "daemon/image/media_types.h"

namespace kiln::image {
namespace {

using ordered_json = nlohmann::ordered_json;
using json = nlohmann::json;

// Go's omitempty: false, 0, "", null, and empty arrays and maps.
template <typename J>
bool IsEmpty(const J& v) {
  switch (v.type()) {
    case J::value_t::null:
      return true;
    case J::value_t::boolean:
      return !v.template get<bool>();
    case J::value_t::number_integer:
    case J::value_t::number_unsigned:
    case J::value_t::number_float:
      return v.template get<double>() == 0;
    case J::value_t::string:
      return v.template get_ref<const std::string&>().empty();
    case J::value_t::array:
    case J::value_t::object:
      return v.empty();
    default:
      return false;
  }
}

// A json value (objects sorted, as Go maps are) as an ordered_json with the same order.
ordered_json Ordered(const json& v) { return ordered_json::parse(v.dump()); }

// Members of `obj` in `order` first (dropped when empty), then the rest in sorted order.
ordered_json InFieldOrder(const json& obj, std::initializer_list<const char*> order) {
  ordered_json out = ordered_json::object();
  for (const char* key : order) {
    auto it = obj.find(key);
    if (it != obj.end() && !IsEmpty(*it)) out[key] = Ordered(*it);
  }
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    bool known = false;
    for (const char* key : order) known = known || it.key() == key;
    if (!known) out[it.key()] = Ordered(it.value());
  }
  return out;
}

// ocispec.ImageConfig followed by dockerspec's DockerOCIImageConfigExt.
ordered_json RuntimeConfigJson(const json& config) {
  ordered_json out = InFieldOrder(
      config, {"User", "ExposedPorts", "Env", "Entrypoint", "Cmd", "Volumes", "WorkingDir",
               "Labels", "StopSignal", "ArgsEscaped", "Healthcheck", "OnBuild", "Shell"});
  if (auto it = config.find("Healthcheck"); it != config.end() && it->is_object()) {
    out["Healthcheck"] = InFieldOrder(
        *it, {"Test", "Interval", "Timeout", "StartPeriod", "StartInterval", "Retries"});
  }
  return out;
}

ordered_json PlatformJson(const Platform& p) {
  ordered_json out = ordered_json::object();
  out["architecture"] = p.architecture;
  out["os"] = p.os;
  if (!p.os_version.empty()) out["os.version"] = p.os_version;
  if (!p.os_features.empty()) out["os.features"] = p.os_features;
  if (!p.variant.empty()) out["variant"] = p.variant;
  return out;
}

ordered_json HistoryJson(const History& h) {
  ordered_json out = ordered_json::object();
  if (h.created) out["created"] = *h.created;
  if (!h.created_by.empty()) out["created_by"] = h.created_by;
  if (!h.author.empty()) out["author"] = h.author;
  if (!h.comment.empty()) out["comment"] = h.comment;
  if (h.empty_layer) out["empty_layer"] = true;
  return out;
}

std::string StringMember(const json& obj, const char* key) {
  auto it = obj.find(key);
  return it != obj.end() && it->is_string() ? it->get<std::string>() : std::string();
}

absl::StatusOr<Platform> ParsePlatform(const json& j) {
  if (!j.is_object()) return absl::InvalidArgumentError("platform is not an object");
  Platform p;
  p.architecture = StringMember(j, "architecture");
  p.os = StringMember(j, "os");
  p.os_version = StringMember(j, "os.version");
  p.variant = StringMember(j, "variant");
  if (auto it = j.find("os.features"); it != j.end() && it->is_array()) {
    for (const auto& f : *it) {
      if (f.is_string()) p.os_features.push_back(f.get<std::string>());
    }
  }
  return p;
}

absl::Status ParseAnnotations(const json& j, std::map<std::string, std::string>& out) {
  auto it = j.find("annotations");
  if (it == j.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_object()) return absl::InvalidArgumentError("annotations are not an object");
  for (auto a = it->begin(); a != it->end(); ++a) {
    if (!a->is_string()) return absl::InvalidArgumentError("annotation value is not a string");
    out[a.key()] = a->get<std::string>();
  }
  return absl::OkStatus();
}

absl::StatusOr<Descriptor> ParseDescriptor(const json& j) {
  if (!j.is_object()) return absl::InvalidArgumentError("descriptor is not an object");
  Descriptor d;
  d.media_type = StringMember(j, "mediaType");
  d.digest = StringMember(j, "digest");
  d.artifact_type = StringMember(j, "artifactType");
  if (!IsSha256Digest(d.digest)) {
    return absl::InvalidArgumentError(absl::StrCat("invalid descriptor digest \"", d.digest, "\""));
  }
  auto size = j.find("size");
  if (size == j.end() || !size->is_number_integer() || size->get<int64_t>() < 0) {
    return absl::InvalidArgumentError(absl::StrCat("descriptor ", d.digest, ": invalid size"));
  }
  d.size = size->get<int64_t>();
  if (auto it = j.find("urls"); it != j.end() && it->is_array()) {
    for (const auto& u : *it) {
      if (u.is_string()) d.urls.push_back(u.get<std::string>());
    }
  }
  KILN_RETURN_IF_ERROR(ParseAnnotations(j, d.annotations));
  if (auto it = j.find("platform"); it != j.end() && !it->is_null()) {
    KILN_ASSIGN_OR_RETURN(d.platform, ParsePlatform(*it));
  }
  return d;
}

absl::StatusOr<json> ParseObject(std::string_view text, const char* what) {
  json j = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(what, " is not a JSON object"));
  }
  return j;
}

ordered_json AnnotationsJson(const std::map<std::string, std::string>& annotations) {
  ordered_json out = ordered_json::object();
  for (const auto& [k, v] : annotations) out[k] = v;
  return out;
}

}  // namespace

std::string FormatTime(int64_t unix_seconds, int32_t nanos) {
  const time_t t = static_cast<time_t>(unix_seconds);
  struct tm tm;
  gmtime_r(&t, &tm);
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
  std::string out = buf;
  if (nanos > 0) {
    std::snprintf(buf, sizeof(buf), ".%09d", nanos);
    std::string frac = buf;
    while (frac.back() == '0') frac.pop_back();
    out += frac;
  }
  return out + "Z";
}

std::string ConfigMediaType(bool oci) { return oci ? kOciConfig : kDockerConfig; }
std::string ManifestMediaType(bool oci) { return oci ? kOciManifest : kDockerManifest; }
std::string IndexMediaType(bool oci) { return oci ? kOciIndex : kDockerManifestList; }
bool IsManifestMediaType(std::string_view t) { return t == kOciManifest || t == kDockerManifest; }
bool IsIndexMediaType(std::string_view t) { return t == kOciIndex || t == kDockerManifestList; }

nlohmann::ordered_json DescriptorJson(const Descriptor& d) {
  ordered_json out = ordered_json::object();
  out["mediaType"] = d.media_type;
  out["digest"] = d.digest;
  out["size"] = d.size;
  if (!d.urls.empty()) out["urls"] = d.urls;
  if (!d.annotations.empty()) out["annotations"] = AnnotationsJson(d.annotations);
  if (d.platform) out["platform"] = PlatformJson(*d.platform);
  if (!d.artifact_type.empty()) out["artifactType"] = d.artifact_type;
  return out;
}

Descriptor DescriptorOf(std::string_view media_type, std::string_view data) {
  Descriptor d;
  d.media_type = std::string(media_type);
  d.digest = Sha256Digest(data);
  d.size = static_cast<int64_t>(data.size());
  return d;
}

absl::StatusOr<std::string> MakeImageConfig(const ConfigInput& input) {
  json base = json::object();
  if (!input.base.empty()) {
    KILN_ASSIGN_OR_RETURN(base, ParseObject(input.base, "base image config"));
  }
  Platform platform;
  if (input.platform) {
    platform = *input.platform;
  } else {
    KILN_ASSIGN_OR_RETURN(platform, ParsePlatform(base));
  }
  std::vector<History> history;
  if (input.history) {
    history = *input.history;
  } else if (auto it = base.find("history"); it != base.end() && it->is_array()) {
    for (const auto& h : *it) {
      if (!h.is_object()) return absl::InvalidArgumentError("history entry is not an object");
      History e;
      if (auto c = h.find("created"); c != h.end() && c->is_string())
        e.created = c->get<std::string>();
      e.created_by = StringMember(h, "created_by");
      e.author = StringMember(h, "author");
      e.comment = StringMember(h, "comment");
      auto el = h.find("empty_layer");
      e.empty_layer = el != h.end() && el->is_boolean() && el->get<bool>();
      history.push_back(std::move(e));
    }
  }
  if (!history.empty()) {
    size_t layers = 0;
    for (const History& h : history) layers += h.empty_layer ? 0 : 1;
    if (layers != input.diff_ids.size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "image history names ", layers, " layers but the image has ", input.diff_ids.size()));
    }
  }
  for (const std::string& d : input.diff_ids) {
    if (!IsSha256Digest(d)) return absl::InvalidArgumentError(absl::StrCat("invalid diff id ", d));
  }

  std::optional<std::string> created = input.created;
  if (!created) {
    const std::string c = StringMember(base, "created");
    if (!c.empty()) created = c;
  }
  if (!created) {
    for (const History& h : history) {
      if (h.created) created = h.created;
    }
  }

  // ocispec.Image field order.
  ordered_json out = ordered_json::object();
  if (created) out["created"] = *created;
  if (const std::string a = StringMember(base, "author"); !a.empty()) out["author"] = a;
  const ordered_json platform_json = PlatformJson(platform);
  for (auto it = platform_json.begin(); it != platform_json.end(); ++it) out[it.key()] = *it;
  json config = json::object();
  if (input.config) {
    config = *input.config;
  } else if (auto it = base.find("config"); it != base.end() && !it->is_null()) {
    config = *it;
  }
  if (!config.is_object()) return absl::InvalidArgumentError("image \"config\" is not an object");
  out["config"] = RuntimeConfigJson(config);
  ordered_json rootfs = ordered_json::object();
  rootfs["type"] = "layers";
  rootfs["diff_ids"] = input.diff_ids;
  out["rootfs"] = std::move(rootfs);
  if (!history.empty()) {
    ordered_json h = ordered_json::array();
    for (const History& e : history) h.push_back(HistoryJson(e));
    out["history"] = std::move(h);
  }
  if (input.inline_cache) out["moby.buildkit.cache.v0"] = *input.inline_cache;
  return internal::GoJson(out);
}

absl::StatusOr<std::string> MakeManifest(const Descriptor& config,
                                         const std::vector<Descriptor>& layers, bool oci,
                                         const std::map<std::string, std::string>& annotations) {
  if (!oci && !annotations.empty()) {
    return absl::InvalidArgumentError(
        "manifest annotations need OCI media types (oci-mediatypes=true)");
  }
  ordered_json out = ordered_json::object();
  out["schemaVersion"] = 2;
  out["mediaType"] = ManifestMediaType(oci);
  out["config"] = DescriptorJson(config);
  ordered_json l = ordered_json::array();
  for (const Descriptor& d : layers) l.push_back(DescriptorJson(d));
  out["layers"] = std::move(l);
  if (!annotations.empty()) out["annotations"] = AnnotationsJson(annotations);
  return internal::GoJson(out);
}

absl::StatusOr<std::string> MakeIndex(const std::vector<Descriptor>& manifests, bool oci,
                                      const std::map<std::string, std::string>& annotations) {
  if (!oci && !annotations.empty()) {
    return absl::InvalidArgumentError(
        "index annotations need OCI media types (oci-mediatypes=true)");
  }
  ordered_json out = ordered_json::object();
  out["schemaVersion"] = 2;
  out["mediaType"] = IndexMediaType(oci);
  ordered_json m = ordered_json::array();
  for (const Descriptor& d : manifests) m.push_back(DescriptorJson(d));
  out["manifests"] = std::move(m);
  if (!annotations.empty()) out["annotations"] = AnnotationsJson(annotations);
  return internal::GoJson(out);
}

absl::StatusOr<Manifest> ParseManifest(std::string_view text) {
  KILN_ASSIGN_OR_RETURN(json j, ParseObject(text, "image manifest"));
  Manifest m;
  m.media_type = StringMember(j, "mediaType");
  auto config = j.find("config");
  if (config == j.end()) return absl::InvalidArgumentError("image manifest without a config");
  KILN_ASSIGN_OR_RETURN(m.config, ParseDescriptor(*config));
  if (auto it = j.find("layers"); it != j.end() && !it->is_null()) {
    if (!it->is_array()) return absl::InvalidArgumentError("manifest layers are not an array");
    for (const auto& l : *it) {
      KILN_ASSIGN_OR_RETURN(Descriptor d, ParseDescriptor(l));
      m.layers.push_back(std::move(d));
    }
  }
  KILN_RETURN_IF_ERROR(ParseAnnotations(j, m.annotations));
  return m;
}

absl::StatusOr<Index> ParseIndex(std::string_view text) {
  KILN_ASSIGN_OR_RETURN(json j, ParseObject(text, "image index"));
  Index index;
  index.media_type = StringMember(j, "mediaType");
  if (auto it = j.find("manifests"); it != j.end() && !it->is_null()) {
    if (!it->is_array()) return absl::InvalidArgumentError("index manifests are not an array");
    for (const auto& m : *it) {
      KILN_ASSIGN_OR_RETURN(Descriptor d, ParseDescriptor(m));
      index.manifests.push_back(std::move(d));
    }
  }
  KILN_RETURN_IF_ERROR(ParseAnnotations(j, index.annotations));
  return index;
}

}  // namespace kiln::image
