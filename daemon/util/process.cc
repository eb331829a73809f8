#include "daemon/util/process.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>

#include "absl/strings/str_cat.h"
#include "base/status.h"

namespace kiln::util {
namespace {

// What the child failed at, reported through the error pipe together with errno.
enum ChildStep : int {
  kStepParent = 1,
  kStepCgroup,
  kStepUnshare,
  kStepPropagation,
  kStepStdio,
  kStepExec,
};

const char* StepName(int step) {
  switch (step) {
    case kStepParent:
      return "parent exited";
    case kStepCgroup:
      return "join device cgroup";
    case kStepUnshare:
      return "unshare(CLONE_NEWNS)";
    case kStepPropagation:
      return "make mounts slaves";
    case kStepStdio:
      return "set up stdio";
    case kStepExec:
      return "exec";
  }
  return "start";
}

// Everything the child needs, prepared before fork so the child never allocates.
struct ChildArgs {
  const char* path;
  char* const* argv;
  char* const* envp;
  int stdio[3];  // source descriptors for 0, 1, 2
  int err_fd;    // write end of the error pipe (O_CLOEXEC)
  int max_fd;    // for closing descriptors without close_range
  int cgroup_procs_fd;
  pid_t parent;
  bool private_mount_ns;
  const char* const* detach;  // null-terminated
  int umask;                  // -1: inherit
};

[[noreturn]] void ChildFail(const ChildArgs& a, int step) {
  const int report[2] = {step, errno};
  ssize_t ignored = write(a.err_fd, report, sizeof(report));
  (void)ignored;
  _exit(127);
}

void CloseFrom(int from, int to, int max_fd) {
  if (from > to) return;
  if (syscall(SYS_close_range, static_cast<unsigned>(from), static_cast<unsigned>(to), 0) == 0) {
    return;
  }
  for (int fd = from; fd <= std::min(to, max_fd); ++fd) close(fd);
}

// Runs between fork and exec: async-signal-safe system calls only.
[[noreturn]] void ChildMain(const ChildArgs& a) {
  // Signal dispositions through raw system calls: libc's sigaction skips the signals it reserves
  // and may be intercepted (sanitizers). An all-zero kernel sigaction is SIG_DFL, no flags, an
  // empty mask.
  const uint64_t kernel_sigaction[4] = {0, 0, 0, 0};
  const uint64_t empty_mask = 0;
  for (int sig = 1; sig < NSIG; ++sig) {
    (void)syscall(SYS_rt_sigaction, sig, kernel_sigaction, nullptr, sizeof(empty_mask));
  }
  (void)syscall(SYS_rt_sigprocmask, SIG_SETMASK, &empty_mask, nullptr, sizeof(empty_mask));

  (void)setpgid(0, 0);
  (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != a.parent) {
    errno = ESRCH;
    ChildFail(a, kStepParent);
  }

  // "0" moves the writer itself; its children (the runtime, the container) stay in the cgroup.
  if (a.cgroup_procs_fd >= 0 && write(a.cgroup_procs_fd, "0", 1) != 1) ChildFail(a, kStepCgroup);

  if (a.private_mount_ns) {
    if (unshare(CLONE_NEWNS) != 0) ChildFail(a, kStepUnshare);
    if (mount(nullptr, "/", nullptr, MS_REC | MS_SLAVE, nullptr) != 0) {
      ChildFail(a, kStepPropagation);
    }
    for (const char* const* p = a.detach; *p != nullptr; ++p) (void)umount2(*p, MNT_DETACH);
  }

  if (a.umask >= 0) ::umask(static_cast<mode_t>(a.umask));

  // Move the sources out of 0..2 first so that one dup2 cannot clobber another's source.
  int src[3];
  for (int i = 0; i < 3; ++i) {
    src[i] = a.stdio[i] < 3 ? fcntl(a.stdio[i], F_DUPFD, 3) : a.stdio[i];
    if (src[i] < 0) ChildFail(a, kStepStdio);
  }
  for (int i = 0; i < 3; ++i) {
    if (dup2(src[i], i) < 0) ChildFail(a, kStepStdio);
  }
  // Keep only stdio and the error pipe (closed by exec through O_CLOEXEC).
  CloseFrom(3, a.err_fd - 1, a.max_fd);
  CloseFrom(a.err_fd + 1, ~0U >> 1, a.max_fd);

  execve(a.path, a.argv, a.envp);
  ChildFail(a, kStepExec);
}

std::vector<char*> CStrings(const std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (const std::string& s : strings) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

}  // namespace

ChildProcess::ChildProcess(ChildProcess&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)),
      pidfd_(std::move(other.pidfd_)),
      status_(std::exchange(other.status_, std::nullopt)) {}

ChildProcess& ChildProcess::operator=(ChildProcess&& other) noexcept {
  if (this != &other) {
    Reset();
    pid_ = std::exchange(other.pid_, -1);
    pidfd_ = std::move(other.pidfd_);
    status_ = std::exchange(other.status_, std::nullopt);
  }
  return *this;
}

ChildProcess::~ChildProcess() { Reset(); }

void ChildProcess::Reset() {
  if (running()) {
    Kill(SIGKILL);
    Wait();
  }
  pid_ = -1;
  pidfd_.Reset();
  status_.reset();
}

std::optional<int> ChildProcess::TryWait() {
  if (status_ || pid_ <= 0) return status_;
  int status = 0;
  pid_t r;
  do {
    r = waitpid(pid_, &status, WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == pid_) status_ = status;
  return status_;
}

int ChildProcess::Wait() {
  if (status_) return *status_;
  int status = 0;
  pid_t r;
  do {
    r = waitpid(pid_, &status, 0);
  } while (r < 0 && errno == EINTR);
  // ECHILD: reaped by someone else (a waitpid(-1) elsewhere); report it as killed.
  status_ = r == pid_ ? status : SIGKILL;
  return *status_;
}

void ChildProcess::Kill(int sig) {
  if (!running()) return;
  // The group first (the runtime may have helpers), then the child itself in case it has not
  // reached setpgid yet.
  (void)kill(-pid_, sig);
  (void)kill(pid_, sig);
}

int ExitCodeFromWaitStatus(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 255;
}

absl::StatusOr<ChildProcess> Spawn(const SpawnOptions& options) {
  if (options.argv.empty() || options.argv[0].empty() || options.argv[0][0] != '/') {
    return absl::InvalidArgumentError("spawn: argv[0] must be an absolute path");
  }
  UniqueFd dev_null(open("/dev/null", O_RDWR | O_CLOEXEC));
  if (!dev_null.valid()) return ErrnoToStatus(errno, "open /dev/null");
  int err_pipe[2];
  if (pipe2(err_pipe, O_CLOEXEC) != 0) return ErrnoToStatus(errno, "pipe");
  UniqueFd err_read(err_pipe[0]);
  UniqueFd err_write(err_pipe[1]);
  if (err_write.get() < 3) {  // the child closes everything above stdio except this one
    err_write = UniqueFd(fcntl(err_write.get(), F_DUPFD_CLOEXEC, 3));
    if (!err_write.valid()) return ErrnoToStatus(errno, "dup");
  }

  std::vector<char*> argv = CStrings(options.argv);
  std::vector<char*> envp = CStrings(options.env);
  std::vector<const char*> detach;
  for (const std::string& m : options.detach_mounts) detach.push_back(m.c_str());
  detach.push_back(nullptr);
  struct rlimit nofile = {};
  getrlimit(RLIMIT_NOFILE, &nofile);

  ChildArgs a = {};
  a.path = options.argv[0].c_str();
  a.argv = argv.data();
  a.envp = envp.data();
  a.stdio[0] = dev_null.get();
  a.stdio[1] = options.stdout_fd >= 0 ? options.stdout_fd : dev_null.get();
  a.stdio[2] = options.stderr_fd >= 0 ? options.stderr_fd : dev_null.get();
  a.err_fd = err_write.get();
  a.max_fd = static_cast<int>(std::min<rlim_t>(nofile.rlim_cur, 65536));
  a.cgroup_procs_fd = options.cgroup_procs_fd;
  a.parent = getpid();
  a.private_mount_ns = options.private_mount_ns;
  a.detach = detach.data();
  a.umask = options.umask;

  const pid_t pid = fork();
  if (pid < 0) return ErrnoToStatus(errno, "fork");
  if (pid == 0) ChildMain(a);

  err_write.Reset();
  ChildProcess child(pid, UniqueFd(static_cast<int>(syscall(SYS_pidfd_open, pid, 0))));
  int report[2] = {0, 0};
  ssize_t n;
  do {
    n = read(err_read.get(), report, sizeof(report));
  } while (n < 0 && errno == EINTR);
  if (n == sizeof(report)) {
    child.Wait();
    return ErrnoToStatus(report[1],
                         absl::StrCat("start ", options.argv[0], ": ", StepName(report[0])));
  }
  return child;
}

absl::StatusOr<CommandResult> RunCommand(SpawnOptions options, const CommandOptions& command) {
  int out_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0) return ErrnoToStatus(errno, "pipe");
  UniqueFd out_read(out_pipe[0]);
  UniqueFd out_write(out_pipe[1]);
  UniqueFd err_read, err_write;
  if (command.separate_stderr) {
    int err_pipe[2];
    if (pipe2(err_pipe, O_CLOEXEC) != 0) return ErrnoToStatus(errno, "pipe");
    err_read = UniqueFd(err_pipe[0]);
    err_write = UniqueFd(err_pipe[1]);
  }
  options.stdout_fd = out_write.get();
  options.stderr_fd = command.separate_stderr ? err_write.get() : out_write.get();
  KILN_ASSIGN_OR_RETURN(ChildProcess child, Spawn(options));
  out_write.Reset();
  err_write.Reset();

  CommandResult result;
  const auto deadline = std::chrono::steady_clock::now() + command.timeout;
  auto stop = [&](absl::Status why) {
    child.Kill(SIGKILL);
    child.Wait();
    return why;
  };
  char buf[4096];
  // Read both pipes until both reach EOF: the command and everything it started closed them.
  while (out_read.valid() || err_read.valid()) {
    if (command.ctx != nullptr) {
      if (absl::Status s = command.ctx->Check(options.argv[0].c_str()); !s.ok()) return stop(s);
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      return stop(absl::DeadlineExceededError(
          absl::StrCat(options.argv[0], " did not finish within ", command.timeout.count(), "ms")));
    }
    pollfd pfds[2] = {{out_read.get(), POLLIN, 0}, {err_read.get(), POLLIN, 0}};
    // With a context, wake up now and then to notice cancellation.
    const int wait_ms = static_cast<int>(
        command.ctx != nullptr ? std::min<int64_t>(left.count(), 100) : left.count());
    const int r = poll(pfds, 2, wait_ms);
    if (r < 0 && errno != EINTR) return stop(ErrnoToStatus(errno, "poll"));
    if (r <= 0) continue;
    for (int i = 0; i < 2; ++i) {
      if (pfds[i].fd < 0 || pfds[i].revents == 0) continue;
      UniqueFd& fd = i == 0 ? out_read : err_read;
      std::string& into = i == 0 || !command.separate_stderr ? result.output : result.errors;
      const ssize_t n = read(fd.get(), buf, sizeof(buf));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        fd.Reset();
        continue;
      }
      if (into.size() < 65536) into.append(buf, static_cast<size_t>(n));
    }
  }
  result.exit_code = ExitCodeFromWaitStatus(child.Wait());
  return result;
}

}  // namespace kiln::util
