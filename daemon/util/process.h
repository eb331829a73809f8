#pragma once
// Starting and reaping helper processes (the OCI runtime) from a multi-threaded daemon: fork
// plus only async-signal-safe system calls in the child (everything is prepared before the
// fork, nothing allocates after it), descriptors other than the given stdio closed, signal
// dispositions and mask reset, a process group of its own, SIGKILL when the forking thread
// dies. Optionally the child first enters a mount namespace of its own in which some host
// mounts are hidden (see SpawnOptions). Thread-compatible.

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/context.h"
#include "base/unique_fd.h"

namespace kiln::util {

struct SpawnOptions {
  std::vector<std::string> argv;  // argv[0] is an absolute path (no PATH lookup)
  std::vector<std::string> env;   // the complete environment
  int stdout_fd = -1;             // -1: /dev/null
  int stderr_fd = -1;             // -1: /dev/null; stdin is always /dev/null
  // An open cgroup.procs file the child moves itself into first (-1: none).
  int cgroup_procs_fd = -1;

  // Enter a new mount namespace (every mount a slave: host mount changes still propagate in,
  // nothing propagates out) and detach `detach_mounts` there (errors ignored) before exec.
  bool private_mount_ns = false;
  std::vector<std::string> detach_mounts;

  int umask = -1;  // the child's umask; -1 inherits the daemon's
};

// A started child; kills (SIGKILL) and reaps it on destruction if it was not waited for.
class ChildProcess {
 public:
  ChildProcess() = default;
  ChildProcess(pid_t pid, UniqueFd pidfd) : pid_(pid), pidfd_(std::move(pidfd)) {}
  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&& other) noexcept;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess();

  pid_t pid() const { return pid_; }
  // Readable (POLLIN) once the child has exited; -1 when pidfd_open is unavailable.
  int pidfd() const { return pidfd_.get(); }
  bool running() const { return pid_ > 0 && !status_; }

  // Reaps the child if it has exited; returns its wait status then.
  std::optional<int> TryWait();
  // Blocks until the child exits; returns its wait status.
  int Wait();
  // Sends `sig` to the child's process group (the child and what it started there).
  void Kill(int sig);

 private:
  void Reset();

  pid_t pid_ = -1;
  UniqueFd pidfd_;
  std::optional<int> status_;
};

[[nodiscard]] absl::StatusOr<ChildProcess> Spawn(const SpawnOptions& options);

// A wait status as a shell would report it: the exit code, or 128+N for death by signal N.
int ExitCodeFromWaitStatus(int status);

struct CommandResult {
  int exit_code = 0;   // ExitCodeFromWaitStatus
  std::string output;  // stdout, and stderr unless separated; at most 64 KiB
  std::string errors;  // stderr when separated; at most 64 KiB
};

struct CommandOptions {
  std::chrono::milliseconds timeout{60000};
  const Context* ctx = nullptr;  // when set, a cancelled or expired context kills the command
  bool separate_stderr = false;  // stderr into CommandResult::errors
};

// Runs a short command to completion, capturing its output. DEADLINE_EXCEEDED (after killing
// it) when it takes longer than the timeout; the context's error when it stops.
[[nodiscard]] absl::StatusOr<CommandResult> RunCommand(SpawnOptions options,
                                                       const CommandOptions& command);
[[nodiscard]] inline absl::StatusOr<CommandResult> RunCommand(SpawnOptions options,
                                                              std::chrono::milliseconds timeout) {
  return RunCommand(std::move(options), CommandOptions{.timeout = timeout});
}

}  // namespace kiln::util
