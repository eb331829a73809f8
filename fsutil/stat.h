#pragma once
// File metadata as fsutil puts it on the wire (fsutil.types.Stat): Go os.FileMode bits in
// `mode`, modification time in Unix nanoseconds, symlink targets and hard-link sources in
// `linkname`, device numbers in Linux's old major/minor split, and extended attributes.
// Pure functions (StatPath reads the filesystem); thread-safe.

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "proto/fsutil/types/stat.pb.h"

namespace kiln::fsutil {

// Go's io/fs.FileMode bits (the high bits of Stat.mode; the low 9 bits are permissions).
inline constexpr uint32_t kModeDir = 1u << 31;
inline constexpr uint32_t kModeAppend = 1u << 30;
inline constexpr uint32_t kModeExclusive = 1u << 29;
inline constexpr uint32_t kModeTemporary = 1u << 28;
inline constexpr uint32_t kModeSymlink = 1u << 27;
inline constexpr uint32_t kModeDevice = 1u << 26;
inline constexpr uint32_t kModeNamedPipe = 1u << 25;
inline constexpr uint32_t kModeSocket = 1u << 24;
inline constexpr uint32_t kModeSetuid = 1u << 23;
inline constexpr uint32_t kModeSetgid = 1u << 22;
inline constexpr uint32_t kModeCharDevice = 1u << 21;
inline constexpr uint32_t kModeSticky = 1u << 20;
inline constexpr uint32_t kModeIrregular = 1u << 19;
inline constexpr uint32_t kModeType = kModeDir | kModeSymlink | kModeNamedPipe | kModeSocket |
                                      kModeDevice | kModeCharDevice | kModeIrregular;
inline constexpr uint32_t kModePerm = 0777;

// POSIX st_mode → Go FileMode, as Go's os.Lstat computes it (type, permissions, setuid,
// setgid, sticky).
[[nodiscard]] uint32_t GoModeFromPosix(mode_t mode);

// Go FileMode → POSIX st_mode: S_IF* type bits plus what Go's os.Chmod would apply
// (permissions, S_ISUID, S_ISGID, S_ISVTX). Irregular or unknown types map to S_IFREG.
[[nodiscard]] mode_t PosixModeFromGo(uint32_t go_mode);

// The mode bits os.Chmod applies for a Go FileMode (permissions, setuid, setgid, sticky).
[[nodiscard]] mode_t PosixPermFromGo(uint32_t go_mode);

inline bool IsDir(const ::fsutil::types::Stat& st) { return (st.mode() & kModeDir) != 0; }
inline bool IsSymlink(const ::fsutil::types::Stat& st) { return (st.mode() & kModeSymlink) != 0; }
// A regular file: the only kind whose data is transferred (fsutil's fileCanRequestData).
inline bool IsRegular(const ::fsutil::types::Stat& st) { return (st.mode() & kModeType) == 0; }
// A hard link to an earlier entry of the same walk: a regular file with a linkname.
inline bool IsHardlink(const ::fsutil::types::Stat& st) {
  return IsRegular(st) && !st.linkname().empty();
}

// Device numbers the way fsutil splits st_rdev (the 12/20-bit Linux split).
[[nodiscard]] int64_t DevMajor(uint64_t rdev);
[[nodiscard]] int64_t DevMinor(uint64_t rdev);

struct StatOptions {
  // Read extended attributes (skipping "com.apple.*"), as fsutil does.
  bool xattrs = true;
};

// The wire Stat of `rel` below `root` (lstat: a symlink is described, not followed; no path
// component may be a symlink). Stat.path is `rel` cleaned; "" or "." stats `root` itself.
// Hard links are not detected by a single call (Walk does that). NOT_FOUND if absent.
[[nodiscard]] absl::StatusOr<::fsutil::types::Stat> StatPath(const std::string& root,
                                                             std::string_view rel,
                                                             const StatOptions& options = {});

}  // namespace kiln::fsutil
