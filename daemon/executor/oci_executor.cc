#include "daemon/executor/oci_executor.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <stop_token>
#include <system_error>

#include <nlohmann/json.hpp>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "base/status.h"
#include "daemon/executor/internal/device_cgroup.h"
#include "daemon/executor/internal/mounts.h"
#include "daemon/util/process.h"
#include "daemon/executor/internal/root_fs.h"
#include "daemon/executor/internal/spec.h"
#include "daemon/executor/internal/user.h"
#include "daemon/util/logging.h"

namespace kiln::executor {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using util::ChildProcess;
using internal::UniqueFd;
using namespace std::chrono_literals;

constexpr std::string_view kExitCodePayload = "type.kiln.dev/kiln.executor.ExitCode";
constexpr std::string_view kRunTmpfsSize = "16m";
constexpr size_t kMaxUserFileSize = 16 << 20;
constexpr auto kKillRetry = 200ms;     // between `kill` attempts after cancellation
constexpr auto kKillEscalate = 5s;     // then SIGKILL the runtime process itself
constexpr auto kDrainGrace = 2s;       // output still open after the runtime exited
constexpr auto kKillTimeout = 2s;      // one `kill` attempt
constexpr auto kVersionTimeout = 10s;  // `--version` at startup
constexpr std::string_view kRuntimePath =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
constexpr std::string_view kUnifiedCgroup = "/sys/fs/cgroup/unified";

std::shared_ptr<spdlog::logger> Log() {
  static const std::shared_ptr<spdlog::logger> logger = Logger("executor");
  return logger;
}

bool ValidId(std::string_view id) {
  if (id.empty() || id.size() > 128 || !absl::ascii_isalnum(static_cast<unsigned char>(id[0]))) {
    return false;
  }
  return std::all_of(id.begin(), id.end(), [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
  });
}

absl::Status WriteNewFile(const std::string& path, std::string_view data, mode_t mode) {
  UniqueFd fd(open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode));
  if (!fd.valid()) return ErrnoToStatus(errno, absl::StrCat("create ", path));
  if (fchmod(fd.get(), mode) != 0) return ErrnoToStatus(errno, absl::StrCat("chmod ", path));
  while (!data.empty()) {
    const ssize_t n = write(fd.get(), data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoToStatus(errno, absl::StrCat("write ", path));
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

absl::Status MakeDir(const std::string& path, mode_t mode) {
  if (mkdir(path.c_str(), mode) != 0) return ErrnoToStatus(errno, absl::StrCat("mkdir ", path));
  return absl::OkStatus();
}

// The first MiB of a small host file (resolv.conf, the runtime's log).
absl::StatusOr<std::string> ReadHostFile(const std::string& path) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoToStatus(errno, absl::StrCat("open ", path));
  std::string out;
  char buf[8192];
  while (out.size() < (1 << 20)) {
    const ssize_t n = read(fd.get(), buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoToStatus(errno, absl::StrCat("read ", path));
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

std::string ProcessPrefix(const Meta& meta) {
  return absl::StrCat("process \"", absl::StrJoin(meta.args, " "),
                      "\" did not complete successfully: ");
}

// The error-level messages of a runtime's JSON log (--log-format json), in order, deduplicated.
std::string RuntimeErrors(const std::string& log_path) {
  std::vector<std::string> messages;
  const absl::StatusOr<std::string> data = ReadHostFile(log_path);
  if (!data.ok()) return "";
  for (absl::string_view line : absl::StrSplit(*data, '\n', absl::SkipWhitespace())) {
    const nlohmann::json entry =
        nlohmann::json::parse(line.begin(), line.end(), nullptr, /*allow_exceptions=*/false);
    if (!entry.is_object()) continue;
    const auto level = entry.find("level");
    const auto msg = entry.find("msg");
    if (level == entry.end() || msg == entry.end() || !level->is_string() || !msg->is_string()) {
      continue;
    }
    if (*level != "error" && *level != "fatal") continue;
    std::string text(absl::StripAsciiWhitespace(msg->get<std::string>()));
    if (!text.empty() && std::find(messages.begin(), messages.end(), text) == messages.end()) {
      messages.push_back(std::move(text));
    }
  }
  return absl::StrJoin(messages, "; ");
}

std::optional<std::string> FindRuntime(const std::string& name) {
  auto usable = [](const fs::path& p) {
    std::error_code ec;
    return fs::is_regular_file(p, ec) && access(p.c_str(), X_OK) == 0;
  };
  if (name.find('/') != std::string::npos) {
    std::error_code ec;
    const fs::path p = fs::absolute(name, ec);
    if (!ec && usable(p)) return p.lexically_normal().string();
    return std::nullopt;
  }
  const char* env_path = std::getenv("PATH");
  const std::string search =
      env_path != nullptr && *env_path != '\0' ? env_path : std::string(kRuntimePath.substr(5));
  for (absl::string_view dir : absl::StrSplit(search, ':', absl::SkipEmpty())) {
    const fs::path p = fs::path(std::string(dir)) / name;
    if (p.is_absolute() && usable(p)) return p.string();
  }
  return std::nullopt;
}

// crun (1.x) refuses a hybrid cgroup host whose cgroup2 hierarchy has controllers enabled.
bool CrunNeedsUnifiedCgroupHidden() {
  struct statfs root_fs, unified_fs;
  if (statfs("/sys/fs/cgroup", &root_fs) != 0 || root_fs.f_type != TMPFS_MAGIC) return false;
  const std::string unified(kUnifiedCgroup);
  if (statfs(unified.c_str(), &unified_fs) != 0 || unified_fs.f_type != CGROUP2_SUPER_MAGIC) {
    return false;
  }
  UniqueFd fd(open((unified + "/cgroup.controllers").c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return false;
  char buf[256];
  const ssize_t n = read(fd.get(), buf, sizeof(buf));
  return n > 0 &&
         !absl::StripAsciiWhitespace(absl::string_view(buf, static_cast<size_t>(n))).empty();
}

}  // namespace

struct OciExecutor::RunContext {
  std::string id;
  std::string run_dir;     // <state_dir>/<id>: the tmpfs, also the bundle directory
  std::string state_root;  // the runtime's --root
  std::string log_path;    // the runtime's --log
  bool sandbox = true;
};

std::optional<int> ExitCodeOf(const absl::Status& status) {
  const absl::optional<absl::Cord> payload = status.GetPayload(AV(kExitCodePayload));
  int code = 0;
  if (!payload || !absl::SimpleAtoi(std::string(*payload), &code)) return std::nullopt;
  return code;
}

absl::StatusOr<std::unique_ptr<Executor>> Executor::Create(Options options) {
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<OciExecutor> executor,
                        OciExecutor::Create(std::move(options)));
  return std::unique_ptr<Executor>(std::move(executor));
}

OciExecutor::OciExecutor(Options options, std::string runtime_path, Flavor flavor,
                         std::string version, bool hide_unified_cgroup,
                         std::string device_cgroup_parent)
    : options_(std::move(options)),
      runtime_path_(std::move(runtime_path)),
      flavor_(flavor),
      version_(std::move(version)),
      hide_unified_cgroup_(hide_unified_cgroup),
      device_cgroup_parent_(std::move(device_cgroup_parent)),
      restrict_device_nodes_(flavor == Flavor::kCrun && device_cgroup_parent_.empty()) {}

OciExecutor::~OciExecutor() {
  if (owns_state_bind_ && umount2(options_.state_dir.c_str(), MNT_DETACH) != 0) {
    Log()->warn("unmount {}: {}", options_.state_dir.string(), internal::ErrnoText(errno));
  }
}

absl::StatusOr<std::unique_ptr<OciExecutor>> OciExecutor::Create(Options options) {
  if (options.state_dir.empty()) {
    return absl::InvalidArgumentError("executor: no state directory given");
  }
  if (options.runtime.empty()) options.runtime = "crun";
  const std::optional<std::string> path = FindRuntime(options.runtime);
  if (!path) {
    return absl::FailedPreconditionError(absl::StrCat(
        "OCI runtime \"", options.runtime,
        "\" not found (looked in PATH); install crun or runc, or give the binary's path"));
  }

  util::SpawnOptions version_cmd;
  version_cmd.argv = {*path, "--version"};
  version_cmd.env = {std::string(kRuntimePath)};
  absl::StatusOr<util::CommandResult> version =
      util::RunCommand(version_cmd, kVersionTimeout);
  if (!version.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("OCI runtime ", *path, " does not work: ", version.status().message()));
  }
  if (version->exit_code != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "OCI runtime ", *path, " does not work: `", *path, " --version` exited with code ",
        version->exit_code, ": ", absl::StripAsciiWhitespace(version->output)));
  }
  const std::string first_line(absl::StripAsciiWhitespace(
      absl::string_view(version->output).substr(0, version->output.find('\n'))));
  Flavor flavor;
  if (absl::StartsWith(first_line, "crun")) {
    flavor = Flavor::kCrun;
  } else if (absl::StartsWith(first_line, "runc")) {
    flavor = Flavor::kRunc;
  } else {
    return absl::FailedPreconditionError(
        absl::StrCat("OCI runtime ", *path, " is neither crun nor runc (`--version` printed \"",
                     first_line, "\")"));
  }
  const bool hide_unified = flavor == Flavor::kCrun && CrunNeedsUnifiedCgroupHidden();
  std::string device_parent;
  if (flavor == Flavor::kCrun) {
    device_parent = internal::FindDeviceCgroupParent();
    if (device_parent.empty()) {
      Log()->warn(
          "no writable cgroup v1 devices hierarchy: crun containers get no device cgroup; "
          "creating device nodes is refused and binds are nodev, but device nodes already in a "
          "rootfs stay usable (use runc to have it manage a device cgroup)");
    }
  }

  std::error_code ec;
  fs::create_directories(options.state_dir, ec);
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("create ", options.state_dir.string(), ": ", ec.message()));
  }
  fs::permissions(options.state_dir, fs::perms::owner_all, fs::perm_options::replace, ec);
  options.state_dir = fs::canonical(options.state_dir, ec);
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("resolve ", options.state_dir.string(), ": ", ec.message()));
  }

  std::unique_ptr<OciExecutor> executor(new OciExecutor(
      std::move(options), *path, flavor, first_line, hide_unified, std::move(device_parent)));
  KILN_RETURN_IF_ERROR(executor->CleanStateDir());
  KILN_RETURN_IF_ERROR(executor->MakeStateDirPrivate());
  Log()->info("OCI runtime {} ({}){}", executor->runtime_path_, executor->version_,
              hide_unified ? ", run without the hybrid cgroup2 hierarchy" : "");
  return executor;
}

