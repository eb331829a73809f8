#pragma once
// Descriptor-based filesystem access below a root directory that never follows a symlink:
// openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS), or a walk with O_NOFOLLOW per component where
// the kernel lacks openat2. Thread-compatible; descriptors are owned by UniqueFd.

#include <string>
#include <utility>

namespace kiln::image::internal {

// An owned file descriptor. Move-only.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) {
      Reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { Reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int Release() { return std::exchange(fd_, -1); }
  void Reset();

 private:
  int fd_ = -1;
};

// Opens the directory `rel` ("a/b"; "" is `root` itself) below the directory `root` with
// `flags` (O_PATH or O_RDONLY; O_DIRECTORY and O_CLOEXEC are added). Fails with ELOOP when a
// component is a symlink, ENOTDIR when it is not a directory. Returns -errno on failure.
int OpenDirBeneath(int root, const std::string& rel, int flags);

// Removes `name` in the directory `dir` and, for a directory, everything below it, without
// following symlinks. Returns 0 or an errno value (ENOENT when missing).
int RemoveAllAt(int dir, const std::string& name);

}  // namespace kiln::image::internal
