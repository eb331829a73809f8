#include "client/progress.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <deque>
#include <map>
#include <nlohmann/json.hpp>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "base/status.h"

namespace kiln::client {
namespace v1 = moby::buildkit::v1;
namespace {

double Seconds(const google::protobuf::Timestamp& a, const google::protobuf::Timestamp& b) {
  return static_cast<double>(b.seconds() - a.seconds()) +
         static_cast<double>(b.nanos() - a.nanos()) / 1e9;
}

// Go's time.Time JSON form: RFC 3339 with nanoseconds, trailing zeros dropped, in UTC.
std::string GoTime(const google::protobuf::Timestamp& ts) {
  absl::Time t = absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E*SZ", t, absl::UTCTimeZone());
}

}  // namespace

std::string HumanBytes(int64_t n) {
  static constexpr const char* kUnits[] = {"B", "kB", "MB", "GB", "TB", "PB", "EB"};
  double v = static_cast<double>(n);
  size_t u = 0;
  while (v >= 1000 && u + 1 < std::size(kUnits)) {
    v /= 1000;
    ++u;
  }
  // As tonistiigi/units' "%.2f" (BuildKit's progress): whole bytes below 1 kB.
  if (u == 0) return absl::StrCat(n, "B");
  return absl::StrFormat("%.2f%s", v, kUnits[u]);
}

std::string StatusLine(const v1::VertexStatus& st) {
  std::string line = st.id();
  if (st.total() != 0) {
    absl::StrAppend(&line, " ", HumanBytes(st.current()), " / ", HumanBytes(st.total()));
  } else if (st.current() != 0) {
    absl::StrAppend(&line, " ", HumanBytes(st.current()));
  }
  const auto& end = st.has_completed() ? st.completed() : st.timestamp();
  if (st.has_started()) {
    double secs = Seconds(st.started(), end);
    if (secs > 0.01) absl::StrAppend(&line, absl::StrFormat(" %.1fs", secs));
  }
  if (st.has_completed()) absl::StrAppend(&line, " done");
  return line;
}

namespace {

class PlainDisplay final : public ProgressDisplay {
 public:
  explicit PlainDisplay(FILE* out) : out_(out) {}
  void Update(const v1::StatusResponse& r) override {
    for (const auto& v : r.vertexes()) {
      State& s = Get(v.digest());
      if (!s.announced) {
        std::fprintf(out_, "#%d %s\n", s.number, v.name().c_str());
        s.announced = true;
      }
      if (v.has_completed() && !s.done) {
        s.done = true;
        if (!v.error().empty()) {
          std::fprintf(out_, "#%d ERROR: %s\n", s.number, v.error().c_str());
        } else if (v.cached()) {
          std::fprintf(out_, "#%d CACHED\n", s.number);
        } else {
          std::fprintf(out_, "#%d DONE %.1fs\n", s.number, Seconds(v.started(), v.completed()));
        }
      }
    }
    for (const auto& st : r.statuses()) {
      if (st.has_completed()) {
        std::fprintf(out_, "#%d %s\n", Get(st.vertex()).number, StatusLine(st).c_str());
      }
    }
    for (const auto& l : r.logs()) {
      int n = Get(l.vertex()).number;
      for (absl::string_view line : absl::StrSplit(l.msg(), '\n', absl::SkipEmpty())) {
        std::fprintf(out_, "#%d %.*s\n", n, static_cast<int>(line.size()), line.data());
      }
    }
    for (const auto& w : r.warnings()) {
      std::fprintf(out_, "#%d WARNING: %s\n", Get(w.vertex()).number, w.short_().c_str());
    }
    std::fflush(out_);
  }
  void Done() override { std::fflush(out_); }

 private:
  struct State {
    int number = 0;
    bool announced = false, done = false;
  };
  State& Get(const std::string& digest) {
    State& s = states_[digest];
    if (s.number == 0) s.number = static_cast<int>(states_.size());
    return s;
  }
  FILE* out_;
  std::map<std::string, State> states_;
};

class RawJsonDisplay final : public ProgressDisplay {
 public:
  explicit RawJsonDisplay(FILE* out) : out_(out) {}
  void Update(const v1::StatusResponse& r) override {
    std::string line = StatusToJson(r);
    std::fprintf(out_, "%s\n", line.c_str());
    std::fflush(out_);
  }
  void Done() override {}