std::vector<std::string> OciExecutor::RuntimeArgv(
    const std::string& state_root, std::initializer_list<std::string> command) const {
  std::vector<std::string> argv = {runtime_path_, "--root", state_root};
  // No cgroups: the process stays in the daemon's cgroup; nothing to set up or leak.
  if (flavor_ == Flavor::kCrun) argv.push_back("--cgroup-manager=disabled");
  argv.insert(argv.end(), command.begin(), command.end());
  return argv;
}

absl::Status OciExecutor::RuntimeCommand(const std::string& state_root,
                                         std::initializer_list<std::string> command,
                                         std::chrono::milliseconds timeout) const {
  util::SpawnOptions so;
  so.argv = RuntimeArgv(state_root, command);
  so.env = {std::string(kRuntimePath)};
  so.private_mount_ns = hide_unified_cgroup_;
  if (hide_unified_cgroup_) so.detach_mounts = {std::string(kUnifiedCgroup)};
  KILN_ASSIGN_OR_RETURN(util::CommandResult result,
                        util::RunCommand(std::move(so), timeout));
  if (result.exit_code != 0) {
    return absl::InternalError(absl::StrCat(absl::StrJoin(command, " "), " exited with code ",
                                            result.exit_code, ": ",
                                            absl::StripAsciiWhitespace(result.output)));
  }
  return absl::OkStatus();
}

