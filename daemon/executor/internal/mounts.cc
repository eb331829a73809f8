#include "daemon/executor/internal/mounts.h"

#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "base/status.h"

namespace kiln::executor::internal {
absl::Status MountPrivateTmpfs(const std::string& dir, std::string_view size) {
  const std::string data = absl::StrCat("mode=0700,size=", AV(size));
  if (mount("tmpfs", dir.c_str(), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, data.c_str()) != 0) {
    return ErrnoToStatus(errno, absl::StrCat("mount tmpfs on ", dir));
  }
  if (mount(nullptr, dir.c_str(), nullptr, MS_PRIVATE, nullptr) != 0) {
    const absl::Status status = ErrnoToStatus(errno, absl::StrCat("make ", dir, " private"));
    (void)umount2(dir.c_str(), MNT_DETACH);
    return status;
  }
  return absl::OkStatus();
}

}  // namespace kiln::executor::internal
