#pragma once
// Content checksums of a synced tree for the daemon's cache keys, without re-reading data that
// has not changed.
//
// A ContentIndex lists every entry of a tree in walk order with its metadata and, for regular
// files, the SHA-256 of its content. Each record also keeps the inode number and ctime seen when
// the digest was taken; a later BuildIndex reuses a recorded digest only if size, mtime, ctime
// and inode are all unchanged (ctime cannot be set from user space, so any write or rename
// through the filesystem invalidates the record). Receive keeps the index of its destination
// up to date (ReceiveOptions::index_path) with digests computed while the data streams in, so
// a rebuild with an unchanged context is a pure metadata check.
//
// File format (text, one record per line after the header "kiln-fsutil-index v1"):
//   path \t mode(hex, Go FileMode) \t uid \t gid \t size \t mtime_ns \t ctime_ns \t ino
//   \t devmajor \t devminor \t sha256-hex or "-" \t linkname
// with '%', tab, newline and carriage return in path and linkname written as %25, %09, %0A, %0D.
//
// Checksum(selector): "sha256:<hex>" over the records at and below `selector`, each contributing
// its path relative to the selector, Go mode, uid, gid, device numbers, symlink target and
// content digest. Times, sizes and hard-link structure are left out, so touching a file or
// re-syncing identical content keeps the checksum.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace kiln::fsutil {

struct IndexRecord {
  std::string path;
  uint32_t mode = 0;  // Go FileMode bits, as on the wire
  uint32_t uid = 0;
  uint32_t gid = 0;
  int64_t size = 0;
  int64_t mtime_ns = 0;
  int64_t ctime_ns = 0;
  uint64_t ino = 0;
  int64_t devmajor = 0;
  int64_t devminor = 0;
  std::string sha256;    // lowercase hex; regular files only
  std::string linkname;  // symlink target; for hard links, the first path of the inode
};

// An immutable snapshot of a tree's index. Thread-compatible (const methods are safe to call
// concurrently).
class ContentIndex {
 public:
  ContentIndex() = default;
  explicit ContentIndex(std::vector<IndexRecord> records);

  // NOT_FOUND if `file` does not exist; DATA_LOSS if it is not a valid index.
  [[nodiscard]] static absl::StatusOr<ContentIndex> Load(const std::string& file);
  // Writes atomically (temporary file, fsync, rename).
  [[nodiscard]] absl::Status Save(const std::string& file) const;

  // Records in walk order (ComparePath order).
  const std::vector<IndexRecord>& records() const { return records_; }
  // The record for `path`, or nullptr.
  const IndexRecord* Find(std::string_view path) const;

  // The checksum of `selector` (a relative path; "", "." or "/" = the whole tree) and
  // everything below it. NOT_FOUND if the index has no such path.
  [[nodiscard]] absl::StatusOr<std::string> Checksum(std::string_view selector) const;

 private:
  std::vector<IndexRecord> records_;
};

struct IndexBuildStats {
  uint64_t files_hashed = 0;  // files whose content was read
  uint64_t bytes_hashed = 0;
  uint64_t files_reused = 0;  // digests taken from the previous index
};

// Indexes the tree at `root` (symlinks not followed), reusing digests from `previous` (may be
// null) for files whose size, mtime, ctime and inode are unchanged.
[[nodiscard]] absl::StatusOr<ContentIndex> BuildIndex(const std::string& root,
                                                      const ContentIndex* previous,
                                                      IndexBuildStats* stats = nullptr);

// Convenience for cache keys: refreshes the index stored at `index_file` for `root` (missing or
// unreadable index = start afresh), saves it if anything changed, and returns the checksum of
// each selector, in order.
[[nodiscard]] absl::StatusOr<std::vector<std::string>> TreeChecksums(
    const std::string& root, const std::string& index_file,
    const std::vector<std::string>& selectors, IndexBuildStats* stats = nullptr);

}  // namespace kiln::fsutil
