#pragma once
// Build progress as BuildKit's Status stream carries it. BuildProgress records one build's
// vertex updates and logs (as StatusResponse messages) and hands them to any number of Status
// streams, replaying what happened before a stream attached. ProgressRegistry finds a build's
// progress by its ref, whether Solve or Status arrives first. Thread-safe.

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "daemon/solver/types.h"
#include "proto/moby/buildkit/v1/control.pb.h"

namespace kiln::server {

class BuildProgress final : public solver::ProgressSink {
 public:
  void Started(const solver::Vertex& v) override;
  void Completed(const solver::Vertex& v, bool cached, const absl::Status& error) override;
  // A log chunk of a vertex; stream 1 = stdout, 2 = stderr.
  void Log(const solver::Vertex& v, int stream, std::string_view data) override;
  void Log(const std::string& vertex_digest, int stream, std::string_view data);
  void Status(const solver::Vertex& v, const std::string& id, int64_t current, int64_t total,
              bool done) override;
  void Warn(const solver::Vertex& v, const Warning& warning) override;
  // Ends the stream for every subscriber once they have read everything.
  void Close();

  // Events from `*cursor` on: moves them into `out`, advances the cursor. Returns false once
  // closed and fully read.
  bool Read(size_t* cursor, std::vector<moby::buildkit::v1::StatusResponse>* out);
  // Calls `fn` (outside the lock) whenever new events arrive or the progress closes.
  // Returns an id for Unsubscribe.
  int Subscribe(std::function<void()> fn);
  void Unsubscribe(int id);

  // Every vertex as last reported, for tests.
  std::map<std::string, moby::buildkit::v1::Vertex> Vertices() const;

 private:
  void Append(moby::buildkit::v1::StatusResponse r);
  moby::buildkit::v1::Vertex& VertexLocked(const solver::Vertex& v);

  mutable std::mutex mu_;
  std::vector<moby::buildkit::v1::StatusResponse> events_;      // guarded by mu_
  std::map<std::string, moby::buildkit::v1::Vertex> vertices_;  // guarded by mu_
  // Counters by vertex digest and id.
  std::map<std::pair<std::string, std::string>, moby::buildkit::v1::VertexStatus>
      statuses_;                                      // guarded by mu_
  std::map<int, std::function<void()>> subscribers_;  // guarded by mu_
  int next_id_ = 0;                                   // guarded by mu_
  bool closed_ = false;                               // guarded by mu_
};

class ProgressRegistry {
 public:
  // The progress of build `ref`, created on first use.
  std::shared_ptr<BuildProgress> Get(const std::string& ref);
  // Forgets `ref` (its progress lives on with whoever still holds it).
  void Remove(const std::string& ref);

 private:
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<BuildProgress>> builds_;  // guarded by mu_
};

}  // namespace kiln::server
