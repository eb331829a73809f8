#include "client/ssh.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "base/socket_io.h"
#include "base/status.h"

extern char** environ;

namespace kiln::client {
namespace {

namespace pb = moby::sshforward::v1;
using namespace std::chrono_literals;

constexpr size_t kChunk = 32 << 10;
constexpr size_t kMaxQueuedBytes = 1 << 20;
// OpenSSH's AGENT_MAX_LEN / MAX_AGENT_REPLY_LEN: no agent message is bigger.
constexpr uint32_t kMaxAgentMessage = 256 << 10;
// Agent protocol (draft-miller-ssh-agent): the requests a read-only agent lets through, and
// the reply to the others.
constexpr uint8_t kAgentFailure = 5;
constexpr uint8_t kRequestIdentities = 11;
constexpr uint8_t kSignRequest = 13;

absl::Status SpecError(std::string_view id, std::string_view msg) {
  return absl::InvalidArgumentError(absl::StrCat("--ssh ", AV(id), ": ", AV(msg)));
}

// Go's strconv.ParseBool, which buildctl uses for raw=.
std::optional<bool> ParseGoBool(std::string_view v) {
  static const std::set<std::string_view> kTrue = {"1", "t", "T", "TRUE", "true", "True"};
  static const std::set<std::string_view> kFalse = {"0", "f", "F", "FALSE", "false", "False"};
  if (kTrue.contains(v)) return true;
  if (kFalse.contains(v)) return false;
  return std::nullopt;
}

// Connects to the unix socket at `path`; the descriptor is blocking and close-on-exec.
absl::StatusOr<int> DialUnix(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat("socket path ", path, " is too long"));
  }
  path.copy(addr.sun_path, path.size());
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return ErrnoToStatus(errno, "socket");
  while (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    if (errno == EINTR) continue;
    absl::Status st = ErrnoToStatus(errno, absl::StrCat("connect to SSH agent ", path));
    ::close(fd);
    return st;
  }
  return fd;
}

// The environment of this process with `set` overriding.
std::vector<std::string> EnvWith(const std::map<std::string, std::string>& set) {
  std::vector<std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view kv(*e);
    size_t eq = kv.find('=');
    if (eq != std::string_view::npos && set.contains(std::string(kv.substr(0, eq)))) continue;
    env.emplace_back(kv);
  }
  for (const auto& [k, v] : set) env.push_back(absl::StrCat(k, "=", v));
  return env;
}

// Starts `argv` (found on $PATH) in its own session (so it has no terminal to prompt on), with
// stdin and stdout on /dev/null, stderr on `stderr_fd` (or /dev/null when -1) and no other
// descriptors of ours.
absl::StatusOr<pid_t> Spawn(const std::vector<std::string>& argv,
                            const std::vector<std::string>& env, int stderr_fd) {
  std::vector<char*> args, envp;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  for (const std::string& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  if (stderr_fd >= 0) {
    posix_spawn_file_actions_adddup2(&actions, stderr_fd, 2);
  } else {
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  }
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);
#endif
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  sigaddset(&defaults, SIGINT);
  sigaddset(&defaults, SIGTERM);
  sigaddset(&defaults, SIGHUP);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t pid = -1;
  int err = ::posix_spawnp(&pid, args[0], &actions, &attr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (err == ENOENT) {
    return absl::FailedPreconditionError(
        absl::StrCat(argv[0], " not found on $PATH (install openssh-client)"));
  }
  if (err != 0) return ErrnoToStatus(err, absl::StrCat("start ", argv[0]));
  return pid;
}

// Waits for `pid` to exit; returns its wait status.
int WaitExit(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}

std::string ReadAll(int fd, size_t limit) {
  std::string out;
  char buf[4096];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    if (out.size() < limit) out.append(buf, std::min(static_cast<size_t>(n), limit - out.size()));
  }
  return out;
}

