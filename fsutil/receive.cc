// The receiving side of DiffCopy (fsutil's receive.go and diskwriter.go). The calling thread
// reads packets and applies them to the destination in stream order, merging the incoming
// listing with a walk of what is already there; a writer thread sends REQ/FIN/ERR so that
// reading never waits on the peer.

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/digest.h"
#include "base/status.h"
#include "fsutil/diffcopy.h"
#include "fsutil/index.h"
#include "fsutil/internal/fd.h"
#include "fsutil/internal/index_builder.h"
#include "fsutil/internal/tree.h"
#include "fsutil/internal/validator.h"
#include "fsutil/paths.h"
#include "fsutil/stat.h"

namespace kiln::fsutil {
namespace {

using ::fsutil::types::Packet;
using ::fsutil::types::Stat;
using internal::UniqueFd;

constexpr size_t kMaxOpenFiles = 1024;  // files a sender may interleave at once
constexpr auto kErrorGrace = std::chrono::seconds(5);

std::string Quote(std::string_view s) { return absl::StrCat("\"", absl::CHexEscape(AV(s)), "\""); }

// Sends queued packets on its own thread. Thread-safe.
class PacketWriter {
 public:
  explicit PacketWriter(PacketStream& stream) : stream_(stream) {}
  ~PacketWriter() { Join(); }

  absl::Status Start() {
    try {
      thread_ = std::thread([this] { Loop(); });
    } catch (const std::system_error& e) {
      return absl::ResourceExhaustedError(absl::StrCat("start writer thread: ", e.what()));
    }
    return absl::OkStatus();
  }

  void Push(Packet packet) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (closed_) return;
      queue_.push_back(std::move(packet));
    }
    cv_.notify_all();
  }

  // Stops accepting packets and waits up to `grace` until the queued ones are sent.
  bool CloseAndDrain(std::chrono::steady_clock::duration grace) {
    std::unique_lock<std::mutex> lock(mu_);
    closed_ = true;
    cv_.notify_all();
    return cv_.wait_for(lock, grace, [&] { return done_; });
  }

  void Join() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      closed_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

  absl::Status error() {
    std::lock_guard<std::mutex> lock(mu_);
    return error_;
  }

 private:
  void Loop() {
    std::unique_lock<std::mutex> lock(mu_);
    while (true) {
      cv_.wait(lock, [&] { return !queue_.empty() || closed_; });
      if (queue_.empty() || !error_.ok()) break;
      Packet packet = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      absl::Status st = stream_.Send(packet);
      lock.lock();
      if (!st.ok()) error_ = Annotate(st, "send");
    }
    done_ = true;
    cv_.notify_all();
  }

  PacketStream& stream_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Packet> queue_;  // guarded by mu_
  bool closed_ = false;       // guarded by mu_
  bool done_ = false;         // guarded by mu_
  absl::Status error_;        // guarded by mu_
  std::thread thread_;
};

// fsutil's metadata diff (sameFile with DiffMetadata): sizes and times of non-directories, then
// mode, owner, device numbers and link target.
bool SameFile(const Stat& a, const Stat& b) {
  if (!IsDir(a) && (a.size() != b.size() || a.modtime() != b.modtime())) return false;
  return a.mode() == b.mode() && a.uid() == b.uid() && a.gid() == b.gid() &&
         a.devmajor() == b.devmajor() && a.devminor() == b.devminor() &&
         a.linkname() == b.linkname();
}

struct timespec ToTimespec(int64_t ns) {
  struct timespec ts;
  ts.tv_sec = ns / 1000000000;
  ts.tv_nsec = ns % 1000000000;
  if (ts.tv_nsec < 0) {
    ts.tv_nsec += 1000000000;
    ts.tv_sec -= 1;
  }
  return ts;
}

