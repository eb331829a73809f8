#include "daemon/remotecache/remotecache.h"

#include <set>

#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "base/digest.h"
#include "base/status.h"
#include "daemon/image/spec.h"
#include "daemon/ops/image_source.h"
#include "daemon/ops/worker.h"
#include "daemon/registry/reference.h"
#include "daemon/remotecache/export.h"
#include "daemon/session/content.h"

namespace kiln::remotecache {
namespace {

using json = nlohmann::json;
constexpr int64_t kMaxConfigBytes = 64 << 20;
// BuildKit's store id of a type=local cache directory on the client.
constexpr char kLocalStorePrefix[] = "local:";

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
absl::StatusOr<CacheConfig> InlineConfig(const json& config,
                                         const std::vector<registry::Descriptor>& layers) {
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
  if (diff_ids.size() != layers.size()) {
    return absl::InvalidArgumentError("image config and manifest differ in layer count");
  }
  for (size_t i = 0; i < layers.size(); ++i) {
    c.layers.push_back({.blob = layers[i].digest,
                        .parent = static_cast<int>(i) - 1,
                        .media_type = layers[i].media_type,
                        .diff_id = diff_ids[i],
                        .size = layers[i].size,
                        .created_at = i < created.size() ? created[i] : ""});
  }
  return c;
}

// Reads a config blob whole, from wherever the manifest came from.
using ReadBlobFn = std::function<absl::StatusOr<std::string>(const registry::Descriptor&)>;

// The cache config manifest `m` (from `name`) describes: a cache manifest (an image manifest
// whose config is the cache config), a cache index (BuildKit's image-manifest=false: the
// config is one of its entries, the layers are the others), or an image with inline cache.
absl::StatusOr<CacheConfig> ConfigOfManifest(const std::string& name,
                                             const registry::ParsedManifest& m,
                                             const ReadBlobFn& read) {
  std::optional<registry::Descriptor> config_desc = m.config;
  std::vector<registry::Descriptor> layers = m.layers;
  if (m.IsIndex()) {
    for (const registry::Descriptor& d : m.manifests) {
      if (d.media_type == kCacheConfigMediaType) {
        config_desc = d;
      } else {
        layers.push_back(d);
      }
    }
  }
  if (!config_desc) return absl::InvalidArgumentError(absl::StrCat(name, " has no cache config"));
  if (config_desc->size > kMaxConfigBytes) {
    return absl::InvalidArgumentError(absl::StrCat("the cache config of ", name, " is too large"));
  }
  KILN_ASSIGN_OR_RETURN(std::string config_bytes, read(*config_desc));
  if (config_desc->media_type != kCacheConfigMediaType) {
    json image;
    try {
      image = json::parse(config_bytes);
    } catch (const json::exception& e) {
      return absl::InvalidArgumentError(absl::StrCat("config of ", name, ": ", e.what()));
    }
    return InlineConfig(image, layers);
  }
  KILN_ASSIGN_OR_RETURN(CacheConfig config, ParseCacheConfig(config_bytes));
  // The manifest's descriptors are authoritative for media types and sizes.
  std::map<std::string, const registry::Descriptor*> descs;
  for (const registry::Descriptor& d : layers) descs[d.digest] = &d;
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
  return config;
}

// Copies blob `d` from the client's store into this daemon's, resuming a partial copy and
// verifying the digest before the blob becomes visible.
absl::Status FetchFromClient(const Context& ctx, const session::ClientContentStore& from,
                             const image::Descriptor& d, content::Store& to) {
  if (!IsSha256Digest(d.digest)) {
    return absl::InvalidArgumentError(absl::StrCat("invalid digest \"", d.digest, "\""));
  }
  if (to.Has(d.digest)) return absl::OkStatus();
  auto opened = to.OpenWriter(ctx, absl::StrCat("fetch-", d.digest), d.digest, d.size);
  if (absl::IsAlreadyExists(opened.status())) return absl::OkStatus();
  KILN_RETURN_IF_ERROR(opened.status());
  std::unique_ptr<content::Writer> writer = *std::move(opened);
  const int64_t limit = d.size > 0 ? d.size - writer->offset() : INT64_MAX;
  absl::Status st = from.Read(ctx, d.digest, writer->offset(), limit,
                              [&writer](std::string_view chunk) { return writer->Write(chunk); });
  if (st.ok()) st = writer->Commit();
  if (st.ok()) return st;
  // A cancelled copy keeps its partial data for the next attempt; a failed one leaves nothing.
  if (ctx.Cancelled()) return ctx.Check("fetch blob");
  writer->Abort();
  return Annotate(st, absl::StrCat("blob ", d.digest, " from ", from.store_id()));
}

// Where a cache export goes: a registry repository or a directory on the client. Each
// callback writes from this daemon's content store.
struct CacheTarget {
  std::function<absl::Status(const Context&, const blobs::Layer&)> layer;
  std::function<absl::Status(const Context&, const image::Descriptor&, const std::string& bytes)>
      config;
  // Returns the manifest's digest.
  std::function<absl::StatusOr<std::string>(const Context&, const std::string& manifest)> manifest;
};

absl::StatusOr<CacheTarget> RegistryTarget(const Deps& deps, const Entry& entry) {
  if (!deps.registry) return absl::FailedPreconditionError("no registry client for cache export");
  KILN_ASSIGN_OR_RETURN(registry::Reference ref, RefAttr(entry));
  if (!ref.digest.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cache ref ", ref.String(), ": export needs a tag, not a digest"));
  }
  std::shared_ptr<registry::Registry> reg = deps.registry;
  content::Store* content = deps.content;
  auto push = [reg, ref, content](const Context& ctx, const image::Descriptor& d,
                                  std::optional<std::string> mount) {
    return reg->PushBlob(
        ctx, ref,
        registry::Descriptor{.media_type = d.media_type, .digest = d.digest, .size = d.size},
        *content, std::move(mount));
  };
  return CacheTarget{
      .layer =
          [push, ref](const Context& ctx, const blobs::Layer& l) {
            std::optional<std::string> mount;
            if (l.domain == ref.domain && !l.path.empty() && l.path != ref.path) mount = l.path;
            return Annotate(push(ctx, l.desc, mount),
                            absl::StrCat("push cache layer ", l.desc.digest, " to ", ref.Name()));
          },
      .config =
          [push, ref, content](const Context& ctx, const image::Descriptor& d,
                               const std::string& bytes) {
            KILN_RETURN_IF_ERROR(content->Put(bytes, d.digest).status());
            return Annotate(push(ctx, d, std::nullopt),
                            absl::StrCat("push cache config to ", ref.Name()));
          },
      .manifest =
          [reg, ref](const Context& ctx, const std::string& manifest) {
            return reg->PushManifest(ctx, ref, image::ManifestMediaType(true), manifest);
          }};
}

absl::StatusOr<CacheTarget> LocalTarget(const Deps& deps, const Entry& entry) {
  auto dest = entry.attrs.find("dest");
  if (dest == entry.attrs.end() || dest->second.empty()) {
    return absl::InvalidArgumentError("cache type=local needs dest=DIR");
  }
  if (!deps.session) {
    return absl::FailedPreconditionError("cache type=local needs the client's session");
  }
  auto store = std::make_shared<session::ClientContentStore>(
      deps.session, absl::StrCat(kLocalStorePrefix, dest->second));
  content::Store* content = deps.content;
  auto write = [store](const Context& ctx, const image::Descriptor& d, const std::string& bytes) {
    return store->WriteBlob(ctx, d.digest, bytes);
  };
  return CacheTarget{
      .layer =
          [store, content](const Context& ctx, const blobs::Layer& l) {
            KILN_ASSIGN_OR_RETURN(std::filesystem::path path, content->BlobPath(l.desc.digest));
            return Annotate(store->WriteFile(ctx, l.desc.digest, l.desc.size, path),
                            absl::StrCat("write cache layer ", l.desc.digest));
          },
      .config = write,
      .manifest = [write](const Context& ctx,
                          const std::string& manifest) -> absl::StatusOr<std::string> {
        const image::Descriptor d = image::DescriptorOf(image::ManifestMediaType(true), manifest);
        KILN_RETURN_IF_ERROR(write(ctx, d, manifest));
        return d.digest;
      }};
}

}  // namespace

bool Importer::empty() const {
  std::lock_guard lock(mu_);
  return sources_.empty();
}

absl::Status Importer::Add(const Context& ctx, const Entry& entry) {
  if (entry.type == "registry") return AddRegistry(ctx, entry);
  if (entry.type == "local") return AddLocal(ctx, entry);
  return absl::UnimplementedError(absl::StrCat(
      "cache import type=", entry.type, " is not supported by kilnd (registry and local are)"));
}

absl::Status Importer::AddRegistry(const Context& ctx, const Entry& entry) {
  if (!deps_.registry) return absl::FailedPreconditionError("no registry client for cache import");
  KILN_ASSIGN_OR_RETURN(registry::Reference ref, RefAttr(entry));
  KILN_ASSIGN_OR_RETURN(registry::ResolveResult r, deps_.registry->Resolve(ctx, ref));
  KILN_ASSIGN_OR_RETURN(registry::ParsedManifest m,
                        registry::ParseManifest(r.manifest_bytes, r.manifest.media_type));
  std::shared_ptr<registry::Registry> reg = deps_.registry;
  content::Store* store = deps_.content;
  KILN_ASSIGN_OR_RETURN(
      CacheConfig config,
      ConfigOfManifest(ref.String(), m,
                       [&](const registry::Descriptor& d) -> absl::StatusOr<std::string> {
                         KILN_RETURN_IF_ERROR(
                             reg->FetchBlob(ctx, registry::WithDigest(ref, d.digest), d, *store));
                         return store->Read(d.digest, kMaxConfigBytes);
                       }));
  return AddSource(
      ref.FamiliarString(), config,
      [reg, ref, store](const Context& c, const image::Descriptor& d) {
        return reg->FetchBlob(
            c, registry::WithDigest(ref, d.digest),
            registry::Descriptor{.media_type = d.media_type, .digest = d.digest, .size = d.size},
            *store);
      },
      ref.domain, ref.path);
}

absl::Status Importer::AddLocal(const Context& ctx, const Entry& entry) {
  auto src = entry.attrs.find("src");
  if (src == entry.attrs.end() || src->second.empty()) {
    return absl::InvalidArgumentError("cache type=local needs src=DIR");
  }
  auto digest = entry.attrs.find("digest");
  if (digest == entry.attrs.end() || digest->second.empty()) {
    return absl::InvalidArgumentError(
        "cache type=local needs digest= (clients read it from DIR/index.json)");
  }
  if (!deps_.session) {
    return absl::FailedPreconditionError("cache type=local needs the client's session");
  }
  auto from = std::make_shared<session::ClientContentStore>(
      deps_.session, absl::StrCat(kLocalStorePrefix, src->second));
  KILN_ASSIGN_OR_RETURN(std::string manifest_bytes,
                        from->ReadBlob(ctx, digest->second, kMaxConfigBytes));
  KILN_ASSIGN_OR_RETURN(registry::ParsedManifest m, registry::ParseManifest(manifest_bytes, ""));
  const std::string name = absl::StrCat("local cache ", src->second);
  KILN_ASSIGN_OR_RETURN(CacheConfig config,
                        ConfigOfManifest(name, m, [&](const registry::Descriptor& d) {
                          return from->ReadBlob(ctx, d.digest, kMaxConfigBytes);
                        }));
  content::Store* to = deps_.content;
  return AddSource(
      name, config,
      [from, to](const Context& c, const image::Descriptor& d) {
        return FetchFromClient(c, *from, d, *to);
      },
      "", "");
}

absl::Status Importer::AddSource(std::string name, const CacheConfig& config, FetchFn fetch,
                                 std::string domain, std::string path) {
  KILN_ASSIGN_OR_RETURN(Index index, IndexByKey(config));
  auto source = std::make_shared<Source>(Source{.name = std::move(name),
                                                .index = std::move(index),
                                                .fetch = std::move(fetch),
                                                .domain = std::move(domain),
                                                .path = std::move(path)});
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
  CacheTarget target;
  if (entry.type == "registry") {
    KILN_ASSIGN_OR_RETURN(target, RegistryTarget(deps, entry));
  } else if (entry.type == "local") {
    KILN_ASSIGN_OR_RETURN(target, LocalTarget(deps, entry));
  } else {
    return absl::UnimplementedError(
        absl::StrCat("cache export type=", entry.type,
                     " is not supported by kilnd (registry, local and inline are)"));
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
    KILN_RETURN_IF_ERROR(target.layer(ctx, l));
    image::Descriptor d = l.desc;
    d.annotations[kAnnotationUncompressed] = l.diff_id;
    if (l.created_at_ns > 0) d.annotations[kAnnotationCreatedAt] = FormatCreatedAt(l.created_at_ns);
    layer_descs.push_back(std::move(d));
  }
  const std::string config_bytes = ToJson(built.config);
  const image::Descriptor config = image::DescriptorOf(kCacheConfigMediaType, config_bytes);
  KILN_RETURN_IF_ERROR(target.config(ctx, config, config_bytes));
  KILN_ASSIGN_OR_RETURN(std::string manifest, image::MakeManifest(config, layer_descs, true));
  KILN_ASSIGN_OR_RETURN(std::string digest, target.manifest(ctx, manifest));
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
