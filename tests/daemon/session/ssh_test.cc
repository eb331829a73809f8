// SshAgentProxy end to end with the real OpenSSH tools: a real ssh-agent holding a throwaway
// key, the client's SSHService (client/ssh.h) serving it through a real session tunnel, and
// ssh-add / ssh-keygen run as subprocesses against the daemon-side proxy socket.

#include "daemon/session/ssh.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "client/ssh.h"
#include "proto/moby/sshforward/v1/ssh.grpc.pb.h"
#include "tests/testutil/session_pair.h"
#include "tests/testutil/ssh_tools.h"
#include "tests/testutil/status_matchers.h"

namespace kiln::session {
namespace {

namespace fs = std::filesystem;
using ::kiln::testing::CommandResult;
using ::kiln::testing::IsOk;
using ::kiln::testing::RunShell;
using ::kiln::testing::SessionPair;
using ::kiln::testing::ShellQuote;
using ::kiln::testing::StatusIs;
using ::kiln::testing::TestSshAgent;
using ::testing::HasSubstr;
using ::testing::Not;
using namespace std::chrono_literals;

constexpr char kSshService[] = "moby.sshforward.v1.SSH";

// Threads of ours still alive whose name starts with `prefix`.
int ThreadsNamed(const std::string& prefix) {
  int n = 0;
  for (const auto& task : fs::directory_iterator("/proc/self/task")) {
    std::ifstream in(task.path() / "comm");
    std::string name;
    std::getline(in, name);
    if (name.rfind(prefix, 0) == 0) ++n;
  }
  return n;
}

// Waits up to 5 s for no thread named `prefix` to remain.
bool NoThreadsNamed(const std::string& prefix) {
  for (int i = 0; i < 500; ++i) {
    if (ThreadsNamed(prefix) == 0) return true;
    std::this_thread::sleep_for(10ms);
  }
  return false;
}

CommandResult SshAdd(const std::string& socket, const std::string& args) {
  return RunShell("SSH_AUTH_SOCK=" + ShellQuote(socket) + " ssh-add " + args);
}

class SshTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!::kiln::testing::HaveSshTools()) {
      GTEST_SKIP() << "ssh-agent, ssh-add or ssh-keygen missing (install openssh-client)";
    }
    // Short: unix socket paths are limited to 107 bytes.
    dir_ = fs::path(::testing::TempDir()) /
           ("kiln_ssh_" + std::to_string(std::random_device{}() % 1000000));
    fs::create_directories(dir_ / "proxy");
    key_ = (dir_ / "key").string();
    fingerprint_ = ::kiln::testing::GenerateKey(key_);
    ASSERT_THAT(fingerprint_, HasSubstr("SHA256:"));
    agent_ = std::make_unique<TestSshAgent>((dir_ / "agent.sock").string());
    ASSERT_TRUE(agent_->ok());
    CommandResult add = agent_->Add(ShellQuote(key_));
    ASSERT_EQ(add.exit_code, 0) << add.output;
  }
  void TearDown() override {
    proxy_.reset();
    pair_.reset();
    service_.reset();
    agent_.reset();
    fs::remove_all(dir_);
  }

  // A session whose client forwards `specs` (no SSH service at all when `serve` is false).
  void Connect(const std::vector<std::string>& specs, bool serve = true) {
    std::vector<std::pair<grpc::Service*, std::string>> services;
    if (serve) {
      auto parsed = client::ParseSshSpecs(specs);
      ASSERT_THAT(parsed, IsOk());
      auto service = client::SSHService::Create(*parsed);
      ASSERT_THAT(service, IsOk());
      service_ = std::move(*service);
      services.push_back({service_.get(), kSshService});
    }
    auto pair = SessionPair::Start(dir_.string(), std::move(services));
    ASSERT_THAT(pair, IsOk());
    pair_ = std::move(*pair);
  }

  absl::StatusOr<std::unique_ptr<SshAgentProxy>> StartProxy(const std::string& id = "") {
    SshAgentProxy::Options opts;
    opts.id = id;
    opts.dir = (dir_ / "proxy").string();
    return SshAgentProxy::Start(Context(), pair_->session(), opts);
  }

  fs::path dir_;
  std::string key_, fingerprint_;
  std::unique_ptr<TestSshAgent> agent_;
  std::unique_ptr<client::SSHService> service_;
  std::unique_ptr<SessionPair> pair_;
  std::unique_ptr<SshAgentProxy> proxy_;
};

