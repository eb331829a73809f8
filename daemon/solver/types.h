#pragma once
// The solver's generic vocabulary, in the spirit of BuildKit's solver/types.go: vertices and
// edges of a build graph, the Op each vertex runs, cache maps, and results. Nothing here knows
// LLB op kinds, snapshots or containers: those live in daemon/ops/ and plug in through Op.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "base/context.h"

namespace kiln::solver {

// The output of an op: owned by the worker side (a snapshot ref, a blob...). Immutable and
// shared: several vertices and jobs may hold the same result. Thread-safe.
class Result {
 public:
  virtual ~Result() = default;
  // Stable id of the stored data (e.g. a snapshot id): what a cache record points at.
  virtual std::string id() const = 0;
};
using ResultPtr = std::shared_ptr<const Result>;

// How one input contributes to a vertex's cache key.
struct CacheDep {
  // Empty: the input contributes its cache key. Otherwise it contributes, instead, a checksum
  // of its result's content computed by this function (e.g. of a COPY's source paths).
  std::function<absl::StatusOr<std::string>(const Context&, const ResultPtr&)> content_digest;
};

struct CacheMap {
  std::string digest;          // the op's own identity, non-semantic fields dropped
  std::vector<CacheDep> deps;  // one per input, or empty for "key only" on every input
};

class ProgressSink;
struct Vertex;

// What a vertex does. One instance per vertex per job; GetCacheMap runs before Exec, and an
// Op may keep state between the two (a source op syncs in GetCacheMap and returns the synced
// tree from Exec). Must be safe to call from any pool thread (never concurrently on one op).
class Op {
 public:
  virtual ~Op() = default;
  [[nodiscard]] virtual absl::StatusOr<CacheMap> GetCacheMap(const Context& ctx) = 0;
  // Runs the op on its inputs' results; returns one result per output.
  [[nodiscard]] virtual absl::StatusOr<std::vector<ResultPtr>> Exec(
      const Context& ctx, const std::vector<ResultPtr>& inputs) = 0;

  // Set by the solver before GetCacheMap: where the Report* calls go.
  void AttachProgress(ProgressSink* sink, const Vertex* vertex) {
    sink_ = sink;
    vertex_ = vertex;
  }

 protected:
  // Marks the vertex started now, for ops that do visible work while computing their cache
  // map (a local source transferring its context).
  void ReportStarted() const;
  // Output of the running op: stream 1 = stdout, 2 = stderr.
  void ReportLog(int stream, std::string_view data) const;
  // A named counter (e.g. "transferring context:" in bytes); total 0 = unknown.
  void ReportStatus(const std::string& id, int64_t current, int64_t total, bool done) const;

 private:
  ProgressSink* sink_ = nullptr;
  const Vertex* vertex_ = nullptr;
};

// An edge selects one output of a vertex.
struct Edge {
  std::shared_ptr<Vertex> vertex;
  int index = 0;
};

struct Vertex {
  std::string digest;  // identity within the graph (an LLB op digest)
  std::string name;    // shown in progress
  std::vector<Edge> inputs;
  std::shared_ptr<Op> op;
  bool ignore_cache = false;  // run even when a cached result exists (--no-cache)
};

// Persistent cache: results recorded under cache keys. Implementations are thread-safe.
class CacheStore {
 public:
  virtual ~CacheStore() = default;
  // The results recorded for `key`, or an empty vector when there is no usable record.
  [[nodiscard]] virtual absl::StatusOr<std::vector<ResultPtr>> Load(const Context& ctx,
                                                                    const std::string& key) = 0;
  [[nodiscard]] virtual absl::Status Save(const std::string& key,
                                          const std::vector<ResultPtr>& results) = 0;

  // A vertex with inputs read by content has two keys, as in BuildKit: the "fast" one from its
  // inputs' keys, known before any input is computed, and its cache key from their contents.
  // An alias remembers, for a fast key, the cache key and the content checksums (one per
  // input, "" for inputs used by key), so a later solve (or another daemon, through an
  // imported cache) finds the vertex without computing its inputs.
  struct Alias {
    std::string key;
    std::vector<std::string> contents;
  };
  [[nodiscard]] virtual absl::StatusOr<std::optional<Alias>> LoadAlias(const Context& ctx,
                                                                       const std::string& fast) {
    return std::nullopt;
  }
  [[nodiscard]] virtual absl::Status SaveAlias(const std::string& fast, const Alias& alias) {
    return absl::OkStatus();
  }
};

// One input of a cache key: another vertex's key and output, or a checksum of its content.
struct KeyInput {
  std::string key;      // the input vertex's cache key
  int index = 0;        // which output of it
  std::string content;  // non-empty: the input contributes this content checksum instead
};

// The cache key of a vertex from its op's cache map digest and its inputs, in input order.
// The solver keys every vertex this way; cache import recomputes keys with it.
std::string ComposeCacheKey(const std::string& op_digest, const std::vector<KeyInput>& inputs);

// What a solve learned about each vertex it keyed: the parts of its key and, once loaded or
// computed, its results. Cache export reads it. Thread-safe.
class KeyRecorder {
 public:
  struct Record {
    std::string key;
    std::string op_digest;
    std::vector<KeyInput> inputs;
    std::vector<ResultPtr> results;  // empty until the vertex's outputs were needed
    std::string name;                // the vertex's name, for messages
  };
  void RecordKey(Record record);
  void RecordResults(const std::string& key, const std::vector<ResultPtr>& results);
  // Every record, by key.
  std::map<std::string, Record> Records() const;
  // The key of the vertex output that produced `result` (pointer identity), if recorded.
  std::optional<std::pair<std::string, int>> KeyOfResult(const ResultPtr& result) const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, Record> records_;  // guarded by mu_
};

// Progress of vertices as BuildKit's Status stream reports them. Thread-safe.
class ProgressSink {
 public:
  virtual ~ProgressSink() = default;
  virtual void Started(const Vertex& v) = 0;
  virtual void Completed(const Vertex& v, bool cached, const absl::Status& error) = 0;
  virtual void Log(const Vertex& v, int stream, std::string_view data) {}
  virtual void Status(const Vertex& v, const std::string& id, int64_t current, int64_t total,
                      bool done) {}
  // A warning about the build (BuildKit's VertexWarning), e.g. from the Dockerfile frontend.
  struct Warning {
    int level = 1;
    std::string short_message;
    std::vector<std::string> detail;
    std::string url;
    std::string filename;  // source file, its text and a 1-based line, when tied to one
    std::string source;
    int line = 0;
  };
  virtual void Warn(const Vertex& v, const Warning& warning) {}
};

inline void Op::ReportStarted() const {
  if (sink_ != nullptr) sink_->Started(*vertex_);
}
inline void Op::ReportLog(int stream, std::string_view data) const {
  if (sink_ != nullptr) sink_->Log(*vertex_, stream, data);
}
inline void Op::ReportStatus(const std::string& id, int64_t current, int64_t total,
                             bool done) const {
  if (sink_ != nullptr) sink_->Status(*vertex_, id, current, total, done);
}

}  // namespace kiln::solver
