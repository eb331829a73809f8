// The sending side of DiffCopy (fsutil's send.go): a walker thread sends the STAT listing while
// the calling thread reads the receiver's requests and file workers stream the requested files.

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "fsutil/diffcopy.h"
#include "fsutil/internal/fd.h"
#include "fsutil/stat.h"
#include "fsutil/walk.h"

namespace kiln::fsutil {
namespace {

using ::fsutil::types::Packet;
using internal::UniqueFd;

constexpr size_t kChunkSize = 32 * 1024;  // fsutil's buffer size: one DATA packet per read
constexpr auto kErrGrace = std::chrono::seconds(5);

// Polls `mu` until it is locked or `grace` has passed (an error path only; std::timed_mutex is
// avoided because ThreadSanitizer does not understand its timed locks).
bool LockWithin(std::mutex& mu, std::chrono::steady_clock::duration grace) {
  const auto deadline = std::chrono::steady_clock::now() + grace;
  while (!mu.try_lock()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

// One transfer. The walker, the workers and the reader share it; members are guarded as noted.
class Sender {
 public:
  Sender(PacketStream& stream, const SendOptions& options) : stream_(stream), options_(options) {}

  absl::Status Run(const std::string& root);

 private:
  struct Request {
    uint32_t id;
    std::string path;
  };

  absl::Status SendPacket(const Packet& packet);
  void AddProgress(int64_t bytes, bool last);
  // Records the first failure; optionally tells the peer (ERR), then cancels the stream so that
  // every thread blocked on it returns.
  void Fail(const absl::Status& status, bool tell_peer);
  bool failed() const { return failed_.load(std::memory_order_acquire); }
  absl::Status WalkAndSendStats(const std::string& root);
  void Worker();
  absl::Status SendFile(const Request& request);
  absl::Status ReadRequests();

  PacketStream& stream_;
  const SendOptions& options_;
  UniqueFd root_fd_;  // constant after Run starts

  std::mutex send_mu_;  // serializes stream_.Send

  std::mutex mu_;
  std::condition_variable cv_;
  std::unordered_map<uint32_t, std::string> files_;  // requestable ids; guarded by mu_
  std::deque<Request> queue_;                        // guarded by mu_
  bool queue_closed_ = false;                        // guarded by mu_
  absl::Status error_;                               // first failure; guarded by mu_
  std::atomic<bool> failed_{false};
  std::atomic<bool> finished_{false};  // FIN exchanged: the walker must stop

  std::mutex progress_mu_;
  int64_t progress_bytes_ = 0;  // guarded by progress_mu_
};

absl::Status Sender::SendPacket(const Packet& packet) {
  std::lock_guard<std::mutex> lock(send_mu_);
  return stream_.Send(packet);
}

void Sender::AddProgress(int64_t bytes, bool last) {
  if (!options_.progress) return;
  std::lock_guard<std::mutex> lock(progress_mu_);
  progress_bytes_ += bytes;
  options_.progress(progress_bytes_, last);
}

void Sender::Fail(const absl::Status& status, bool tell_peer) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!error_.ok()) return;
    error_ = status;
    queue_closed_ = true;
  }
  failed_.store(true, std::memory_order_release);
  cv_.notify_all();
  // Best effort: the stream may be what failed, or another thread may be stuck in Send because
  // the peer stopped reading; then cancelling is all we can do.
  if (tell_peer && LockWithin(send_mu_, kErrGrace)) {
    Packet err;
    err.set_type(Packet::PACKET_ERR);
    err.set_data(std::string(status.message()));
    (void)stream_.Send(err);
    send_mu_.unlock();
  }
  stream_.Cancel();
}

absl::Status Sender::WalkAndSendStats(const std::string& root) {
  WalkOptions walk_options;
  walk_options.include_patterns = options_.include_patterns;
  walk_options.exclude_patterns = options_.exclude_patterns;
  walk_options.follow_paths = options_.follow_paths;
  uint32_t next_id = 0;
  // fsutil's WithHardlinkReset: if a link's first path was filtered out, the first link seen
  // becomes the file and later links point at it.
  std::unordered_map<std::string, std::string> link_paths;
  KILN_RETURN_IF_ERROR(Walk(root, walk_options, [&](::fsutil::types::Stat& stat) -> absl::Status {
    if (failed() || finished_.load(std::memory_order_acquire)) {
      return absl::CancelledError("transfer stopped");
    }
    if (!IsDir(stat) && !IsSymlink(stat)) {
      if (!stat.linkname().empty()) {
        auto it = link_paths.find(stat.linkname());
        if (it == link_paths.end()) {
          link_paths.emplace(stat.linkname(), stat.path());
          stat.clear_linkname();
        } else if (it->second != stat.path()) {
          stat.set_linkname(it->second);
        }
      }
      link_paths[stat.path()] = stat.path();
    }
    const uint32_t id = next_id++;
    if (IsRegular(stat)) {
      std::lock_guard<std::mutex> lock(mu_);
      files_.emplace(id, stat.path());
    }
    Packet packet;
    packet.set_type(Packet::PACKET_STAT);
    const std::string path = stat.path();
    *packet.mutable_stat() = std::move(stat);
    AddProgress(static_cast<int64_t>(packet.ByteSizeLong()), false);
    return Annotate(SendPacket(packet), absl::StrCat("failed to send stat ", path));
  }));
  Packet last;
  last.set_type(Packet::PACKET_STAT);
  return Annotate(SendPacket(last), "failed to send last stat");
}

absl::Status Sender::SendFile(const Request& request) {
  // Like fsutil, a file that cannot be opened any more is sent as empty. O_NONBLOCK keeps a
  // file swapped for a FIFO from blocking the open.
  int err = 0;
  const int fd = internal::OpenBeneathRaw(root_fd_.get(), request.path,
                                          O_RDONLY | O_NONBLOCK | O_NOCTTY, 0, &err);
  UniqueFd file(fd);
  struct stat st;
  if (file.valid() && fstat(file.get(), &st) == 0 && S_ISREG(st.st_mode)) {
    std::string buf(kChunkSize, '\0');
    Packet packet;
    packet.set_type(Packet::PACKET_DATA);
    packet.set_id(request.id);
    while (true) {
      if (failed()) return absl::CancelledError("transfer stopped");
      const ssize_t n = read(file.get(), buf.data(), buf.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        return ErrnoToStatus(errno, absl::StrCat("read ", request.path));
      }
      if (n == 0) break;
      packet.set_data(buf.data(), static_cast<size_t>(n));
      KILN_RETURN_IF_ERROR(SendPacket(packet));
      AddProgress(static_cast<int64_t>(packet.ByteSizeLong()), false);
    }
  }
  Packet end;
  end.set_type(Packet::PACKET_DATA);
  end.set_id(request.id);
  return SendPacket(end);
}

void Sender::Worker() {
  while (true) {
    Request request;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return !queue_.empty() || queue_closed_; });
      if (queue_.empty() || failed()) return;
      request = std::move(queue_.front());
      queue_.pop_front();
    }
    if (absl::Status st = SendFile(request); !st.ok()) {
      Fail(st, /*tell_peer=*/true);
      return;
    }
  }
}

