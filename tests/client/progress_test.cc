#include "client/progress.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "absl/strings/str_split.h"

#include "tests/testutil/status_matchers.h"

namespace kiln::client {
namespace {

namespace v1 = moby::buildkit::v1;
using ::kiln::testing::IsOk;
using ::kiln::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

// Captures what a display writes.
class Capture {
 public:
  Capture() : f_(open_memstream(&buf_, &len_)) {}
  ~Capture() {
    std::fclose(f_);
    std::free(buf_);
  }
  FILE* file() { return f_; }
  std::string str() {
    std::fflush(f_);
    return std::string(buf_, len_);
  }

 private:
  char* buf_ = nullptr;
  size_t len_ = 0;
  FILE* f_;
};

google::protobuf::Timestamp Ts(int64_t s, int32_t nanos = 0) {
  google::protobuf::Timestamp t;
  t.set_seconds(s);
  t.set_nanos(nanos);
  return t;
}

v1::StatusResponse Started(const std::string& digest, const std::string& name) {
  v1::StatusResponse r;
  auto* v = r.add_vertexes();
  v->set_digest(digest);
  v->set_name(name);
  *v->mutable_started() = Ts(1700000000);
  return r;
}

v1::StatusResponse Completed(const std::string& digest, const std::string& name, bool cached,
                             const std::string& error = "") {
  v1::StatusResponse r = Started(digest, name);
  auto* v = r.mutable_vertexes(0);
  *v->mutable_completed() = Ts(1700000001, 500000000);
  v->set_cached(cached);
  v->set_error(error);
  return r;
}

v1::StatusResponse Log(const std::string& digest, const std::string& msg) {
  v1::StatusResponse r;
  auto* l = r.add_logs();
  l->set_vertex(digest);
  l->set_stream(1);
  l->set_msg(msg);
  *l->mutable_timestamp() = Ts(1700000000, 120000000);
  return r;
}

TEST(ProgressTest, UnknownModeAndTtyWithoutTerminalFailClearly) {
  Capture c;
  EXPECT_THAT(NewProgressDisplay("fancy", c.file()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("fancy")));
  EXPECT_THAT(NewProgressDisplay("tty", c.file()),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("not a terminal")));
  EXPECT_THAT(NewProgressDisplay("auto", c.file()), IsOk());  // falls back to plain
}

TEST(ProgressTest, PlainPrintsBuildctlShapedLines) {
  Capture c;
  auto d = NewProgressDisplay("auto", c.file());
  ASSERT_THAT(d, IsOk());
  (*d)->Update(Completed("sha256:a", "local://context", true));
  (*d)->Update(Started("sha256:b", "mkfile /hello"));
  (*d)->Update(Log("sha256:b", "line one\nline two\n"));
  (*d)->Update(Completed("sha256:b", "mkfile /hello", false));
  (*d)->Update(Completed("sha256:c", "copy /x", false, "no such file"));
  (*d)->Done();
  EXPECT_EQ(c.str(),
            "#1 local://context\n#1 CACHED\n"
            "#2 mkfile /hello\n#2 line one\n#2 line two\n#2 DONE 1.5s\n"
            "#3 copy /x\n#3 ERROR: no such file\n");
}

TEST(ProgressTest, RawJsonIsOneSolveStatusPerLine) {
  Capture c;
  auto d = NewProgressDisplay("rawjson", c.file());
  ASSERT_THAT(d, IsOk());
  v1::StatusResponse r = Completed("sha256:b", "mkfile /hello", false);
  r.mutable_vertexes(0)->add_inputs("sha256:a");
  r.MergeFrom(Log("sha256:b", "hi\n"));
  (*d)->Update(r);
  (*d)->Update(Started("sha256:c", "next"));
  std::string out = c.str();
  ASSERT_EQ(std::count(out.begin(), out.end(), '\n'), 2);
  auto j = nlohmann::json::parse(out.substr(0, out.find('\n')));
  EXPECT_EQ(j["vertexes"][0]["digest"], "sha256:b");
  EXPECT_EQ(j["vertexes"][0]["inputs"][0], "sha256:a");
  EXPECT_EQ(j["vertexes"][0]["started"], "2023-11-14T22:13:20Z");
  EXPECT_EQ(j["vertexes"][0]["completed"], "2023-11-14T22:13:21.5Z");
  EXPECT_FALSE(j["vertexes"][0].contains("cached"));  // omitempty, like Go
  EXPECT_EQ(j["logs"][0]["data"], "aGkK");            // []byte is base64 in Go's JSON
  EXPECT_EQ(j["logs"][0]["stream"], 1);
  EXPECT_EQ(j["logs"][0]["timestamp"], "2023-11-14T22:13:20.12Z");
}

TEST(ProgressTest, TtyRedrawsInPlaceAndShowsRunningLogs) {
  Capture c;
  auto t0 = std::chrono::steady_clock::time_point{} + std::chrono::hours(1);
  auto now = t0;
  auto d = NewProgressDisplay("tty", c.file(),
                              {.width = 40, .now = [&] { return now; }, .assume_terminal = true});
  ASSERT_THAT(d, IsOk());
  (*d)->Update(Completed("sha256:a", "local://context", true));
  (*d)->Update(Started("sha256:b", "a very long step name that will not fit in forty columns"));
  now += std::chrono::milliseconds(200);
  (*d)->Update(Log("sha256:b", "compiling\n"));
  std::string live = c.str();
  EXPECT_THAT(live, HasSubstr("[+] Building 0.2s (1/2)"));
  EXPECT_THAT(live, HasSubstr(" => CACHED #1 local://context"));
  EXPECT_THAT(live, HasSubstr(" => > compiling"));
  EXPECT_THAT(live, HasSubstr("\x1b[2A"));  // the second drawing moved up over the first (2 lines)
  for (absl::string_view line : absl::StrSplit(live, '\n')) {
    size_t k = line.rfind("\x1b[K");
    if (k != absl::string_view::npos) line.remove_prefix(k + 3);
    EXPECT_LE(line.size(), 40u) << line;
  }
  now += std::chrono::milliseconds(50);
  (*d)->Update(Completed("sha256:b", "a very long step name", false));
  (*d)->Done();
  std::string final_draw = c.str().substr(live.size());
  EXPECT_THAT(final_draw, HasSubstr("[+] Built 0.2s (2/2) FINISHED"));
  EXPECT_THAT(final_draw, HasSubstr("1.5s"));
  EXPECT_THAT(final_draw, Not(HasSubstr("compiling")));  // logs of finished steps fold away
}

}  // namespace
}  // namespace kiln::client

