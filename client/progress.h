#pragma once
// Build progress displays for `kiln build --progress=auto|tty|plain|rawjson|quiet`, fed with
// Control.Status responses, with buildctl's output shapes:
//   plain    "#N name" when a vertex starts, "#N DONE 0.3s" / "#N CACHED" / "#N ERROR: ..."
//            when it ends, log lines prefixed with "#N ".
//   tty      a live, redrawn summary: "[+] Building 1.2s (3/5)", one line per vertex with its
//            time, and the last lines of the logs of running vertices.
//   rawjson  each response as one JSON object per line (BuildKit's client.SolveStatus).
//   auto     tty when the output is a terminal, plain otherwise.
// Not thread-safe: one thread calls Update() and Done().

#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "proto/moby/buildkit/v1/control.pb.h"

namespace kiln::client {

class ProgressDisplay {
 public:
  virtual ~ProgressDisplay() = default;
  virtual void Update(const moby::buildkit::v1::StatusResponse& resp) = 0;
  // The stream ended: print the final state.
  virtual void Done() = 0;
};

struct ProgressOptions {
  // For the tty display: the terminal's width (0: ask the terminal) and the clock.
  int width = 0;
  std::function<std::chrono::steady_clock::time_point()> now;
  // Treat `out` as a terminal even when it is not (tests).
  bool assume_terminal = false;
};

// INVALID_ARGUMENT for an unknown mode; FAILED_PRECONDITION for "tty" when `out` is not a
// terminal.
[[nodiscard]] absl::StatusOr<std::unique_ptr<ProgressDisplay>> NewProgressDisplay(
    std::string_view mode, FILE* out, ProgressOptions options = {});

// go-units' decimal byte sizes as buildctl prints them: "838.86MB", "12.00B".
[[nodiscard]] std::string HumanBytes(int64_t n);
// A counter as buildctl's plain output shows it: "transferring context: 1.20MB 0.3s done".
[[nodiscard]] std::string StatusLine(const moby::buildkit::v1::VertexStatus& st);

// One StatusResponse in buildctl's rawjson form (no trailing newline).
[[nodiscard]] std::string StatusToJson(const moby::buildkit::v1::StatusResponse& resp);

}  // namespace kiln::client
