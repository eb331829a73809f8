#pragma once
// Executor: runs one process in a container through an OCI runtime binary (crun or runc), the
// way BuildKit's runc executor does for an ExecOp. The caller prepares the root filesystem and
// every mount; the executor writes the OCI bundle (config.json, /etc/hosts, /etc/resolv.conf) on
// a private tmpfs, runs `<runtime> run`, streams stdout/stderr, and cleans everything up.
// Executor implementations are thread-safe: Run may be called concurrently with distinct ids.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/context.h"

namespace kiln::executor {

// One OCI mount, already prepared by the caller. Where no device cgroup confines the container
// (see SecurityMode), sandboxed bind mounts get "nodev" unless their options say "dev".
struct Mount {
  std::string destination;           // absolute path inside the container
  std::string type = "bind";         // "bind", "tmpfs", ...
  std::string source;                // host path for bind
  std::vector<std::string> options;  // e.g. {"rbind","ro"} or {"size=64m","mode=1777"}
};

// A resource limit; `name` is the lower-case suffix of RLIMIT_* ("nofile", "nproc", ...).
struct Ulimit {
  std::string name;
  uint64_t soft = 0, hard = 0;
};

// kHost shares the daemon's network namespace (BuildKit's default without CNI); kNone gives the
// process a new network namespace with only the loopback device.
enum class NetMode { kHost, kNone };

// kSandbox: Docker's default capabilities, seccomp profile, masked and read-only /proc and /sys
// paths, no_new_privs, a read-only sysfs, and Docker's device cgroup rules (set up by runc, or
// by the executor for crun on cgroup v1). Without a device cgroup (crun on a cgroup v2 host),
// mknod may create only harmless device nodes and bind mounts are nodev instead.
// kInsecure (RUN --security=insecure): every capability the daemon has, no seccomp, nothing
// masked, writable sysfs, all devices allowed, no no_new_privs.
enum class SecurityMode { kSandbox, kInsecure };

// What to run and how: BuildKit's executor.Meta.
struct Meta {
  std::vector<std::string> args;  // argv; args[0] resolved by the runtime via PATH in env
  std::vector<std::string> env;   // "K=V"; if no PATH given, BuildKit's default PATH is added
  std::string cwd = "/";  // created (mkdir -p inside the rootfs, root-owned 0755) if missing
  // "" = root; "uid", "uid:gid", "name", "name:group", "uid:group", ... resolved from the rootfs'
  // /etc/passwd and /etc/group like Docker; additional groups (from /etc/group) only when no
  // group is given explicitly.
  std::string user;
  std::string hostname;                                          // "" → "buildkitsandbox"
  std::vector<std::pair<std::string, std::string>> extra_hosts;  // (hostname, ip) for /etc/hosts
  std::vector<Ulimit> ulimits;
  NetMode net = NetMode::kHost;
  SecurityMode security = SecurityMode::kSandbox;
  // "K=V" secrets given to the process's environment (overriding `env` entries with the same
  // name). Never logged, never written to disk outside the executor's private tmpfs.
  std::vector<std::string> secret_env;
  // Mount targets missing from the rootfs are created by the runtime as empty stubs and removed
  // again after the run (BuildKit's MountStubsCleaner). When set, missing parent directories
  // created for them are removed too (pb.Meta.removeMountStubsRecursive).
  bool remove_mount_stubs_recursive = false;
};

// One per daemon.
struct Options {
  std::string runtime = "crun";     // binary name (looked up in PATH) or path: crun or runc
  std::filesystem::path state_dir;  // daemon's scratch dir (e.g. <root>/tmp/executor); bundles
                                    // go below it, each on a private tmpfs
  std::string resolv_conf_source = "/etc/resolv.conf";  // copied into the container (read-only)
};

// Receives the process's output as it arrives: fd 1 for stdout, 2 for stderr (the runtime's own
// error messages arrive on 2 as well). Called on the thread running Run.
using OutputFn = std::function<void(int fd, std::string_view data)>;

class Executor {
 public:
  virtual ~Executor() = default;

  // Checks that the runtime binary exists and works (`<runtime> --version`) and prepares
  // `state_dir`: created if missing; leftovers of a previous daemon in it (containers, tmpfs
  // mounts) are removed; if it lies on a shared mount, it is bind-mounted onto itself as a
  // private mount (until the Executor is destroyed) so that the per-run tmpfs mounts never
  // propagate to other mount namespaces.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<Executor>> Create(Options options);

  // Runs meta.args with `rootfs` (an already-mounted, writable directory) as the root
  // filesystem plus `mounts` (mounted in order, after the standard /proc, /dev, /sys mounts and
  // the generated /etc/hosts and /etc/resolv.conf). `id` names the container ([A-Za-z0-9_.-],
  // unique among concurrent runs). Blocks until the process exits.
  //
  // A nonzero exit is an error with BuildKit's message,
  //   process "/bin/sh -c false" did not complete successfully: exit code: 1
  // (128+N for a process killed by signal N; ExitCodeOf() returns the code). When the runtime
  // fails to start the process, its message replaces "exit code: N". Cancellation of `ctx` kills
  // the container (runtime `kill` with SIGKILL, then `delete --force`) and returns CANCELLED
  // (DEADLINE_EXCEEDED when its deadline passed). Always cleans up: runtime state, bundle,
  // tmpfs, mount stubs in the rootfs; no stray mounts or processes.
  [[nodiscard]] virtual absl::Status Run(const Context& ctx, const std::string& id,
                                         const std::filesystem::path& rootfs, const Meta& meta,
                                         const std::vector<Mount>& mounts,
                                         const OutputFn& output) = 0;
};

// The exit code carried by an error from Executor::Run for a process that ran and exited
// nonzero; nullopt for any other status.
std::optional<int> ExitCodeOf(const absl::Status& status);

// BuildKit's default PATH for Linux containers.
inline constexpr std::string_view kDefaultPath =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

// BuildKit's default hostname.
inline constexpr std::string_view kDefaultHostname = "buildkitsandbox";

}  // namespace kiln::executor
