#include "daemon/content/store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <set>
#include <system_error>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/digest.h"
#include "base/status.h"
#include "daemon/util/fs.h"
#include "daemon/util/logging.h"

namespace kiln::content {
namespace fs = std::filesystem;
namespace {

constexpr auto kLockPoll = std::chrono::milliseconds(20);
constexpr size_t kIoChunk = 1 << 20;

// Ingest layout: ingest/<sha256 of key>/{lock,ref,data}. The directory name is a hash so that
// any key (with '/' or ':' in it) maps to one safe name; `ref` records the key and the digest
// the data is meant to become, so a resume for a different digest starts over.
std::string IngestName(std::string_view key) { return Sha256Digest(key).substr(7); }

absl::Status WriteAll(int fd, std::string_view data, const fs::path& path) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoToStatus(errno, absl::StrCat("write ", path.string()));
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

absl::Status FsyncDir(const fs::path& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoToStatus(errno, absl::StrCat("open ", dir.string()));
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return ErrnoToStatus(err, absl::StrCat("fsync ", dir.string()));
  return absl::OkStatus();
}

// In-process registry of ingest keys held by live writers. flock alone would not do: two
// descriptors of one process conflict only because they are separate open file descriptions,
// and waiting on a condition variable is cheaper than polling.
class KeyLocks {
 public:
  // Waits until `name` is free (or `ctx` stops) and takes it.
  absl::Status Acquire(const Context& ctx, const std::string& name) {
    std::unique_lock lock(mu_);
    while (held_.count(name) != 0) {
      KILN_RETURN_IF_ERROR(ctx.Check("waiting for content ingest lock"));
      cv_.wait_for(lock, std::chrono::milliseconds(50));
    }
    held_.insert(name);
    return absl::OkStatus();
  }
  void Release(const std::string& name) {
    {
      std::lock_guard lock(mu_);
      held_.erase(name);
    }
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::set<std::string> held_;  // guarded by mu_
};

class StoreImpl;

// A writer holding one ingest key (in-process and flock). Not thread-safe; one user at a time.
class WriterImpl : public Writer {
 public:
  WriterImpl(StoreImpl* store, std::string name, fs::path dir, int lock_fd, int data_fd,
             std::string expected_digest, int64_t expected_size, int64_t offset,
             std::unique_ptr<Sha256> hash)
      : store_(store),
        name_(std::move(name)),
        dir_(std::move(dir)),
        lock_fd_(lock_fd),
        data_fd_(data_fd),
        expected_digest_(std::move(expected_digest)),
        expected_size_(expected_size),
        offset_(offset),
        hash_(std::move(hash)) {}
  ~WriterImpl() override {
    if (!done_ && expected_digest_.empty()) RemoveIngest();  // nothing could resume it
    Close();
  }

  int64_t offset() const override { return offset_; }
  absl::Status Write(std::string_view data) override;
  absl::Status Truncate() override;
  absl::Status Commit() override;
  void Abort() override {
    if (done_) return;
    done_ = true;
    RemoveIngest();
    Close();
  }
  std::string digest() const override { return expected_digest_; }

 private:
  void Close();
  // Removes the ingest directory; the lock file last, while still holding its flock.
  void RemoveIngest();

  StoreImpl* store_;
  std::string name_;
  fs::path dir_;
  int lock_fd_;
  int data_fd_;
  std::string expected_digest_;
  int64_t expected_size_;
  int64_t offset_;
  std::unique_ptr<Sha256> hash_;
  bool done_ = false;
};

// Thread-safe: the filesystem is the state; key_locks_ serializes writers of one key.
class StoreImpl : public Store {
 public:
  explicit StoreImpl(fs::path root)
      : root_(std::move(root)), blobs_(root_ / "blobs" / "sha256"), ingest_(root_ / "ingest") {}

  bool Has(std::string_view digest) const override {
    if (!ValidDigest(digest)) return false;
    struct stat st;
    return ::stat(PathOf(digest).c_str(), &st) == 0 && S_ISREG(st.st_mode);
  }

