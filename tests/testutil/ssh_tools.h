#pragma once
// Helpers for tests that use the real OpenSSH tools (package openssh-client): running shell
// commands, throwaway keys, and a test-owned ssh-agent killed by pid. Header-only.

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace kiln::testing {

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

// Runs `command` with /bin/sh, stdin on /dev/null unless it redirects its own.
inline CommandResult RunShell(const std::string& command) {
  CommandResult r;
  FILE* p = ::popen(("{ " + command + "\n} </dev/null 2>&1").c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) r.output.append(buf, n);
  int status = ::pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

inline std::string ShellQuote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

inline bool HaveSshTools() {
  return RunShell("command -v ssh-agent && command -v ssh-add && command -v ssh-keygen")
             .exit_code == 0;
}

// Generates an ed25519 key at `path` (and path.pub); returns its SHA256 fingerprint
// ("SHA256:…"), or "" on failure.
inline std::string GenerateKey(const std::string& path, const std::string& passphrase = "") {
  if (RunShell("ssh-keygen -q -t ed25519 -C kiln-test -N " + ShellQuote(passphrase) + " -f " +
               ShellQuote(path))
          .exit_code != 0) {
    return "";
  }
  CommandResult r = RunShell("ssh-keygen -l -E sha256 -f " + ShellQuote(path + ".pub"));
  std::istringstream in(r.output);
  std::string bits, fingerprint;
  in >> bits >> fingerprint;
  return r.exit_code == 0 ? fingerprint : "";
}

// An ssh-agent of the test's own (`ssh-agent -D`, a child of this process), listening on
// `socket`; killed and reaped by pid on destruction.
class TestSshAgent {
 public:
  explicit TestSshAgent(std::string socket) : socket_(std::move(socket)) {
    std::vector<std::string> argv = {"ssh-agent", "-D", "-a", socket_};
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    int err = ::posix_spawnp(&pid_, "ssh-agent", &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (err != 0) {
      pid_ = -1;
      return;
    }
    for (int i = 0; i < 500 && Add("-l").exit_code > 1; ++i) {  // 1: up, but no identities
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  ~TestSshAgent() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    int status;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
  }
  TestSshAgent(const TestSshAgent&) = delete;
  TestSshAgent& operator=(const TestSshAgent&) = delete;

  bool ok() const { return pid_ > 0 && Add("-l").exit_code <= 1; }
  const std::string& socket() const { return socket_; }
  // Runs ssh-add with this agent (e.g. Add("-l"), Add(ShellQuote(key))).
  CommandResult Add(const std::string& args) const {
    return RunShell("SSH_AUTH_SOCK=" + ShellQuote(socket_) + " ssh-add " + args);
  }

 private:
  std::string socket_;
  pid_t pid_ = -1;
};

}  // namespace kiln::testing
