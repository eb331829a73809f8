#include "daemon/session/manager.h"

#include <fcntl.h>
#include <grpcpp/create_channel_posix.h>
#include <sys/socket.h>
#include <unistd.h>

#include <deque>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/socket_io.h"
#include "base/status.h"
#include "daemon/util/logging.h"
#include "proto/grpc/health/v1/health.grpc.pb.h"

namespace kiln::session {
namespace v1 = moby::buildkit::v1;
namespace {

constexpr int kMaxMessageBytes = 16 << 20;
constexpr size_t kChunk = 32 << 10;
constexpr size_t kMaxQueuedBytes = 4 << 20;

std::vector<std::string> MetadataValues(const grpc::CallbackServerContext* ctx, const char* key) {
  std::vector<std::string> out;
  auto range = ctx->client_metadata().equal_range(key);
  for (auto it = range.first; it != range.second; ++it) {
    out.emplace_back(it->second.data(), it->second.size());
  }
  return out;
}

}  // namespace

// Tunnel: the reactor behind one Control.Session call. Bytes from the client go into one end
// of a socketpair; the daemon's gRPC channel speaks HTTP/2 on the other end. Two threads move
// bytes (fd → stream and queue → fd) so that no reactor callback ever blocks.
class Tunnel final : public Manager::Reactor {
 public:
  Tunnel(Manager& manager, grpc::CallbackServerContext* ctx) : manager_(manager), ctx_(ctx) {
    auto ids = MetadataValues(ctx, kHeaderUuid);
    if (ids.empty() || ids[0].empty()) {
      Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          absl::StrCat("Session call without the ", kHeaderUuid, " header")));
      return;
    }
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
      Finish(grpc::Status(grpc::StatusCode::INTERNAL, "socketpair failed"));
      return;
    }
    fd_ = fds[1];
    // gRPC's endpoint needs a non-blocking descriptor; our pump end stays blocking.
    ::fcntl(fds[0], F_SETFL, ::fcntl(fds[0], F_GETFL) | O_NONBLOCK);
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(kMaxMessageBytes);
    args.SetMaxSendMessageSize(kMaxMessageBytes);
    auto channel = grpc::CreateCustomInsecureChannelFromFd("session", fds[0], args);
    auto names = MetadataValues(ctx, kHeaderName);
    auto keys = MetadataValues(ctx, kHeaderSharedKey);
    session_ = std::make_shared<Session>(ids[0], names.empty() ? "" : names[0],
                                         keys.empty() ? "" : keys[0],
                                         MetadataValues(ctx, kHeaderMethod), std::move(channel));
    started_ = true;
    reader_ = std::thread([this] { PumpFdToStream(); });
    writer_ = std::thread([this] { PumpQueueToFd(); });
    session_->OnClose([this] { ::shutdown(fd_, SHUT_RDWR); });
    manager_.Add(session_);
    Logger("session")->debug("session {} ({}) opened", session_->id(), session_->name());
    StartRead(&in_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // client went away or half-closed
      session_->Close("the client closed the session");
      return;
    }
    std::unique_lock lock(mu_);
    queued_bytes_ += in_.data().size();
    queue_.push_back(std::move(*in_.mutable_data()));
    cv_.notify_all();
    if (queued_bytes_ < kMaxQueuedBytes) {
      lock.unlock();
      StartRead(&in_);
    } else {
      read_paused_ = true;  // the writer thread resumes reading once the queue drains
    }
  }

  void OnWriteDone(bool ok) override {
    std::unique_lock lock(mu_);
    writing_ = false;
    if (!ok) write_failed_ = true;
    cv_.notify_all();
    if (finish_pending_) {
      finish_pending_ = false;
      lock.unlock();
      Finish(grpc::Status::OK);
    }
  }

  void OnDone() override {
    if (started_) {
      session_->Close("the session stream ended");
      {
        std::lock_guard lock(mu_);
        done_ = true;
        cv_.notify_all();
      }
      ::shutdown(fd_, SHUT_RDWR);
      reader_.join();
      writer_.join();
      ::close(fd_);
      manager_.Remove(session_->id(), session_.get());
      Logger("session")->debug("session {} closed: {}", session_->id(), session_->close_reason());
    }
    delete this;
  }

 private:
  // fd → client: chunks of what the daemon's channel wrote, one write in flight at a time.
  void PumpFdToStream() {
    std::string buf(kChunk, '\0');
    while (true) {
      ssize_t n = ::read(fd_, buf.data(), buf.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return !writing_ || done_; });
      if (done_ || write_failed_) break;
      out_.set_data(buf.data(), static_cast<size_t>(n));
      writing_ = true;
      lock.unlock();
      StartWrite(&out_);
    }
    session_->Close("the session's connection ended");
    std::unique_lock lock(mu_);
    if (finished_ || done_) return;
    finished_ = true;
    if (writing_) {
      finish_pending_ = true;
      return;
    }
    lock.unlock();
    Finish(grpc::Status::OK);
  }

  // client → fd: queued chunks in order; resumes paused reads once the queue has room.
  void PumpQueueToFd() {
    while (true) {
      std::string chunk;
      bool resume = false;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return !queue_.empty() || done_; });
        if (done_) return;
        chunk = std::move(queue_.front());
        queue_.pop_front();
        queued_bytes_ -= chunk.size();
        if (read_paused_ && queued_bytes_ < kMaxQueuedBytes / 2 && !finished_) {
          read_paused_ = false;
          resume = true;
        }
      }
      if (!SendAll(fd_, chunk)) {
        session_->Close("the daemon side of the session closed");
        return;
      }
      if (resume) StartRead(&in_);
    }
  }

  Manager& manager_;
  grpc::CallbackServerContext* ctx_;
  std::shared_ptr<Session> session_;
  int fd_ = -1;
  bool started_ = false;
  std::thread reader_, writer_;
  v1::BytesMessage in_, out_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> queue_;  // guarded by mu_
  size_t queued_bytes_ = 0;        // guarded by mu_
  bool read_paused_ = false;       // guarded by mu_
  bool writing_ = false;           // guarded by mu_
  bool write_failed_ = false;      // guarded by mu_
  bool finished_ = false;          // guarded by mu_
  bool finish_pending_ = false;    // guarded by mu_
  bool done_ = false;              // guarded by mu_
};

