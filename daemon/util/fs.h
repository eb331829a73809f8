#pragma once
// Small filesystem helpers shared by the daemon's modules. All functions are thread-compatible:
// they touch only the paths they are given.

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace kiln::util {

// An exclusive advisory lock (flock) on a file, held for the object's lifetime. Move-only.
// The holder's pid is written into the file so that a refused contender can name it.
class FileLock {
 public:
  // Takes the lock without waiting. FAILED_PRECONDITION names the holder when it is taken.
  [[nodiscard]] static absl::StatusOr<FileLock> TryAcquire(const std::filesystem::path& path);

  FileLock(FileLock&& other) noexcept;
  FileLock& operator=(FileLock&& other) noexcept;
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;
  ~FileLock();

 private:
  explicit FileLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

// Creates `dir` and its parents with `mode` for the directories it creates.
[[nodiscard]] absl::Status EnsureDir(const std::filesystem::path& dir, mode_t mode = 0700);

// Removes everything inside `dir` (not `dir` itself). Missing `dir` is not an error.
[[nodiscard]] absl::Status RemoveContents(const std::filesystem::path& dir);

// Bytes used on disk by `path` (st_blocks * 512, summed over a tree; hard links counted once;
// symlinks not followed). Missing path counts as 0.
[[nodiscard]] absl::StatusOr<int64_t> DiskUsageBytes(const std::filesystem::path& path);

// Reads a whole file. NOT_FOUND when absent.
[[nodiscard]] absl::StatusOr<std::string> ReadFile(const std::filesystem::path& path);

// Writes `data` to `path` atomically (temp file in the same directory, fsync, rename).
[[nodiscard]] absl::Status WriteFileAtomic(const std::filesystem::path& path, std::string_view data,
                                           mode_t mode = 0600);

}  // namespace kiln::util
