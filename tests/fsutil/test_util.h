#pragma once
// Helpers for fsutil tests: temporary trees, an in-memory PacketStream pipe, and a tree dump.

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "fsutil/diffcopy.h"
#include "fsutil/walk.h"

namespace kiln::fsutil::testing {

// A directory removed (with everything below it) when the object dies.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "kiln-fsutil-XXXXXX").string();
    char* dir = mkdtemp(tmpl.data());
    if (dir == nullptr) std::abort();
    path_ = dir;
  }
  ~TempDir() {
    // Make everything removable first (tests create read-only directories).
    std::error_code ec;
    for (auto it = std::filesystem::recursive_directory_iterator(
             path_, std::filesystem::directory_options::skip_permission_denied, ec);
         it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
      if (it->is_directory(ec) && !it->is_symlink(ec)) chmod(it->path().c_str(), 0700);
    }
    chmod(path_.c_str(), 0700);
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string Sub(std::string_view rel) const { return path_ + "/" + std::string(rel); }

 private:
  std::string path_;
};

inline void MakeDirs(const std::string& path) { std::filesystem::create_directories(path); }

inline void WriteFile(const std::string& path, std::string_view data, mode_t mode = 0644) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
  out.close();
  chmod(path.c_str(), mode);
}

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline bool Exists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

// Sets atime and mtime (nanoseconds) of `path` without following a symlink.
inline void SetMtime(const std::string& path, int64_t ns) {
  struct timespec ts[2];
  ts[0].tv_sec = ts[1].tv_sec = ns / 1000000000;
  ts[0].tv_nsec = ts[1].tv_nsec = ns % 1000000000;
  utimensat(AT_FDCWD, path.c_str(), ts, AT_SYMLINK_NOFOLLOW);
}

// One line per entry as fsutil's walker reports it: path, Go mode (octal), uid, gid, size for
// non-directories, mtime, link name, device numbers.
inline std::string DumpTree(const std::string& root) {
  std::string out;
  WalkOptions options;
  options.xattrs = false;
  absl::Status st = Walk(root, options, [&](::fsutil::types::Stat& s) {
    absl::StrAppend(&out, s.path(), " ", absl::Hex(s.mode()), " ", s.uid(), ":", s.gid(), " ",
                    s.size(), " ", s.modtime(), " ", s.linkname(), " ", s.devmajor(), ",",
                    s.devminor(), "\n");
    return absl::OkStatus();
  });
  if (!st.ok()) absl::StrAppend(&out, "ERROR ", st.ToString(), "\n");
  return out;
}

// Relative paths reported by Walk with `options`.
inline std::vector<std::string> WalkPaths(const std::string& root, const WalkOptions& options,
                                          absl::Status* status = nullptr) {
  std::vector<std::string> out;
  absl::Status st = Walk(root, options, [&](::fsutil::types::Stat& s) {
    out.push_back(s.path());
    return absl::OkStatus();
  });
  if (status != nullptr)
    *status = st;
  else
    EXPECT_TRUE(st.ok()) << st;
  return out;
}

// One direction of an in-memory pipe carrying serialized packets, with a bounded buffer so that
// flow control is exercised. Thread-safe.
class PacketChannel {
 public:
  explicit PacketChannel(size_t capacity) : capacity_(capacity) {}

  absl::Status Push(const ::fsutil::types::Packet& packet) {
    std::string bytes = packet.SerializeAsString();
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return queue_.size() < capacity_ || aborted_ || write_closed_; });
    if (aborted_) return absl::UnavailableError("peer cancelled the stream");
    if (write_closed_) return absl::FailedPreconditionError("send after close");
    queue_.push_back(std::move(bytes));
    cv_.notify_all();
    return absl::OkStatus();
  }

  absl::Status Pop(::fsutil::types::Packet* packet) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return !queue_.empty() || write_closed_ || aborted_; });
    if (aborted_) return absl::CancelledError("stream cancelled");
    if (queue_.empty()) return absl::OutOfRangeError("end of stream");
    std::string bytes = std::move(queue_.front());
    queue_.pop_front();
    cv_.notify_all();
    if (!packet->ParseFromString(bytes)) return absl::DataLossError("bad packet");
    return absl::OkStatus();
  }

  void CloseWrite() {
    std::lock_guard<std::mutex> lock(mu_);
    write_closed_ = true;
    cv_.notify_all();
  }

  void Abort() {
    std::lock_guard<std::mutex> lock(mu_);
    aborted_ = true;
    cv_.notify_all();
  }

 private:
  const size_t capacity_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> queue_;
  bool write_closed_ = false;
  bool aborted_ = false;
};

// One end of a pipe. CloseSend is what a gRPC handler's return does; Cancel models TryCancel:
// this end's reads fail and the peer's sends to it fail.
class PipeEnd : public PacketStream {
 public:
  PipeEnd(std::shared_ptr<PacketChannel> in, std::shared_ptr<PacketChannel> out)
      : in_(std::move(in)), out_(std::move(out)) {}

  absl::Status Send(const ::fsutil::types::Packet& packet) override {
    // The transfer functions promise one Send at a time; fail loudly if they do not.
    std::unique_lock<std::mutex> lock(send_mu_, std::try_to_lock);
    if (!lock.owns_lock()) {
      ADD_FAILURE() << "concurrent PacketStream::Send";
      return absl::InternalError("concurrent Send");
    }
    return out_->Push(packet);
  }
  absl::Status Recv(::fsutil::types::Packet* packet) override { return in_->Pop(packet); }
  void Cancel() override {
    out_->CloseWrite();
    in_->Abort();
  }
  void CloseSend() { out_->CloseWrite(); }

 private:
  std::shared_ptr<PacketChannel> in_;
  std::shared_ptr<PacketChannel> out_;
  std::mutex send_mu_;
};

inline std::pair<std::unique_ptr<PipeEnd>, std::unique_ptr<PipeEnd>> MakePipe(size_t capacity = 8) {
  auto a_to_b = std::make_shared<PacketChannel>(capacity);
  auto b_to_a = std::make_shared<PacketChannel>(capacity);
  return {std::make_unique<PipeEnd>(b_to_a, a_to_b), std::make_unique<PipeEnd>(a_to_b, b_to_a)};
}

struct SyncResult {
  absl::Status send;
  absl::StatusOr<ReceiveStats> receive;
};

// Runs Send(src) and Receive(dst) against each other over a pipe, as the client and the daemon
// would over FileSync.
inline SyncResult Sync(const std::string& src, const std::string& dst,
                       const SendOptions& send_options = {},
                       const ReceiveOptions& receive_options = {}) {
  auto [client, daemon] = MakePipe();
  SyncResult result;
  std::thread sender([&, c = client.get()] {
    result.send = Send(*c, src, send_options);
    c->CloseSend();
  });
  result.receive = Receive(*daemon, dst, receive_options);
  daemon->CloseSend();
  sender.join();
  return result;
}

}  // namespace kiln::fsutil::testing
