#pragma once
// A cgroup v1 "devices" cgroup for one container, for runtimes run without a cgroup manager
// (crun --cgroup-manager=disabled): the runtime joins it before exec, so the container can use
// only the device nodes Docker allows (null, zero, full, random, urandom, tty, console, ptmx,
// pts, tun) and may create, but not open, any other. The container stays in the daemon's cgroup
// in every other hierarchy. Not thread-safe; one per run.

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "daemon/executor/internal/root_fs.h"

namespace kiln::executor::internal {

// This process's cgroup in the v1 devices hierarchy (e.g. /sys/fs/cgroup/devices/some/path),
// or "" when there is none or it is not writable (cgroup v2 only, or no devices controller).
std::string FindDeviceCgroupParent();

class DeviceCgroup {
 public:
  // Creates <parent>/kiln-<our pid>-<id> with the allow list. ALREADY_EXISTS when it exists.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<DeviceCgroup>> Create(
      const std::string& parent, const std::string& id);
  // Kills whatever is left in the cgroup and removes it.
  ~DeviceCgroup();

  // Removes the cgroups below `parent` made for a daemon process that is gone (their names
  // carry its pid), killing what is left in them. Best effort.
  static void RemoveStale(const std::string& parent);

  // cgroup.procs, open for writing: see SpawnOptions::cgroup_procs_fd.
  int procs_fd() const { return procs_.get(); }
  const std::string& path() const { return path_; }

 private:
  explicit DeviceCgroup(std::string path) : path_(std::move(path)) {}

  std::string path_;
  UniqueFd procs_;
};

}  // namespace kiln::executor::internal