uint32_t BigEndian32(std::string_view b) {
  return (uint32_t{static_cast<uint8_t>(b[0])} << 24) |
         (uint32_t{static_cast<uint8_t>(b[1])} << 16) |
         (uint32_t{static_cast<uint8_t>(b[2])} << 8) | uint32_t{static_cast<uint8_t>(b[3])};
}

std::string FailureMessage() {
  return std::string("\0\0\0\1", 4) + static_cast<char>(kAgentFailure);
}

// Reactor for a call that ends at once with `status`.
class Refusal final : public grpc::ServerBidiReactor<pb::BytesMessage, pb::BytesMessage> {
 public:
  explicit Refusal(grpc::Status status) { Finish(std::move(status)); }
  void OnDone() override { delete this; }
};

// One ForwardAgent stream. A worker thread owns the agent connection and drives the call:
// reactions only record what happened and wake it, so none of them blocks. The worker alone
// starts reads, writes and Finish, so nothing is started after Finish.
class ForwardReactor final : public grpc::ServerBidiReactor<pb::BytesMessage, pb::BytesMessage> {
 public:
  ForwardReactor(int agent_fd, int wake_fd, bool read_only)
      : fd_(agent_fd), wake_(wake_fd), read_only_(read_only) {
    worker_ = std::thread([this] { Run(); });
  }

  void OnReadDone(bool ok) override {
    std::lock_guard lock(mu_);
    if (ok) {
      inbox_.push_back(std::move(*in_.mutable_data()));
    } else {
      read_closed_ = true;
    }
    Wake();
  }
  void OnWriteDone(bool ok) override {
    std::lock_guard lock(mu_);
    writing_ = false;
    if (!ok) write_failed_ = true;
    Wake();
  }
  void OnCancel() override {
    std::lock_guard lock(mu_);
    cancelled_ = true;
    ::shutdown(fd_, SHUT_RDWR);  // unblocks a write to the agent
    Wake();
  }
  void OnDone() override {
    worker_.join();  // it returned right after Finish
    // gRPC runs OnDone after every other reaction; taking the lock also shows that ordering to
    // race detectors, which cannot see gRPC's own synchronization.
    { std::lock_guard lock(mu_); }
    ::close(fd_);
    ::close(wake_);
    delete this;
  }

 private:
  void Wake() {
    uint64_t one = 1;
    (void)!::write(wake_, &one, sizeof(one));
  }

  void Run();
  void Enqueue(std::string data) {
    out_bytes_ += data.size();
    outq_.emplace_back().set_data(std::move(data));
  }
  // Daemon → agent. Whole messages in read-only mode, so refused ones can be answered here.
  void ForwardRequests(std::string data);
  // Agent → daemon, keeping replies in request order.
  void ForwardReplies(std::string_view data);
  void Fail(grpc::Status st) {
    if (final_.ok()) final_ = std::move(st);
    ::shutdown(fd_, SHUT_RDWR);
    agent_eof_ = daemon_eof_ = true;
  }

  const int fd_;
  const int wake_;  // eventfd
  const bool read_only_;
  std::thread worker_;
  pb::BytesMessage in_;  // the read in flight

  std::mutex mu_;
  std::vector<std::string> inbox_;  // guarded by mu_
  bool read_closed_ = false;        // guarded by mu_
  bool writing_ = false;            // guarded by mu_
  bool write_failed_ = false;       // guarded by mu_
  bool cancelled_ = false;          // guarded by mu_

  // Used by the worker only.
  grpc::Status final_;
  std::string requests_, replies_;  // partial agent messages
  std::deque<bool> expected_;       // replies owed, oldest first: true = refused by us
  std::deque<pb::BytesMessage> outq_;
  size_t out_bytes_ = 0;
  bool agent_eof_ = false, daemon_eof_ = false;
};

