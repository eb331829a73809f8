#include "daemon/remotecache/config.h"

#include <functional>
#include <set>

#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "base/status.h"
#include "daemon/solver/types.h"

namespace kiln::remotecache {
namespace {

using json = nlohmann::ordered_json;

json LayerJson(const CacheLayer& l) {
  json j;
  j["blob"] = l.blob;
  if (l.parent != 0) j["parent"] = l.parent;  // Go's omitempty drops a 0
  json a = json::object();
  if (!l.media_type.empty()) a["mediaType"] = l.media_type;
  if (!l.diff_id.empty()) a["diffID"] = l.diff_id;
  if (l.size != 0) a["size"] = l.size;
  a["createdAt"] = l.created_at.empty() ? "0001-01-01T00:00:00Z" : l.created_at;
  j["annotations"] = a;
  return j;
}

json RecordJson(const CacheRecord& r) {
  json j = json::object();
  if (!r.results.empty()) {
    json a = json::array();
    for (const CacheResult& res : r.results) {
      a.push_back(
          {{"layer", res.layer},
           {"createdAt", res.created_at.empty() ? "0001-01-01T00:00:00Z" : res.created_at}});
    }
    j["layers"] = a;
  }
  if (!r.chained.empty()) {
    json a = json::array();
    for (const ChainedResult& c : r.chained) {
      a.push_back({{"layers", c.layers},
                   {"createdAt", c.created_at.empty() ? "0001-01-01T00:00:00Z" : c.created_at}});
    }
    j["chains"] = a;
  }
  if (!r.digest.empty()) j["digest"] = r.digest;
  if (!r.inputs.empty()) {
    json ins = json::array();
    for (const auto& alternatives : r.inputs) {
      json alt = json::array();
      for (const CacheInput& in : alternatives) {
        json e = json::object();
        if (!in.selector.empty()) e["selector"] = in.selector;
        e["link"] = in.link;
        alt.push_back(e);
      }
      ins.push_back(alt);
    }
    j["inputs"] = ins;
  }
  return j;
}

template <typename T>
T Get(const json& j, const char* key, T fallback) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  return it->get<T>();
}

absl::StatusOr<CacheRecord> ParseRecord(const json& j) {
  CacheRecord r;
  r.digest = Get<std::string>(j, "digest", "");
  if (auto it = j.find("layers"); it != j.end() && it->is_array()) {
    for (const json& e : *it) {
      r.results.push_back(
          {.layer = Get<int>(e, "layer", 0), .created_at = Get<std::string>(e, "createdAt", "")});
    }
  }
  if (auto it = j.find("chains"); it != j.end() && it->is_array()) {
    for (const json& e : *it) {
      r.chained.push_back({.layers = Get<std::vector<int>>(e, "layers", {}),
                           .created_at = Get<std::string>(e, "createdAt", "")});
    }
  }
  if (auto it = j.find("inputs"); it != j.end() && it->is_array()) {
    for (const json& alternatives : *it) {
      std::vector<CacheInput> alt;
      if (alternatives.is_array()) {
        for (const json& e : alternatives) {
          alt.push_back(
              {.selector = Get<std::string>(e, "selector", ""), .link = Get<int>(e, "link", 0)});
        }
      }
      r.inputs.push_back(std::move(alt));
    }
  }
  return r;
}

absl::StatusOr<std::vector<CacheRecord>> ParseRecordArray(const json& j) {
  std::vector<CacheRecord> out;
  if (j.is_null()) return out;
  if (!j.is_array()) return absl::InvalidArgumentError("cache config: records is not an array");
  for (const json& e : j) {
    KILN_ASSIGN_OR_RETURN(CacheRecord r, ParseRecord(e));
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace

std::string FormatCreatedAt(int64_t unix_ns) {
  if (unix_ns <= 0) return "";
  return image::FormatTime(unix_ns / 1000000000, static_cast<int32_t>(unix_ns % 1000000000));
}

int64_t ParseCreatedAt(const std::string& text) {
  absl::Time t;
  std::string err;
  if (text.empty() || !absl::ParseTime(absl::RFC3339_full, text, &t, &err)) return 0;
  const int64_t ns = absl::ToUnixNanos(t);
  return ns > 0 ? ns : 0;
}

std::string ToJson(const CacheConfig& config) {
  json j = json::object();
  if (!config.layers.empty()) {
    json layers = json::array();
    for (const CacheLayer& l : config.layers) layers.push_back(LayerJson(l));
    j["layers"] = layers;
  }
  if (!config.records.empty()) {
    json records = json::array();
    for (const CacheRecord& r : config.records) records.push_back(RecordJson(r));
    j["records"] = records;
  }
  return j.dump();
}

std::string RecordsToJson(const std::vector<CacheRecord>& records) {
  json a = json::array();
  for (const CacheRecord& r : records) a.push_back(RecordJson(r));
  return a.dump();
}

absl::StatusOr<CacheConfig> ParseCacheConfig(std::string_view text) {
  try {
    const json j = json::parse(text);
    if (!j.is_object()) return absl::InvalidArgumentError("cache config: not a JSON object");
    CacheConfig c;
    if (auto it = j.find("layers"); it != j.end() && it->is_array()) {
      for (const json& e : *it) {
        CacheLayer l;
        l.blob = Get<std::string>(e, "blob", "");
        l.parent = Get<int>(e, "parent", 0);
        if (auto a = e.find("annotations"); a != e.end() && a->is_object()) {
          l.media_type = Get<std::string>(*a, "mediaType", "");
          l.diff_id = Get<std::string>(*a, "diffID", "");
          l.size = Get<int64_t>(*a, "size", 0);
          l.created_at = Get<std::string>(*a, "createdAt", "");
        }
        c.layers.push_back(std::move(l));
      }
    }
    if (auto it = j.find("records"); it != j.end()) {
      KILN_ASSIGN_OR_RETURN(c.records, ParseRecordArray(*it));
    }
    return c;
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("cache config: ", e.what()));
  }
}

absl::StatusOr<std::vector<CacheRecord>> ParseRecords(std::string_view text) {
  try {
    return ParseRecordArray(json::parse(text));
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("inline cache records: ", e.what()));
  }
}

absl::StatusOr<Index> IndexByKey(const CacheConfig& config) {
  const size_t n = config.records.size();
  // The layer chain ending at `top`, bottom first; empty when an index is bad or loops.
  auto chain = [&](int top) {
    std::vector<RemoteLayer> out;
    std::set<int> seen;
    for (int i = top; i != -1;) {
      if (i < 0 || static_cast<size_t>(i) >= config.layers.size() || !seen.insert(i).second) {
        return std::vector<RemoteLayer>{};
      }
      const CacheLayer& l = config.layers[static_cast<size_t>(i)];
      out.push_back({.desc = {.media_type = l.media_type, .digest = l.blob, .size = l.size},
                     .diff_id = l.diff_id,
                     .created_at_ns = ParseCreatedAt(l.created_at)});
      i = l.parent;
    }
    std::reverse(out.begin(), out.end());
    return out;
  };
  auto results_of = [&](const CacheRecord& r) {
    RemoteResults res;
    for (const CacheResult& c : r.results) {
      std::vector<RemoteLayer> layers = chain(c.layer);
      if (layers.empty()) return RemoteResults{};
      res.push_back(std::move(layers));
    }
    for (const ChainedResult& c : r.chained) {
      std::vector<RemoteLayer> layers;
      for (int i : c.layers) {
        std::vector<RemoteLayer> one = chain(i);
        if (one.empty()) return RemoteResults{};
        layers.push_back(one.back());
      }
      res.push_back(std::move(layers));
    }
    return res;
  };
  auto linked = [&](const CacheInput& in) -> const CacheRecord* {
    if (in.link < 0 || static_cast<size_t>(in.link) >= n) return nullptr;
    return &config.records[static_cast<size_t>(in.link)];
  };
  auto output_of = [](const CacheInput& in) -> std::optional<int> {
    if (in.selector.empty()) return 0;
    int index = 0;
    if (absl::StartsWith(in.selector, kOutputSelectorPrefix) &&
        absl::SimpleAtoi(in.selector.substr(sizeof(kOutputSelectorPrefix) - 1), &index)) {
      return index;
    }
    return std::nullopt;  // a selector kiln does not write (e.g. BuildKit's paths)
  };

  // Each record's cache key (content links where given) and fast key (links by key only, for
  // records with content links), depth first.
  struct Keys {
    std::string key, fast;
    std::vector<std::string> contents;
  };
  std::vector<std::optional<Keys>> keys(n);
  std::vector<bool> visiting(n, false);
  std::function<std::optional<Keys>(size_t)> keys_of = [&](size_t i) -> std::optional<Keys> {
    if (keys[i]) return keys[i];
    if (visiting[i]) return std::nullopt;  // a cycle
    visiting[i] = true;
    const CacheRecord& r = config.records[i];
    std::vector<solver::KeyInput> slow, fast;
    bool has_content = false, ok = true;
    for (const auto& alternatives : r.inputs) {
      std::optional<solver::KeyInput> by_content, by_key;
      for (const CacheInput& in : alternatives) {
        const CacheRecord* l = linked(in);
        if (l == nullptr) continue;
        if (in.selector == kContentSelector) {
          if (!by_content) by_content = solver::KeyInput{.content = l->digest};
          continue;
        }
        std::optional<int> index = output_of(in);
        if (!index || by_key) continue;
        std::optional<Keys> k = keys_of(static_cast<size_t>(in.link));
        if (k) by_key = solver::KeyInput{.key = k->key, .index = *index};
      }
      if (by_content) {
        has_content = true;
        slow.push_back(*by_content);
      } else if (by_key) {
        slow.push_back(*by_key);
      } else {
        ok = false;
      }
      if (by_key) {
        fast.push_back(*by_key);
      } else {
        fast.clear();
      }
    }
    visiting[i] = false;
    if (!ok) return std::nullopt;
    Keys k{.key = solver::ComposeCacheKey(r.digest, slow)};
    if (has_content && fast.size() == slow.size()) {
      k.fast = solver::ComposeCacheKey(r.digest, fast);
      for (const solver::KeyInput& in : slow) k.contents.push_back(in.content);
    }
    keys[i] = k;
    return k;
  };

  Index index;
  for (size_t i = 0; i < n; ++i) {
    std::optional<Keys> k = keys_of(i);
    if (!k) continue;
    if (!k->fast.empty()) {
      index.aliases.emplace(k->fast,
                            solver::CacheStore::Alias{.key = k->key, .contents = k->contents});
    }
    RemoteResults res = results_of(config.records[i]);
    if (!res.empty()) index.results.emplace(k->key, std::move(res));
  }
  return index;
}

}  // namespace kiln::remotecache
