#include "daemon/ops/image_source.h"

#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/digest.h"
#include "base/status.h"
#include "daemon/blobs/blobs.h"
#include "daemon/image/layer.h"
#include "daemon/registry/reference.h"
#include "daemon/util/logging.h"

namespace kiln::ops {
namespace {

using json = nlohmann::json;
constexpr char kScheme[] = "docker-image://";
constexpr int64_t kMaxConfigBytes = 8 << 20;

std::string PlatformKey(const std::optional<llb::Platform>& p) {
  if (!p) return "host";
  return absl::StrCat(p->os, "/", p->architecture, p->variant.empty() ? "" : "/", p->variant);
}

// Where the last remote resolution of a reference is remembered (for resolvemode=local).
std::string ResolutionHead(const registry::Reference& ref, const std::optional<llb::Platform>& p) {
  return absl::StrCat("image-resolve\n", ref.String(), "\n", PlatformKey(p));
}

// OCI chain ids: the identity of a layer together with everything below it.
std::string ChainId(const std::string& parent_chain, const std::string& diff_id) {
  return parent_chain.empty() ? diff_id : Sha256Digest(absl::StrCat(parent_chain, " ", diff_id));
}

absl::StatusOr<ResolvedImage> FromStore(content::Store& store, const std::string& ref,
                                        const std::string& root_digest,
                                        const std::string& manifest_digest) {
  ResolvedImage out{.ref = ref, .digest = root_digest, .manifest_digest = manifest_digest};
  KILN_ASSIGN_OR_RETURN(out.manifest, store.Read(manifest_digest, kMaxConfigBytes));
  KILN_ASSIGN_OR_RETURN(registry::ParsedManifest m, registry::ParseManifest(out.manifest, ""));
  if (!m.config) {
    return absl::InvalidArgumentError(
        absl::StrCat("manifest ", manifest_digest, " of ", ref, " is not an image manifest"));
  }
  KILN_ASSIGN_OR_RETURN(out.config, store.Read(m.config->digest, kMaxConfigBytes));
  return out;
}

}  // namespace

absl::StatusOr<ImageSourceAttrs> ParseImageSource(
    const std::string& identifier, const google::protobuf::Map<std::string, std::string>& attrs,
    const std::optional<llb::Platform>& platform) {
  if (!absl::StartsWith(identifier, kScheme)) {
    return absl::InvalidArgumentError(absl::StrCat("not an image source: ", identifier));
  }
  ImageSourceAttrs out;
  out.ref = identifier.substr(std::string_view(kScheme).size());
  out.platform = platform;
  for (const auto& [k, v] : attrs) {
    if (k == "image.resolvemode") {
      if (v != "default" && v != "pull" && v != "local") {
        return absl::InvalidArgumentError(
            absl::StrCat("image.resolvemode ", v, ": want default, pull or local"));
      }
      out.resolve_mode = v;
    } else if (k == "image.layerlimit") {
      int n = 0;
      if (!absl::SimpleAtoi(v, &n) || n < 0) {
        return absl::InvalidArgumentError(absl::StrCat("image.layerlimit ", v, ": not a count"));
      }
      out.layer_limit = n;
    }
  }
  KILN_RETURN_IF_ERROR(registry::ParseReference(out.ref).status());
  return out;
}

absl::StatusOr<ResolvedImage> ResolveImage(const Context& ctx, const Worker& worker,
                                           const ImageSourceAttrs& attrs) {
  if (worker.content == nullptr || worker.cache == nullptr) {
    return absl::FailedPreconditionError("this kilnd has no content store for images");
  }
  KILN_ASSIGN_OR_RETURN(registry::Reference ref, registry::ParseReference(attrs.ref));
  content::Store& store = *worker.content;
  cache::MetadataStore& meta = worker.cache->store();
  const std::string head = ResolutionHead(ref, attrs.platform);

  if (attrs.resolve_mode == "local") {
    KILN_ASSIGN_OR_RETURN(std::optional<std::string> known, meta.GetValue(head));
    if (!known) {
      return absl::NotFoundError(
          absl::StrCat("image ", ref.FamiliarString(),
                       " was never pulled by this kilnd (image.resolvemode=local does not pull)"));
    }
    std::vector<std::string> parts = absl::StrSplit(*known, ' ');
    if (parts.size() != 2) return absl::DataLossError("corrupt image resolution record");
    return FromStore(store, ref.String(), parts[0], parts[1]);
  }
  // A digest pins the content: when it is all here already, no request is needed.
  if (attrs.resolve_mode != "pull" && !ref.digest.empty()) {
    if (auto known = meta.GetValue(head); known.ok() && *known) {
      std::vector<std::string> parts = absl::StrSplit(**known, ' ');
      if (parts.size() == 2 && parts[0] == ref.digest) {
        auto local = FromStore(store, ref.String(), parts[0], parts[1]);
        if (local.ok()) return local;
      }
    }
  }
  if (!worker.registry) {
    return absl::FailedPreconditionError("this kilnd has no registry client for images");
  }
  KILN_ASSIGN_OR_RETURN(registry::ResolveResult r,
                        worker.registry->Resolve(ctx, ref, attrs.platform));
  KILN_RETURN_IF_ERROR(store.Put(r.manifest_bytes, r.manifest.digest).status());
  if (!r.index_bytes.empty())
    KILN_RETURN_IF_ERROR(store.Put(r.index_bytes, r.root.digest).status());
  KILN_ASSIGN_OR_RETURN(registry::ParsedManifest m,
                        registry::ParseManifest(r.manifest_bytes, r.manifest.media_type));
  if (!m.config) {
    return absl::InvalidArgumentError(
        absl::StrCat(ref.FamiliarString(), " does not name an image manifest"));
  }
  KILN_RETURN_IF_ERROR(worker.registry->FetchBlob(ctx, registry::WithDigest(ref, m.config->digest),
                                                  *m.config, store));
  KILN_RETURN_IF_ERROR(meta.SetValue(head, absl::StrCat(r.root.digest, " ", r.manifest.digest)));
  return FromStore(store, ref.String(), r.root.digest, r.manifest.digest);
}

absl::StatusOr<std::optional<cache::ImmutableRef>> ImportLayerChain(
    const Context& ctx, cache::Manager& cache, content::Store& content,
    const std::vector<ChainLayer>& layers, const FetchBlobFn& fetch,
    const std::string& description) {
  std::optional<cache::ImmutableRef> top;
  std::string chain;
  for (const ChainLayer& layer : layers) {
    chain = ChainId(chain, layer.diff_id);
    const std::string key = absl::StrCat("image-layer\n", chain);
    KILN_ASSIGN_OR_RETURN(std::vector<cache::ImmutableRef> known, cache.LoadCacheKey(key));
    if (!known.empty()) {  // the chain id covers every layer below: any such record will do
      top = std::move(known[0]);
      continue;
    }
    KILN_RETURN_IF_ERROR(ctx.Check("pull"));
    if (!content.Has(layer.desc.digest)) KILN_RETURN_IF_ERROR(fetch(ctx, layer.desc));
    KILN_ASSIGN_OR_RETURN(std::filesystem::path blob, content.BlobPath(layer.desc.digest));
    KILN_ASSIGN_OR_RETURN(
        cache::ImmutableRef unpacked,
        cache.ImportLayer(
            top ? &*top : nullptr,
            [&](const std::filesystem::path& dir) -> absl::Status {
              KILN_ASSIGN_OR_RETURN(image::UnpackResult u,
                                    image::UnpackLayer(ctx, blob, layer.desc.media_type, dir,
                                                       {.expected_digest = layer.desc.digest}));
              if (u.diff_id != layer.diff_id) {
                return absl::DataLossError(absl::StrCat("layer ", layer.desc.digest, " unpacks to ",
                                                        u.diff_id, ", its config says ",
                                                        layer.diff_id));
              }
              return absl::OkStatus();
            },
            cache::kTypeRegular, absl::StrCat(description, " ", layer.desc.digest),
            layer.created_at_ns));
    KILN_RETURN_IF_ERROR(cache.SaveCacheKey(key, {&unpacked}));
    // Exports re-use the original blob for this layer (and may ask the registry to mount it).
    KILN_RETURN_IF_ERROR(blobs::Remember(cache.store(), unpacked.id(),
                                         {.desc = layer.desc,
                                          .diff_id = layer.diff_id,
                                          .domain = layer.domain,
                                          .path = layer.path}));
    top = std::move(unpacked);
  }
  return top;
}

absl::StatusOr<solver::CacheMap> ImageSourceOp::GetCacheMap(const Context& ctx) {
  KILN_ASSIGN_OR_RETURN(ResolvedImage r, ResolveImage(ctx, worker_, attrs_));
  resolved_ = std::move(r);
  return solver::CacheMap{.digest = Sha256Digest(absl::StrCat(
                              "docker-image\n", resolved_->manifest_digest, "\n",
                              attrs_.layer_limit ? std::to_string(*attrs_.layer_limit) : "all"))};
}

absl::StatusOr<std::vector<solver::ResultPtr>> ImageSourceOp::Exec(
    const Context& ctx, const std::vector<solver::ResultPtr>&) {
  KILN_RELEASE_ASSERT(resolved_.has_value());  // GetCacheMap runs first
  KILN_ASSIGN_OR_RETURN(registry::Reference ref, registry::ParseReference(resolved_->ref));
  KILN_ASSIGN_OR_RETURN(registry::ParsedManifest m,
                        registry::ParseManifest(resolved_->manifest, ""));
  std::vector<std::string> diff_ids;
  try {
    const json config = json::parse(resolved_->config);
    for (const auto& d : config.at("rootfs").at("diff_ids")) {
      diff_ids.push_back(d.get<std::string>());
    }
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("image config of ", ref.FamiliarString(), ": ", e.what()));
  }
  if (diff_ids.size() != m.layers.size()) {
    return absl::InvalidArgumentError(absl::StrCat("image ", ref.FamiliarString(), " has ",
                                                   m.layers.size(), " layers but its config lists ",
                                                   diff_ids.size(), " diff ids"));
  }
  size_t n = m.layers.size();
  if (attrs_.layer_limit) n = std::min(n, static_cast<size_t>(*attrs_.layer_limit));