 private:
  FILE* out_;
};

class QuietDisplay final : public ProgressDisplay {
 public:
  void Update(const v1::StatusResponse&) override {}
  void Done() override {}
};

// The live display: redraws its whole block (moving the cursor back up over the previous
// drawing) at most every 100 ms, and once more at the end.
class TtyDisplay final : public ProgressDisplay {
 public:
  TtyDisplay(FILE* out, ProgressOptions options)
      : out_(out), options_(std::move(options)), start_(Now()) {}

  void Update(const v1::StatusResponse& r) override {
    for (const auto& v : r.vertexes()) {
      Job& j = Get(v.digest());
      j.name = v.name();
      j.cached = v.cached();
      j.error = v.error();
      if (v.has_started() && !j.started) {
        j.started = true;
        j.started_at = Now();
      }
      if (v.has_completed() && !j.completed) {
        j.completed = true;
        j.seconds = v.has_started() ? Seconds(v.started(), v.completed()) : 0;
      }
    }
    for (const auto& st : r.statuses()) {
      Job& j = Get(st.vertex());
      j.statuses[st.id()] = st;
    }
    for (const auto& l : r.logs()) {
      Job& j = Get(l.vertex());
      std::string text = j.partial + l.msg();
      std::vector<std::string> lines = absl::StrSplit(text, '\n');
      j.partial = lines.back();
      lines.pop_back();
      for (auto& line : lines) {
        j.logs.push_back(std::move(line));
        if (j.logs.size() > kLogLines) j.logs.pop_front();
      }
    }
    if (Now() - last_draw_ >= std::chrono::milliseconds(100)) Draw(false);
  }
  void Done() override { Draw(true); }

