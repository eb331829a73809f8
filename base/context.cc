#include "base/context.h"

#include <functional>

#include "absl/strings/str_cat.h"

namespace kiln {

Context Context::Child() const {
  Context child = *this;
  child.state_ = std::make_shared<State>();
  std::stop_source child_source = child.state_->source;
  child.state_->link = std::make_shared<std::stop_callback<std::function<void()>>>(
      state_->source.get_token(),
      std::function<void()>([child_source]() mutable { child_source.request_stop(); }));
  return child;
}

Context Context::WithDeadline(Clock::time_point deadline) const {
  Context out = *this;
  if (!out.deadline_ || deadline < *out.deadline_) out.deadline_ = deadline;
  return out;
}

Context Context::WithBuildId(std::string build_id) const {
  Context out = *this;
  out.build_id_ = std::move(build_id);
  return out;
}

absl::Status Context::Check(const char* what) const {
  if (state_->source.stop_requested())
    return absl::CancelledError(absl::StrCat(what, " cancelled"));
  if (Expired()) return absl::DeadlineExceededError(absl::StrCat(what, " timed out"));
  return absl::OkStatus();
}

}  // namespace kiln