  std::vector<ChainLayer> chain;
  for (size_t i = 0; i < n; ++i) {
    const registry::Descriptor& layer = m.layers[i];
    chain.push_back(
        {.desc = {.media_type = layer.media_type, .digest = layer.digest, .size = layer.size},
         .diff_id = diff_ids[i],
         .domain = ref.domain,
         .path = ref.path});
  }
  auto fetch = [&](const Context& c, const image::Descriptor& d) -> absl::Status {
    if (!worker_.registry) return absl::FailedPreconditionError("no registry client for images");
    const registry::Descriptor rd{.media_type = d.media_type, .digest = d.digest, .size = d.size};
    ReportStatus(absl::StrCat("pulling ", d.digest), 0, d.size, false);
    KILN_RETURN_IF_ERROR(
        worker_.registry->FetchBlob(c, registry::WithDigest(ref, d.digest), rd, *worker_.content));
    ReportStatus(absl::StrCat("pulling ", d.digest), d.size, d.size, true);
    return absl::OkStatus();
  };
  KILN_ASSIGN_OR_RETURN(std::optional<cache::ImmutableRef> top,
                        ImportLayerChain(ctx, *worker_.cache, *worker_.content, chain, fetch,
                                         absl::StrCat("pulled layer of ", ref.Name())));
  return std::vector<solver::ResultPtr>{std::make_shared<RefResult>(std::move(top))};
}

}  // namespace kiln::ops
