// --ssh parsing (buildctl / buildx semantics) and SSHService's checks of what it forwards.
// Forwarding itself is tested end to end in tests/daemon/session/ssh_test.cc.

#include "client/ssh.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <random>

#include "tests/testutil/ssh_tools.h"
#include "tests/testutil/status_matchers.h"

namespace kiln::client {
namespace {

namespace fs = std::filesystem;
using ::kiln::testing::IsOk;
using ::kiln::testing::StatusIs;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

SshSpec Spec(std::string id, std::vector<std::string> paths, bool raw = false) {
  return SshSpec{std::move(id), std::move(paths), raw};
}

TEST(ParseSshSpecsTest, ReadsBuildctlAndBuildxForms) {
  auto specs =
      ParseSshSpecs({"default", "", "deploy=/k/id_ed25519,/k/id_rsa", "git=/run/a.sock,raw=true"});
  ASSERT_THAT(specs, IsOk());
  EXPECT_THAT(*specs,
              ElementsAre(Spec("default", {}), Spec("deploy", {"/k/id_ed25519", "/k/id_rsa"}),
                          Spec("git", {"/run/a.sock"}, true)));
  // An empty id is the default one; an empty path list item means $SSH_AUTH_SOCK later.
  specs = ParseSshSpecs({"=/run/agent", "x=", "y=/s,raw=false"});
  ASSERT_THAT(specs, IsOk());
  EXPECT_THAT(*specs, ElementsAre(Spec("default", {"/run/agent"}), Spec("x", {""}),
                                  Spec("y", {"/s"}, false)));
}

TEST(ParseSshSpecsTest, ErrorsNameTheSpec) {
  EXPECT_THAT(ParseSshSpecs({"a=/s,raw=maybe"}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("--ssh a=/s,raw=maybe"), HasSubstr("raw"))));
  EXPECT_THAT(ParseSshSpecs({"a=/s,/t,raw=1"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("exactly one")));
  EXPECT_THAT(ParseSshSpecs({"a,raw=true"}), IsOk());  // "a,raw=true" is an id, as in buildctl
  EXPECT_THAT(ParseSshSpecs({"default", "default=/x"}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("--ssh default=/x"), HasSubstr("more than once"))));
}

class SSHServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           ("kiln_sshsvc_" + std::to_string(std::random_device{}() % 1000000));
    fs::create_directories(dir_);
    const char* sock = std::getenv("SSH_AUTH_SOCK");
    if (sock != nullptr) saved_sock_ = sock;
  }
  void TearDown() override {
    if (saved_sock_) {
      ::setenv("SSH_AUTH_SOCK", saved_sock_->c_str(), 1);
    } else {
      ::unsetenv("SSH_AUTH_SOCK");
    }
    fs::remove_all(dir_);
  }
  // A listening unix socket at dir/name (not an agent, but a socket).
  std::string Listen(const std::string& name) {
    std::string path = (dir_ / name).string();
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    path.copy(addr.sun_path, sizeof(addr.sun_path) - 1);
    EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    EXPECT_EQ(::listen(fd, 1), 0);
    fds_.push_back(fd);
    return path;
  }
  ~SSHServiceTest() override {
    for (int fd : fds_) ::close(fd);
  }

  fs::path dir_;
  std::optional<std::string> saved_sock_;
  std::vector<int> fds_;
};

TEST_F(SSHServiceTest, DefaultNeedsSshAuthSock) {
  ::unsetenv("SSH_AUTH_SOCK");
  EXPECT_THAT(SSHService::Create({Spec("default", {})}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("--ssh default"), HasSubstr("SSH_AUTH_SOCK is not set"))));
  std::string sock = Listen("agent.sock");
  ::setenv("SSH_AUTH_SOCK", sock.c_str(), 1);
  auto service = SSHService::Create({Spec("default", {})});
  ASSERT_THAT(service, IsOk());
  EXPECT_EQ((*service)->agent_socket("default"), sock);
  EXPECT_EQ((*service)->agent_socket("other"), "");
  EXPECT_TRUE((*service)->private_agent_pids().empty());
}

TEST_F(SSHServiceTest, RejectsPathsThatAreNeitherSocketsNorKeys) {
  EXPECT_THAT(SSHService::Create({Spec("k", {(dir_ / "missing").string()})}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("--ssh k"), HasSubstr("missing"))));
  EXPECT_THAT(SSHService::Create({Spec("k", {dir_.string()})}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("neither")));
  std::string a = Listen("a.sock"), b = Listen("b.sock");
  EXPECT_THAT(SSHService::Create({Spec("k", {a, b})}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("only one agent socket")));
  std::ofstream(dir_ / "key") << "not really a key\n";
  EXPECT_THAT(SSHService::Create({Spec("k", {a, (dir_ / "key").string()})}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("cannot be mixed")));
  EXPECT_THAT(SSHService::Create({Spec("k", {(dir_ / "key").string()}, /*raw=*/true)}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("raw mode")));
}

TEST_F(SSHServiceTest, KeysThatSshAddRefusesFailWithoutPromptingOrLeavingAnAgent) {
  if (!::kiln::testing::HaveSshTools()) GTEST_SKIP() << "openssh-client missing";
  std::string locked = (dir_ / "locked").string();
  ASSERT_THAT(::kiln::testing::GenerateKey(locked, "correct horse"), HasSubstr("SHA256:"));
  EXPECT_THAT(
      SSHService::Create({Spec("default", {locked})}),
      StatusIs(absl::StatusCode::kFailedPrecondition,
               AllOf(HasSubstr("--ssh default"), HasSubstr("ssh-add"), HasSubstr("passphrase"))));
  std::ofstream(dir_ / "junk") << "not really a key\n";
  EXPECT_THAT(SSHService::Create({Spec("default", {(dir_ / "junk").string()})}),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("ssh-add")));
  // No private agent outlives a failed Create: this process has no children left at all.
  EXPECT_EQ(::waitpid(-1, nullptr, WNOHANG), -1);
  EXPECT_EQ(errno, ECHILD);
}

TEST_F(SSHServiceTest, KeyFilesGetOnePrivateAgentPerSpec) {
  if (!::kiln::testing::HaveSshTools()) GTEST_SKIP() << "openssh-client missing";
  std::string k1 = (dir_ / "k1").string(), k2 = (dir_ / "k2").string();
  std::string f1 = ::kiln::testing::GenerateKey(k1), f2 = ::kiln::testing::GenerateKey(k2);
  ASSERT_THAT(f1, HasSubstr("SHA256:"));
  ASSERT_THAT(f2, HasSubstr("SHA256:"));
  auto service = SSHService::Create({Spec("both", {k1, k2}), Spec("one", {k1})});
  ASSERT_THAT(service, IsOk());
  std::vector<pid_t> pids = (*service)->private_agent_pids();
  ASSERT_EQ(pids.size(), 2u);
  auto both = ::kiln::testing::RunShell(
      "SSH_AUTH_SOCK=" + ::kiln::testing::ShellQuote((*service)->agent_socket("both")) +
      " ssh-add -l");
  EXPECT_THAT(both.output, AllOf(HasSubstr(f1), HasSubstr(f2)));
  (*service)->Shutdown();
  EXPECT_TRUE((*service)->private_agent_pids().empty());
  for (pid_t pid : pids) EXPECT_EQ(::kill(pid, 0), -1) << "ssh-agent " << pid << " still runs";
}

}  // namespace
}  // namespace kiln::client