  absl::StatusOr<int64_t> Size(std::string_view digest) const override {
    KILN_RETURN_IF_ERROR(CheckDigest(digest));
    struct stat st;
    if (::stat(PathOf(digest).c_str(), &st) != 0) {
      if (errno == ENOENT) return NotFound(digest);
      return ErrnoToStatus(errno, absl::StrCat("stat blob ", AV(digest)));
    }
    return static_cast<int64_t>(st.st_size);
  }

  absl::StatusOr<fs::path> BlobPath(std::string_view digest) const override {
    KILN_RETURN_IF_ERROR(CheckDigest(digest));
    if (!Has(digest)) return NotFound(digest);
    return PathOf(digest);
  }

  absl::StatusOr<std::string> Read(std::string_view digest, int64_t max_bytes) const override {
    KILN_ASSIGN_OR_RETURN(int64_t size, Size(digest));
    if (size > max_bytes) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "blob ", AV(digest), " is ", size, " bytes, more than the limit of ", max_bytes));
    }
    auto data = util::ReadFile(PathOf(digest));
    if (!data.ok() && absl::IsNotFound(data.status())) return NotFound(digest);
    return data;
  }

  absl::StatusOr<std::string> Put(std::string_view data,
                                  std::optional<std::string> expected_digest) override {
    std::string digest = Sha256Digest(data);
    if (expected_digest && *expected_digest != digest) {
      return absl::FailedPreconditionError(
          absl::StrCat("content digest mismatch: expected ", *expected_digest, ", got ", digest));
    }
    if (Has(digest)) return digest;
    auto writer = OpenWriter(Context(), absl::StrCat("put-", digest), digest,
                             static_cast<int64_t>(data.size()));
    if (!writer.ok()) {
      if (absl::IsAlreadyExists(writer.status())) return digest;
      return writer.status();
    }
    KILN_RETURN_IF_ERROR((*writer)->Truncate());
    KILN_RETURN_IF_ERROR((*writer)->Write(data));
    KILN_RETURN_IF_ERROR((*writer)->Commit());
    return digest;
  }

  absl::StatusOr<std::unique_ptr<Writer>> OpenWriter(const Context& ctx, const std::string& key,
                                                     const std::string& expected_digest,
                                                     int64_t expected_size) override;