Manager::Manager(Options options) : options_(options) {
  health_ = std::thread([this] { HealthLoop(); });
}

Manager::~Manager() { Shutdown(); }

void Manager::Shutdown() {
  std::map<std::string, std::shared_ptr<Session>> sessions;
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    stopping_ = true;
    sessions = sessions_;
    changed_.notify_all();
  }
  for (auto& [id, s] : sessions) s->Close("the daemon is shutting down");
  health_.join();
}

Manager::Reactor* Manager::Accept(grpc::CallbackServerContext* ctx) {
  return new Tunnel(*this, ctx);
}

void Manager::Add(std::shared_ptr<Session> s) {
  std::shared_ptr<Session> replaced;
  {
    std::lock_guard lock(mu_);
    auto& slot = sessions_[s->id()];
    replaced = std::move(slot);
    slot = std::move(s);
    changed_.notify_all();
  }
  if (replaced) replaced->Close("replaced by a new session with the same id");
}

void Manager::Remove(const std::string& id, const Session* s) {
  std::lock_guard lock(mu_);
  auto it = sessions_.find(id);
  if (it != sessions_.end() && it->second.get() == s) sessions_.erase(it);
  changed_.notify_all();
}

size_t Manager::open_sessions() const {
  std::lock_guard lock(mu_);
  return sessions_.size();
}

absl::StatusOr<std::shared_ptr<Session>> Manager::Get(const Context& ctx, const std::string& id,
                                                      std::chrono::milliseconds wait) {
  if (id.empty()) return absl::InvalidArgumentError("no session id given");
  auto deadline = std::chrono::steady_clock::now() + wait;
  std::unique_lock lock(mu_);
  while (true) {
    auto it = sessions_.find(id);
    if (it != sessions_.end() && !it->second->closed()) return it->second;
    KILN_RETURN_IF_ERROR(ctx.Check("waiting for session"));
    if (stopping_) return absl::UnavailableError("the daemon is shutting down");
    auto step =
        std::min(deadline, std::chrono::steady_clock::now() + std::chrono::milliseconds(100));
    if (changed_.wait_until(lock, step) == std::cv_status::timeout &&
        std::chrono::steady_clock::now() >= deadline) {
      return absl::NotFoundError(absl::StrCat("no active session for ", id,
                                              ": the client did not connect one, or it closed"));
    }
  }
}

void Manager::HealthLoop() {
  std::map<const Session*, std::pair<bool, int>> state;  // failed before, consecutive OK
  std::unique_lock lock(mu_);
  while (!stopping_) {
    changed_.wait_for(lock, options_.health_interval);
    if (stopping_) break;
    std::vector<std::shared_ptr<Session>> sessions;
    for (auto& [id, s] : sessions_) sessions.push_back(s);
    lock.unlock();
    std::map<const Session*, std::pair<bool, int>> next;
    for (const auto& s : sessions) {
      if (s->closed()) continue;
      auto [failed_before, ok_count] = state[s.get()];
      auto stub = grpc::health::v1::Health::NewStub(s->channel());
      grpc::ClientContext cctx;
      cctx.set_deadline(std::chrono::system_clock::now() + options_.health_timeout);
      grpc::health::v1::HealthCheckRequest req;
      grpc::health::v1::HealthCheckResponse resp;
      grpc::Status st = stub->Check(&cctx, req, &resp);
      bool ok = st.ok() && resp.status() == grpc::health::v1::HealthCheckResponse::SERVING;
      if (!ok) {
        std::string why = st.ok() ? "not serving" : st.error_message();
        if (failed_before) {
          Logger("session")->error("session {}: health check failed twice ({}); closing", s->id(),
                                   why);
          s->Close(absl::StrCat("the client stopped answering health checks (", why, ")"));
          continue;
        }
        Logger("session")->warn("session {}: health check failed ({})", s->id(), why);
        next[s.get()] = {true, 0};
      } else {
        ++ok_count;
        if (failed_before && ok_count >= 5) failed_before = false;
        next[s.get()] = {failed_before, ok_count};
      }
    }
    state = std::move(next);
    lock.lock();
  }
}

}  // namespace kiln::session
