#include "daemon/remotecache/remotecache.h"

#include <set>

#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "base/status.h"
#include "daemon/image/spec.h"
#include "daemon/ops/image_source.h"
#include "daemon/ops/worker.h"
#include "daemon/registry/reference.h"
#include "daemon/remotecache/export.h"

namespace kiln::remotecache {
namespace {

using json = nlohmann::json;
constexpr int64_t kMaxConfigBytes = 64 << 20;

absl::StatusOr<bool> ParseBool(const std::string& key, const std::string& value) {
  const std::string v = absl::AsciiStrToLower(value);
  if (v.empty() || v == "true" || v == "1" || v == "t") return true;
  if (v == "false" || v == "0" || v == "f") return false;
  return absl::InvalidArgumentError(
      absl::StrCat("cache option ", key, "=", value, ": want true or false"));
}

absl::StatusOr<registry::Reference> RefAttr(const Entry& entry) {
  auto it = entry.attrs.find("ref");
  if (it == entry.attrs.end() || it->second.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cache type=", entry.type, " needs ref=REGISTRY/REPOSITORY[:TAG]"));
  }
  return registry::ParseReference(it->second);
}

// The inline cache of an image: its config's records over the image's layers.
absl::StatusOr<CacheConfig> InlineConfig(const json& config, const registry::ParsedManifest& m) {
  auto cache = config.find("moby.buildkit.cache.v0");
  if (cache == config.end() || !cache->is_string()) {
    return absl::NotFoundError("the image has no inline cache (moby.buildkit.cache.v0)");
  }
  std::string records_json;
  if (!absl::Base64Unescape(cache->get<std::string>(), &records_json)) {
    return absl::InvalidArgumentError("the image's inline cache is not base64");
  }
  CacheConfig c;
  KILN_ASSIGN_OR_RETURN(c.records, ParseRecords(records_json));
  std::vector<std::string> diff_ids;
  std::vector<std::string> created;
  try {
    for (const auto& d : config.at("rootfs").at("diff_ids"))
      diff_ids.push_back(d.get<std::string>());
    if (auto h = config.find("history"); h != config.end() && h->is_array()) {
      for (const auto& e : *h) {
        if (e.value("empty_layer", false)) continue;
        created.push_back(e.value("created", ""));
      }
    }
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("image config: ", e.what()));
  }
  if (diff_ids.size() != m.layers.size()) {
    return absl::InvalidArgumentError("image config and manifest differ in layer count");
  }
  for (size_t i = 0; i < m.layers.size(); ++i) {
    c.layers.push_back({.blob = m.layers[i].digest,
                        .parent = static_cast<int>(i) - 1,
                        .media_type = m.layers[i].media_type,
                        .diff_id = diff_ids[i],
                        .size = m.layers[i].size,
                        .created_at = i < created.size() ? created[i] : ""});
  }
  return c;
}

}  // namespace

bool Importer::empty() const {
  std::lock_guard lock(mu_);
  return sources_.empty();
}

