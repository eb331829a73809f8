#include "daemon/executor/internal/seccomp.h"

#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <cerrno>
#include <cstdint>
#include <initializer_list>
#include <string_view>
#include <vector>

namespace kiln::executor::internal {
namespace {

using nlohmann::json;

// Syscalls every build step may make, grouped by what they are for. Names unknown to the
// runtime's libseccomp (or to this architecture) are skipped by the runtime.
// clang-format off
constexpr std::string_view kAllowed[] = {
    // Reading and writing descriptors.
    "read", "readv", "pread64", "preadv", "preadv2", "write", "writev", "pwrite64", "pwritev",
    "pwritev2", "lseek", "_llseek", "sendfile", "sendfile64", "splice", "tee", "vmsplice",
    "copy_file_range", "readahead", "fadvise64", "fadvise64_64",
    // Opening and managing descriptors.
    "open", "openat", "openat2", "creat", "close", "close_range", "dup", "dup2", "dup3", "pipe",
    "pipe2", "fcntl", "fcntl64", "ioctl", "flock",
    // File contents and sync.
    "fsync", "fdatasync", "sync", "syncfs", "sync_file_range", "fallocate", "truncate",
    "truncate64", "ftruncate", "ftruncate64",
    // File metadata.
    "stat", "stat64", "lstat", "lstat64", "fstat", "fstat64", "fstatat64", "newfstatat", "statx",
    "statfs", "statfs64", "fstatfs", "fstatfs64", "access", "faccessat", "faccessat2", "readlink",
    "readlinkat", "chmod", "fchmod", "fchmodat", "chown", "chown32", "fchown", "fchown32",
    "fchownat", "lchown", "lchown32", "utime", "utimes", "utimensat", "utimensat_time64",
    "futimesat", "umask", "name_to_handle_at",
    // Extended attributes.
    "getxattr", "lgetxattr", "fgetxattr", "setxattr", "lsetxattr", "fsetxattr", "listxattr",
    "llistxattr", "flistxattr", "removexattr", "lremovexattr", "fremovexattr",
    // Directory tree.
    "getdents", "getdents64", "mkdir", "mkdirat", "rmdir", "rename", "renameat", "renameat2",
    "link", "linkat", "symlink", "symlinkat", "unlink", "unlinkat", "chdir", "fchdir", "getcwd",
    "chroot",  // CAP_SYS_CHROOT is in the default set
    // Memory.
    "brk", "mmap", "mmap2", "munmap", "mremap", "mprotect", "madvise", "mincore", "msync", "mlock",
    "mlock2", "mlockall", "munlock", "munlockall", "remap_file_pages", "membarrier", "memfd_create",
    "memfd_secret", "pkey_alloc", "pkey_free", "pkey_mprotect",
    // Processes and threads (clone with namespace flags and mknod are handled below).
    "fork", "vfork", "execve", "execveat", "exit", "exit_group", "wait4", "waitid", "waitpid",
    "kill", "tkill", "tgkill", "getpid", "getppid", "gettid", "getpgid", "getpgrp", "setpgid",
    "getsid", "setsid", "set_tid_address", "set_robust_list", "get_robust_list", "rseq", "prctl",
    "capget", "capset", "get_thread_area", "set_thread_area", "pidfd_open", "pidfd_send_signal",
    "process_mrelease", "ptrace", "process_vm_readv", "process_vm_writev",
    // Scheduling and resource limits.
    "getpriority", "setpriority", "getrusage", "getrlimit", "ugetrlimit", "setrlimit", "prlimit64",
    "sched_getaffinity", "sched_setaffinity", "sched_getattr", "sched_setattr", "sched_getparam",
    "sched_setparam", "sched_getscheduler", "sched_setscheduler", "sched_get_priority_max",
    "sched_get_priority_min", "sched_rr_get_interval", "sched_rr_get_interval_time64",
    "sched_yield", "getcpu", "ioprio_get", "ioprio_set",
    // Credentials.
    "getuid", "getuid32", "geteuid", "geteuid32", "getgid", "getgid32", "getegid", "getegid32",
    "getresuid", "getresuid32", "getresgid", "getresgid32", "getgroups", "getgroups32", "setuid",
    "setuid32", "setgid", "setgid32", "setreuid", "setreuid32", "setregid", "setregid32",
    "setresuid", "setresuid32", "setresgid", "setresgid32", "setgroups", "setgroups32", "setfsuid",
    "setfsuid32", "setfsgid", "setfsgid32",
    // Signals.
    "rt_sigaction", "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn",
    "rt_sigsuspend", "rt_sigtimedwait", "rt_sigtimedwait_time64", "rt_tgsigqueueinfo",
    "sigaltstack", "signalfd", "signalfd4", "sigprocmask", "sigreturn", "pause", "restart_syscall",
    // Clocks and timers (setting clocks needs CAP_SYS_TIME; adjtimex reads without it).
    "alarm", "clock_getres", "clock_getres_time64", "clock_gettime", "clock_gettime64",
    "clock_nanosleep", "clock_nanosleep_time64", "nanosleep", "gettimeofday", "time", "times",
    "getitimer", "setitimer", "timer_create", "timer_delete", "timer_getoverrun", "timer_gettime",
    "timer_gettime64", "timer_settime", "timer_settime64", "timerfd_create", "timerfd_gettime",
    "timerfd_gettime64", "timerfd_settime", "timerfd_settime64", "adjtimex", "clock_adjtime",
    "clock_adjtime64",
    // Waiting for events.
    "poll", "ppoll", "ppoll_time64", "select", "_newselect", "pselect6", "pselect6_time64",
    "epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_pwait", "epoll_pwait2",
    "epoll_wait", "epoll_wait_old", "eventfd", "eventfd2", "inotify_add_watch", "inotify_init",
    "inotify_init1", "inotify_rm_watch", "fanotify_mark", "futex", "futex_time64", "futex_waitv",
    // Asynchronous I/O (io_uring stays denied).
    "io_setup", "io_destroy", "io_submit", "io_cancel", "io_getevents", "io_pgetevents",
    "io_pgetevents_time64",
    // Sockets (socket(2) itself is handled below).
    "accept", "accept4", "bind", "connect", "listen", "getsockname", "getpeername", "getsockopt",
    "setsockopt", "socketpair", "shutdown", "send", "sendto", "sendmsg", "sendmmsg", "recv",
    "recvfrom", "recvmsg", "recvmmsg", "recvmmsg_time64", "socketcall",
    // System V and POSIX IPC.
    "ipc", "msgctl", "msgget", "msgrcv", "msgsnd", "semctl", "semget", "semop", "semtimedop",
    "semtimedop_time64", "shmat", "shmctl", "shmdt", "shmget", "mq_getsetattr", "mq_notify",
    "mq_open", "mq_timedreceive", "mq_timedreceive_time64", "mq_timedsend", "mq_timedsend_time64",
    "mq_unlink",
    // System information, randomness, self-sandboxing.
    "uname", "sysinfo", "getrandom", "seccomp", "landlock_add_rule", "landlock_create_ruleset",
    "landlock_restrict_self",
};
// clang-format on

#if defined(__x86_64__)
constexpr std::string_view kArchitectures[] = {"SCMP_ARCH_X86_64", "SCMP_ARCH_X86",
                                               "SCMP_ARCH_X32"};
constexpr std::string_view kArchAllowed[] = {"arch_prctl", "modify_ldt"};
#elif defined(__aarch64__)
constexpr std::string_view kArchitectures[] = {"SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"};
constexpr std::string_view kArchAllowed[] = {"arm_fadvise64_64", "arm_sync_file_range",
                                             "sync_file_range2", "breakpoint",
                                             "cacheflush",       "set_tls"};
#else
// Other architectures: the runtime's native architecture only.
constexpr std::string_view kArchitectures[] = {""};
constexpr std::string_view kArchAllowed[] = {""};
#endif

json Names(std::initializer_list<std::string_view> names) {
  json out = json::array();
  for (std::string_view n : names) out.push_back(n);
  return out;
}

json Arg(unsigned index, uint64_t value, std::string_view op, uint64_t value_two = 0) {
  return json{{"index", index}, {"value", value}, {"valueTwo", value_two}, {"op", op}};
}

json Allow(std::initializer_list<std::string_view> names, json args) {
  return json{{"names", Names(names)}, {"action", "SCMP_ACT_ALLOW"}, {"args", std::move(args)}};
}

// Rules for mknod(path, mode, dev) and mknodat(dirfd, path, mode, dev): the file type in `mode`
// must be one that is not a device, or the device must be a harmless one.
void AddMknodRules(json& syscalls) {
  struct Call {
    std::string_view name;
    unsigned mode_index;
  };
  constexpr uint64_t kNonDeviceTypes[] = {0, S_IFREG, S_IFIFO, S_IFSOCK};
  const uint64_t harmless_char_devices[] = {
      makedev(0, 0),  // overlay whiteout
      makedev(1, 3), makedev(1, 5), makedev(1, 7), makedev(1, 8), makedev(1, 9),  // mem
      makedev(5, 0), makedev(5, 2),                                               // tty, ptmx
  };
  for (const Call& call : {Call{"mknod", 1}, Call{"mknodat", 2}}) {
    for (uint64_t type : kNonDeviceTypes) {
      syscalls.push_back(Allow(
          {call.name}, json::array({Arg(call.mode_index, S_IFMT, "SCMP_CMP_MASKED_EQ", type)})));
    }
    // The kernel takes dev as an unsigned int; comparing all 64 bits errs on the side of
    // refusing.
    for (uint64_t dev : harmless_char_devices) {
      syscalls.push_back(Allow(
          {call.name}, json::array({Arg(call.mode_index, S_IFMT, "SCMP_CMP_MASKED_EQ", S_IFCHR),
                                    Arg(call.mode_index + 1, dev, "SCMP_CMP_EQ")})));
    }
  }
}

}  // namespace

json SandboxSeccompProfile(bool restrict_mknod) {
  json syscalls = json::array();

  json allowed = json::array();
  for (std::string_view name : kAllowed) allowed.push_back(name);
  if (!restrict_mknod) {
    allowed.push_back("mknod");
    allowed.push_back("mknodat");
  }
  for (std::string_view name : kArchAllowed) {
    if (!name.empty()) allowed.push_back(name);
  }
  syscalls.push_back(json{{"names", std::move(allowed)}, {"action", "SCMP_ACT_ALLOW"}});

  // clone(2) only without namespace flags (they need CAP_SYS_ADMIN anyway); clone3(2) hides its
  // flags in memory, so it reports ENOSYS and libc falls back to clone(2).
  constexpr uint64_t kNamespaceFlags = CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC |
                                       CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET;
  syscalls.push_back(
      Allow({"clone"}, json::array({Arg(0, kNamespaceFlags, "SCMP_CMP_MASKED_EQ", 0)})));
  syscalls.push_back(
      json{{"names", Names({"clone3"})}, {"action", "SCMP_ACT_ERRNO"}, {"errnoRet", ENOSYS}});

  // Any socket family but AF_VSOCK (host communication channels).
  syscalls.push_back(Allow({"socket"}, json::array({Arg(0, AF_VSOCK, "SCMP_CMP_NE")})));

  // personality(2): Linux, 32-bit Linux, UNAME26 variants and the query value only.
  for (uint64_t persona : {0x0ULL, 0x8ULL, 0x20000ULL, 0x20008ULL, 0xffffffffULL}) {
    syscalls.push_back(Allow({"personality"}, json::array({Arg(0, persona, "SCMP_CMP_EQ")})));
  }

  if (restrict_mknod) AddMknodRules(syscalls);

  json arches = json::array();
  for (std::string_view arch : kArchitectures) {
    if (!arch.empty()) arches.push_back(arch);
  }
  return json{{"defaultAction", "SCMP_ACT_ERRNO"},
              {"defaultErrnoRet", EPERM},
              {"architectures", std::move(arches)},
              {"syscalls", std::move(syscalls)}};
}

}  // namespace kiln::executor::internal
