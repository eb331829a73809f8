#include "daemon/remotecache/export.h"

#include <map>
#include <set>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "daemon/ops/worker.h"

namespace kiln::remotecache {

absl::StatusOr<BuiltCache> BuildCache(const Context& ctx, cache::Manager& cache,
                                      content::Store& content, const solver::KeyRecorder& recorder,
                                      const std::string& root_key, bool max,
                                      const blobs::Options& blob_options) {
  const std::map<std::string, solver::KeyRecorder::Record> records = recorder.Records();
  if (!records.contains(root_key)) {
    return absl::FailedPreconditionError("cache export: the build's result has no cache key");
  }
  // The records the root depends on, inputs before their users.
  std::vector<std::string> order;
  std::set<std::string> seen;
  std::vector<std::pair<std::string, bool>> stack = {{root_key, false}};
  while (!stack.empty()) {
    auto [key, expanded] = stack.back();
    stack.pop_back();
    if (expanded) {
      order.push_back(key);
      continue;
    }
    if (!seen.insert(key).second) continue;
    stack.push_back({key, true});
    auto it = records.find(key);
    if (it == records.end()) continue;
    // Inputs read by content are not part of the key, but their vertices' records (and, in
    // mode=max, results) are what an importer needs to compute that content.
    for (const solver::KeyInput& in : it->second.inputs) {
      if (!in.key.empty() && !seen.contains(in.key)) stack.push_back({in.key, false});
    }
  }

  BuiltCache out;
  std::map<std::string, int> record_index;
  std::map<std::pair<std::string, int>, int> layer_index;  // (blob, parent) -> index
  std::map<std::string, int> content_index;                // content checksum -> record
  // The layers of one ref as a chain in out.config.layers; the top index (-1: empty).
  auto add_chain = [&](const cache::ImmutableRef& ref) -> absl::StatusOr<int> {
    KILN_ASSIGN_OR_RETURN(std::vector<blobs::Layer> layers,
                          blobs::ForRef(ctx, cache, content, ref, blob_options));
    int parent = -1;
    for (const blobs::Layer& l : layers) {
      auto [it, inserted] = layer_index.try_emplace({l.desc.digest, parent},
                                                    static_cast<int>(out.config.layers.size()));
      if (inserted) {
        out.config.layers.push_back({.blob = l.desc.digest,
                                     .parent = parent,
                                     .media_type = l.desc.media_type,
                                     .diff_id = l.diff_id,
                                     .size = l.desc.size,
                                     .created_at = FormatCreatedAt(l.created_at_ns)});
        out.layers.push_back(l);
      }
      parent = it->second;
    }
    return parent;
  };

  for (const std::string& key : order) {
    auto it = records.find(key);
    if (it == records.end()) continue;
    const solver::KeyRecorder::Record& rec = it->second;
    CacheRecord r{.digest = rec.op_digest};
    for (const solver::KeyInput& in : rec.inputs) {
      std::vector<CacheInput> alternatives;
      if (!in.content.empty()) {
        auto [c, inserted] =
            content_index.try_emplace(in.content, static_cast<int>(out.config.records.size()));
        if (inserted) out.config.records.push_back({.digest = in.content});
        alternatives.push_back({.selector = kContentSelector, .link = c->second});
      }
      // The input's own record: the key for plain inputs, the fast key's for content ones.
      if (auto link = record_index.find(in.key); link != record_index.end()) {
        alternatives.push_back(
            {.selector = in.index == 0 ? "" : absl::StrCat(kOutputSelectorPrefix, in.index),
             .link = link->second});
      } else if (in.content.empty()) {
        break;  // not recorded: this record cannot be keyed
      }
      r.inputs.push_back(std::move(alternatives));
    }
    if (r.inputs.size() != rec.inputs.size()) continue;
    // As BuildKit's exporter: results only for records with inputs. Sources (the build
    // context, pulled images, downloads) are not exported: the context may hold files no step
    // uses (a .env, a key), and images come from their own registry.
    if ((max && !rec.inputs.empty()) || key == root_key) {
      // The results: the solve's own, else this daemon's cache's (a cached vertex whose
      // result was not needed in this build).
      std::vector<std::optional<cache::ImmutableRef>> refs;
      for (const solver::ResultPtr& res : rec.results) {
        const cache::ImmutableRef* ref = ops::AsRef(res).ref();
        refs.push_back(ref ? std::optional<cache::ImmutableRef>(ref->Clone()) : std::nullopt);
      }
      if (refs.empty()) {
        KILN_ASSIGN_OR_RETURN(std::vector<cache::ImmutableRef> local, cache.LoadCacheKey(key));
        for (auto& ref : local) refs.push_back(std::move(ref));
      }
      std::vector<CacheResult> results;
      for (const auto& ref : refs) {
        // An empty tree has no layers to point at: such results are not exported.
        if (!ref || ref->stack().empty()) {
          results.clear();
          break;
        }
        KILN_ASSIGN_OR_RETURN(int top, add_chain(*ref));
        results.push_back(
            {.layer = top, .created_at = out.config.layers[static_cast<size_t>(top)].created_at});
      }
      if (results.size() == refs.size()) r.results = std::move(results);
    }
    record_index[key] = static_cast<int>(out.config.records.size());
    out.config.records.push_back(std::move(r));
  }
  return out;
}

absl::StatusOr<std::string> InlineCacheValue(const BuiltCache& built,
                                             const std::vector<std::string>& image_layers) {
  // Inline records index the image's layers, whose parents are implied (each the one below).
  if (built.config.layers.size() != image_layers.size()) {
    return absl::InternalError(absl::StrCat("inline cache: the result has ",
                                            built.config.layers.size(), " layers, the image ",
                                            image_layers.size()));
  }
  for (size_t i = 0; i < image_layers.size(); ++i) {
    const CacheLayer& l = built.config.layers[i];
    if (l.blob != image_layers[i] || l.parent != static_cast<int>(i) - 1) {
      return absl::InternalError(absl::StrCat("inline cache: layer ", i, " is ", l.blob,
                                              ", the image's ", image_layers[i]));
    }
  }
  return absl::Base64Escape(RecordsToJson(built.config.records));
}

}  // namespace kiln::remotecache