void ForwardReactor::Run() {
  pthread_setname_np(pthread_self(), "kiln-ssh-fwd");  // tests look for leftovers by this name
  bool read_pending = true, write_pending = false;
  StartRead(&in_);
  std::string buf(kChunk, '\0');
  while (true) {
    std::vector<std::string> inbox;
    bool read_closed, writing, write_failed, cancelled;
    {
      std::lock_guard lock(mu_);
      inbox.swap(inbox_);
      read_closed = read_closed_;
      writing = writing_;
      write_failed = write_failed_;
      cancelled = cancelled_;
    }
    if (write_pending && !writing) {
      write_pending = false;
      out_bytes_ -= outq_.front().data().size();
      outq_.pop_front();
    }
    if (cancelled || write_failed) {
      Fail(grpc::Status(grpc::StatusCode::CANCELLED, "the daemon went away"));
      // Nothing more reaches the daemon; the message in flight stays until its write is done.
      while (outq_.size() > (write_pending ? 1u : 0u)) {
        out_bytes_ -= outq_.back().data().size();
        outq_.pop_back();
      }
    }
    if (!inbox.empty() || read_closed) read_pending = false;
    for (std::string& data : inbox) {
      if (!daemon_eof_) ForwardRequests(std::move(data));
    }
    if (read_closed && !daemon_eof_) {
      daemon_eof_ = true;
      ::shutdown(fd_, SHUT_WR);  // the agent answers what it has and closes
    }
    if (!read_pending && !read_closed && !daemon_eof_) {
      read_pending = true;
      StartRead(&in_);
    }
    if (!write_pending && !outq_.empty()) {
      {
        std::lock_guard lock(mu_);
        writing_ = true;
      }
      write_pending = true;
      StartWrite(&outq_.front());
    }
    if (agent_eof_ && outq_.empty() && !write_pending) {
      Finish(final_);
      return;
    }

    pollfd fds[2] = {{wake_, POLLIN, 0}, {fd_, POLLIN, 0}};
    bool want_agent = !agent_eof_ && out_bytes_ < kMaxQueuedBytes;
    if (::poll(fds, want_agent ? 2 : 1, -1) < 0 && errno != EINTR) {
      Fail(grpc::Status(grpc::StatusCode::INTERNAL, absl::StrCat("poll: ", std::strerror(errno))));
      continue;
    }
    if (fds[0].revents != 0) {
      uint64_t n;
      (void)!::read(wake_, &n, sizeof(n));
    }
    if (want_agent && fds[1].revents != 0) {
      ssize_t n = ::read(fd_, buf.data(), buf.size());
      if (n > 0) {
        ForwardReplies(std::string_view(buf.data(), static_cast<size_t>(n)));
      } else if (n == 0) {
        agent_eof_ = true;
      } else if (errno != EINTR && errno != EAGAIN) {
        agent_eof_ = true;
        if (final_.ok()) {
          final_ = grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                absl::StrCat("read from the SSH agent: ", std::strerror(errno)));
        }
      }
    }
  }
}

void ForwardReactor::ForwardRequests(std::string data) {
  if (!read_only_) {
    if (!SendAll(fd_, data)) {
      Fail(grpc::Status(grpc::StatusCode::UNAVAILABLE, "the SSH agent closed the connection"));
    }
    return;
  }
  requests_ += data;
  size_t off = 0;
  while (requests_.size() - off >= 4) {
    uint32_t len = BigEndian32(std::string_view(requests_).substr(off));
    if (len > kMaxAgentMessage) {
      Fail(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("SSH agent request of ", len, " bytes is too big")));
      return;
    }
    if (requests_.size() - off - 4 < len) break;
    std::string_view msg = std::string_view(requests_).substr(off, 4 + len);
    off += 4 + len;
    uint8_t type = len > 0 ? static_cast<uint8_t>(msg[4]) : 0;
    if (type == kRequestIdentities || type == kSignRequest) {
      if (!SendAll(fd_, msg)) {
        Fail(grpc::Status(grpc::StatusCode::UNAVAILABLE, "the SSH agent closed the connection"));
        return;
      }
      expected_.push_back(false);
    } else if (expected_.empty()) {
      Enqueue(FailureMessage());
    } else {
      expected_.push_back(true);  // answered after the replies the agent still owes
    }
  }
  requests_.erase(0, off);
}