TEST_F(SshTest, ProxyListsTheClientsKeys) {
  Connect({"default=" + agent_->socket()});
  SshAgentProxy::Options opts;
  opts.dir = (dir_ / "proxy").string();
  opts.uid = ::getuid();
  opts.gid = ::getgid();
  opts.mode = 0660;
  auto proxy = SshAgentProxy::Start(Context(), pair_->session(), opts);
  ASSERT_THAT(proxy, IsOk());
  proxy_ = std::move(*proxy);
  EXPECT_EQ(fs::path(proxy_->socket_path()).parent_path(), dir_ / "proxy");
  struct stat st;
  ASSERT_EQ(::stat(proxy_->socket_path().c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0660u);
  EXPECT_EQ(st.st_uid, ::getuid());

  CommandResult list = SshAdd(proxy_->socket_path(), "-l");
  EXPECT_EQ(list.exit_code, 0) << list.output;
  EXPECT_THAT(list.output, HasSubstr(fingerprint_));
}

TEST_F(SshTest, ProxySignsWithTheClientsKey) {
  Connect({"default=" + agent_->socket()});
  auto proxy = StartProxy();
  ASSERT_THAT(proxy, IsOk());
  proxy_ = std::move(*proxy);
  // Only the public key here: the signature can only come from the forwarded agent.
  fs::copy_file(key_ + ".pub", dir_ / "only.pub");
  std::ofstream(dir_ / "data") << "signed through the session\n";
  const std::string data = ShellQuote((dir_ / "data").string());
  const std::string pub = ShellQuote((dir_ / "only.pub").string());
  CommandResult sign = RunShell("SSH_AUTH_SOCK=" + ShellQuote(proxy_->socket_path()) +
                                " ssh-keygen -Y sign -n kiln -f " + pub + " " + data);
  ASSERT_EQ(sign.exit_code, 0) << sign.output;
  CommandResult check = RunShell("ssh-keygen -Y check-novalidate -n kiln -f " + pub + " -s " +
                                 data + ".sig < " + data);
  EXPECT_EQ(check.exit_code, 0) << check.output;
}

TEST_F(SshTest, DefaultForwardsSshAuthSock) {
  const char* old = std::getenv("SSH_AUTH_SOCK");
  std::string saved = old != nullptr ? old : "";
  ::setenv("SSH_AUTH_SOCK", agent_->socket().c_str(), 1);
  Connect({"default"});
  if (old != nullptr) {
    ::setenv("SSH_AUTH_SOCK", saved.c_str(), 1);
  } else {
    ::unsetenv("SSH_AUTH_SOCK");
  }
  auto proxy = StartProxy("default");
  ASSERT_THAT(proxy, IsOk());
  proxy_ = std::move(*proxy);
  CommandResult list = SshAdd(proxy_->socket_path(), "-l");
  EXPECT_EQ(list.exit_code, 0) << list.output;
  EXPECT_THAT(list.output, HasSubstr(fingerprint_));
}

TEST_F(SshTest, KeyFileIsServedByAPrivateAgentThatDiesWithTheService) {
  Connect({"default=" + key_});
  std::vector<pid_t> pids = service_->private_agent_pids();
  ASSERT_EQ(pids.size(), 1u);
  const std::string private_socket = service_->agent_socket("default");
  ASSERT_TRUE(fs::exists(private_socket));
  EXPECT_NE(private_socket, agent_->socket());

  auto proxy = StartProxy();
  ASSERT_THAT(proxy, IsOk());
  proxy_ = std::move(*proxy);
  CommandResult list = SshAdd(proxy_->socket_path(), "-l");
  EXPECT_EQ(list.exit_code, 0) << list.output;
  EXPECT_THAT(list.output, HasSubstr(fingerprint_));

  proxy_.reset();
  pair_.reset();
  service_.reset();
  EXPECT_EQ(::kill(pids[0], 0), -1);
  EXPECT_EQ(errno, ESRCH);
  EXPECT_FALSE(fs::exists(private_socket));
  EXPECT_FALSE(fs::exists(fs::path(private_socket).parent_path()));
}

TEST_F(SshTest, ForwardedAgentIsReadOnly) {
  Connect({"default=" + agent_->socket()});
  auto proxy = StartProxy();
  ASSERT_THAT(proxy, IsOk());
  proxy_ = std::move(*proxy);
  const std::string other = (dir_ / "other").string();
  ASSERT_THAT(::kiln::testing::GenerateKey(other), HasSubstr("SHA256:"));

  CommandResult remove_all = SshAdd(proxy_->socket_path(), "-D");
  EXPECT_NE(remove_all.exit_code, 0) << remove_all.output;
  CommandResult remove = SshAdd(proxy_->socket_path(), "-d " + ShellQuote(key_ + ".pub"));
  EXPECT_NE(remove.exit_code, 0) << remove.output;
  CommandResult add = SshAdd(proxy_->socket_path(), ShellQuote(other));
  EXPECT_NE(add.exit_code, 0) << add.output;

  // The connection survives refused requests, and the agent is untouched.
  CommandResult list = SshAdd(proxy_->socket_path(), "-l");
  EXPECT_EQ(list.exit_code, 0) << list.output;
  EXPECT_THAT(list.output, HasSubstr(fingerprint_));
  CommandResult direct = agent_->Add("-l");
  EXPECT_THAT(direct.output, HasSubstr(fingerprint_));
  EXPECT_EQ(std::count(direct.output.begin(), direct.output.end(), '\n'), 1);
}

TEST_F(SshTest, RawModeForwardsEveryRequest) {
  Connect({"default=" + agent_->socket() + ",raw=true"});
  auto proxy = StartProxy();
  ASSERT_THAT(proxy, IsOk());
  proxy_ = std::move(*proxy);
  CommandResult remove_all = SshAdd(proxy_->socket_path(), "-D");
  EXPECT_EQ(remove_all.exit_code, 0) << remove_all.output;
  CommandResult direct = agent_->Add("-l");
  EXPECT_EQ(direct.exit_code, 1) << direct.output;  // "The agent has no identities."
}

TEST_F(SshTest, ProxyForwardsTheNamedAgent) {
  const std::string other = (dir_ / "other").string();
  const std::string other_fingerprint = ::kiln::testing::GenerateKey(other);
  ASSERT_THAT(other_fingerprint, HasSubstr("SHA256:"));
  Connect({"default=" + agent_->socket(), "deploy=" + other});
  auto proxy = StartProxy("deploy");
  ASSERT_THAT(proxy, IsOk());
  proxy_ = std::move(*proxy);
  CommandResult list = SshAdd(proxy_->socket_path(), "-l");
  EXPECT_EQ(list.exit_code, 0) << list.output;
  EXPECT_THAT(list.output, HasSubstr(other_fingerprint));
  EXPECT_THAT(list.output, Not(HasSubstr(fingerprint_)));
}

TEST_F(SshTest, ForwardAgentNamesTheAgentInMetadata) {
  Connect({"default=" + agent_->socket()});
  auto stub = moby::sshforward::v1::SSH::NewStub(pair_->session()->channel());
  grpc::ClientContext call;
  call.AddMetadata(kSshIdMetadataKey, "nope");
  auto stream = stub->ForwardAgent(&call);
  stream->WritesDone();
  moby::sshforward::v1::BytesMessage msg;
  EXPECT_FALSE(stream->Read(&msg));
  grpc::Status st = stream->Finish();
  EXPECT_EQ(st.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(st.error_message(), HasSubstr("\"nope\""));
}

TEST_F(SshTest, UnknownIdErrorsClearly) {
  Connect({"default=" + agent_->socket()});
  EXPECT_THAT(StartProxy("deploy"),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("no SSH key \"deploy\" forwarded from the client")));
  EXPECT_THAT(CheckSshAgent(Context(), *pair_->session(), "deploy"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("\"deploy\"")));
  EXPECT_THAT(CheckSshAgent(Context(), *pair_->session(), ""), IsOk());
  EXPECT_TRUE(fs::is_empty(dir_ / "proxy"));
}

TEST_F(SshTest, ClientWithoutSshErrorsClearly) {
  Connect({}, /*serve=*/false);
  EXPECT_THAT(StartProxy(),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("no SSH key \"default\" forwarded from the client")));
}