absl::Status WriteAll(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    const ssize_t n = write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoToStatus(errno, absl::StrCat("write ", path));
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

class Receiver {
 public:
  Receiver(PacketStream& stream, const ReceiveOptions& options)
      : stream_(stream), options_(options), writer_(stream) {}

  absl::StatusOr<ReceiveStats> Run(const std::string& dest);

 private:
  struct OpenDir {
    std::string path;  // "" for the destination
    UniqueFd fd;
  };
  struct PendingFile {
    std::string path;
    Stat stat;
    ChangeKind kind;
    std::string tmp;  // temporary name in the parent directory, once created
    UniqueFd fd;
    std::unique_ptr<Sha256> hash;
  };
  struct DeferredLink {
    std::string path;
    Stat stat;
    ChangeKind kind;
  };

  absl::Status Transfer();
  absl::Status HandleStat(Stat stat);
  absl::Status HandleData(uint32_t id, const std::string& data);
  absl::Status NextDest();
  absl::Status AdvanceDest(const std::string* until);
  absl::Status DeleteDestEntry();
  absl::Status Apply(uint32_t id, const Stat& stat, ChangeKind kind);
  absl::Status ApplyDir(int parent, const std::string& name, const Stat& stat, bool has_old,
                        const struct stat& old);
  absl::Status ApplySpecial(int parent, const std::string& name, const Stat& stat, bool has_old,
                            const struct stat& old, bool* skipped);
  absl::Status PushDir(const std::string& path, UniqueFd fd);
  absl::StatusOr<int> ParentFd(const std::string& path);
  absl::StatusOr<UniqueFd> OpenDestDir(const std::string& dir);
  absl::Status FinishFile(PendingFile& file);
  absl::Status Finalize();
  absl::Status VerifyAndIndex();
  void Notify(ChangeKind kind, const std::string& path) {
    if (options_.notify) options_.notify(kind, path);
  }
  void Progress(const Packet& packet) {
    if (!options_.progress) return;
    progress_bytes_ += static_cast<int64_t>(packet.ByteSizeLong());
    options_.progress(progress_bytes_, false);
  }
  void RemovePendingTemps();

  PacketStream& stream_;
  const ReceiveOptions& options_;
  PacketWriter writer_;
  ReceiveStats stats_;
  int64_t progress_bytes_ = 0;

  UniqueFd dest_fd_;
  std::unique_ptr<internal::TreeIterator> dest_it_;  // what dest held; null when merging
  bool dest_valid_ = false;

  internal::StatValidator validator_;
  uint32_t next_id_ = 0;
  bool listing_done_ = false;
  std::string left_out_;  // a directory the filter left out, with its contents
  std::vector<OpenDir> dirs_;
  std::unordered_map<uint32_t, PendingFile> pending_;
  size_t open_files_ = 0;
  std::vector<DeferredLink> links_;
  std::vector<std::pair<std::string, Stat>> final_dirs_;  // metadata applied last
  std::vector<Stat> expected_;                            // for verification, in stream order
  std::unordered_set<std::string> kept_;                  // entries not sent that the filter kept
  internal::KnownDigests known_;
};

absl::Status Receiver::NextDest() {
  KILN_ASSIGN_OR_RETURN(dest_valid_, dest_it_->Next());
  if (dest_valid_ && !dest_it_->dir_error().ok()) return dest_it_->dir_error();
  return absl::OkStatus();
}

absl::Status Receiver::DeleteDestEntry() {
  const std::string path = dest_it_->path();
  if (options_.filter) {
    Stat empty;
    if (!options_.filter(path, &empty)) {
      kept_.insert(path);  // kept; its contents are considered one by one
      return absl::OkStatus();
    }
  }
  if (dest_it_->is_dir()) dest_it_->SkipDir();
  KILN_RETURN_IF_ERROR(Annotate(internal::RemoveAllAt(dest_it_->parent_fd(), dest_it_->name()),
                                absl::StrCat("failed to remove ", path)));
  ++stats_.entries_deleted;
  Notify(ChangeKind::kDelete, path);
  return absl::OkStatus();
}

absl::Status Receiver::AdvanceDest(const std::string* until) {
  while (dest_valid_ && (until == nullptr || ComparePath(dest_it_->path(), *until) < 0)) {
    KILN_RETURN_IF_ERROR(DeleteDestEntry());
    KILN_RETURN_IF_ERROR(NextDest());
  }
  return absl::OkStatus();
}

absl::StatusOr<int> Receiver::ParentFd(const std::string& path) {
  std::string dir = DirPath(path);
  if (dir == ".") dir.clear();
  while (dirs_.size() > 1 && !PathWithin(dir, dirs_.back().path)) dirs_.pop_back();
  if (dirs_.back().path != dir) {
    return absl::FailedPreconditionError(
        absl::StrCat("parent directory of ", Quote(path), " was not created"));
  }
  return dirs_.back().fd.get();
}

absl::StatusOr<UniqueFd> Receiver::OpenDestDir(const std::string& dir) {
  std::string rel = dir == "." ? "" : dir;
  for (auto it = dirs_.rbegin(); it != dirs_.rend(); ++it) {
    if (it->path == rel) {
      const int fd = fcntl(it->fd.get(), F_DUPFD_CLOEXEC, 0);
      if (fd < 0) return ErrnoToStatus(errno, "dup");
      return UniqueFd(fd);
    }
  }
  return internal::OpenBeneath(dest_fd_.get(), rel, O_RDONLY | O_DIRECTORY);
}

absl::Status Receiver::PushDir(const std::string& path, UniqueFd fd) {
  // Directories stay owner-writable while the transfer fills them; their final mode is applied
  // at the end with their times.
  struct stat st;
  if (fstat(fd.get(), &st) != 0) return ErrnoToStatus(errno, absl::StrCat("stat ", path));
  if ((st.st_mode & 0700) != 0700 && fchmod(fd.get(), (st.st_mode & 07777) | 0700) != 0) {
    return ErrnoToStatus(errno, absl::StrCat("chmod ", path));
  }
  dirs_.push_back(OpenDir{path, std::move(fd)});
  return absl::OkStatus();
}

absl::Status Receiver::HandleStat(Stat stat) {
  const uint32_t id = next_id_++;
  ++stats_.entries;
  KILN_RETURN_IF_ERROR(validator_.Check(stat));
  const std::string path = stat.path();
  if (!left_out_.empty() && PathWithin(path, left_out_)) return absl::OkStatus();
  left_out_.clear();
  Stat incoming = std::move(stat);
  if (options_.filter) {
    if (!options_.filter(path, &incoming)) {
      if (IsDir(incoming)) left_out_ = path;
      return absl::OkStatus();
    }
    incoming.set_path(path);  // the filter may rewrite metadata, not move entries
  }

  ChangeKind kind = ChangeKind::kAdd;
  if (dest_it_ != nullptr) {
    KILN_RETURN_IF_ERROR(AdvanceDest(&path));
    if (dest_valid_ && dest_it_->path() == path) {
      absl::StatusOr<Stat> current = dest_it_->Stat(StatOptions{.xattrs = false});
      if (absl::IsNotFound(current.status())) {
        KILN_RETURN_IF_ERROR(NextDest());
      } else {
        if (!current.ok()) return current.status();
        const bool same = SameFile(*current, incoming);
        if (dest_it_->is_dir() && !IsDir(incoming)) dest_it_->SkipDir();
        if (dest_it_->is_dir() && IsDir(incoming) && (current->mode() & 0700) != 0700 &&
            fchmodat(dest_it_->parent_fd(), dest_it_->name().c_str(),
                     PosixPermFromGo(current->mode()) | 0700, 0) != 0) {
          // The walk must read it and the transfer may write into it; the final mode is
          // applied at the end.
          return ErrnoToStatus(errno, absl::StrCat("chmod ", path));
        }
        // Moving on reads the directory's listing (if we descend) before anything in it changes.
        KILN_RETURN_IF_ERROR(NextDest());
        if (same) {
          incoming.clear_xattrs();
          if (IsDir(incoming)) {
            KILN_ASSIGN_OR_RETURN(int parent, ParentFd(path));
            KILN_ASSIGN_OR_RETURN(
                UniqueFd fd, internal::OpenBeneath(parent, BasePath(path), O_RDONLY | O_DIRECTORY));
            KILN_RETURN_IF_ERROR(PushDir(path, std::move(fd)));
            final_dirs_.emplace_back(path, incoming);
          }
          expected_.push_back(std::move(incoming));
          return absl::OkStatus();
        }
        kind = ChangeKind::kModify;
      }
    }
  }
  return Apply(id, incoming, kind);
}

absl::Status Receiver::Apply(uint32_t id, const Stat& stat, ChangeKind kind) {
  const std::string& path = stat.path();
  KILN_ASSIGN_OR_RETURN(int parent, ParentFd(path));
  const std::string name = BasePath(path);
  struct stat old;
  bool has_old = fstatat(parent, name.c_str(), &old, AT_SYMLINK_NOFOLLOW) == 0;
  if (!has_old && errno != ENOENT) return ErrnoToStatus(errno, absl::StrCat("lstat ", path));

  Stat expected = stat;
  expected.clear_xattrs();
  if (IsDir(stat)) {
    KILN_RETURN_IF_ERROR(ApplyDir(parent, name, stat, has_old, old));
    final_dirs_.emplace_back(path, expected);
    Notify(kind, path);
  } else if (IsRegular(stat) && stat.linkname().empty()) {
    if (has_old && S_ISDIR(old.st_mode)) {
      KILN_RETURN_IF_ERROR(internal::RemoveAllAt(parent, name));
    }
    PendingFile file{path, stat, kind, "", UniqueFd(), std::make_unique<Sha256>()};
    pending_.emplace(id, std::move(file));
    Packet req;
    req.set_type(Packet::PACKET_REQ);
    req.set_id(id);
    writer_.Push(std::move(req));
    ++stats_.files_requested;
  } else if (IsRegular(stat)) {
    links_.push_back(DeferredLink{path, stat, kind});  // once every file has its data
  } else {
    bool skipped = false;
    KILN_RETURN_IF_ERROR(ApplySpecial(parent, name, stat, has_old, old, &skipped));
    if (skipped) return absl::OkStatus();
    Notify(kind, path);
  }
  expected_.push_back(std::move(expected));
  return absl::OkStatus();
}

// Best effort, like fsutil: attributes the filesystem or our privileges refuse are dropped.
// Called after chown, which would strip security.capability, and after the data is written.
void SetXattrs(const Stat& stat, int fd, const std::string& path_for_l) {
  for (const auto& [key, value] : stat.xattrs()) {
    if (fd >= 0) {
      (void)fsetxattr(fd, key.c_str(), value.data(), value.size(), 0);
    } else {
      (void)lsetxattr(path_for_l.c_str(), key.c_str(), value.data(), value.size(), 0);
    }
  }
}

absl::Status Receiver::ApplyDir(int parent, const std::string& name, const Stat& stat, bool has_old,
                                const struct stat& old) {
  const std::string& path = stat.path();
  if (!has_old || !S_ISDIR(old.st_mode)) {
    if (has_old) KILN_RETURN_IF_ERROR(internal::RemoveAllAt(parent, name));
    if (mkdirat(parent, name.c_str(), 0700) != 0) {
      return ErrnoToStatus(errno, absl::StrCat("failed to create dir ", path));
    }
  }
  KILN_ASSIGN_OR_RETURN(UniqueFd fd, internal::OpenBeneath(parent, name, O_RDONLY | O_DIRECTORY));
  if (fchown(fd.get(), stat.uid(), stat.gid()) != 0) {
    return ErrnoToStatus(errno, absl::StrCat("chown ", path));
  }
  SetXattrs(stat, fd.get(), "");
  return PushDir(path, std::move(fd));
}

absl::Status Receiver::ApplySpecial(int parent, const std::string& name, const Stat& stat,
                                    bool has_old, const struct stat& old, bool* skipped) {
  const std::string& path = stat.path();
  const uint32_t mode = stat.mode();
  std::string tmp;
  for (int attempt = 0;; ++attempt) {
    tmp = internal::TempName();
    int rc;
    if ((mode & kModeSymlink) != 0) {
      rc = symlinkat(stat.linkname().c_str(), parent, tmp.c_str());
    } else if ((mode & (kModeDevice | kModeNamedPipe)) != 0) {
      mode_t type = S_IFBLK;
      if ((mode & kModeCharDevice) != 0) {
        type = S_IFCHR;
      } else if ((mode & kModeNamedPipe) != 0) {
        type = S_IFIFO;
      }
      rc = mknodat(
          parent, tmp.c_str(), type | (mode & 0777),
          makedev(static_cast<unsigned>(stat.devmajor()), static_cast<unsigned>(stat.devminor())));
      if (rc != 0 && errno == EPERM && type != S_IFIFO) {
        // Device nodes need privileges we may not have; like a rootless BuildKit, skip them.
        if (has_old) KILN_RETURN_IF_ERROR(internal::RemoveAllAt(parent, name));
        *skipped = true;
        return absl::OkStatus();
      }
    } else {
      return absl::InvalidArgumentError(
          absl::StrFormat("stat %s: unsupported file mode %#o", Quote(path), mode));
    }
    if (rc == 0) break;
    if (errno != EEXIST || attempt >= 8) {
      return ErrnoToStatus(errno, absl::StrCat("failed to create ", path));
    }
  }
  absl::Status st;
  if (fchownat(parent, tmp.c_str(), stat.uid(), stat.gid(), AT_SYMLINK_NOFOLLOW) != 0) {
    st = ErrnoToStatus(errno, absl::StrCat("chown ", path));
  }
  SetXattrs(stat, -1, internal::FdRelativePath(parent, tmp));
  if (st.ok() && (mode & kModeSymlink) == 0 &&
      fchmodat(parent, tmp.c_str(), PosixPermFromGo(mode), 0) != 0) {
    st = ErrnoToStatus(errno, absl::StrCat("chmod ", path));
  }
  const struct timespec times[2] = {ToTimespec(stat.modtime()), ToTimespec(stat.modtime())};
  if (st.ok() && utimensat(parent, tmp.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0) {
    st = ErrnoToStatus(errno, absl::StrCat("chtimes ", path));
  }
  if (st.ok() && has_old && S_ISDIR(old.st_mode)) st = internal::RemoveAllAt(parent, name);
  if (st.ok() && renameat(parent, tmp.c_str(), parent, name.c_str()) != 0) {
    st = ErrnoToStatus(errno, absl::StrCat("rename to ", path));
  }
  if (!st.ok()) unlinkat(parent, tmp.c_str(), 0);
  return st;
}

absl::Status Receiver::HandleData(uint32_t id, const std::string& data) {
  auto it = pending_.find(id);
  if (it == pending_.end())
    return absl::InvalidArgumentError(absl::StrCat("invalid file request ", id));
  PendingFile& file = it->second;
  if (!file.fd.valid()) {
    if (open_files_ >= kMaxOpenFiles) {
      return absl::ResourceExhaustedError("sender interleaves too many files");
    }
    KILN_ASSIGN_OR_RETURN(UniqueFd parent, OpenDestDir(DirPath(file.path)));
    for (int attempt = 0;; ++attempt) {
      std::string tmp = internal::TempName();
      const int fd = openat(parent.get(), tmp.c_str(),
                            O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
      if (fd >= 0) {
        file.fd = UniqueFd(fd);
        file.tmp = std::move(tmp);
        ++open_files_;
        break;
      }
      if (errno != EEXIST || attempt >= 8) {
        return ErrnoToStatus(errno, absl::StrCat("failed to create ", file.path));
      }
    }
  }
  if (!data.empty()) {
    KILN_RETURN_IF_ERROR(WriteAll(file.fd.get(), data, file.path));
    file.hash->Update(data);
    stats_.bytes_received += data.size();
    return absl::OkStatus();
  }
  absl::Status st = FinishFile(file);
  pending_.erase(it);
  return st;
}

absl::Status Receiver::FinishFile(PendingFile& file) {
  const Stat& stat = file.stat;
  const int fd = file.fd.get();
  const std::string& path = file.path;
  absl::Status st;
  if (fchown(fd, stat.uid(), stat.gid()) != 0)
    st = ErrnoToStatus(errno, absl::StrCat("chown ", path));
  SetXattrs(stat, fd, "");
  if (st.ok() && fchmod(fd, PosixPermFromGo(stat.mode())) != 0) {
    st = ErrnoToStatus(errno, absl::StrCat("chmod ", path));
  }
  const struct timespec times[2] = {ToTimespec(stat.modtime()), ToTimespec(stat.modtime())};
  if (st.ok() && futimens(fd, times) != 0)
    st = ErrnoToStatus(errno, absl::StrCat("chtimes ", path));
  struct stat written;
  if (st.ok() && fstat(fd, &written) != 0) st = ErrnoToStatus(errno, absl::StrCat("stat ", path));
  file.fd.Reset();
  --open_files_;
  absl::StatusOr<UniqueFd> parent = OpenDestDir(DirPath(path));
  if (!parent.ok()) return parent.status();
  const std::string name = BasePath(path);
  if (st.ok()) {
    struct stat old;
    if (fstatat(parent->get(), name.c_str(), &old, AT_SYMLINK_NOFOLLOW) == 0 &&
        S_ISDIR(old.st_mode)) {
      st = internal::RemoveAllAt(parent->get(), name);
    }
  }
  if (st.ok() && renameat(parent->get(), file.tmp.c_str(), parent->get(), name.c_str()) != 0) {
    st = ErrnoToStatus(errno, absl::StrCat("rename to ", path));
  }
  if (!st.ok()) {
    unlinkat(parent->get(), file.tmp.c_str(), 0);
    return st;
  }
  file.tmp.clear();
  known_[path] =
      internal::KnownDigest{static_cast<uint64_t>(written.st_ino), file.hash->HexDigest()};
  Notify(file.kind, path);
  return absl::OkStatus();
}

void Receiver::RemovePendingTemps() {
  for (auto& [id, file] : pending_) {
    if (file.tmp.empty()) continue;
    file.fd.Reset();
    if (absl::StatusOr<UniqueFd> parent = OpenDestDir(DirPath(file.path)); parent.ok()) {
      unlinkat(parent->get(), file.tmp.c_str(), 0);
    }
  }
  pending_.clear();
}

absl::Status Receiver::Finalize() {
  // Hard links last, so that they share the inode their source ended up with.
  for (const DeferredLink& link : links_) {
    const Stat& stat = link.stat;
    KILN_ASSIGN_OR_RETURN(UniqueFd parent, OpenDestDir(DirPath(link.path)));
    KILN_ASSIGN_OR_RETURN(UniqueFd source_parent, OpenDestDir(DirPath(stat.linkname())));
    const std::string name = BasePath(link.path);
    const std::string source = BasePath(stat.linkname());
    std::string tmp;
    for (int attempt = 0;; ++attempt) {
      tmp = internal::TempName();
      if (linkat(source_parent.get(), source.c_str(), parent.get(), tmp.c_str(), 0) == 0) break;
      if (errno != EEXIST || attempt >= 8) {
        return ErrnoToStatus(errno, absl::StrFormat("failed to link %s to %s", Quote(link.path),
                                                    Quote(stat.linkname())));
      }
    }
    absl::Status st;
    struct stat linked;
    if (fstatat(parent.get(), tmp.c_str(), &linked, AT_SYMLINK_NOFOLLOW) != 0) {
      st = ErrnoToStatus(errno, absl::StrCat("lstat ", link.path));
    } else if (S_ISLNK(linked.st_mode) || S_ISDIR(linked.st_mode)) {
      // The source was left out or replaced; never change metadata through a symlink.
      st = absl::InvalidArgumentError(absl::StrFormat("invalid link %s: %s is not a file",
                                                      Quote(link.path), Quote(stat.linkname())));
    } else if (fchownat(parent.get(), tmp.c_str(), stat.uid(), stat.gid(), AT_SYMLINK_NOFOLLOW) !=
               0) {
      st = ErrnoToStatus(errno, absl::StrCat("chown ", link.path));
    }
    if (st.ok() && fchmodat(parent.get(), tmp.c_str(), PosixPermFromGo(stat.mode()), 0) != 0) {
      st = ErrnoToStatus(errno, absl::StrCat("chmod ", link.path));
    }
    const struct timespec times[2] = {ToTimespec(stat.modtime()), ToTimespec(stat.modtime())};
    if (st.ok() && utimensat(parent.get(), tmp.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0) {
      st = ErrnoToStatus(errno, absl::StrCat("chtimes ", link.path));
    }
    if (st.ok()) {
      struct stat old;
      if (fstatat(parent.get(), name.c_str(), &old, AT_SYMLINK_NOFOLLOW) == 0 &&
          S_ISDIR(old.st_mode)) {
        st = internal::RemoveAllAt(parent.get(), name);
      }
    }
    if (st.ok() && renameat(parent.get(), tmp.c_str(), parent.get(), name.c_str()) != 0) {
      st = ErrnoToStatus(errno, absl::StrCat("rename to ", link.path));
    }
    if (!st.ok()) {
      unlinkat(parent.get(), tmp.c_str(), 0);
      return st;
    }
    Notify(link.kind, link.path);
  }

  // Directory modes and times after their contents; children before parents, so a parent
  // that becomes read-only no longer matters.
  dirs_.resize(1);
  for (auto it = final_dirs_.rbegin(); it != final_dirs_.rend(); ++it) {
    const auto& [path, stat] = *it;
    KILN_ASSIGN_OR_RETURN(UniqueFd fd,
                          internal::OpenBeneath(dest_fd_.get(), path, O_RDONLY | O_DIRECTORY));
    struct stat st;
    if (fstat(fd.get(), &st) != 0) return ErrnoToStatus(errno, absl::StrCat("stat ", path));
    const mode_t perm = PosixPermFromGo(stat.mode());
    if ((st.st_mode & 07777) != perm && fchmod(fd.get(), perm) != 0) {
      return ErrnoToStatus(errno, absl::StrCat("chmod ", path));
    }
    const struct timespec mtime = ToTimespec(stat.modtime());
    if (st.st_mtim.tv_sec != mtime.tv_sec || st.st_mtim.tv_nsec != mtime.tv_nsec) {
      const struct timespec times[2] = {mtime, mtime};
      if (futimens(fd.get(), times) != 0) {
        return ErrnoToStatus(errno, absl::StrCat("chtimes ", path));
      }
    }
  }

  if (options_.verify || !options_.index_path.empty()) return VerifyAndIndex();
  return absl::OkStatus();
}

absl::Status Receiver::VerifyAndIndex() {
  std::optional<ContentIndex> previous;
  if (!options_.index_path.empty()) {
    // A missing or damaged index only costs re-reading files.
    if (absl::StatusOr<ContentIndex> loaded = ContentIndex::Load(options_.index_path);
        loaded.ok()) {
      previous = *std::move(loaded);
    }
  }
  size_t next = 0;
  auto mismatch = [](const std::string& path, std::string_view what) {
    return absl::DataLossError(
        absl::StrCat("destination does not match the transfer at ", Quote(path), ": ", AV(what)));
  };
  auto visit = [&](const IndexRecord& rec) -> absl::Status {
    if (!options_.verify) return absl::OkStatus();
    if (next < expected_.size() && ComparePath(expected_[next].path(), rec.path) < 0) {
      return mismatch(expected_[next].path(), "missing");
    }
    if (next >= expected_.size() || expected_[next].path() != rec.path) {
      // Merging keeps what was there; so does a filter that refused a deletion.
      if (options_.merge || kept_.count(rec.path) != 0) return absl::OkStatus();
      return mismatch(rec.path, "not sent by the sender");
    }
    const Stat& want = expected_[next++];
    constexpr uint32_t kCompared = kModeType | kModePerm | kModeSetuid | kModeSetgid | kModeSticky;
    const bool symlink = IsSymlink(want);
    if ((rec.mode & kModeType) != (want.mode() & kModeType)) return mismatch(rec.path, "type");
    if (!symlink && (rec.mode & kCompared) != (want.mode() & kCompared)) {
      return mismatch(rec.path, "mode");
    }
    if (rec.uid != want.uid() || rec.gid != want.gid()) return mismatch(rec.path, "owner");
    if (rec.mtime_ns != want.modtime()) return mismatch(rec.path, "modification time");
    if (rec.linkname != want.linkname()) {
      return mismatch(rec.path, symlink ? "symlink target" : "hard link");
    }
    if (rec.devmajor != want.devmajor() || rec.devminor != want.devminor()) {
      return mismatch(rec.path, "device number");
    }
    return absl::OkStatus();
  };
  IndexBuildStats index_stats;
  KILN_ASSIGN_OR_RETURN(
      std::vector<IndexRecord> records,
      internal::IndexTree(dest_fd_.get(), /*digests=*/!options_.index_path.empty(),
                          previous ? &*previous : nullptr, &known_, &index_stats, visit));
  if (options_.verify && next < expected_.size()) {
    return mismatch(expected_[next].path(), "missing");
  }
  stats_.files_hashed = index_stats.files_hashed;
  if (!options_.index_path.empty()) {
    KILN_RETURN_IF_ERROR(ContentIndex(std::move(records)).Save(options_.index_path));
  }
  return absl::OkStatus();
}

absl::Status Receiver::Transfer() {
  Packet packet;
  while (!listing_done_ || !pending_.empty()) {
    packet.Clear();
    absl::Status st = stream_.Recv(&packet);
    if (!st.ok()) {
      if (absl::IsOutOfRange(st)) {
        return absl::UnavailableError("sender closed the stream before the transfer completed");
      }
      return Annotate(st, "receive");
    }
    Progress(packet);
    KILN_RETURN_IF_ERROR(writer_.error());
    switch (packet.type()) {
      case Packet::PACKET_ERR:
        return absl::AbortedError(absl::StrCat("error from sender: ", packet.data()));
      case Packet::PACKET_STAT:
        if (listing_done_) return absl::InvalidArgumentError("stat after the end of the listing");
        if (!packet.has_stat()) {
          listing_done_ = true;
          if (dest_it_ != nullptr) KILN_RETURN_IF_ERROR(AdvanceDest(nullptr));
        } else {
          KILN_RETURN_IF_ERROR(HandleStat(std::move(*packet.mutable_stat())));
        }
        break;
      case Packet::PACKET_DATA:
        KILN_RETURN_IF_ERROR(HandleData(packet.id(), packet.data()));
        break;
      case Packet::PACKET_FIN:
        return absl::InvalidArgumentError("sender finished before the transfer completed");
      default:
        break;  // fsutil ignores anything else from the sender
    }
  }
  return Finalize();
}

absl::StatusOr<ReceiveStats> Receiver::Run(const std::string& dest) {
  if (absl::Status started = writer_.Start(); !started.ok()) return started;
  absl::Status st = [&]() -> absl::Status {
    KILN_ASSIGN_OR_RETURN(dest_fd_, internal::OpenDirectory(dest));
    KILN_ASSIGN_OR_RETURN(UniqueFd root,
                          internal::OpenBeneath(dest_fd_.get(), "", O_RDONLY | O_DIRECTORY));
    dirs_.push_back(OpenDir{"", std::move(root)});
    if (!options_.merge) {
      dest_it_ = std::make_unique<internal::TreeIterator>(dest_fd_.get());
      KILN_RETURN_IF_ERROR(NextDest());
    }
    return Transfer();
  }();

  if (!st.ok()) {
    Packet err;
    err.set_type(Packet::PACKET_ERR);
    err.set_data(std::string(st.message()));
    writer_.Push(std::move(err));
    writer_.CloseAndDrain(kErrorGrace);
    stream_.Cancel();
    writer_.Join();
    RemovePendingTemps();
    if (options_.progress) options_.progress(progress_bytes_, true);
    return st;
  }

  Packet fin;
  fin.set_type(Packet::PACKET_FIN);
  writer_.Push(std::move(fin));
  // Like fsutil, read until the sender closes the stream (it answers FIN with FIN).
  Packet packet;
  while (true) {
    packet.Clear();
    absl::Status rst = stream_.Recv(&packet);
    if (absl::IsOutOfRange(rst)) break;
    if (!rst.ok()) {
      st = Annotate(rst, "receive after FIN");
      break;
    }
    Progress(packet);
  }
  writer_.Join();
  if (st.ok()) st = writer_.error();
  if (options_.progress) options_.progress(progress_bytes_, true);
  if (!st.ok()) return st;
  return stats_;
}

}  // namespace

absl::StatusOr<ReceiveStats> Receive(PacketStream& stream, const std::string& dest,
                                     const ReceiveOptions& options) {
  Receiver receiver(stream, options);
  return receiver.Run(dest);
}

}  // namespace kiln::fsutil