absl::Status OciExecutor::CleanStateDir() {
  std::error_code ec;
  std::vector<fs::path> leftovers;
  for (const fs::directory_entry& entry : fs::directory_iterator(options_.state_dir, ec)) {
    leftovers.push_back(entry.path());
  }
  if (ec) {
    return absl::InternalError(
        absl::StrCat("read ", options_.state_dir.string(), ": ", ec.message()));
  }
  for (const fs::path& dir : leftovers) {
    // Containers first (their runtime state is on the tmpfs), then the mounts, then the files.
    const fs::path state_root = dir / "state";
    for (const fs::directory_entry& c : fs::directory_iterator(state_root, ec)) {
      const std::string id = c.path().filename().string();
      if (absl::Status s = RuntimeCommand(state_root.string(), {"delete", "--force", id});
          !s.ok()) {
        Log()->warn("delete leftover container {}: {}", id, SV(s.message()));
      }
    }
    KILN_RETURN_IF_ERROR(internal::UnmountAll(dir.string()));
    fs::remove_all(dir, ec);
    if (ec) {
      return absl::InternalError(
          absl::StrCat("remove leftover ", dir.string(), ": ", ec.message()));
    }
    Log()->info("removed leftover run directory {}", dir.string());
  }
  if (!device_cgroup_parent_.empty()) internal::DeviceCgroup::RemoveStale(device_cgroup_parent_);
  return absl::OkStatus();
}

