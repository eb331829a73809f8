#include "daemon/executor/internal/root_fs.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/gopath.h"
#include "base/status.h"

namespace kiln::executor::internal {
namespace {

absl::Status PathError(int err, std::string_view op, std::string_view path) {
  std::string message = absl::StrCat(AV(op), " ", AV(path), ": ", ErrnoText(err));
  if (err == ENOSYS) {
    return absl::UnimplementedError(
        absl::StrCat(message,
                     " (openat2(2) is required: Linux 5.6 or newer; refusing to resolve paths "
                     "inside a container root without it)"));
  }
  return absl::Status(
      err == ELOOP ? absl::StatusCode::kFailedPrecondition : absl::ErrnoToStatusCode(err), message);
}

// "/a/b" → ("/a", "b"); "/a" → ("/", "a").
std::pair<std::string, std::string> SplitParent(const std::string& abs) {
  const size_t slash = abs.rfind('/');
  return {slash == 0 ? std::string("/") : abs.substr(0, slash), abs.substr(slash + 1)};
}

// 1 when the directory `fd` has no entries, 0 when it has some, -1 on error.
int IsEmptyDir(int dir_fd, const std::string& name) {
  const int fd = openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return -1;
  DIR* dir = fdopendir(fd);
  if (dir == nullptr) {
    close(fd);
    return -1;
  }
  int result = 1;
  while (dirent* ent = readdir(dir)) {
    if (std::strcmp(ent->d_name, ".") != 0 && std::strcmp(ent->d_name, "..") != 0) {
      result = 0;
      break;
    }
  }
  closedir(dir);
  return result;
}

}  // namespace

std::string ErrnoText(int err) {
  std::string s = strerror(err);
  if (!s.empty() && s[0] >= 'A' && s[0] <= 'Z') s[0] = static_cast<char>(s[0] - 'A' + 'a');
  return s;
}

std::string CleanAbs(std::string_view path) { return GoCleanPath(absl::StrCat("/", AV(path))); }

absl::StatusOr<UniqueFd> OpenRoot(const std::string& host_path) {
  const int fd = open(host_path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return PathError(errno, "open", host_path);
  return UniqueFd(fd);
}

int OpenInRoot(int root_fd, std::string_view path, int flags, int* err) {
  // Relative to the root; "/" itself is ".".
  const std::string abs = CleanAbs(path);
  const char* rel = abs.size() > 1 ? abs.c_str() + 1 : ".";
  open_how how;
  std::memset(&how, 0, sizeof(how));
  how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  for (int attempt = 0; attempt < 32; ++attempt) {
    const long fd = syscall(SYS_openat2, root_fd, rel, &how, sizeof(how));
    if (fd >= 0) return static_cast<int>(fd);
    // EAGAIN: a concurrent rename raced with a ".." lookup; the kernel asks us to retry.
    if (errno == EAGAIN || errno == EINTR) continue;
    *err = errno == E2BIG ? ENOSYS : errno;
    return -1;
  }
  *err = EAGAIN;
  return -1;
}

absl::StatusOr<std::optional<std::string>> ReadFileInRoot(int root_fd, std::string_view path,
                                                          size_t max_size) {
  int err = 0;
  // O_NONBLOCK: a FIFO planted in the image must not hang the daemon.
  UniqueFd fd(OpenInRoot(root_fd, path, O_RDONLY | O_NONBLOCK | O_NOCTTY, &err));
  if (!fd.valid()) {
    if (err == ENOENT || err == ENOTDIR) return std::optional<std::string>();
    return PathError(err, "open", path);
  }
  struct stat st;
  if (fstat(fd.get(), &st) != 0) return PathError(errno, "stat", path);
  if (!S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(AV(path), " is not a regular file"));
  }
  if (static_cast<size_t>(st.st_size) > max_size) {
    return absl::FailedPreconditionError(
        absl::StrCat(AV(path), " is too large (", st.st_size, " bytes)"));
  }
  std::string data;
  char buf[16384];
  while (true) {
    const ssize_t n = read(fd.get(), buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      return PathError(errno, "read", path);
    }
    if (n == 0) break;
    data.append(buf, static_cast<size_t>(n));
    if (data.size() > max_size) {
      return absl::FailedPreconditionError(absl::StrCat(AV(path), " is too large"));
    }
  }
  return std::optional<std::string>(std::move(data));
}

absl::Status MkdirAllInRoot(int root_fd, std::string_view path, mode_t mode) {
  std::vector<std::string> todo;  // components still to create or enter
  for (absl::string_view c : absl::StrSplit(CleanAbs(path), '/', absl::SkipEmpty())) {
    todo.emplace_back(c);
  }
  std::string cur;  // the prefix known to exist, as a container path ("" = root)
  int links = 0, races = 0;
  while (!todo.empty()) {
    const std::string comp = todo.front();
    const std::string next = absl::StrCat(cur, "/", comp);
    int err = 0;
    UniqueFd fd(OpenInRoot(root_fd, next, O_PATH | O_DIRECTORY, &err));
    if (!fd.valid()) {
      if (err != ENOENT) return PathError(err, "mkdir", next);
      UniqueFd parent(OpenInRoot(root_fd, cur.empty() ? "/" : cur, O_PATH | O_DIRECTORY, &err));
      if (!parent.valid()) return PathError(err, "mkdir", next);
      if (mkdirat(parent.get(), comp.c_str(), mode) != 0) {
        if (errno != EEXIST) return PathError(errno, "mkdir", next);
        // A dangling symlink: create its target instead (inside the root), as BuildKit's
        // MkdirAll on the root-resolved path does. Anything else raced with us: look again.
        char target[4096];
        const ssize_t n = readlinkat(parent.get(), comp.c_str(), target, sizeof(target) - 1);
        if (n < 0) {
          if (++races > 8) return PathError(EEXIST, "mkdir", next);
          continue;
        }
        if (++links > 40) return PathError(ELOOP, "mkdir", next);
        target[n] = '\0';
        const std::string resolved =
            CleanAbs(target[0] == '/' ? std::string(target) : absl::StrCat(cur, "/", target));
        todo.erase(todo.begin());
        std::vector<std::string> redo;
        for (absl::string_view c : absl::StrSplit(resolved, '/', absl::SkipEmpty())) {
          redo.emplace_back(c);
        }
        todo.insert(todo.begin(), redo.begin(), redo.end());
        cur.clear();
        continue;
      }
      UniqueFd created(
          openat(parent.get(), comp.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!created.valid()) return PathError(errno, "mkdir", next);
      if (fchmod(created.get(), mode) != 0) return PathError(errno, "chmod", next);
      if (geteuid() == 0 && fchown(created.get(), 0, 0) != 0) {
        return PathError(errno, "chown", next);
      }
    }
    todo.erase(todo.begin());
    cur = next;
  }
  return absl::OkStatus();
}

std::vector<std::string> FindMountStubs(int root_fd, const std::vector<std::string>& destinations,
                                        bool recursive) {
  std::vector<std::string> stubs;
  for (const std::string& dest : destinations) {
    std::string p = CleanAbs(dest);
    while (p != "/") {
      int err = 0;
      UniqueFd fd(OpenInRoot(root_fd, p, O_PATH, &err));
      if (fd.valid() || (err != ENOENT && err != ENOTDIR)) break;
      stubs.push_back(p);
      if (!recursive) break;
      p = SplitParent(p).first;
    }
  }
  return stubs;
}

void RemoveMountStubs(int root_fd, const std::vector<std::string>& stubs) {
  for (const std::string& stub : stubs) {
    const auto [parent_path, name] = SplitParent(stub);
    int err = 0;
    UniqueFd parent(OpenInRoot(root_fd, parent_path, O_RDONLY | O_DIRECTORY, &err));
    if (!parent.valid()) continue;
    struct stat st;
    if (fstatat(parent.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    bool is_dir = false;
    if (S_ISDIR(st.st_mode)) {
      if (IsEmptyDir(parent.get(), name) != 1) continue;
      is_dir = true;
    } else if (!S_ISREG(st.st_mode) || st.st_size != 0) {
      continue;
    }
    struct stat parent_st;
    if (fstat(parent.get(), &parent_st) != 0) continue;
    if (unlinkat(parent.get(), name.c_str(), is_dir ? AT_REMOVEDIR : 0) != 0) continue;
    // Removing the stub must not touch the parent's timestamps (BuildKit restores them too).
    const struct timespec times[2] = {parent_st.st_atim, parent_st.st_mtim};
    (void)futimens(parent.get(), times);
  }
}

}  // namespace kiln::executor::internal
