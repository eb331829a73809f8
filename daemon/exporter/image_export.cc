#include "daemon/exporter/image_export.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <optional>
#include <string_view>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "base/status.h"
#include "daemon/blobs/blobs.h"
#include "daemon/image/archive.h"
#include "daemon/image/layer.h"
#include "daemon/image/spec.h"
#include "daemon/registry/reference.h"
#include "daemon/session/filesync.h"
#include "llb/platform.h"

namespace kiln::exporter {

namespace internal {
namespace {

using json = nlohmann::json;

constexpr char kExporterIdHeader[] = "buildkit-attachable-exporter-id";
constexpr char kDefaultPath[] = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

absl::StatusOr<bool> ParseBool(const std::string& key, const std::string& value) {
  const std::string v = absl::AsciiStrToLower(value);
  if (v.empty() || v == "true" || v == "1" || v == "t") return true;
  if (v == "false" || v == "0" || v == "f") return false;
  return absl::InvalidArgumentError(
      absl::StrCat("exporter option ", key, "=", value, ": want true or false"));
}

struct ImageOptions {
  std::vector<std::string> names;
  bool push = false;
  bool insecure = false;
  image::Compression compression = image::Compression::kGzip;
  std::optional<int> level;
  bool force_compression = false;
  bool oci = false;
  bool rewrite_timestamp = false;
  std::optional<int64_t> epoch;
  std::string config;  // containerimage.config
};

absl::StatusOr<ImageOptions> ParseOptions(const ExportRequest& request,
                                          const std::map<std::string, std::string>& frontend) {
  ImageOptions o;
  // BuildKit's default at its default compatibility version: OCI media types for the oci
  // exporter, Docker's for image and docker.
  std::optional<bool> oci;
  std::string epoch_text;
  if (auto it = frontend.find("build-arg:SOURCE_DATE_EPOCH"); it != frontend.end()) {
    epoch_text = it->second;
  }
  // The frontend's result metadata (BuildKit's exptypes.ExporterImageConfigKey); an exporter
  // attribute of the same name wins.
  if (auto it = frontend.find("containerimage.config"); it != frontend.end()) o.config = it->second;
  for (const auto& [k, v] : request.attrs) {
    if (k == "name") {
      for (absl::string_view n : absl::StrSplit(v, ',', absl::SkipWhitespace())) {
        absl::string_view stripped = absl::StripAsciiWhitespace(n);
        o.names.emplace_back(stripped.data(), stripped.size());
      }
    } else if (k == "push") {
      KILN_ASSIGN_OR_RETURN(o.push, ParseBool(k, v));
    } else if (k == "registry.insecure") {
      KILN_ASSIGN_OR_RETURN(o.insecure, ParseBool(k, v));
    } else if (k == "compression") {
      KILN_ASSIGN_OR_RETURN(o.compression, image::ParseCompression(v));
    } else if (k == "compression-level") {
      int level = 0;
      if (!absl::SimpleAtoi(v, &level)) {
        return absl::InvalidArgumentError(absl::StrCat("compression-level=", v, ": not a number"));
      }
      o.level = level;
    } else if (k == "force-compression") {
      KILN_ASSIGN_OR_RETURN(o.force_compression, ParseBool(k, v));
    } else if (k == "oci-mediatypes") {
      KILN_ASSIGN_OR_RETURN(bool b, ParseBool(k, v));
      oci = b;
    } else if (k == "rewrite-timestamp") {
      KILN_ASSIGN_OR_RETURN(o.rewrite_timestamp, ParseBool(k, v));
    } else if (k == "source-date-epoch") {
      epoch_text = v;
    } else if (k == "containerimage.config") {
      o.config = v;
    }
  }
  if (!epoch_text.empty()) {
    int64_t e = 0;
    if (!absl::SimpleAtoi(epoch_text, &e) || e < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("SOURCE_DATE_EPOCH=", epoch_text, ": want a Unix time in seconds"));
    }
    o.epoch = e;
  }
  o.oci = oci.value_or(request.type == "oci");
  if (o.compression == image::Compression::kZstd && !o.oci) {
    if (oci.has_value()) {
      return absl::InvalidArgumentError(
          "exporter option \"compression=zstd\" conflicts with \"oci-mediatypes=false\"");
    }
    o.oci = true;  // zstd only has OCI media types
  }
  if (o.push && request.type != "image") {
    return absl::InvalidArgumentError(
        absl::StrCat("exporter ", request.type, " cannot push (use type=image)"));
  }
  if (o.push && o.names.empty()) {
    return absl::InvalidArgumentError("push=true needs an image name (name=REGISTRY/REPO:TAG)");
  }
  return o;
}

using Layer = blobs::Layer;

std::optional<image::History> HistoryFromJson(const json& h) {
  if (!h.is_object()) return std::nullopt;
  image::History out;
  if (h.contains("created") && h["created"].is_string())
    out.created = h["created"].get<std::string>();
  out.created_by = h.value("created_by", "");
  out.author = h.value("author", "");
  out.comment = h.value("comment", "");
  out.empty_layer = h.value("empty_layer", false);
  return out;
}

// The history for `layers`: the base config's when its non-empty entries cover the bottom
// layers, with one entry per remaining layer. As BuildKit's exporter: an entry without a time
// takes its layer's creation time (so an unchanged, cached build gives the same image), an
// empty-layer entry the time of the entry before it (or the first new layer's); times are
// clamped to the epoch.
std::vector<image::History> MakeHistory(const json& base, const std::vector<Layer>& layers,
                                        const std::optional<std::string>& epoch) {
  std::vector<image::History> out;
  size_t non_empty = 0;
  if (base.is_object() && base.contains("history") && base["history"].is_array()) {
    for (const json& h : base["history"]) {
      auto e = HistoryFromJson(h);
      if (!e) continue;
      if (!e->empty_layer) ++non_empty;
      out.push_back(std::move(*e));
    }
  }
  if (non_empty > layers.size()) {
    out.clear();
    non_empty = 0;
  }
  auto layer_time = [&](size_t i) {
    const int64_t ns = layers[i].created_at_ns;
    return image::FormatTime(ns / 1000000000, static_cast<int32_t>(ns % 1000000000));
  };
  for (size_t i = non_empty; i < layers.size(); ++i) {
    out.push_back(
        {.created = layer_time(i), .created_by = "kiln", .comment = "buildkit.exporter.image.v0"});
  }
  size_t layer = 0;
  for (auto& h : out) {
    if ((!h.created || h.created->empty()) && !h.empty_layer && layer < layers.size()) {
      h.created = layer_time(layer);
    }
    if (!h.empty_layer) ++layer;
  }
  // Entries still without a time: the first new layer's time before it, the previous after.
  std::optional<std::string> fill;
  for (const auto& h : out) {
    if (h.created && !h.created->empty())
      fill = h.created;
    else if (fill)
      break;
  }
  for (auto& h : out) {
    if (h.created && !h.created->empty()) {
      fill = h.created;
    } else if (fill) {
      h.created = fill;
    }
  }
  if (epoch) {
    for (auto& h : out) {
      // RFC 3339 UTC times of the same form compare as strings; others are replaced.
      if (!h.created || h.created->empty() || h.created->back() != 'Z' || *h.created > *epoch) {
        h.created = *epoch;
      }
    }
  }
  return out;
}

struct Built {
  image::Descriptor manifest;
  std::string manifest_bytes;
  image::Descriptor config;
  std::vector<Layer> layers;
};

absl::StatusOr<Built> BuildImage(const Context& ctx, const ExportDeps& deps,
                                 const cache::ImmutableRef* result, const ImageOptions& o) {
  Built out;
  const blobs::Options blob_options{.compression = o.compression,
                                    .level = o.level,
                                    .force_compression = o.force_compression,
                                    .oci_media_types = o.oci,
                                    .rewrite_epoch = o.rewrite_timestamp ? o.epoch : std::nullopt};
  if (result != nullptr) {
    KILN_ASSIGN_OR_RETURN(out.layers,
                          blobs::ForRef(ctx, *deps.cache, *deps.content, *result, blob_options));
  }
  json base = json::object();
  if (!o.config.empty()) {
    try {
      base = json::parse(o.config);
    } catch (const json::exception& e) {
      return absl::InvalidArgumentError(absl::StrCat("containerimage.config: ", e.what()));
    }
    if (!base.is_object())
      return absl::InvalidArgumentError("containerimage.config: not a JSON object");
  }
  const std::optional<std::string> epoch =
      o.epoch ? std::optional<std::string>(image::FormatTime(*o.epoch)) : std::nullopt;
  image::ConfigInput in;
  in.base = o.config;
  if (o.config.empty() || !base.contains("architecture") || !base.contains("os")) {
    in.platform = llb::HostPlatform();
  }
  if (o.config.empty()) in.config = json{{"Env", json::array({kDefaultPath})}};
  for (const Layer& l : out.layers) in.diff_ids.push_back(l.diff_id);
  in.history = MakeHistory(base, out.layers, epoch);
  // The image's time is its last history entry's (BuildKit's); with no history, now.
  std::string created;
  for (const image::History& h : *in.history) {
    if (h.created && !h.created->empty()) created = *h.created;
  }
  if (epoch) {
    created = *epoch;
  } else if (created.empty()) {
    auto now = std::chrono::system_clock::now().time_since_epoch();
    auto secs = std::chrono::duration_cast<std::chrono::seconds>(now);
    auto nanos = std::chrono::duration_cast<std::chrono::nanoseconds>(now - secs);
    created = image::FormatTime(secs.count(), static_cast<int32_t>(nanos.count()));
  }
  in.created = created;
  if (deps.inline_cache) {
    std::vector<std::string> digests;
    for (const Layer& l : out.layers) digests.push_back(l.desc.digest);
    KILN_ASSIGN_OR_RETURN(in.inline_cache, deps.inline_cache(ctx, digests, blob_options));
  }
  KILN_ASSIGN_OR_RETURN(std::string config, image::MakeImageConfig(in));
  out.config = image::DescriptorOf(image::ConfigMediaType(o.oci), config);
  KILN_RETURN_IF_ERROR(deps.content->Put(config, out.config.digest).status());
  std::vector<image::Descriptor> layer_descs;
  for (const Layer& l : out.layers) layer_descs.push_back(l.desc);
  KILN_ASSIGN_OR_RETURN(out.manifest_bytes, image::MakeManifest(out.config, layer_descs, o.oci));
  out.manifest = image::DescriptorOf(image::ManifestMediaType(o.oci), out.manifest_bytes);
  KILN_RETURN_IF_ERROR(deps.content->Put(out.manifest_bytes, out.manifest.digest).status());
  return out;
}

registry::Descriptor ToRegistry(const image::Descriptor& d) {
  return registry::Descriptor{.media_type = d.media_type, .digest = d.digest, .size = d.size};
}

absl::Status Push(const Context& ctx, const ExportDeps& deps, const ImageOptions& o,
                  const Built& image) {
  std::vector<registry::Reference> refs;
  std::vector<std::string> domains;
  for (const std::string& name : o.names) {
    KILN_ASSIGN_OR_RETURN(registry::Reference ref, registry::ParseReference(name));
    if (!ref.digest.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot push to ", name, ": the name has a digest"));
    }
    domains.push_back(ref.domain);
    refs.push_back(std::move(ref));
  }
  std::shared_ptr<registry::Registry> reg = deps.registry;
  if (o.insecure && deps.insecure_registry) reg = deps.insecure_registry(domains);
  if (!reg) return absl::FailedPreconditionError("this kilnd has no registry client to push with");
  for (const registry::Reference& ref : refs) {
    for (const Layer& l : image.layers) {
      std::optional<std::string> mount;
      if (l.domain == ref.domain && !l.path.empty() && l.path != ref.path) mount = l.path;
      KILN_RETURN_IF_ERROR(
          Annotate(reg->PushBlob(ctx, ref, ToRegistry(l.desc), *deps.content, mount),
                   absl::StrCat("push layer ", l.desc.digest, " to ", ref.Name())));
    }
    KILN_RETURN_IF_ERROR(Annotate(reg->PushBlob(ctx, ref, ToRegistry(image.config), *deps.content),
                                  absl::StrCat("push config to ", ref.Name())));
    KILN_ASSIGN_OR_RETURN(std::string digest, reg->PushManifest(ctx, ref, image.manifest.media_type,
                                                                image.manifest_bytes));
    if (digest != image.manifest.digest) {
      return absl::DataLossError(absl::StrCat("registry stored the manifest of ", ref.String(),
                                              " as ", digest, ", expected ",
                                              image.manifest.digest));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::map<std::string, std::string>> ExportImage(const Context& ctx,
                                                               const ExportDeps& deps,
                                                               const cache::ImmutableRef* result,
                                                               const ExportRequest& request) {
  if (deps.content == nullptr || deps.cache == nullptr) {
    return absl::FailedPreconditionError("this kilnd has no content store for images");
  }
  KILN_ASSIGN_OR_RETURN(ImageOptions o, ParseOptions(request, deps.frontend_attrs));
  KILN_ASSIGN_OR_RETURN(Built image, BuildImage(ctx, deps, result, o));
  if (request.type == "image") {
    if (o.push) KILN_RETURN_IF_ERROR(Push(ctx, deps, o, image));
  } else {
    if (deps.session == nullptr) return absl::FailedPreconditionError("no session to export to");
    std::multimap<std::string, std::string> md = {{kExporterIdHeader, std::to_string(request.id)}};
    image::ArchiveOptions ao{.root = image.manifest, .names = o.names};
    const bool docker = request.type == "docker";
    KILN_RETURN_IF_ERROR(
        session::SendBytesToClient(ctx, *deps.session, md, [&](const session::ByteWriter& write) {
          return docker ? image::WriteDockerArchiveTo(ctx, *deps.content, ao, write)
                        : image::WriteOciArchiveTo(ctx, *deps.content, ao, write);
        }));
  }
  std::map<std::string, std::string> resp;
  resp["containerimage.digest"] = image.manifest.digest;
  resp["containerimage.config.digest"] = image.config.digest;
  resp["containerimage.descriptor"] =
      absl::Base64Escape(image::DescriptorJson(image.manifest).dump());
  if (!o.names.empty()) resp["image.name"] = absl::StrJoin(o.names, ",");
  return resp;
}

}  // namespace internal
}  // namespace kiln::exporter