  absl::Status Delete(std::string_view digest) override {
    KILN_RETURN_IF_ERROR(CheckDigest(digest));
    if (::unlink(PathOf(digest).c_str()) != 0 && errno != ENOENT) {
      return ErrnoToStatus(errno, absl::StrCat("delete blob ", AV(digest)));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<std::string>> List() const override {
    std::vector<std::string> out;
    std::error_code ec;
    for (fs::directory_iterator it(blobs_, ec), end; !ec && it != end; it.increment(ec)) {
      std::string digest = "sha256:" + it->path().filename().string();
      if (ValidDigest(digest) && it->is_regular_file()) out.push_back(std::move(digest));
    }
    if (ec) return absl::InternalError(absl::StrCat("list ", blobs_.string(), ": ", ec.message()));
    std::sort(out.begin(), out.end());
    return out;
  }

  absl::Status Init() {
    KILN_RETURN_IF_ERROR(util::EnsureDir(blobs_, 0755));
    KILN_RETURN_IF_ERROR(util::EnsureDir(ingest_, 0700));
    return absl::OkStatus();
  }

  fs::path PathOf(std::string_view digest) const { return blobs_ / std::string(digest.substr(7)); }
  const fs::path& blobs_dir() const { return blobs_; }
  KeyLocks& key_locks() { return key_locks_; }

 private:
  static absl::Status CheckDigest(std::string_view digest) {
    if (!ValidDigest(digest)) {
      return absl::InvalidArgumentError(absl::StrCat("invalid digest \"", AV(digest), "\""));
    }
    return absl::OkStatus();
  }
  static absl::Status NotFound(std::string_view digest) {
    return absl::NotFoundError(
        absl::StrCat("blob ", AV(digest), " not found in the content store"));
  }

  // Takes the flock on dir/lock, making sure the file we locked is still the one at that path
  // (a committing writer unlinks it while holding the lock).
  absl::StatusOr<int> LockIngest(const Context& ctx, const fs::path& dir) const;

  const fs::path root_;
  const fs::path blobs_;
  const fs::path ingest_;
  KeyLocks key_locks_;

  friend class WriterImpl;
};

absl::StatusOr<int> StoreImpl::LockIngest(const Context& ctx, const fs::path& dir) const {
  const fs::path lock_path = dir / "lock";
  for (;;) {
    KILN_RETURN_IF_ERROR(util::EnsureDir(dir, 0700));
    int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
      if (errno == ENOENT) continue;  // the directory was removed under us: make it again
      return ErrnoToStatus(errno, absl::StrCat("open ", lock_path.string()));
    }
    while (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      if (errno != EWOULDBLOCK && errno != EINTR) {
        int err = errno;
        ::close(fd);
        return ErrnoToStatus(err, absl::StrCat("flock ", lock_path.string()));
      }
      if (absl::Status st = ctx.Check("waiting for content ingest lock"); !st.ok()) {
        ::close(fd);
        return st;
      }
      std::this_thread::sleep_for(kLockPoll);
    }
    struct stat locked, current;
    if (::fstat(fd, &locked) == 0 && ::stat(lock_path.c_str(), &current) == 0 &&
        locked.st_ino == current.st_ino && locked.st_dev == current.st_dev) {
      return fd;
    }
    ::close(fd);  // the holder committed and removed it: start over on a fresh file
  }
}

absl::StatusOr<std::unique_ptr<Writer>> StoreImpl::OpenWriter(const Context& ctx,
                                                              const std::string& key,
                                                              const std::string& expected_digest,
                                                              int64_t expected_size) {
  // An empty digest: content whose digest is learnt while writing it (a layer being
  // compressed); Commit publishes it under the digest it computed.
  const bool known = !expected_digest.empty();
  if (known) KILN_RETURN_IF_ERROR(CheckDigest(expected_digest));
  if (key.empty()) return absl::InvalidArgumentError("empty content ingest key");
  if (known && Has(expected_digest)) {
    return absl::AlreadyExistsError(absl::StrCat("blob ", expected_digest, " already exists"));
  }
  const std::string name = IngestName(key);
  KILN_RETURN_IF_ERROR(key_locks_.Acquire(ctx, name));
  auto release_key = [&] { key_locks_.Release(name); };
  const fs::path dir = ingest_ / name;
  auto lock_fd = LockIngest(ctx, dir);
  if (!lock_fd.ok()) {
    release_key();
    return lock_fd.status();
  }
  auto fail = [&](absl::Status st) {
    ::close(*lock_fd);
    release_key();
    return st;
  };
  // The previous holder may have committed the very blob we want.
  if (known && Has(expected_digest)) {
    return fail(
        absl::AlreadyExistsError(absl::StrCat("blob ", expected_digest, " already exists")));
  }

  const fs::path data_path = dir / "data";
  const fs::path ref_path = dir / "ref";
  const std::string ref = absl::StrCat(key, "\n", expected_digest, "\n");
  bool resume = false;
  if (auto old = util::ReadFile(ref_path); known && old.ok() && *old == ref) resume = true;
  if (!resume) {
    if (::unlink(data_path.c_str()) != 0 && errno != ENOENT) {
      return fail(ErrnoToStatus(errno, absl::StrCat("remove ", data_path.string())));
    }
    if (absl::Status st = util::WriteFileAtomic(ref_path, ref); !st.ok()) return fail(st);
  }
  int data_fd = ::open(data_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (data_fd < 0) return fail(ErrnoToStatus(errno, absl::StrCat("open ", data_path.string())));

  // Re-hash what an earlier writer left, so the digest covers the whole blob.
  auto hash = std::make_unique<Sha256>();
  int64_t offset = 0;
  std::string buf(kIoChunk, '\0');
  for (;;) {
    ssize_t n = ::pread(data_fd, buf.data(), buf.size(), offset);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(data_fd);
      return fail(ErrnoToStatus(err, absl::StrCat("read ", data_path.string())));
    }
    if (n == 0) break;
    if (expected_size >= 0 && offset + n > expected_size) break;  // cut below
    hash->Update(std::string_view(buf.data(), static_cast<size_t>(n)));
    offset += n;
  }
  // Partial data longer than the blob can only be garbage; so is a tail we could not hash.
  if (::ftruncate(data_fd, offset) != 0 || ::lseek(data_fd, offset, SEEK_SET) < 0) {
    int err = errno;
    ::close(data_fd);
    return fail(ErrnoToStatus(err, absl::StrCat("truncate ", data_path.string())));
  }
  if (offset > 0) {
    Logger("content")->debug("resuming ingest {} of {} at {} bytes", key, expected_digest, offset);
  }
  return std::unique_ptr<Writer>(new WriterImpl(this, name, dir, *lock_fd, data_fd, expected_digest,
                                                expected_size, offset, std::move(hash)));
}

absl::Status WriterImpl::Write(std::string_view data) {
  if (done_) return absl::FailedPreconditionError("content writer already committed");
  if (expected_size_ >= 0 && offset_ + static_cast<int64_t>(data.size()) > expected_size_) {
    return absl::OutOfRangeError(absl::StrCat("writing ", data.size(), " bytes at offset ", offset_,
                                              " exceeds the expected size ", expected_size_, " of ",
                                              expected_digest_));
  }
  KILN_RETURN_IF_ERROR(WriteAll(data_fd_, data, dir_ / "data"));
  hash_->Update(data);
  offset_ += static_cast<int64_t>(data.size());
  return absl::OkStatus();
}

absl::Status WriterImpl::Truncate() {
  if (done_) return absl::FailedPreconditionError("content writer already committed");
  if (::ftruncate(data_fd_, 0) != 0 || ::lseek(data_fd_, 0, SEEK_SET) < 0) {
    return ErrnoToStatus(errno, absl::StrCat("truncate ", (dir_ / "data").string()));
  }
  hash_ = std::make_unique<Sha256>();
  offset_ = 0;
  return absl::OkStatus();
}

absl::Status WriterImpl::Commit() {
  if (done_) return absl::FailedPreconditionError("content writer already committed");
  done_ = true;
  std::string got = "sha256:" + hash_->HexDigest();
  if (expected_size_ >= 0 && offset_ != expected_size_) {
    RemoveIngest();
    Close();
    return absl::FailedPreconditionError(
        absl::StrCat("content size mismatch for ", expected_digest_, ": expected ", expected_size_,
                     " bytes, got ", offset_, " (digest ", got, ")"));
  }
  if (expected_digest_.empty()) {
    expected_digest_ = got;  // learnt while writing
    if (store_->Has(got)) {  // someone stored the same bytes meanwhile
      RemoveIngest();
      Close();
      return absl::OkStatus();
    }
  } else if (got != expected_digest_) {
    RemoveIngest();
    Close();
    return absl::FailedPreconditionError(
        absl::StrCat("content digest mismatch: expected ", expected_digest_, ", got ", got));
  }
  const fs::path data_path = dir_ / "data";
  if (::fsync(data_fd_) != 0) {
    absl::Status st = ErrnoToStatus(errno, absl::StrCat("fsync ", data_path.string()));
    Close();
    return st;
  }
  ::fchmod(data_fd_, 0444);
  const fs::path target = store_->PathOf(expected_digest_);
  if (::rename(data_path.c_str(), target.c_str()) != 0) {
    absl::Status st = ErrnoToStatus(errno, absl::StrCat("publish blob ", expected_digest_));
    Close();
    return st;
  }
  absl::Status st = FsyncDir(store_->blobs_dir());
  RemoveIngest();
  Close();
  return st;
}

void WriterImpl::RemoveIngest() {
  ::unlink((dir_ / "data").c_str());
  ::unlink((dir_ / "ref").c_str());
  ::unlink((dir_ / "lock").c_str());
  ::rmdir(dir_.c_str());
}

void WriterImpl::Close() {
  if (data_fd_ >= 0) ::close(std::exchange(data_fd_, -1));
  if (lock_fd_ >= 0) {
    ::close(std::exchange(lock_fd_, -1));
    store_->key_locks().Release(name_);
  }
}

}  // namespace

bool ValidDigest(std::string_view digest) { return IsSha256Digest(digest); }

absl::StatusOr<std::unique_ptr<Store>> Store::Open(std::filesystem::path root) {
  auto store = std::make_unique<StoreImpl>(std::move(root));
  KILN_RETURN_IF_ERROR(store->Init());
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace kiln::content