absl::Status Importer::Add(const Context& ctx, const Entry& entry) {
  if (entry.type != "registry") {
    return absl::UnimplementedError(
        absl::StrCat("cache import type=", entry.type, " is not supported by kilnd (registry is)"));
  }
  if (!deps_.registry) return absl::FailedPreconditionError("no registry client for cache import");
  KILN_ASSIGN_OR_RETURN(registry::Reference ref, RefAttr(entry));
  KILN_ASSIGN_OR_RETURN(registry::ResolveResult r, deps_.registry->Resolve(ctx, ref));
  KILN_ASSIGN_OR_RETURN(registry::ParsedManifest m,
                        registry::ParseManifest(r.manifest_bytes, r.manifest.media_type));
  if (!m.config) return absl::InvalidArgumentError(absl::StrCat(ref.String(), " has no config"));
  if (m.config->size > kMaxConfigBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("the cache config of ", ref.String(), " is too large"));
  }
  std::shared_ptr<registry::Registry> reg = deps_.registry;
  KILN_RETURN_IF_ERROR(
      reg->FetchBlob(ctx, registry::WithDigest(ref, m.config->digest), *m.config, *deps_.content));
  KILN_ASSIGN_OR_RETURN(std::string config_bytes,
                        deps_.content->Read(m.config->digest, kMaxConfigBytes));
  CacheConfig config;
  if (m.config->media_type == kCacheConfigMediaType) {
    KILN_ASSIGN_OR_RETURN(config, ParseCacheConfig(config_bytes));
    // The manifest's descriptors are authoritative for media types and sizes.
    std::map<std::string, const registry::Descriptor*> descs;
    for (const registry::Descriptor& d : m.layers) descs[d.digest] = &d;
    for (CacheLayer& l : config.layers) {
      auto it = descs.find(l.blob);
      if (it == descs.end()) continue;
      l.media_type = it->second->media_type;
      l.size = it->second->size;
      if (l.diff_id.empty()) {
        auto a = it->second->annotations.find(kAnnotationUncompressed);
        if (a != it->second->annotations.end()) l.diff_id = a->second;
      }
    }
  } else {
    json image;
    try {
      image = json::parse(config_bytes);
    } catch (const json::exception& e) {
      return absl::InvalidArgumentError(absl::StrCat("config of ", ref.String(), ": ", e.what()));
    }
    KILN_ASSIGN_OR_RETURN(config, InlineConfig(image, m));
  }
  auto source = std::make_shared<Source>();
  source->name = ref.FamiliarString();
  KILN_ASSIGN_OR_RETURN(source->index, IndexByKey(config));
  source->domain = ref.domain;
  source->path = ref.path;
  content::Store* store = deps_.content;
  source->fetch = [reg, ref, store](const Context& c, const image::Descriptor& d) {
    return reg->FetchBlob(
        c, registry::WithDigest(ref, d.digest),
        registry::Descriptor{.media_type = d.media_type, .digest = d.digest, .size = d.size},
        *store);
  };
  std::lock_guard lock(mu_);
  sources_.push_back(std::move(source));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<solver::ResultPtr>> Importer::Load(const Context& ctx,
                                                              const std::string& key) {
  std::vector<std::shared_ptr<const Source>> sources;
  {
    std::lock_guard lock(mu_);
    sources = sources_;
  }
  for (const auto& source : sources) {
    auto it = source->index.results.find(key);
    if (it == source->index.results.end()) continue;
    absl::StatusOr<std::vector<solver::ResultPtr>> r = Materialize(ctx, *source, key, it->second);
    if (r.ok()) return r;
    KILN_RETURN_IF_ERROR(ctx.Check("cache import"));
    if (warn_) {
      warn_(absl::StrCat("cache import from ", source->name, ": ", r.status().message(),
                         " (building this step instead)"));
    }
  }
  return std::vector<solver::ResultPtr>{};
}

absl::StatusOr<std::optional<solver::CacheStore::Alias>> Importer::LoadAlias(
    const Context&, const std::string& fast) {
  std::lock_guard lock(mu_);
  for (const auto& source : sources_) {
    auto it = source->index.aliases.find(fast);
    if (it != source->index.aliases.end()) return it->second;
  }
  return std::nullopt;
}

absl::StatusOr<std::vector<solver::ResultPtr>> Importer::Materialize(const Context& ctx,
                                                                     const Source& source,
                                                                     const std::string& key,
                                                                     const RemoteResults& results) {
  std::vector<cache::ImmutableRef> refs;
  for (const std::vector<RemoteLayer>& chain : results) {
    std::vector<ops::ChainLayer> layers;
    for (const RemoteLayer& l : chain) {
      if (l.diff_id.empty()) {
        return absl::DataLossError(absl::StrCat("layer ", l.desc.digest, " has no diff id"));
      }
      layers.push_back({.desc = l.desc,
                        .diff_id = l.diff_id,
                        .created_at_ns = l.created_at_ns,
                        .domain = source.domain,
                        .path = source.path});
    }
    KILN_ASSIGN_OR_RETURN(
        std::optional<cache::ImmutableRef> top,
        ops::ImportLayerChain(ctx, *deps_.cache, *deps_.content, layers, source.fetch,
                              absl::StrCat("cache layer from ", source.name)));
    if (!top) return absl::DataLossError("an imported result has no layers");
    refs.push_back(std::move(*top));
  }
  std::vector<const cache::ImmutableRef*> ptrs;
  for (const auto& r : refs) ptrs.push_back(&r);
  KILN_RETURN_IF_ERROR(deps_.cache->SaveCacheKey(key, ptrs));
  std::vector<solver::ResultPtr> out;
  for (auto& r : refs) out.push_back(std::make_shared<ops::RefResult>(std::move(r)));
  return out;
}

