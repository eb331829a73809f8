#pragma once
// OciExecutor: the Executor that drives an OCI runtime binary (crun or runc) with
// `<runtime> --root <state> run --bundle <bundle> <id>`. Each run gets a private tmpfs at
// <state_dir>/<id> holding the bundle (config.json, hosts, resolv.conf), the runtime's state
// root and its log; it is unmounted when the run ends. Thread-safe; must not be
// destroyed while a Run is in progress.

#include <chrono>
#include <filesystem>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "daemon/executor/executor.h"

namespace kiln::executor {

class OciExecutor final : public Executor {
 public:
  enum class Flavor { kCrun, kRunc };

  [[nodiscard]] static absl::StatusOr<std::unique_ptr<OciExecutor>> Create(Options options);
  ~OciExecutor() override;

  [[nodiscard]] absl::Status Run(const Context& ctx, const std::string& id,
                                 const std::filesystem::path& rootfs, const Meta& meta,
                                 const std::vector<Mount>& mounts, const OutputFn& output) override;

  const std::string& runtime_path() const { return runtime_path_; }
  Flavor flavor() const { return flavor_; }
  const std::string& runtime_version() const { return version_; }

 private:
  struct RunContext;

  OciExecutor(Options options, std::string runtime_path, Flavor flavor, std::string version,
              bool hide_unified_cgroup, std::string device_cgroup_parent);

  // Global flags and subcommand for one runtime invocation against `state_root`.
  std::vector<std::string> RuntimeArgv(const std::string& state_root,
                                       std::initializer_list<std::string> command) const;
  // Runs `<runtime> --root <state_root> <command...>` to completion (kill, delete).
  [[nodiscard]] absl::Status RuntimeCommand(
      const std::string& state_root, std::initializer_list<std::string> command,
      std::chrono::milliseconds timeout = std::chrono::seconds(30)) const;
  // Removes containers, mounts and directories a previous daemon left in state_dir.
  [[nodiscard]] absl::Status CleanStateDir();
  // Makes state_dir a private mount (binding it onto itself when needed).
  [[nodiscard]] absl::Status MakeStateDirPrivate();

  [[nodiscard]] absl::Status RunInBundle(const Context& ctx, RunContext& rc, const Meta& meta,
                                         const OutputFn& output);

  // Constant after construction.
  const Options options_;
  const std::string runtime_path_;
  const Flavor flavor_;
  const std::string version_;
  // crun refuses to start containers on a hybrid cgroup host whose cgroup2 hierarchy has
  // controllers, even with --cgroup-manager=disabled; it then runs in a mount namespace of its
  // own without /sys/fs/cgroup/unified.
  const bool hide_unified_cgroup_;
  // crun runs without a cgroup manager, so the executor puts it into a devices cgroup of its
  // own below this one (cgroup v1); empty for runc, which sets up its own, or when there is no
  // v1 devices hierarchy, where device nodes are restricted by seccomp and nodev binds instead.
  const std::string device_cgroup_parent_;
  const bool restrict_device_nodes_;
  bool owns_state_bind_ = false;  // set once in Create
};

}  // namespace kiln::executor