void ForwardReactor::ForwardReplies(std::string_view data) {
  if (!read_only_) {
    Enqueue(std::string(data));
    return;
  }
  replies_.append(data.data(), data.size());
  size_t off = 0;
  while (replies_.size() - off >= 4) {
    uint32_t len = BigEndian32(std::string_view(replies_).substr(off));
    if (len > kMaxAgentMessage) {
      Fail(grpc::Status(grpc::StatusCode::INTERNAL,
                        absl::StrCat("SSH agent reply of ", len, " bytes is too big")));
      return;
    }
    if (replies_.size() - off - 4 < len) break;
    Enqueue(replies_.substr(off, 4 + len));
    off += 4 + len;
    if (!expected_.empty()) expected_.pop_front();
    while (!expected_.empty() && expected_.front()) {
      Enqueue(FailureMessage());
      expected_.pop_front();
    }
  }
  replies_.erase(0, off);
}

}  // namespace

// A private `ssh-agent -D` holding the keys of one --ssh spec; killed by pid on destruction.
class PrivateSshAgent {
 public:
  static absl::StatusOr<std::unique_ptr<PrivateSshAgent>> Start(
      const std::string& id, const std::vector<std::string>& keys);
  ~PrivateSshAgent() { Kill(); }

  const std::string& socket() const { return socket_; }
  pid_t pid() const { return pid_; }
  void Kill();

 private:
  std::string dir_;
  std::string socket_;
  pid_t pid_ = -1;
};

absl::StatusOr<std::unique_ptr<PrivateSshAgent>> PrivateSshAgent::Start(
    const std::string& id, const std::vector<std::string>& keys) {
  const char* tmp = std::getenv("TMPDIR");
  std::string tmpl =
      absl::StrCat(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp", "/kiln-ssh-XXXXXX");
  if (::mkdtemp(tmpl.data()) == nullptr) {
    return ErrnoToStatus(errno, absl::StrCat("--ssh ", id, ": create ", tmpl));
  }
  auto agent = std::make_unique<PrivateSshAgent>();
  agent->dir_ = tmpl;
  agent->socket_ = tmpl + "/agent.sock";
  const std::string log = tmpl + "/agent.log";

  int log_fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (log_fd < 0) return ErrnoToStatus(errno, absl::StrCat("--ssh ", id, ": create ", log));
  auto pid = Spawn({"ssh-agent", "-D", "-a", agent->socket_}, EnvWith({}), log_fd);
  ::close(log_fd);
  if (!pid.ok()) return Annotate(pid.status(), absl::StrCat("--ssh ", id));
  agent->pid_ = *pid;

  // Ready once the socket accepts connections.
  auto give_up = std::chrono::steady_clock::now() + 10s;
  while (true) {
    int status;
    if (::waitpid(agent->pid_, &status, WNOHANG) == agent->pid_) {
      agent->pid_ = -1;
      std::ifstream in(log);
      std::stringstream text;
      text << in.rdbuf();
      return absl::FailedPreconditionError(absl::StrCat(
          "--ssh ", id, ": ssh-agent exited at start: ", absl::StripAsciiWhitespace(text.str())));
    }
    if (auto fd = DialUnix(agent->socket_); fd.ok()) {
      ::close(*fd);
      break;
    }
    if (std::chrono::steady_clock::now() > give_up) {
      return absl::DeadlineExceededError(
          absl::StrCat("--ssh ", id, ": ssh-agent did not open ", agent->socket_));
    }
    std::this_thread::sleep_for(10ms);
  }

  // ssh-add in its own session with stdin on /dev/null: a key with a passphrase fails instead
  // of prompting in the middle of the build's progress output.
  int err_pipe[2];
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) return ErrnoToStatus(errno, "pipe");
  std::vector<std::string> argv = {"ssh-add", "-q"};
  argv.insert(argv.end(), keys.begin(), keys.end());
  auto add =
      Spawn(argv, EnvWith({{"SSH_AUTH_SOCK", agent->socket_}, {"SSH_ASKPASS_REQUIRE", "never"}}),
            err_pipe[1]);
  ::close(err_pipe[1]);
  if (!add.ok()) {
    ::close(err_pipe[0]);
    return Annotate(add.status(), absl::StrCat("--ssh ", id));
  }
  std::string errors = ReadAll(err_pipe[0], 4096);
  ::close(err_pipe[0]);
  int status = WaitExit(*add);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("--ssh ", id, ": ssh-add could not load ", absl::StrJoin(keys, ", "), ": ",
                     absl::StripAsciiWhitespace(errors),
                     " (a key with a passphrase must be added to your ssh-agent; then pass --ssh ",
                     id, "=$SSH_AUTH_SOCK)"));
  }
  return agent;
}