absl::StatusOr<std::map<std::string, std::string>> Export(const Context& ctx, const Deps& deps,
                                                          const solver::KeyRecorder& recorder,
                                                          const std::string& root_key,
                                                          const Entry& entry) {
  if (entry.type != "registry") {
    return absl::UnimplementedError(absl::StrCat(
        "cache export type=", entry.type, " is not supported by kilnd (registry and inline are)"));
  }
  if (!deps.registry) return absl::FailedPreconditionError("no registry client for cache export");
  KILN_ASSIGN_OR_RETURN(registry::Reference ref, RefAttr(entry));
  if (!ref.digest.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cache ref ", ref.String(), ": export needs a tag, not a digest"));
  }
  bool max = false;
  blobs::Options bo{.oci_media_types = true};
  for (const auto& [k, v] : entry.attrs) {
    if (k == "mode") {
      if (v != "min" && v != "max") {
        return absl::InvalidArgumentError(
            absl::StrCat("cache option mode=", v, ": want min or max"));
      }
      max = v == "max";
    } else if (k == "compression") {
      KILN_ASSIGN_OR_RETURN(bo.compression, image::ParseCompression(v));
    } else if (k == "compression-level") {
      int level = 0;
      if (!absl::SimpleAtoi(v, &level)) {
        return absl::InvalidArgumentError(absl::StrCat("compression-level=", v, ": not a number"));
      }
      bo.level = level;
    } else if (k == "force-compression") {
      KILN_ASSIGN_OR_RETURN(bo.force_compression, ParseBool(k, v));
    } else if (k == "oci-mediatypes") {
      KILN_ASSIGN_OR_RETURN(bool oci, ParseBool(k, v));
      if (!oci) {
        return absl::InvalidArgumentError(
            "cache option oci-mediatypes=false is not supported by kilnd (its cache manifest is "
            "an OCI image manifest)");
      }
    } else if (k == "image-manifest") {
      KILN_ASSIGN_OR_RETURN(bool m, ParseBool(k, v));
      if (!m) {
        return absl::InvalidArgumentError(
            "cache option image-manifest=false is not supported by kilnd (it writes the cache "
            "as an image manifest, BuildKit's default)");
      }
    }
  }
  KILN_ASSIGN_OR_RETURN(BuiltCache built,
                        BuildCache(ctx, *deps.cache, *deps.content, recorder, root_key, max, bo));
  if (built.config.layers.empty()) return std::map<std::string, std::string>{};
  std::vector<image::Descriptor> layer_descs;
  for (const blobs::Layer& l : built.layers) {
    std::optional<std::string> mount;
    if (l.domain == ref.domain && !l.path.empty() && l.path != ref.path) mount = l.path;
    KILN_RETURN_IF_ERROR(Annotate(
        deps.registry->PushBlob(
            ctx, ref,
            registry::Descriptor{
                .media_type = l.desc.media_type, .digest = l.desc.digest, .size = l.desc.size},
            *deps.content, mount),
        absl::StrCat("push cache layer ", l.desc.digest, " to ", ref.Name())));
    image::Descriptor d = l.desc;
    d.annotations[kAnnotationUncompressed] = l.diff_id;
    if (l.created_at_ns > 0) d.annotations[kAnnotationCreatedAt] = FormatCreatedAt(l.created_at_ns);
    layer_descs.push_back(std::move(d));
  }
  const std::string config_bytes = ToJson(built.config);
  const image::Descriptor config = image::DescriptorOf(kCacheConfigMediaType, config_bytes);
  KILN_RETURN_IF_ERROR(deps.content->Put(config_bytes, config.digest).status());
  KILN_RETURN_IF_ERROR(Annotate(
      deps.registry->PushBlob(
          ctx, ref,
          registry::Descriptor{
              .media_type = config.media_type, .digest = config.digest, .size = config.size},
          *deps.content),
      absl::StrCat("push cache config to ", ref.Name())));
  KILN_ASSIGN_OR_RETURN(std::string manifest, image::MakeManifest(config, layer_descs, true));
  KILN_ASSIGN_OR_RETURN(
      std::string digest,
      deps.registry->PushManifest(ctx, ref, image::ManifestMediaType(true), manifest));
  json desc = {
      {"mediaType", image::ManifestMediaType(true)}, {"digest", digest}, {"size", manifest.size()}};
  return std::map<std::string, std::string>{{"cache.manifest", desc.dump()}};
}

