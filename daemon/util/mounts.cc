#include "daemon/util/mounts.h"

#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/status.h"

namespace kiln::util {
namespace {

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string Unescape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() && s[i + 1] >= '0' && s[i + 1] <= '3' && s[i + 2] >= '0' &&
        s[i + 2] <= '7' && s[i + 3] >= '0' && s[i + 3] <= '7') {
      out.push_back(
          static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0')));
      i += 3;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

}  // namespace

absl::StatusOr<std::vector<MountInfo>> ReadMountInfo() {
  std::ifstream in("/proc/self/mountinfo");
  if (!in) return ErrnoToStatus(errno, "open /proc/self/mountinfo");
  std::vector<MountInfo> out;
  std::string line;
  while (std::getline(in, line)) {
    // id parent major:minor root mount_point options [optional...] - fstype source super_opts
    std::vector<absl::string_view> f = absl::StrSplit(line, ' ');
    if (f.size() < 10) continue;
    MountInfo m;
    m.mount_point = Unescape(SV(f[4]));
    size_t i = 6;
    for (; i < f.size() && f[i] != "-"; ++i) {
      if (absl::StartsWith(f[i], "shared:")) m.shared = true;
    }
    if (i + 1 < f.size()) m.fs_type = std::string(f[i + 1]);
    if (i + 3 < f.size()) m.super_options = std::string(f[i + 3]);
    out.push_back(std::move(m));
  }
  return out;
}

bool PathIsWithin(std::string_view path, std::string_view dir) {
  if (dir == "/") return !path.empty() && path[0] == '/';
  return path == dir || (absl::StartsWith(AV(path), AV(dir)) && path.size() > dir.size() &&
                         path[dir.size()] == '/');
}

absl::Status UnmountAll(const std::string& dir) {
  KILN_ASSIGN_OR_RETURN(std::vector<MountInfo> mounts, ReadMountInfo());
  // Later mounts sit on top of (or below) earlier ones: undo them in reverse order.
  for (auto it = mounts.rbegin(); it != mounts.rend(); ++it) {
    if (!PathIsWithin(it->mount_point, dir)) continue;
    const char* p = it->mount_point.c_str();
    if (umount2(p, UMOUNT_NOFOLLOW) == 0 || errno == EINVAL || errno == ENOENT) continue;
    if (umount2(p, MNT_DETACH | UMOUNT_NOFOLLOW) != 0 && errno != EINVAL && errno != ENOENT) {
      return ErrnoToStatus(errno, absl::StrCat("unmount ", it->mount_point));
    }
  }
  return absl::OkStatus();
}

}  // namespace kiln::util