absl::Status OciExecutor::MakeStateDirPrivate() {
  const std::string dir = options_.state_dir.string();
  KILN_ASSIGN_OR_RETURN(std::vector<internal::MountInfo> mounts, internal::ReadMountInfo());
  // The mount state_dir lives on: the deepest mount point above it (the last one listed wins
  // when mounts are stacked).
  const internal::MountInfo* containing = nullptr;
  for (const internal::MountInfo& m : mounts) {
    if (internal::PathIsWithin(dir, m.mount_point) &&
        (containing == nullptr || m.mount_point.size() >= containing->mount_point.size())) {
      containing = &m;
    }
  }
  // Mounts made below a shared mount would propagate to its peers (other mount namespaces),
  // tmpfs holding secrets included. Only then does state_dir need a private mount of its own.
  if (containing == nullptr || !containing->shared) return absl::OkStatus();
  if (mount(dir.c_str(), dir.c_str(), nullptr, MS_BIND, nullptr) != 0) {
    return ErrnoToStatus(errno, absl::StrCat("bind ", dir, " onto itself"));
  }
  if (mount(nullptr, dir.c_str(), nullptr, MS_PRIVATE, nullptr) != 0) {
    const absl::Status s = ErrnoToStatus(errno, absl::StrCat("make ", dir, " private"));
    (void)umount2(dir.c_str(), MNT_DETACH);
    return s;
  }
  owns_state_bind_ = true;
  Log()->info("{} is on a shared mount: bound it onto itself as a private mount", dir);
  return absl::OkStatus();
}