absl::StatusOr<std::string> InlineCacheForImage(const Context& ctx, const Deps& deps,
                                                const solver::KeyRecorder& recorder,
                                                const std::string& root_key,
                                                const std::vector<std::string>& image_layers,
                                                const blobs::Options& blob_options) {
  KILN_ASSIGN_OR_RETURN(BuiltCache built, BuildCache(ctx, *deps.cache, *deps.content, recorder,
                                                     root_key, false, blob_options));
  return InlineCacheValue(built, image_layers);
}

absl::StatusOr<Requested> FromRequest(const std::vector<Entry>& imports,
                                      const std::vector<Entry>& exports,
                                      const std::map<std::string, std::string>& frontend_attrs) {
  Requested out{.imports = imports, .exports = exports};
  // The Dockerfile frontend's own options, as buildx and BuildKit pass them.
  if (auto it = frontend_attrs.find("cache-imports");
      it != frontend_attrs.end() && !it->second.empty()) {
    try {
      for (const auto& e : json::parse(it->second)) {
        Entry entry{.type = e.value("Type", "")};
        if (auto a = e.find("Attrs"); a != e.end() && a->is_object()) {
          for (const auto& [k, v] : a->items()) entry.attrs[k] = v.get<std::string>();
        }
        out.imports.push_back(std::move(entry));
      }
    } catch (const json::exception& e) {
      return absl::InvalidArgumentError(absl::StrCat("frontend option cache-imports: ", e.what()));
    }
  }
  if (auto it = frontend_attrs.find("cache-from"); it != frontend_attrs.end()) {
    for (absl::string_view ref : absl::StrSplit(it->second, ',', absl::SkipWhitespace())) {
      out.imports.push_back(
          {.type = "registry", .attrs = {{"ref", std::string(absl::StripAsciiWhitespace(ref))}}});
    }
  }
  if (auto it = frontend_attrs.find("build-arg:BUILDKIT_INLINE_CACHE");
      it != frontend_attrs.end()) {
    absl::StatusOr<bool> on = ParseBool("BUILDKIT_INLINE_CACHE", it->second);
    if (on.ok() && *on) out.exports.push_back({.type = "inline"});
  }
  // One of each import; one inline export.
  std::set<std::pair<std::string, std::map<std::string, std::string>>> seen;
  std::vector<Entry> unique;
  for (Entry& e : out.imports) {
    if (seen.insert({e.type, e.attrs}).second) unique.push_back(std::move(e));
  }
  out.imports = std::move(unique);
  bool inline_seen = false;
  std::vector<Entry> exports_unique;
  for (Entry& e : out.exports) {
    if (e.type == "inline") {
      if (inline_seen) continue;
      inline_seen = true;
    }
    exports_unique.push_back(std::move(e));
  }
  out.exports = std::move(exports_unique);
  return out;
}

}  // namespace kiln::remotecache