TEST_F(SshTest, ManyConnectionsAtOnce) {
  Connect({"default=" + agent_->socket()});
  auto proxy = StartProxy();
  ASSERT_THAT(proxy, IsOk());
  proxy_ = std::move(*proxy);
  std::vector<CommandResult> results(8);
  std::vector<std::thread> threads;
  for (auto& r : results) {
    threads.emplace_back([&r, this] { r = SshAdd(proxy_->socket_path(), "-l"); });
  }
  for (auto& t : threads) t.join();
  for (const auto& r : results) {
    EXPECT_EQ(r.exit_code, 0) << r.output;
    EXPECT_THAT(r.output, HasSubstr(fingerprint_));
  }
}

TEST_F(SshTest, StopEndsConnectionsRemovesTheSocketAndLeavesNoThreads) {
  Connect({"default=" + agent_->socket()});
  auto proxy = StartProxy();
  ASSERT_THAT(proxy, IsOk());
  proxy_ = std::move(*proxy);
  ASSERT_EQ(SshAdd(proxy_->socket_path(), "-l").exit_code, 0);
  for (int i = 0; i < 500 && ThreadsNamed("kiln-ssh-proxy") > 1; ++i) {
    std::this_thread::sleep_for(10ms);  // that connection's pumps are finishing
  }
  ASSERT_EQ(ThreadsNamed("kiln-ssh-proxy"), 1);  // the acceptor

  // An idle connection the container never closes.
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  proxy_->socket_path().copy(addr.sun_path, sizeof(addr.sun_path) - 1);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  // Accepted once its two pump threads run beside the acceptor.
  for (int i = 0; i < 500 && ThreadsNamed("kiln-ssh-proxy") < 3; ++i) {
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_EQ(ThreadsNamed("kiln-ssh-proxy"), 3);

  const std::string path = proxy_->socket_path();
  proxy_->Stop();
  EXPECT_FALSE(fs::exists(path));
  EXPECT_EQ(ThreadsNamed("kiln-ssh-proxy"), 0);
  pollfd p{fd, POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 5000), 1);
  char c;
  EXPECT_EQ(::read(fd, &c, 1), 0) << std::strerror(errno);  // EOF: the proxy closed it
  ::close(fd);
  proxy_->Stop();                               // idempotent
  EXPECT_TRUE(NoThreadsNamed("kiln-ssh-fwd"));  // the client's streams ended too

  // The destructor stops a running proxy the same way.
  auto again = StartProxy();
  ASSERT_THAT(again, IsOk());
  const std::string path2 = (*again)->socket_path();
  ASSERT_EQ(SshAdd(path2, "-l").exit_code, 0);
  again->reset();
  EXPECT_FALSE(fs::exists(path2));
  EXPECT_EQ(ThreadsNamed("kiln-ssh-proxy"), 0);
}

TEST_F(SshTest, ClosedSessionFailsConnectionsWithoutHanging) {
  Connect({"default=" + agent_->socket()});
  auto proxy = StartProxy();
  ASSERT_THAT(proxy, IsOk());
  proxy_ = std::move(*proxy);
  std::shared_ptr<Session> s = pair_->session();
  pair_->CloseClient();
  for (int i = 0; i < 200 && !s->closed(); ++i) std::this_thread::sleep_for(10ms);
  CommandResult list =
      RunShell("timeout 10 env SSH_AUTH_SOCK=" + ShellQuote(proxy_->socket_path()) + " ssh-add -l");
  EXPECT_NE(list.exit_code, 0);
  EXPECT_NE(list.exit_code, 124) << "ssh-add hung";
  proxy_->Stop();
  EXPECT_EQ(ThreadsNamed("kiln-ssh-proxy"), 0);
}

}  // namespace
}  // namespace kiln::session