void PrivateSshAgent::Kill() {
  if (pid_ > 0) {
    ::kill(pid_, SIGTERM);  // ssh-agent removes its socket on SIGTERM
    auto give_up = std::chrono::steady_clock::now() + 2s;
    int status;
    while (true) {
      pid_t r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_ || (r < 0 && errno != EINTR)) break;
      if (std::chrono::steady_clock::now() > give_up) {
        ::kill(pid_, SIGKILL);
        WaitExit(pid_);
        break;
      }
      std::this_thread::sleep_for(5ms);
    }
    pid_ = -1;
  }
  if (!dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
    dir_.clear();
  }
}

absl::StatusOr<std::vector<SshSpec>> ParseSshSpecs(const std::vector<std::string>& specs) {
  std::vector<SshSpec> out;
  std::set<std::string> seen;
  for (const std::string& spec : specs) {
    if (spec.empty()) continue;
    SshSpec s;
    size_t eq = spec.find('=');
    std::string id = spec.substr(0, eq);
    if (!id.empty()) s.id = id;
    if (eq != std::string::npos) {
      for (absl::string_view part : absl::StrSplit(spec.substr(eq + 1), ',')) {
        std::string_view p = SV(part);
        if (p.substr(0, 4) == "raw=") {
          std::optional<bool> raw = ParseGoBool(p.substr(4));
          if (!raw) {
            return absl::InvalidArgumentError(
                absl::StrCat("--ssh ", spec, ": invalid value for raw: \"", AV(p.substr(4)),
                             "\" (want true or false)"));
          }
          s.raw = *raw;
        } else {
          s.paths.emplace_back(p);
        }
      }
    }
    if (s.raw && s.paths.size() != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("--ssh ", spec, ": raw mode needs exactly one agent socket path"));
    }
    if (!seen.insert(s.id).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("--ssh ", spec, ": SSH id \"", s.id, "\" is given more than once"));
    }
    out.push_back(std::move(s));
  }
  return out;
}