 private:
  static constexpr size_t kLogLines = 6;
  struct Job {
    int number = 0;
    std::string name;
    bool started = false, completed = false, cached = false;
    std::string error;
    std::chrono::steady_clock::time_point started_at;
    double seconds = 0;
    std::deque<std::string> logs;
    std::string partial;
    std::map<std::string, v1::VertexStatus> statuses;
  };
  std::chrono::steady_clock::time_point Now() const {
    return options_.now ? options_.now() : std::chrono::steady_clock::now();
  }
  Job& Get(const std::string& digest) {
    auto [it, inserted] = jobs_.try_emplace(digest);
    if (inserted) {
      it->second.number = static_cast<int>(order_.size()) + 1;
      order_.push_back(digest);
    }
    return it->second;
  }
  int Width() const {
    if (options_.width > 0) return options_.width;
    struct winsize ws {};
    if (ioctl(fileno(out_), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
    return 80;
  }
  std::string Fit(std::string line, int width) const {
    if (static_cast<int>(line.size()) > width) line.resize(static_cast<size_t>(width));
    return line;
  }
  void Draw(bool final) {
    const auto now = Now();
    last_draw_ = now;
    const int width = std::max(20, Width());
    int done = 0;
    for (const auto& [d, j] : jobs_) done += j.completed ? 1 : 0;
    double total = std::chrono::duration<double>(now - start_).count();
    std::vector<std::string> lines;
    lines.push_back(absl::StrFormat("[+] %s %.1fs (%d/%d)%s", final ? "Built" : "Building", total,
                                    done, jobs_.size(), final ? " FINISHED" : ""));
    for (const std::string& digest : order_) {
      const Job& j = jobs_.at(digest);
      if (!j.started && !j.completed) continue;
      std::string prefix = j.completed && !j.error.empty() ? " => ERROR " : " => ";
      if (j.cached) prefix += "CACHED ";
      double secs =
          j.completed ? j.seconds : std::chrono::duration<double>(now - j.started_at).count();
      std::string timing = j.cached ? "" : absl::StrFormat(" %.1fs", secs);
      std::string name = absl::StrCat(prefix, "#", j.number, " ", j.name);
      int room = width - static_cast<int>(timing.size());
      name = Fit(name, room);
      lines.push_back(
          absl::StrCat(name, std::string(static_cast<size_t>(room) - name.size(), ' '), timing));
      for (const auto& [id, st] : j.statuses) {
        lines.push_back(Fit(absl::StrCat(" => => ", StatusLine(st)), width));
      }
      bool show_logs = (j.started && !j.completed) || !j.error.empty();
      if (show_logs) {
        for (const std::string& l : j.logs) lines.push_back(Fit(absl::StrCat(" => > ", l), width));
        if (!j.partial.empty()) lines.push_back(Fit(absl::StrCat(" => > ", j.partial), width));
      }
      if (!j.error.empty()) lines.push_back(Fit(absl::StrCat(" => ERROR: ", j.error), width));
    }
    std::string out;
    if (drawn_lines_ > 0) absl::StrAppend(&out, "\x1b[", drawn_lines_, "A");
    for (const std::string& l : lines) absl::StrAppend(&out, "\r\x1b[K", l, "\n");
    // A shorter drawing than the last one: clear what is left below it.
    for (int i = static_cast<int>(lines.size()); i < drawn_lines_; ++i) {
      absl::StrAppend(&out, "\r\x1b[K\n");
    }
    if (static_cast<int>(lines.size()) < drawn_lines_) {
      absl::StrAppend(&out, "\x1b[", drawn_lines_ - static_cast<int>(lines.size()), "A");
    }
    drawn_lines_ = static_cast<int>(lines.size());
    std::fwrite(out.data(), 1, out.size(), out_);
    std::fflush(out_);
  }

  FILE* out_;
  ProgressOptions options_;
  const std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_{};
  std::map<std::string, Job> jobs_;
  std::vector<std::string> order_;
  int drawn_lines_ = 0;
};

}  // namespace

std::string StatusToJson(const v1::StatusResponse& r) {
  using nlohmann::json;
  json out = json::object();
  for (const auto& v : r.vertexes()) {
    json j = json::object();
    if (!v.digest().empty()) j["digest"] = v.digest();
    if (v.inputs_size() > 0)
      j["inputs"] = std::vector<std::string>(v.inputs().begin(), v.inputs().end());
    if (!v.name().empty()) j["name"] = v.name();
    if (v.has_started()) j["started"] = GoTime(v.started());
    if (v.has_completed()) j["completed"] = GoTime(v.completed());
    if (v.cached()) j["cached"] = true;
    if (!v.error().empty()) j["error"] = v.error();
    if (v.has_progressgroup()) {
      json g = json::object();
      if (!v.progressgroup().id().empty()) g["id"] = v.progressgroup().id();
      if (!v.progressgroup().name().empty()) g["name"] = v.progressgroup().name();
      if (v.progressgroup().weak()) g["weak"] = true;
      j["progressGroup"] = g;
    }
    out["vertexes"].push_back(j);
  }
  for (const auto& s : r.statuses()) {
    json j = json::object();
    j["id"] = s.id();
    if (!s.vertex().empty()) j["vertex"] = s.vertex();
    if (!s.name().empty()) j["name"] = s.name();
    if (s.total() != 0) j["total"] = s.total();
    j["current"] = s.current();
    j["timestamp"] = GoTime(s.timestamp());
    if (s.has_started()) j["started"] = GoTime(s.started());
    if (s.has_completed()) j["completed"] = GoTime(s.completed());
    out["statuses"].push_back(j);
  }
  for (const auto& l : r.logs()) {
    json j = json::object();
    if (!l.vertex().empty()) j["vertex"] = l.vertex();
    if (l.stream() != 0) j["stream"] = l.stream();
    j["data"] = absl::Base64Escape(l.msg());
    j["timestamp"] = GoTime(l.timestamp());
    out["logs"].push_back(j);
  }
  for (const auto& w : r.warnings()) {
    json j = json::object();
    if (!w.vertex().empty()) j["vertex"] = w.vertex();
    if (w.level() != 0) j["level"] = w.level();
    if (!w.short_().empty()) j["short"] = absl::Base64Escape(w.short_());
    for (const auto& d : w.detail()) j["detail"].push_back(absl::Base64Escape(d));
    if (!w.url().empty()) j["url"] = w.url();
    out["warnings"].push_back(j);
  }
  return out.dump();
}

absl::StatusOr<std::unique_ptr<ProgressDisplay>> NewProgressDisplay(std::string_view mode,
                                                                    FILE* out,
                                                                    ProgressOptions options) {
  if (mode == "auto" || mode.empty() || mode == "tty") {
    if (options.assume_terminal || isatty(fileno(out)) != 0)
      return std::make_unique<TtyDisplay>(out, std::move(options));
    if (mode == "tty") {
      return absl::FailedPreconditionError(
          "--progress=tty: the output is not a terminal (use plain or rawjson)");
    }
    return std::make_unique<PlainDisplay>(out);
  }
  if (mode == "plain") return std::make_unique<PlainDisplay>(out);
  if (mode == "rawjson") return std::make_unique<RawJsonDisplay>(out);
  if (mode == "quiet") return std::make_unique<QuietDisplay>();
  return absl::InvalidArgumentError(absl::StrCat("invalid progress mode \"", AV(mode),
                                                 "\" (want auto, tty, plain, rawjson or quiet)"));
}

}  // namespace kiln::client
