#include "daemon/session/session.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "base/status.h"

namespace kiln::session {
namespace {

std::set<std::string> Lowered(const std::vector<std::string>& methods) {
  std::set<std::string> out;
  for (const std::string& m : methods) out.insert(absl::AsciiStrToLower(m));
  return out;
}

}  // namespace

Session::Session(std::string id, std::string name, std::string shared_key,
                 std::vector<std::string> methods, std::shared_ptr<grpc::Channel> channel)
    : id_(std::move(id)),
      name_(std::move(name)),
      shared_key_(std::move(shared_key)),
      methods_(Lowered(methods)),
      channel_(std::move(channel)) {}

bool Session::Supports(std::string_view method) const {
  return methods_.contains(absl::AsciiStrToLower(AV(method)));
}

absl::Status Session::CheckMethod(std::string_view method) const {
  {
    std::lock_guard lock(mu_);
    if (closed_) {
      return absl::UnavailableError(absl::StrCat("session ", id_, " is closed: ", close_reason_));
    }
  }
  if (!Supports(method)) {
    return absl::FailedPreconditionError(
        absl::StrCat("the client of session ", id_, " does not serve ", AV(method),
                     " (did you pass the matching flag, e.g. --local, --secret or --ssh?)"));
  }
  return absl::OkStatus();
}

bool Session::closed() const {
  std::lock_guard lock(mu_);
  return closed_;
}

std::string Session::close_reason() const {
  std::lock_guard lock(mu_);
  return close_reason_;
}

void Session::Close(const std::string& reason) {
  std::vector<std::function<void()>> callbacks;
  {
    std::lock_guard lock(mu_);
    if (closed_) return;
    closed_ = true;
    close_reason_ = reason;
    callbacks.swap(on_close_);
  }
  for (auto& fn : callbacks) fn();
}

void Session::OnClose(std::function<void()> fn) {
  {
    std::lock_guard lock(mu_);
    if (!closed_) {
      on_close_.push_back(std::move(fn));
      return;
    }
  }
  fn();
}

}  // namespace kiln::session
