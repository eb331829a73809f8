#include "client/daemon.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "base/unique_fd.h"

namespace kiln::client {
namespace fs = std::filesystem;
namespace {

constexpr auto kStartTimeout = std::chrono::seconds(30);
constexpr auto kStopTimeout = std::chrono::seconds(30);
constexpr auto kPoll = std::chrono::milliseconds(50);

bool IsExecutable(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec) && ::access(p.c_str(), X_OK) == 0;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return std::move(ss).str();
}

// The last `n` lines of the daemon's log, for error messages.
std::string LogTail(const std::string& path, size_t n) {
  std::vector<std::string> lines = absl::StrSplit(ReadFile(path), '\n', absl::SkipEmpty());
  if (lines.size() > n) lines.erase(lines.begin(), lines.end() - static_cast<ptrdiff_t>(n));
  return absl::StrJoin(lines, "\n");
}

// A live (not zombie) process named kilnd.
bool IsKilnd(pid_t pid) {
  std::string stat = ReadFile(absl::StrCat("/proc/", pid, "/stat"));
  // "PID (COMM) STATE ..."; COMM may hold spaces and parentheses, so look from the last ')'.
  size_t close = stat.rfind(')');
  size_t open = stat.find('(');
  if (open == std::string::npos || close == std::string::npos || close + 2 >= stat.size()) {
    return false;
  }
  return stat.substr(open + 1, close - open - 1) == "kilnd" && stat[close + 2] != 'Z';
}

// Starts `kilnd` detached: a new session, stdin from /dev/null, stdout and stderr appended to
// `log`, no other descriptors inherited.
absl::StatusOr<pid_t> Spawn(const std::string& kilnd, const LocalDaemon& d) {
  UniqueFd devnull(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  UniqueFd log(::open(d.log().c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
  if (!log.valid()) return absl::ErrnoToStatus(errno, absl::StrCat("open ", d.log()));
  if (!devnull.valid()) return absl::ErrnoToStatus(errno, "open /dev/null");
  std::vector<std::string> args = {kilnd, "--root", d.root, "--addr", d.address()};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) return absl::ErrnoToStatus(errno, "fork");
  if (pid == 0) {
    ::setsid();
    ::dup2(devnull.get(), 0);
    ::dup2(log.get(), 1);
    ::dup2(log.get(), 2);
    ::closefrom(3);
    ::execv(argv[0], argv.data());
    std::_Exit(127);
  }
  return pid;
}

}  // namespace

bool SocketAccepts(const std::string& path) {
  sockaddr_un addr{};
  if (path.size() >= sizeof(addr.sun_path)) return false;
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return false;
  return ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
}

absl::StatusOr<std::string> FindKilnd() {
  std::vector<std::string> looked;
  if (const char* env = std::getenv("KILND"); env != nullptr && *env != '\0') {
    if (IsExecutable(env)) return std::string(env);
    return absl::NotFoundError(absl::StrCat("$KILND names ", env, ", which is not executable"));
  }
  std::error_code ec;
  fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    for (fs::path p : {self.parent_path() / "kilnd", self.parent_path() / "../daemon/kilnd",
                       self.parent_path() / "../sbin/kilnd"}) {
      p = p.lexically_normal();
      if (IsExecutable(p)) return p.string();
      looked.push_back(p.string());
    }
  }
  if (const char* path = std::getenv("PATH"); path != nullptr) {
    for (absl::string_view dir : absl::StrSplit(path, ':', absl::SkipEmpty())) {
      fs::path p = fs::path(std::string(dir)) / "kilnd";
      if (IsExecutable(p)) return p.string();
    }
    looked.push_back("$PATH");
  }
  return absl::NotFoundError(absl::StrCat(
      "kilnd not found (looked in ", absl::StrJoin(looked, ", "), "); set $KILND or pass --addr"));
}

pid_t LocalDaemonPid(const LocalDaemon& d) {
  int64_t pid = 0;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(ReadFile(d.lock())), &pid) || pid <= 0) {
    return 0;
  }
  return IsKilnd(static_cast<pid_t>(pid)) ? static_cast<pid_t>(pid) : 0;
}

absl::StatusOr<Started> StartLocalDaemon(const LocalDaemon& d) {
  if (SocketAccepts(d.socket)) return Started{LocalDaemonPid(d), false};
  if (::geteuid() != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("no kilnd at ", d.address(),
                     ", and kiln starts one only as root (it runs containers); "
                     "run `sudo kiln daemon start`, or pass --addr"));
  }
  auto kilnd = FindKilnd();
  if (!kilnd.ok()) return kilnd.status();
  std::error_code ec;
  for (const fs::path& dir : {fs::path(d.socket).parent_path(), fs::path(d.root)}) {
    fs::create_directories(dir, ec);
    if (ec) return absl::InternalError(absl::StrCat("create ", dir.string(), ": ", ec.message()));
  }
  ::chmod(d.root.c_str(), 0700);
  auto pid = Spawn(*kilnd, d);
  if (!pid.ok()) return pid.status();
  auto deadline = std::chrono::steady_clock::now() + kStartTimeout;
  bool exited = false;
  while (std::chrono::steady_clock::now() < deadline) {
    if (SocketAccepts(d.socket)) {
      // Another kiln may have started a daemon on the same root a moment before us: ours then
      // exits naming the lock, and the lock names theirs.
      pid_t running = LocalDaemonPid(d);
      return Started{running, running == *pid};
    }
    int status = 0;
    if (!exited && ::waitpid(*pid, &status, WNOHANG) == *pid) {
      exited = true;
      if (LocalDaemonPid(d) == 0) {
        return absl::UnavailableError(
            absl::StrCat(kilnd.value(), " exited (status ", status, ") before listening at ",
                         d.address(), "; the end of ", d.log(), ":\n", LogTail(d.log(), 5)));
      }
    }
    std::this_thread::sleep_for(kPoll);
  }
  return absl::DeadlineExceededError(absl::StrCat("kilnd did not listen at ", d.address(),
                                                  " within 30 s; the end of ", d.log(), ":\n",
                                                  LogTail(d.log(), 5)));
}

absl::Status StopLocalDaemon(const LocalDaemon& d) {
  pid_t pid = LocalDaemonPid(d);
  if (pid == 0) {
    return absl::NotFoundError(absl::StrCat("no kilnd is running on the state root ", d.root));
  }
  if (::kill(pid, SIGTERM) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("kill ", pid));
  }
  auto deadline = std::chrono::steady_clock::now() + kStopTimeout;
  while (std::chrono::steady_clock::now() < deadline) {
    ::waitpid(pid, nullptr, WNOHANG);  // reaps it when this process started it
    if (!IsKilnd(pid)) return absl::OkStatus();
    std::this_thread::sleep_for(kPoll);
  }
  return absl::DeadlineExceededError(
      absl::StrCat("kilnd (pid ", pid, ") did not stop within 30 s of SIGTERM"));
}

}  // namespace kiln::client
