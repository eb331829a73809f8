#include "daemon/blobs/blobs.h"

#include <algorithm>
#include <atomic>
#include <thread>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "base/status.h"

namespace kiln::blobs {
namespace {

using json = nlohmann::json;

// A remembered blob of `record_id` under value `name` that is still in the store.
std::optional<Layer> Remembered(cache::MetadataStore& meta, const content::Store& store,
                                const std::string& record_id, const std::string& name) {
  auto value = meta.GetValue(ValueName(record_id, name));
  if (!value.ok() || !*value) return std::nullopt;
  try {
    const json j = json::parse(**value);
    Layer l;
    l.desc.digest = j.at("digest").get<std::string>();
    l.desc.size = j.at("size").get<int64_t>();
    l.desc.media_type = j.at("media_type").get<std::string>();
    l.diff_id = j.at("diff_id").get<std::string>();
    l.domain = j.value("domain", "");
    l.path = j.value("path", "");
    if (!store.Has(l.desc.digest)) return std::nullopt;
    return l;
  } catch (const json::exception&) {
    return std::nullopt;
  }
}

absl::StatusOr<Layer> LayerBlob(const Context& ctx, cache::MetadataStore& meta,
                                content::Store& content, const Options& o,
                                const std::string& record_id, const std::filesystem::path& dir) {
  const std::string want = CompressionName(o.compression);
  const std::string suffix =
      o.rewrite_epoch ? absl::StrCat("\nepoch=", *o.rewrite_epoch) : std::string();
  std::vector<std::string> candidates = {want + suffix};
  if (!o.force_compression && suffix.empty()) {
    for (auto c : {image::Compression::kGzip, image::Compression::kZstd,
                   image::Compression::kUncompressed}) {
      if (c == o.compression) continue;
      if (c == image::Compression::kZstd && !o.oci_media_types) continue;  // no Docker type
      candidates.push_back(CompressionName(c));
    }
  }
  for (const std::string& c : candidates) {
    if (auto l = Remembered(meta, content, record_id, c)) {
      KILN_ASSIGN_OR_RETURN(image::Compression comp,
                            image::ParseCompression(c.substr(0, c.find('\n'))));
      l->desc.media_type = image::LayerMediaType(comp, o.oci_media_types);
      return *l;
    }
  }
  image::LayerOptions lo{.compression = o.compression,
                         .level = o.level,
                         .oci_media_types = o.oci_media_types,
                         .rewrite_timestamp = o.rewrite_epoch};
  KILN_ASSIGN_OR_RETURN(image::LayerBlob b, image::WriteLayer(ctx, dir, lo, content));
  json j = {
      {"digest", b.digest}, {"size", b.size}, {"media_type", b.media_type}, {"diff_id", b.diff_id}};
  KILN_RETURN_IF_ERROR(meta.SetValue(ValueName(record_id, want + suffix), j.dump()));
  Layer l;
  l.desc.media_type = b.media_type;
  l.desc.digest = b.digest;
  l.desc.size = b.size;
  l.diff_id = b.diff_id;
  return l;
}

}  // namespace

const char* CompressionName(image::Compression c) {
  switch (c) {
    case image::Compression::kGzip:
      return "gzip";
    case image::Compression::kZstd:
      return "zstd";
    case image::Compression::kUncompressed:
      return "uncompressed";
  }
  return "gzip";
}

std::string ValueName(const std::string& record_id, const std::string& compression) {
  return absl::StrCat("layer-blob\n", record_id, "\n", compression);
}

absl::Status Remember(cache::MetadataStore& meta, const std::string& record_id,
                      const Layer& layer) {
  const std::string& mt = layer.desc.media_type;
  const char* compression = mt.ends_with("gzip")   ? "gzip"
                            : mt.ends_with("zstd") ? "zstd"
                                                   : "uncompressed";
  json j = {{"digest", layer.desc.digest},
            {"size", layer.desc.size},
            {"media_type", mt},
            {"diff_id", layer.diff_id}};
  if (!layer.domain.empty()) j["domain"] = layer.domain;
  if (!layer.path.empty()) j["path"] = layer.path;
  return meta.SetValue(ValueName(record_id, compression), j.dump());
}

absl::StatusOr<std::vector<Layer>> ForRef(const Context& ctx, cache::Manager& cache,
                                          content::Store& content, const cache::ImmutableRef& ref,
                                          const Options& options) {
  const std::vector<std::string>& ids = ref.stack();
  const std::vector<std::filesystem::path> dirs = ref.LayerPaths();
  if (ids.size() != dirs.size()) {
    return absl::InternalError("export: layer records and directories differ in number");
  }
  std::vector<absl::StatusOr<Layer>> results(ids.size(), absl::CancelledError("not exported"));
  const Context child = ctx.Child();
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i; (i = next.fetch_add(1)) < ids.size();) {
      if (!child.Check("export").ok()) return;
      results[i] = LayerBlob(child, cache.store(), content, options, ids[i], dirs[i]);
      if (!results[i].ok()) child.Cancel();
    }
  };
  const size_t threads =
      std::min<size_t>(ids.size(), std::max(1u, std::thread::hardware_concurrency()));
  {
    std::vector<std::jthread> pool;
    for (size_t t = 1; t < threads; ++t) pool.emplace_back(work);
    work();
  }
  std::vector<Layer> layers;
  absl::Status first_error;
  for (auto& r : results) {
    if (r.ok()) {
      layers.push_back(std::move(*r));
    } else if (first_error.ok() || absl::IsCancelled(first_error)) {
      first_error = r.status();  // a real error beats the cancellations it caused
    }
  }
  KILN_RETURN_IF_ERROR(ctx.Check("export"));
  KILN_RETURN_IF_ERROR(first_error);
  for (size_t i = 0; i < layers.size(); ++i) {
    KILN_ASSIGN_OR_RETURN(std::optional<cache::Record> rec, cache.store().Get(ids[i]));
    if (rec) layers[i].created_at_ns = rec->created_at_ns;
  }
  return layers;
}

}  // namespace kiln::blobs
