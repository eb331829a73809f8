#include "daemon/server/progress.h"

#include <chrono>

namespace kiln::server {
namespace v1 = moby::buildkit::v1;
namespace {

void Now(google::protobuf::Timestamp* ts) {
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                std::chrono::system_clock::now().time_since_epoch())
                .count();
  ts->set_seconds(ns / 1'000'000'000);
  ts->set_nanos(static_cast<int32_t>(ns % 1'000'000'000));
}

}  // namespace

v1::Vertex& BuildProgress::VertexLocked(const solver::Vertex& v) {
  auto [it, inserted] = vertices_.try_emplace(v.digest);
  if (inserted) {
    it->second.set_digest(v.digest);
    it->second.set_name(v.name);
    for (const solver::Edge& e : v.inputs) it->second.add_inputs(e.vertex->digest);
  }
  return it->second;
}

void BuildProgress::Started(const solver::Vertex& v) {
  v1::StatusResponse r;
  {
    std::lock_guard lock(mu_);
    v1::Vertex& x = VertexLocked(v);
    if (!x.has_started()) Now(x.mutable_started());
    *r.add_vertexes() = x;
  }
  Append(std::move(r));
}

void BuildProgress::Completed(const solver::Vertex& v, bool cached, const absl::Status& error) {
  v1::StatusResponse r;
  {
    std::lock_guard lock(mu_);
    v1::Vertex& x = VertexLocked(v);
    if (x.has_completed()) return;  // first outcome wins
    if (!x.has_started()) Now(x.mutable_started());
    Now(x.mutable_completed());
    x.set_cached(cached);
    if (!error.ok()) x.set_error(std::string(error.message()));
    *r.add_vertexes() = x;
  }
  Append(std::move(r));
}

void BuildProgress::Log(const solver::Vertex& v, int stream, std::string_view data) {
  Log(v.digest, stream, data);
}

void BuildProgress::Status(const solver::Vertex& v, const std::string& id, int64_t current,
                           int64_t total, bool done) {
  v1::StatusResponse r;
  {
    std::lock_guard lock(mu_);
    v1::VertexStatus& s = statuses_[{v.digest, id}];
    if (s.has_completed()) return;
    s.set_id(id);
    s.set_vertex(v.digest);
    s.set_current(current);
    s.set_total(total);
    Now(s.mutable_timestamp());
    if (!s.has_started()) *s.mutable_started() = s.timestamp();
    if (done) *s.mutable_completed() = s.timestamp();
    *r.add_statuses() = s;
  }
  Append(std::move(r));
}

void BuildProgress::Log(const std::string& vertex_digest, int stream, std::string_view data) {
  v1::StatusResponse r;
  v1::VertexLog* log = r.add_logs();
  log->set_vertex(vertex_digest);
  log->set_stream(stream);
  log->set_msg(std::string(data));
  Now(log->mutable_timestamp());
  Append(std::move(r));
}

void BuildProgress::Warn(const solver::Vertex& v, const Warning& warning) {
  v1::StatusResponse r;
  v1::VertexWarning* w = r.add_warnings();
  w->set_vertex(v.digest);
  w->set_level(warning.level);
  w->set_short_(warning.short_message);
  for (const std::string& d : warning.detail) w->add_detail(d);
  w->set_url(warning.url);
  if (!warning.filename.empty()) {
    w->mutable_info()->set_filename(warning.filename);
    w->mutable_info()->set_data(warning.source);
    w->mutable_info()->set_language("Dockerfile");
    if (warning.line > 0) {
      pb::Range* range = w->add_ranges();
      range->mutable_start()->set_line(warning.line);
      range->mutable_end()->set_line(warning.line);
    }
  }
  Append(std::move(r));
}

void BuildProgress::Append(v1::StatusResponse r) {
  std::vector<std::function<void()>> notify;
  {
    std::lock_guard lock(mu_);
    if (closed_) return;
    events_.push_back(std::move(r));
    for (auto& [id, fn] : subscribers_) notify.push_back(fn);
  }
  for (auto& fn : notify) fn();
}

void BuildProgress::Close() {
  std::vector<std::function<void()>> notify;
  {
    std::lock_guard lock(mu_);
    if (closed_) return;
    closed_ = true;
    for (auto& [id, fn] : subscribers_) notify.push_back(fn);
  }
  for (auto& fn : notify) fn();
}

bool BuildProgress::Read(size_t* cursor, std::vector<v1::StatusResponse>* out) {
  std::lock_guard lock(mu_);
  for (; *cursor < events_.size(); ++*cursor) out->push_back(events_[*cursor]);
  return !closed_;
}

int BuildProgress::Subscribe(std::function<void()> fn) {
  std::lock_guard lock(mu_);
  int id = next_id_++;
  subscribers_[id] = std::move(fn);
  return id;
}

void BuildProgress::Unsubscribe(int id) {
  std::lock_guard lock(mu_);
  subscribers_.erase(id);
}

std::map<std::string, v1::Vertex> BuildProgress::Vertices() const {
  std::lock_guard lock(mu_);
  return vertices_;
}

std::shared_ptr<BuildProgress> ProgressRegistry::Get(const std::string& ref) {
  std::lock_guard lock(mu_);
  auto& p = builds_[ref];
  if (!p) p = std::make_shared<BuildProgress>();
  return p;
}

void ProgressRegistry::Remove(const std::string& ref) {
  std::lock_guard lock(mu_);
  builds_.erase(ref);
}

}  // namespace kiln::server
