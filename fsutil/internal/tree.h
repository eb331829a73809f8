#pragma once
// A pull iterator over a directory tree in fsutil's walk order (depth first, names sorted
// bytewise per directory, the root itself excluded), the way Go's filepath.WalkDir visits it.
// Symlinks are reported, never followed; directories are opened with O_NOFOLLOW relative to
// their parent, so the walk cannot leave the root. Internal to fsutil. Not thread-safe.

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "fsutil/internal/fd.h"
#include "fsutil/internal/mkstat.h"
#include "fsutil/stat.h"
#include "proto/fsutil/types/stat.pb.h"

namespace kiln::fsutil::internal {

class TreeIterator {
 public:
  // Iterates below the directory `root_fd` (borrowed; must outlive the iterator).
  explicit TreeIterator(int root_fd) : root_fd_(root_fd) {}

  // Moves to the next entry; false at the end. Entries that vanish while walking are skipped.
  // If the previous entry was a directory that could not be read, the same directory is
  // returned once more with dir_error() set (like WalkDir's second callback), and its contents
  // are skipped.
  [[nodiscard]] absl::StatusOr<bool> Next();

  // Do not descend into the current entry (a directory).
  void SkipDir() { descend_ = false; }

  const std::string& path() const { return path_; }
  const std::string& name() const { return name_; }
  bool is_dir() const { return is_dir_; }
  const absl::Status& dir_error() const { return dir_error_; }
  // The open directory that contains the current entry.
  int parent_fd() const;

  // lstat of the current entry. NOT_FOUND if it vanished.
  [[nodiscard]] absl::StatusOr<struct stat> Lstat() const;
  // The wire Stat of the current entry, with hard links detected across the walk so far.
  // `raw`, if given, receives the lstat result it was built from.
  [[nodiscard]] absl::StatusOr<::fsutil::types::Stat> Stat(const StatOptions& options,
                                                           struct stat* raw = nullptr);

  // Number of open directories: the current entry's parent is directory number depth()-1.
  // Directories stay open while their descendants are visited, so an ancestor of the current
  // entry can still be described later with StatInDir.
  size_t depth() const { return frames_.size(); }
  // The wire Stat of entry `name` (wire path `path`) in open directory number `index`.
  [[nodiscard]] absl::StatusOr<::fsutil::types::Stat> StatInDir(size_t index,
                                                                const std::string& name,
                                                                const std::string& path,
                                                                const StatOptions& options);

 private:
  struct Frame {
    UniqueFd fd;
    std::string path;  // "" for the root
    std::vector<DirName> names;
    size_t next = 0;
  };

  int root_fd_;
  bool started_ = false;
  std::vector<Frame> frames_;
  std::string path_;
  std::string name_;
  bool is_dir_ = false;
  bool descend_ = false;
  absl::Status dir_error_;
  InodeMap inodes_;
};

}  // namespace kiln::fsutil::internal