absl::Status OciExecutor::Run(const Context& ctx, const std::string& id,
                              const std::filesystem::path& rootfs, const Meta& meta,
                              const std::vector<Mount>& mounts, const OutputFn& output) {
  if (!ValidId(id)) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid container id \"", id, "\" (want [A-Za-z0-9][A-Za-z0-9_.-]*)"));
  }
  KILN_RETURN_IF_ERROR(internal::ValidateMeta(meta, mounts));
  KILN_RETURN_IF_ERROR(ctx.Check("run"));

  std::error_code ec;
  const fs::path root = fs::canonical(rootfs, ec);
  if (ec || !fs::is_directory(root, ec)) {
    return absl::FailedPreconditionError(
        absl::StrCat("rootfs ", rootfs.string(), ": ", ec ? ec.message() : "not a directory"));
  }
  KILN_ASSIGN_OR_RETURN(UniqueFd root_fd, internal::OpenRoot(root.string()));

  internal::ExecUser user;
  if (!meta.user.empty()) {
    KILN_ASSIGN_OR_RETURN(std::optional<std::string> passwd,
                          internal::ReadFileInRoot(root_fd.get(), "/etc/passwd", kMaxUserFileSize));
    KILN_ASSIGN_OR_RETURN(std::optional<std::string> group,
                          internal::ReadFileInRoot(root_fd.get(), "/etc/group", kMaxUserFileSize));
    KILN_ASSIGN_OR_RETURN(user, internal::ResolveUser(meta.user, passwd, group));
  }

  // Mount targets the runtime will create in the rootfs, recorded before it does.
  std::vector<std::string> targets = {"/etc/resolv.conf", "/etc/hosts"};
  for (const Mount& m : mounts) targets.push_back(m.destination);
  const std::vector<std::string> stubs =
      internal::FindMountStubs(root_fd.get(), targets, meta.remove_mount_stubs_recursive);
  absl::Cleanup remove_stubs = [&] { internal::RemoveMountStubs(root_fd.get(), stubs); };

  const std::string cwd = internal::CleanAbs(meta.cwd.empty() ? "/" : meta.cwd);
  if (absl::Status s = internal::MkdirAllInRoot(root_fd.get(), cwd, 0755); !s.ok()) {
    return Annotate(s, absl::StrCat("failed to create working directory ", cwd));
  }

  RunContext rc;
  rc.id = id;
  rc.run_dir = (options_.state_dir / id).string();
  rc.state_root = rc.run_dir + "/state";
  rc.log_path = rc.run_dir + "/runtime.log";
  rc.sandbox = meta.security == SecurityMode::kSandbox;

  if (mkdir(rc.run_dir.c_str(), 0700) != 0) {
    if (errno == EEXIST) {
      return absl::AlreadyExistsError(absl::StrCat("container id \"", id, "\" is already in use"));
    }
    return ErrnoToStatus(errno, absl::StrCat("mkdir ", rc.run_dir));
  }
  absl::Cleanup remove_run_dir = [&] {
    if (rmdir(rc.run_dir.c_str()) != 0) {
      Log()->warn("remove {}: {}", rc.run_dir, internal::ErrnoText(errno));
    }
  };
  KILN_RETURN_IF_ERROR(internal::MountPrivateTmpfs(rc.run_dir, kRunTmpfsSize));
  absl::Cleanup unmount = [&] {
    if (absl::Status s = internal::UnmountAll(rc.run_dir); !s.ok()) {
      Log()->warn("run {}: {}", id, SV(s.message()));
    }
  };

  KILN_RETURN_IF_ERROR(MakeDir(rc.state_root, 0700));

  const std::string hosts_path = rc.run_dir + "/hosts";
  const std::string resolv_path = rc.run_dir + "/resolv.conf";
  KILN_RETURN_IF_ERROR(
      WriteNewFile(hosts_path,
                   internal::HostsFile(meta.hostname.empty() ? kDefaultHostname : meta.hostname,
                                       meta.extra_hosts),
                   0644));
  absl::StatusOr<std::string> resolv_conf = ReadHostFile(options_.resolv_conf_source);
  if (!resolv_conf.ok()) {
    Log()->warn("run {}: no resolv.conf for the container: {}", id,
                SV(resolv_conf.status().message()));
    resolv_conf = "";
  }
  KILN_RETURN_IF_ERROR(WriteNewFile(resolv_path, *resolv_conf, 0644));

  internal::SpecInput spec_in;
  spec_in.root_path = root.string();
  spec_in.meta = &meta;
  spec_in.user = user;
  spec_in.mounts = mounts;
  spec_in.hosts_path = hosts_path;
  spec_in.resolv_conf_path = resolv_path;
  spec_in.restrict_device_nodes = restrict_device_nodes_;
  KILN_ASSIGN_OR_RETURN(nlohmann::json spec, internal::GenerateSpec(spec_in));
  // The spec holds secret_env: it lives on the tmpfs only, readable by root only.
  KILN_RETURN_IF_ERROR(WriteNewFile(rc.run_dir + "/config.json", spec.dump(), 0600));

  return RunInBundle(ctx, rc, meta, output);
}

