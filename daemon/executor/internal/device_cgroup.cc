#include "daemon/executor/internal/device_cgroup.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <fstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "base/status.h"
#include "daemon/executor/internal/mounts.h"
#include "daemon/util/logging.h"

namespace kiln::executor::internal {
namespace {

// Docker's default device rules (runc's AllowedDevices): any node may be created, only these
// may be used.
constexpr const char* kAllowed[] = {
    "c *:* m",       // create any character device node
    "b *:* m",       // and any block device node
    "c 1:3 rwm",     // null
    "c 1:5 rwm",     // zero
    "c 1:7 rwm",     // full
    "c 1:8 rwm",     // random
    "c 1:9 rwm",     // urandom
    "c 5:0 rwm",     // tty
    "c 5:1 rwm",     // console
    "c 5:2 rwm",     // ptmx
    "c 136:* rwm",   // pts
    "c 10:200 rwm",  // tun
};

bool HasController(std::string_view list, std::string_view controller) {
  for (absl::string_view c : absl::StrSplit(AV(list), ',')) {
    if (SV(c) == controller) return true;
  }
  return false;
}

absl::Status WriteControl(const std::string& file, std::string_view value) {
  UniqueFd fd(open(file.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoToStatus(errno, absl::StrCat("open ", file));
  if (write(fd.get(), value.data(), value.size()) != static_cast<ssize_t>(value.size())) {
    return ErrnoToStatus(errno, absl::StrCat("write \"", AV(value), "\" to ", file));
  }
  return absl::OkStatus();
}

}  // namespace

std::string FindDeviceCgroupParent() {
  absl::StatusOr<std::vector<MountInfo>> mounts = ReadMountInfo();
  if (!mounts.ok()) return "";
  std::string hierarchy;
  for (const MountInfo& m : *mounts) {
    if (m.fs_type == "cgroup" && HasController(m.super_options, "devices")) {
      hierarchy = m.mount_point;
    }
  }
  if (hierarchy.empty()) return "";
  // "N:controllers:path" lines; the devices one names our cgroup in that hierarchy.
  std::ifstream in("/proc/self/cgroup");
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> f = absl::StrSplit(line, absl::MaxSplits(':', 2));
    if (f.size() != 3 || !HasController(f[1], "devices")) continue;
    const std::string parent = f[2] == "/" ? hierarchy : hierarchy + f[2];
    return access(parent.c_str(), W_OK) == 0 ? parent : "";
  }
  return "";
}

void DeviceCgroup::RemoveStale(const std::string& parent) {
  DIR* dir = opendir(parent.c_str());
  if (dir == nullptr) return;
  std::vector<std::string> stale;
  while (dirent* ent = readdir(dir)) {
    // kiln-<pid>-<id>
    absl::string_view name(ent->d_name);
    if (ent->d_type != DT_DIR || !absl::ConsumePrefix(&name, "kiln-")) continue;
    int pid = 0;
    if (!absl::SimpleAtoi(name.substr(0, name.find('-')), &pid) || pid <= 0) continue;
    if (pid == getpid() || kill(pid, 0) == 0 || errno != ESRCH) continue;
    stale.emplace_back(ent->d_name);
  }
  closedir(dir);
  for (const std::string& name : stale) {
    DeviceCgroup cg(absl::StrCat(parent, "/", name));  // its destructor empties and removes it
  }
}

absl::StatusOr<std::unique_ptr<DeviceCgroup>> DeviceCgroup::Create(const std::string& parent,
                                                                   const std::string& id) {
  const std::string path = absl::StrCat(parent, "/kiln-", getpid(), "-", id);
  if (mkdir(path.c_str(), 0700) != 0) {
    if (errno == EEXIST) return absl::AlreadyExistsError(absl::StrCat(path, " exists"));
    return ErrnoToStatus(errno, absl::StrCat("mkdir ", path));
  }
  std::unique_ptr<DeviceCgroup> cg(new DeviceCgroup(path));
  KILN_RETURN_IF_ERROR(WriteControl(path + "/devices.deny", "a"));
  for (const char* rule : kAllowed) {
    // EPERM: our own cgroup does not allow it either (a daemon in a container); cannot grant it.
    if (absl::Status s = WriteControl(path + "/devices.allow", rule);
        !s.ok() && !absl::IsPermissionDenied(s)) {
      return s;
    }
  }
  cg->procs_ = UniqueFd(open((path + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC));
  if (!cg->procs_.valid())
    return ErrnoToStatus(errno, absl::StrCat("open ", path, "/cgroup.procs"));
  return cg;
}

DeviceCgroup::~DeviceCgroup() {
  procs_.Reset();
  for (int attempt = 0; attempt < 100; ++attempt) {
    if (rmdir(path_.c_str()) == 0 || errno == ENOENT) return;
    if (errno != EBUSY) break;
    // Still populated: nothing may survive its run.
    std::ifstream in(path_ + "/cgroup.procs");
    for (std::string pid; std::getline(in, pid);) {
      int n = 0;
      if (absl::SimpleAtoi(pid, &n) && n > 0) kill(n, SIGKILL);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  Logger("executor")->warn("remove device cgroup {}: {}", path_, ErrnoText(errno));
}

}  // namespace kiln::executor::internal
