#pragma once
// Context: what a long operation needs to know about the request it serves — whether to stop
// (cancellation and deadline) and which build it belongs to — in the spirit of Go's ctx.
// Copyable; copies share one cancellation state. Thread-safe.

#include <chrono>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>

#include "absl/status/status.h"

namespace kiln {

class Context {
 public:
  using Clock = std::chrono::steady_clock;

  Context() : state_(std::make_shared<State>()) {}

  // A child that is cancelled when this one is, and can be cancelled on its own.
  Context Child() const;
  Context WithDeadline(Clock::time_point deadline) const;
  Context WithBuildId(std::string build_id) const;

  void Cancel() const { state_->source.request_stop(); }
  bool Cancelled() const { return state_->source.stop_requested() || Expired(); }
  bool Expired() const { return deadline_ && Clock::now() >= *deadline_; }
  std::stop_token stop_token() const { return state_->source.get_token(); }
  std::optional<Clock::time_point> deadline() const { return deadline_; }
  const std::string& build_id() const { return build_id_; }

  // OK while running; CANCELLED or DEADLINE_EXCEEDED (naming `what`) once stopped.
  [[nodiscard]] absl::Status Check(const char* what = "operation") const;

 private:
  struct State {
    std::stop_source source;
    std::shared_ptr<std::stop_callback<std::function<void()>>> link;  // to the parent
  };
  std::shared_ptr<State> state_;
  std::optional<Clock::time_point> deadline_;
  std::string build_id_;
};

}  // namespace kiln