namespace kiln::client {
namespace {

TEST(ProgressTest, StatusCountersReadLikeBuildctl) {
  EXPECT_EQ(HumanBytes(12), "12B");
  EXPECT_EQ(HumanBytes(999), "999B");
  EXPECT_EQ(HumanBytes(1000), "1.00kB");
  EXPECT_EQ(HumanBytes(838860800), "838.86MB");
  EXPECT_EQ(HumanBytes(1500), "1.50kB");
  v1::VertexStatus st;
  st.set_id("transferring context:");
  st.set_current(1200000);
  *st.mutable_started() = Ts(10);
  *st.mutable_timestamp() = Ts(10, 300000000);
  EXPECT_EQ(StatusLine(st), "transferring context: 1.20MB 0.3s");
  *st.mutable_completed() = Ts(11);
  EXPECT_EQ(StatusLine(st), "transferring context: 1.20MB 1.0s done");

  Capture c;
  auto d = NewProgressDisplay("plain", c.file());
  ASSERT_THAT(d, IsOk());
  v1::StatusResponse r = Started("sha256:a", "local://context");
  *r.add_statuses() = st;
  r.mutable_statuses(0)->set_vertex("sha256:a");
  (*d)->Update(r);
  EXPECT_EQ(c.str(), "#1 local://context\n#1 transferring context: 1.20MB 1.0s done\n");
}

}  // namespace
}  // namespace kiln::client
