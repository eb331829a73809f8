#pragma once
// Helpers for the FileOp tests: scratch directory trees under ::testing::TempDir(), tar archives
// built with libarchive (including hostile ones), and action builders with BuildKit's client
// defaults (mode -1, timestamp -1). Test-only; not thread-safe.

#include <sys/stat.h>
#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "proto/pb/ops.pb.h"

namespace kiln::ops::test {

// A fresh, empty directory under ::testing::TempDir(), removed with its contents on
// destruction. The test process owns everything in it.
class ScratchDir {
 public:
  explicit ScratchDir(const std::string& tag);
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  const std::string& path() const { return path_; }
  // path() + "/" + rel.
  std::string operator/(const std::string& rel) const { return path_ + "/" + rel; }

 private:
  std::string path_;
};

// Creates parents as needed. Failures abort the test (ADD_FAILURE + early return).
void WriteFile(const std::string& path, const std::string& data, mode_t mode = 0644);
void MakeDirs(const std::string& path, mode_t mode = 0755);
void MakeSymlink(const std::string& target, const std::string& path);

// Contents of a file, or nullopt if it cannot be read.
std::optional<std::string> ReadFile(const std::string& path);
// lstat, or nullopt when missing.
std::optional<struct stat> Lstat(const std::string& path);
bool Exists(const std::string& path);
std::string ReadLink(const std::string& path);
// Every path below `dir`, relative and sorted ("a", "a/b", ...).
std::vector<std::string> ListTree(const std::string& dir);

// One entry of a test tar archive.
struct TarEntry {
  enum class Type { kFile, kDir, kSymlink, kHardlink, kFifo };
  Type type = Type::kFile;
  std::string name;
  std::string data;      // kFile
  std::string linkname;  // kSymlink and kHardlink
  mode_t mode = 0644;
  uid_t uid = 0;
  gid_t gid = 0;
  int64_t mtime = 1700000000;
};

// Writes a tar archive (gzip-compressed if asked) of `entries`, names stored verbatim.
void WriteTar(const std::string& path, const std::vector<TarEntry>& entries, bool gzip = false);

// Writes `data` gzip-compressed (not a tar: a compressed plain file).
void WriteGzip(const std::string& path, const std::string& data);

// Actions with BuildKit's llb defaults.
pb::FileActionMkDir MkdirAction(const std::string& path, int mode, bool parents = false);
pb::FileActionMkFile MkfileAction(const std::string& path, const std::string& data, int mode);
pb::FileActionRm RmAction(const std::string& path);
pb::FileActionSymlink SymlinkAction(const std::string& oldpath, const std::string& newpath);
pb::FileActionCopy CopyAction(const std::string& src, const std::string& dest);

}  // namespace kiln::ops::test