absl::Status Sender::ReadRequests() {
  Packet packet;
  while (true) {
    packet.Clear();
    absl::Status st = stream_.Recv(&packet);
    if (!st.ok()) {
      if (absl::IsOutOfRange(st)) {
        return absl::UnavailableError("receiver closed the stream before FIN");
      }
      return Annotate(st, "receive");
    }
    switch (packet.type()) {
      case Packet::PACKET_ERR:
        return absl::AbortedError(absl::StrCat("error from receiver: ", packet.data()));
      case Packet::PACKET_REQ: {
        std::lock_guard<std::mutex> lock(mu_);
        auto it = files_.find(packet.id());
        if (it == files_.end()) {
          return absl::InvalidArgumentError(absl::StrCat("invalid file id ", packet.id()));
        }
        queue_.push_back(Request{packet.id(), std::move(it->second)});
        files_.erase(it);
        cv_.notify_one();
        break;
      }
      case Packet::PACKET_FIN: {
        finished_.store(true, std::memory_order_release);
        Packet fin;
        fin.set_type(Packet::PACKET_FIN);
        return SendPacket(fin);
      }
      default:
        break;  // fsutil ignores anything else from the receiver
    }
  }
}

absl::Status Sender::Run(const std::string& root) {
  absl::StatusOr<UniqueFd> root_fd = internal::OpenDirectory(root);
  if (!root_fd.ok()) {
    Packet err;
    err.set_type(Packet::PACKET_ERR);
    err.set_data(std::string(root_fd.status().message()));
    (void)SendPacket(err);
    return root_fd.status();
  }
  root_fd_ = *std::move(root_fd);

  std::vector<std::thread> threads;
  auto join_all = [&] {
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_closed_ = true;
    }
    cv_.notify_all();
    for (std::thread& t : threads) t.join();
  };
  try {
    threads.emplace_back([this, &root] {
      if (absl::Status st = WalkAndSendStats(root); !st.ok() && !failed()) {
        Fail(st, /*tell_peer=*/true);
      }
    });
    for (int i = 0; i < std::max(1, options_.parallel_files); ++i) {
      threads.emplace_back([this] { Worker(); });
    }
  } catch (const std::system_error& e) {
    Fail(absl::ResourceExhaustedError(absl::StrCat("start sender threads: ", e.what())), true);
    join_all();
    return absl::ResourceExhaustedError(absl::StrCat("start sender threads: ", e.what()));
  }

  if (absl::Status st = ReadRequests(); !st.ok()) {
    // A failure reported by the peer needs no ERR back; our own failures do.
    const bool tell_peer = !absl::IsAborted(st) && !absl::IsUnavailable(st);
    Fail(st, tell_peer && !failed());
  }
  join_all();
  AddProgress(0, true);
  std::lock_guard<std::mutex> lock(mu_);
  return error_;
}

}  // namespace

absl::Status Send(PacketStream& stream, const std::string& root, const SendOptions& options) {
  Sender sender(stream, options);
  return sender.Run(root);
}

}  // namespace kiln::fsutil