absl::Status OciExecutor::RunInBundle(const Context& ctx, RunContext& rc, const Meta& meta,
                                      const OutputFn& output) {
  int out_pipe[2], err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0) return ErrnoToStatus(errno, "pipe");
  UniqueFd out_read(out_pipe[0]), out_write(out_pipe[1]);
  if (pipe2(err_pipe, O_CLOEXEC) != 0) return ErrnoToStatus(errno, "pipe");
  UniqueFd err_read(err_pipe[0]), err_write(err_pipe[1]);
  UniqueFd wake(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake.valid()) return ErrnoToStatus(errno, "eventfd");

  std::unique_ptr<internal::DeviceCgroup> device_cgroup;
  if (rc.sandbox && !device_cgroup_parent_.empty()) {
    KILN_ASSIGN_OR_RETURN(device_cgroup,
                          internal::DeviceCgroup::Create(device_cgroup_parent_, rc.id));
  }

  util::SpawnOptions so;
  so.argv = RuntimeArgv(rc.state_root, {"--log", rc.log_path, "--log-format", "json", "run",
                                        "--bundle", rc.run_dir, rc.id});
  so.env = {std::string(kRuntimePath)};
  so.stdout_fd = out_write.get();
  so.stderr_fd = err_write.get();
  if (device_cgroup) so.cgroup_procs_fd = device_cgroup->procs_fd();
  so.private_mount_ns = hide_unified_cgroup_;
  if (hide_unified_cgroup_) so.detach_mounts = {std::string(kUnifiedCgroup)};

  // Names only: values may be secrets.
  Log()->debug(
      "run {}: {} args=[{}] user=\"{}\" cwd={} net={} security={} env=[{}] "
      "secret_env=[{}]",
      rc.id, flavor_ == Flavor::kCrun ? "crun" : "runc", absl::StrJoin(meta.args, " "), meta.user,
      meta.cwd, meta.net == NetMode::kNone ? "none" : "host",
      meta.security == SecurityMode::kSandbox ? "sandbox" : "insecure",
      absl::StrJoin(internal::EnvNames(meta.env), ","),
      absl::StrJoin(internal::EnvNames(meta.secret_env), ","));

  const Clock::time_point start = Clock::now();
  KILN_ASSIGN_OR_RETURN(ChildProcess child, util::Spawn(so));
  out_write.Reset();
  err_write.Reset();

  const int wake_fd = wake.get();
  std::stop_callback on_cancel(ctx.stop_token(), [wake_fd] {
    const uint64_t one = 1;
    ssize_t ignored = write(wake_fd, &one, sizeof(one));
    (void)ignored;
  });

  bool out_open = true, err_open = true, cancelled = false;
  Clock::time_point cancel_time, next_kill;
  std::optional<Clock::time_point> exited_at;
  char buf[32768];
  while (out_open || err_open || child.running()) {
    Clock::time_point now = Clock::now();
    if (!child.running() && !exited_at) exited_at = now;
    if (exited_at && now - *exited_at >= kDrainGrace) {
      Log()->warn("run {}: output still open {}s after the runtime exited; not waiting for it",
                  rc.id, std::chrono::duration_cast<std::chrono::seconds>(kDrainGrace).count());
      break;
    }
    if (!cancelled && ctx.Cancelled()) {
      cancelled = true;
      cancel_time = next_kill = now;
      Log()->debug("run {}: cancelled, killing the container", rc.id);
    }
    if (cancelled && child.running() && now >= next_kill) {
      if (now - cancel_time >= kKillEscalate) {
        Log()->warn("run {}: container still running {}s after kill; killing the runtime", rc.id,
                    std::chrono::duration_cast<std::chrono::seconds>(kKillEscalate).count());
        child.Kill(SIGKILL);
      } else {
        // Fails until the container exists; retried until the runtime exits.
        (void)RuntimeCommand(rc.state_root, {"kill", rc.id, "KILL"}, kKillTimeout);
      }
      now = Clock::now();
      next_kill = now + kKillRetry;
    }

    int timeout_ms = -1;
    auto wake_at = [&](Clock::time_point t) {
      const auto ms = std::chrono::ceil<std::chrono::milliseconds>(t - now).count();
      const int clamped = static_cast<int>(std::clamp<int64_t>(ms, 0, 60'000));
      timeout_ms = timeout_ms < 0 ? clamped : std::min(timeout_ms, clamped);
    };
    if (cancelled && child.running()) wake_at(next_kill);
    if (!cancelled && ctx.deadline()) wake_at(*ctx.deadline());
    if (exited_at) wake_at(*exited_at + kDrainGrace);
    if (child.running() && child.pidfd() < 0) wake_at(now + 50ms);

    pollfd fds[4];
    nfds_t nfds = 0;
    int out_idx = -1, err_idx = -1, wake_idx = -1, pid_idx = -1;
    if (out_open) out_idx = static_cast<int>(nfds), fds[nfds++] = {out_read.get(), POLLIN, 0};
    if (err_open) err_idx = static_cast<int>(nfds), fds[nfds++] = {err_read.get(), POLLIN, 0};
    if (!cancelled) wake_idx = static_cast<int>(nfds), fds[nfds++] = {wake_fd, POLLIN, 0};
    if (child.running() && child.pidfd() >= 0) {
      pid_idx = static_cast<int>(nfds), fds[nfds++] = {child.pidfd(), POLLIN, 0};
    }
    const int ready = poll(fds, nfds, timeout_ms);
    if (ready < 0) {
      if (errno == EINTR) continue;
      const absl::Status s = ErrnoToStatus(errno, "poll");
      child.Kill(SIGKILL);
      child.Wait();
      (void)RuntimeCommand(rc.state_root, {"delete", "--force", rc.id});
      return s;
    }
    for (auto [idx, fd, open_flag, stream] : {std::tuple{out_idx, out_read.get(), &out_open, 1},
                                              std::tuple{err_idx, err_read.get(), &err_open, 2}}) {
      if (idx < 0 || fds[idx].revents == 0) continue;
      const ssize_t n = read(fd, buf, sizeof(buf));
      if (n > 0) {
        if (output) output(stream, std::string_view(buf, static_cast<size_t>(n)));
      } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
        *open_flag = false;
      }
    }
    if (wake_idx >= 0 && fds[wake_idx].revents != 0) {
      uint64_t value;
      ssize_t ignored = read(wake_fd, &value, sizeof(value));
      (void)ignored;
    }
    if (pid_idx >= 0 ? fds[pid_idx].revents != 0 : child.pidfd() < 0) child.TryWait();
  }
  const int exit_code = util::ExitCodeFromWaitStatus(child.Wait());
  const std::string runtime_errors = RuntimeErrors(rc.log_path);

  // `run` deletes the container when it exits normally; after a kill or a crash of the runtime
  // its state may remain.
  std::error_code ec;
  if (fs::exists(fs::path(rc.state_root) / rc.id, ec)) {
    if (absl::Status s = RuntimeCommand(rc.state_root, {"delete", "--force", rc.id}); !s.ok()) {
      Log()->warn("run {}: {}", rc.id, SV(s.message()));
    }
  }
  Log()->debug("run {}: exit code {} after {}ms{}", rc.id, exit_code,
               std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count(),
               cancelled ? " (cancelled)" : "");

  if (cancelled) {
    const std::string what = absl::StrCat("process \"", absl::StrJoin(meta.args, " "), "\"");
    absl::Status s = ctx.Check(what.c_str());
    return s.ok() ? absl::CancelledError(absl::StrCat(what, " cancelled")) : s;
  }
  if (exit_code == 0) return absl::OkStatus();
  if (!runtime_errors.empty()) return absl::UnknownError(ProcessPrefix(meta) + runtime_errors);
  absl::Status s = absl::UnknownError(absl::StrCat(ProcessPrefix(meta), "exit code: ", exit_code));
  s.SetPayload(AV(kExitCodePayload), absl::Cord(absl::StrCat(exit_code)));
  return s;
}

}  // namespace kiln::executor