absl::StatusOr<std::unique_ptr<SSHService>> SSHService::Create(const std::vector<SshSpec>& specs) {
  std::unique_ptr<SSHService> service(new SSHService());
  for (const SshSpec& spec : specs) {
    const std::string id = spec.id.empty() ? kDefaultSshId : spec.id;
    if (service->agents_.contains(id)) {
      return SpecError(id, "the SSH id is given more than once");
    }
    std::vector<std::string> paths = spec.paths;
    if (paths.empty() || (paths.size() == 1 && paths[0].empty())) {
      const char* sock = std::getenv("SSH_AUTH_SOCK");
      if (sock == nullptr || *sock == '\0') {
        return SpecError(id, absl::StrCat("SSH_AUTH_SOCK is not set: start an ssh-agent, or pass "
                                          "--ssh ",
                                          id, "=SOCKET or --ssh ", id, "=KEYFILE"));
      }
      paths = {sock};
    }
    std::string socket;
    std::vector<std::string> keys;
    for (const std::string& p : paths) {
      if (p.empty()) return SpecError(id, "empty path");
      struct stat st;
      if (::stat(p.c_str(), &st) != 0) {
        return SpecError(id, absl::StrCat(p, ": ", std::strerror(errno)));
      }
      std::error_code ec;
      std::string abs = std::filesystem::absolute(p, ec).string();
      if (ec) abs = p;
      if (S_ISSOCK(st.st_mode)) {
        if (!socket.empty()) return SpecError(id, "only one agent socket per SSH id");
        socket = abs;
      } else if (S_ISREG(st.st_mode)) {
        keys.push_back(abs);
      } else {
        return SpecError(id, absl::StrCat(p, " is neither an agent socket nor a private key file"));
      }
    }
    if (!socket.empty() && !keys.empty()) {
      return SpecError(id, "an agent socket and key files cannot be mixed");
    }
    if (spec.raw && socket.empty()) return SpecError(id, "raw mode needs an agent socket");
    if (!keys.empty()) {
      KILN_ASSIGN_OR_RETURN(auto agent, PrivateSshAgent::Start(id, keys));
      socket = agent->socket();
      std::lock_guard lock(service->mu_);
      service->private_.push_back(std::move(agent));
    }
    service->agents_[id] = Agent{socket, spec.raw};
  }
  return service;
}

SSHService::~SSHService() { Shutdown(); }

void SSHService::Shutdown() {
  std::vector<std::unique_ptr<PrivateSshAgent>> agents;
  {
    std::lock_guard lock(mu_);
    agents.swap(private_);
  }
  agents.clear();  // each destructor kills and reaps its agent
}

std::string SSHService::agent_socket(const std::string& id) const {
  auto it = agents_.find(id);
  return it == agents_.end() ? "" : it->second.socket;
}

std::vector<pid_t> SSHService::private_agent_pids() const {
  std::lock_guard lock(mu_);
  std::vector<pid_t> pids;
  for (const auto& a : private_) pids.push_back(a->pid());
  return pids;
}

grpc::ServerUnaryReactor* SSHService::CheckAgent(grpc::CallbackServerContext* ctx,
                                                 const pb::CheckAgentRequest* req,
                                                 pb::CheckAgentResponse*) {
  const std::string id = req->id().empty() ? kDefaultSshId : req->id();
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  if (!agents_.contains(id)) {
    reactor->Finish(grpc::Status(grpc::StatusCode::NOT_FOUND,
                                 absl::StrCat("no SSH agent \"", id, "\" (pass --ssh ", id, ")")));
  } else {
    reactor->Finish(grpc::Status::OK);
  }
  return reactor;
}

grpc::ServerBidiReactor<pb::BytesMessage, pb::BytesMessage>* SSHService::ForwardAgent(
    grpc::CallbackServerContext* ctx) {
  std::string id = kDefaultSshId;
  auto md = ctx->client_metadata().find(kSshIdMetadataKey);
  if (md != ctx->client_metadata().end() && !md->second.empty()) {
    id.assign(md->second.data(), md->second.size());
  }
  auto it = agents_.find(id);
  if (it == agents_.end()) {
    return new Refusal(
        grpc::Status(grpc::StatusCode::NOT_FOUND,
                     absl::StrCat("no SSH agent \"", id, "\" (pass --ssh ", id, ")")));
  }
  auto fd = DialUnix(it->second.socket);
  if (!fd.ok()) {
    return new Refusal(
        grpc::Status(grpc::StatusCode::UNAVAILABLE, std::string(fd.status().message())));
  }
  int wake = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake < 0) {
    ::close(*fd);
    return new Refusal(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "eventfd failed"));
  }
  return new ForwardReactor(*fd, wake, /*read_only=*/!it->second.raw);
}

}  // namespace kiln::client
