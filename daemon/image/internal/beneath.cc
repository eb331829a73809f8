#include "daemon/image/internal/beneath.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <vector>

namespace kiln::image::internal {
namespace {

std::atomic<bool> openat2_missing{false};

// One component at a time: O_PATH | O_NOFOLLOW on each (a symlink opens as itself), then a
// check that it is a directory.
int WalkNoFollow(int root, const std::string& rel, int flags) {
  UniqueFd cur(openat(root, ".", O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!cur.valid()) return -errno;
  size_t start = 0;
  while (start < rel.size()) {
    size_t end = rel.find('/', start);
    if (end == std::string::npos) end = rel.size();
    const std::string comp = rel.substr(start, end - start);
    start = end + 1;
    if (comp.empty() || comp == ".") continue;
    if (comp == "..") return -EXDEV;
    UniqueFd next(openat(cur.get(), comp.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
    if (!next.valid()) return -errno;
    struct stat st;
    if (fstat(next.get(), &st) != 0) return -errno;
    if (S_ISLNK(st.st_mode)) return -ELOOP;
    if (!S_ISDIR(st.st_mode)) return -ENOTDIR;
    cur = std::move(next);
  }
  const int fd = openat(cur.get(), ".", flags | O_DIRECTORY | O_CLOEXEC);
  return fd >= 0 ? fd : -errno;
}

}  // namespace

int OpenDirBeneath(int root, const std::string& rel, int flags) {
  const std::string path = rel.empty() ? "." : rel;
  if (!openat2_missing.load(std::memory_order_relaxed)) {
    struct open_how how {};
    how.flags = static_cast<uint64_t>(flags | O_DIRECTORY | O_CLOEXEC);
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
    const long fd = syscall(SYS_openat2, root, path.c_str(), &how, sizeof(how));
    if (fd >= 0) return static_cast<int>(fd);
    if (errno != ENOSYS) return -errno;
    openat2_missing.store(true, std::memory_order_relaxed);
  }
  if (rel.empty()) {
    const int fd = openat(root, ".", flags | O_DIRECTORY | O_CLOEXEC);
    return fd >= 0 ? fd : -errno;
  }
  return WalkNoFollow(root, rel, flags | O_DIRECTORY);
}

int RemoveAllAt(int dir, const std::string& name) {
  if (unlinkat(dir, name.c_str(), 0) == 0) return 0;
  if (errno != EISDIR && errno != EPERM) return errno;
  UniqueFd sub(openat(dir, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!sub.valid()) return errno;
  std::vector<std::string> names;
  {
    DIR* d = fdopendir(dup(sub.get()));
    if (d == nullptr) return errno;
    while (struct dirent* de = readdir(d)) {
      const std::string n = de->d_name;
      if (n != "." && n != "..") names.push_back(n);
    }
    closedir(d);
  }
  for (const std::string& n : names) {
    if (int err = RemoveAllAt(sub.get(), n); err != 0 && err != ENOENT) return err;
  }
  return unlinkat(dir, name.c_str(), AT_REMOVEDIR) == 0 ? 0 : errno;
}

}  // namespace kiln::image::internal
