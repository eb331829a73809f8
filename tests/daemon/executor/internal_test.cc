// The executor's pure parts: user resolution (Docker's GetExecUser semantics), environment
// merging, /etc/hosts, the OCI spec and the seccomp profile. No root needed.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <algorithm>
#include <cerrno>
#include <map>
#include <set>
#include <string>

#include "daemon/executor/internal/spec.h"
#include "daemon/executor/internal/user.h"
#include "tests/testutil/status_matchers.h"

namespace kiln::executor::internal {
namespace {

using ::kiln::testing::IsOk;
using ::kiln::testing::StatusIs;
using nlohmann::json;
using ::testing::_;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr char kPasswd[] =
    "root:x:0:0:root:/root:/bin/sh\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
    "\n"
    "kiln:x:1000:1000:Kiln:/home/kiln:/bin/sh\n"
    "dup:x:1000:7::/:/bin/sh\n";
constexpr char kGroup[] =
    "root:x:0:\n"
    "wheel:x:10:root,kiln\n"
    "kiln:x:1000:\n"
    "staff:x:50:nobody,kiln\n"
    "nogroup:x:65534:\n";

ExecUser Resolve(std::string_view spec) {
  absl::StatusOr<ExecUser> u = ResolveUser(spec, std::string(kPasswd), std::string(kGroup));
  EXPECT_THAT(u, IsOk()) << spec;
  return u.ok() ? *u : ExecUser{};
}

TEST(UserTest, EmptyIsRootWithoutGroups) {
  ExecUser u = Resolve("");
  EXPECT_EQ(u.uid, 0u);
  EXPECT_EQ(u.gid, 0u);
  EXPECT_THAT(u.additional_gids, IsEmpty());
}

TEST(UserTest, NameGivesPrimaryAndSupplementaryGroups) {
  ExecUser u = Resolve("kiln");
  EXPECT_EQ(u.uid, 1000u);
  EXPECT_EQ(u.gid, 1000u);
  EXPECT_THAT(u.additional_gids, ElementsAre(10u, 50u));
}

TEST(UserTest, NumericUidFindsTheFirstPasswdEntry) {
  ExecUser u = Resolve("1000");
  EXPECT_EQ(u.uid, 1000u);
  EXPECT_EQ(u.gid, 1000u);  // kiln, not dup
  EXPECT_THAT(u.additional_gids, ElementsAre(10u, 50u));
}

TEST(UserTest, NumericUidWithoutEntryGetsGroupZero) {
  ExecUser u = Resolve("4242");
  EXPECT_EQ(u.uid, 4242u);
  EXPECT_EQ(u.gid, 0u);
  EXPECT_THAT(u.additional_gids, IsEmpty());
}

TEST(UserTest, ExplicitGroupByNameOrIdDropsSupplementaryGroups) {
  ExecUser u = Resolve("kiln:staff");
  EXPECT_EQ(u.uid, 1000u);
  EXPECT_EQ(u.gid, 50u);
  EXPECT_THAT(u.additional_gids, IsEmpty());
  u = Resolve("1000:1234");
  EXPECT_EQ(u.uid, 1000u);
  EXPECT_EQ(u.gid, 1234u);
  u = Resolve("4242:wheel");
  EXPECT_EQ(u.uid, 4242u);
  EXPECT_EQ(u.gid, 10u);
}

TEST(UserTest, UnknownNamesUseDockersWording) {
  EXPECT_THAT(ResolveUser("ghost", std::string(kPasswd), std::string(kGroup)),
              StatusIs(absl::StatusCode::kNotFound,
                       "unable to find user ghost: no matching entries in passwd file"));
  EXPECT_THAT(ResolveUser("kiln:ghosts", std::string(kPasswd), std::string(kGroup)),
              StatusIs(absl::StatusCode::kNotFound,
                       "unable to find group ghosts: no matching entries in group file"));
  // No passwd file at all: names cannot resolve, numbers can.
  EXPECT_THAT(ResolveUser("kiln", std::nullopt, std::nullopt),
              StatusIs(absl::StatusCode::kNotFound,
                       "unable to find user kiln: no matching entries in passwd file"));
  absl::StatusOr<ExecUser> numeric = ResolveUser("7:8", std::nullopt, std::nullopt);
  ASSERT_THAT(numeric, IsOk());
  EXPECT_EQ(numeric->uid, 7u);
  EXPECT_EQ(numeric->gid, 8u);
}

TEST(UserTest, RejectsIdsOutOfRange) {
  EXPECT_THAT(ResolveUser("-1", std::string(kPasswd), std::nullopt),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("range")));
  EXPECT_THAT(ResolveUser("0:4294967296", std::string(kPasswd), std::string(kGroup)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("range")));
}

TEST(EnvTest, AddsDefaultPathAndLetsSecretsOverride) {
  EXPECT_THAT(
      MergeEnv({"A=1"}, {}),
      ElementsAre("A=1", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"));
  EXPECT_THAT(MergeEnv({"PATH=/x", "A=1", "B=2"}, {"A=secret", "C=3"}),
              ElementsAre("PATH=/x", "A=secret", "B=2", "C=3"));
  EXPECT_THAT(EnvNames({"A=1", "EMPTY=", "B=x=y"}), ElementsAre("A", "EMPTY", "B"));
}

TEST(HostsTest, LocalhostLinesThenExtraHosts) {
  EXPECT_EQ(HostsFile("buildkitsandbox", {{"db", "10.0.0.2"}, {"v6", "fd00::1"}}),
            "127.0.0.1\tlocalhost buildkitsandbox\n"
            "::1\tlocalhost ip6-localhost ip6-loopback\n"
            "10.0.0.2\tdb\n"
            "fd00::1\tv6\n");
}

TEST(ValidateTest, RejectsBadInput) {
  Meta m;
  EXPECT_THAT(ValidateMeta(m, {}), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("args")));
  m.args = {"true"};
  EXPECT_THAT(ValidateMeta(m, {}), IsOk());
  Meta bad_env = m;
  bad_env.env = {"NOVALUE"};
  EXPECT_THAT(ValidateMeta(bad_env, {}), StatusIs(absl::StatusCode::kInvalidArgument, _));
  Meta bad_secret = m;
  bad_secret.secret_env = {"=hunter2"};
  absl::Status s = ValidateMeta(bad_secret, {});
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument, _));
  EXPECT_THAT(std::string(s.message()), ::testing::Not(HasSubstr("hunter2")));
  Meta bad_ulimit = m;
  bad_ulimit.ulimits = {{"files", 1, 2}};
  EXPECT_THAT(ValidateMeta(bad_ulimit, {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("files")));
  bad_ulimit.ulimits = {{"nofile", 3, 2}};
  EXPECT_THAT(ValidateMeta(bad_ulimit, {}), StatusIs(absl::StatusCode::kInvalidArgument, _));
  Meta bad_host = m;
  bad_host.extra_hosts = {{"evil\n1.2.3.4 bank", "10.0.0.1"}};
  EXPECT_THAT(ValidateMeta(bad_host, {}), StatusIs(absl::StatusCode::kInvalidArgument, _));
  bad_host.extra_hosts = {{"db", "not-an-ip"}};
  EXPECT_THAT(ValidateMeta(bad_host, {}), StatusIs(absl::StatusCode::kInvalidArgument, _));
  EXPECT_THAT(ValidateMeta(m, {Mount{.destination = "relative", .source = "/x"}}),
              StatusIs(absl::StatusCode::kInvalidArgument, _));
}

class SpecTest : public ::testing::Test {
 protected:
  json Spec(const Meta& meta, std::vector<Mount> mounts = {}, bool restrict_devices = false) {
    SpecInput in;
    in.restrict_device_nodes = restrict_devices;
    in.root_path = "/state/run/rootfs";
    in.meta = &meta;
    in.user = ExecUser{1000, 1000, {10, 50}};
    in.mounts = std::move(mounts);
    in.hosts_path = "/state/run/hosts";
    in.resolv_conf_path = "/state/run/resolv.conf";
    absl::StatusOr<json> spec = GenerateSpec(in);
    EXPECT_THAT(spec, IsOk());
    return spec.ok() ? *spec : json();
  }
  static std::vector<std::string> Destinations(const json& spec) {
    std::vector<std::string> out;
    for (const json& m : spec["mounts"]) out.push_back(m["destination"]);
    return out;
  }
  static const json* FindMount(const json& spec, std::string_view dest) {
    for (const json& m : spec["mounts"]) {
      if (m["destination"] == dest) return &m;
    }
    return nullptr;
  }
};

TEST_F(SpecTest, SandboxProcess) {
  Meta meta;
  meta.args = {"/bin/sh", "-c", "true"};
  meta.env = {"A=1"};
  meta.secret_env = {"TOKEN=s3cret"};
  meta.cwd = "work/../src";
  meta.ulimits = {{"nofile", 1024, 2048}};
  const json spec = Spec(meta);
  const json& p = spec["process"];
  EXPECT_EQ(p["terminal"], false);
  EXPECT_EQ(p["cwd"], "/src");
  EXPECT_EQ(p["user"]["uid"], 1000);
  EXPECT_EQ(p["user"]["additionalGids"], json::array({10, 50}));
  EXPECT_EQ(p["env"],
            json::array({"A=1", "TOKEN=s3cret",
                         "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}));
  EXPECT_EQ(p["noNewPrivileges"], true);
  EXPECT_EQ(p["rlimits"], json::parse(R"([{"type":"RLIMIT_NOFILE","soft":1024,"hard":2048}])"));
  EXPECT_EQ(p["capabilities"]["bounding"].size(), 14u);
  EXPECT_EQ(p["capabilities"]["effective"], p["capabilities"]["bounding"]);
  EXPECT_FALSE(p["capabilities"].contains("ambient"));
  EXPECT_FALSE(p["capabilities"].contains("inheritable"));
  EXPECT_EQ(spec["hostname"], "buildkitsandbox");
  EXPECT_EQ(spec["root"]["path"], "/state/run/rootfs");
  EXPECT_EQ(spec["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
  EXPECT_THAT(spec["linux"]["maskedPaths"].get<std::vector<std::string>>(),
              ::testing::IsSupersetOf({"/proc/kcore", "/proc/keys", "/sys/firmware"}));
  EXPECT_THAT(spec["linux"]["readonlyPaths"].get<std::vector<std::string>>(),
              ::testing::IsSupersetOf({"/proc/sys", "/proc/sysrq-trigger"}));
  EXPECT_EQ((*FindMount(spec, "/sys"))["options"].back(), "ro");
}

TEST_F(SpecTest, NetworkNamespaceOnlyForNetNone) {
  Meta meta;
  meta.args = {"true"};
  auto types = [](const json& spec) {
    std::vector<std::string> out;
    for (const json& ns : spec["linux"]["namespaces"]) out.push_back(ns["type"]);
    return out;
  };
  EXPECT_THAT(types(Spec(meta)), ElementsAre("pid", "ipc", "uts", "mount"));
  meta.net = NetMode::kNone;
  EXPECT_THAT(types(Spec(meta)), ElementsAre("pid", "ipc", "uts", "mount", "network"));
}

TEST_F(SpecTest, InsecureHasEveryCapabilityAndNoConfinement) {
  Meta meta;
  meta.args = {"true"};
  meta.security = SecurityMode::kInsecure;
  const json spec = Spec(meta);
  const auto caps = spec["process"]["capabilities"]["bounding"].get<std::vector<std::string>>();
  EXPECT_THAT(caps, ::testing::Contains("CAP_SYS_ADMIN"));
  EXPECT_EQ(caps.size(), AllCapabilities().size());
  EXPECT_FALSE(spec["linux"].contains("seccomp"));
  EXPECT_FALSE(spec["linux"].contains("maskedPaths"));
  EXPECT_FALSE(spec["linux"].contains("readonlyPaths"));
  EXPECT_EQ(spec["process"]["noNewPrivileges"], false);
  EXPECT_EQ((*FindMount(spec, "/sys"))["options"].back(), "rw");
}

TEST_F(SpecTest, CallerMountsComeLastParentsFirstAndReplaceStandardOnes) {
  Meta meta;
  meta.args = {"true"};
  const json spec = Spec(meta, {{"/a/b", "bind", "/src/b", {"rbind", "ro"}},
                                {"/a", "tmpfs", "tmpfs", {"size=1m"}},
                                {"/etc/hosts", "bind", "/my/hosts", {"rbind", "ro", "dev"}}});
  EXPECT_THAT(Destinations(spec),
              ElementsAre("/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys",
                          "/etc/resolv.conf", "/a", "/a/b", "/etc/hosts"));
  EXPECT_EQ((*FindMount(spec, "/a/b"))["options"], json::array({"rbind", "ro"}));
  EXPECT_EQ((*FindMount(spec, "/etc/hosts"))["source"], "/my/hosts");
}

TEST_F(SpecTest, WithoutADeviceCgroupSandboxBindsAreNodev) {
  Meta meta;
  meta.args = {"true"};
  const std::vector<Mount> mounts = {{"/a", "bind", "/src/a", {"rbind", "ro"}},
                                     {"/b", "bind", "/src/b", {"rbind", "dev"}},
                                     {"/t", "tmpfs", "tmpfs", {}}};
  json spec = Spec(meta, mounts, /*restrict_devices=*/true);
  EXPECT_EQ((*FindMount(spec, "/a"))["options"], json::array({"rbind", "ro", "nodev"}));
  EXPECT_EQ((*FindMount(spec, "/b"))["options"], json::array({"rbind", "dev"}));
  EXPECT_EQ((*FindMount(spec, "/t"))["options"], json::array());
  meta.security = SecurityMode::kInsecure;
  spec = Spec(meta, mounts, /*restrict_devices=*/true);
  EXPECT_EQ((*FindMount(spec, "/a"))["options"], json::array({"rbind", "ro"}));
}

struct SeccompRules {
  std::vector<std::string> plain_allowed;                // unconditional SCMP_ACT_ALLOW names
  std::map<std::string, std::vector<json>> conditional;  // name → rules with args
};

SeccompRules Rules(const json& seccomp) {
  SeccompRules out;
  for (const json& rule : seccomp["syscalls"]) {
    for (const std::string& name : rule["names"].get<std::vector<std::string>>()) {
      if (rule.contains("args")) {
        out.conditional[name].push_back(rule);
      } else if (rule["action"] == "SCMP_ACT_ALLOW") {
        out.plain_allowed.push_back(name);
      }
    }
  }
  return out;
}

TEST_F(SpecTest, SeccompIsDockersAllowlistWithoutNamespacesOrVsock) {
  Meta meta;
  meta.args = {"true"};
  const json seccomp = Spec(meta)["linux"]["seccomp"];
  EXPECT_EQ(seccomp["defaultAction"], "SCMP_ACT_ERRNO");
  EXPECT_EQ(seccomp["defaultErrnoRet"], EPERM);
#if defined(__x86_64__)
  EXPECT_EQ(seccomp["architectures"],
            json::array({"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"}));
#endif
  const SeccompRules rules = Rules(seccomp);
  EXPECT_THAT(rules.plain_allowed, ::testing::IsSupersetOf({"read", "execve", "mknodat", "chroot",
                                                            "setuid", "ptrace", "clock_gettime"}));
  for (const char* denied :
       {"mount", "umount2", "unshare", "setns", "pivot_root", "bpf", "kexec_load", "init_module",
        "io_uring_setup", "socket", "clone", "keyctl", "add_key", "reboot", "swapon", "acct",
        "open_by_handle_at"}) {
    EXPECT_THAT(rules.plain_allowed, ::testing::Not(::testing::Contains(denied))) << denied;
  }
  // clone only without namespace flags; socket for every family but AF_VSOCK.
  ASSERT_EQ(rules.conditional.at("clone").size(), 1u);
  EXPECT_EQ(rules.conditional.at("clone")[0]["args"][0]["op"], "SCMP_CMP_MASKED_EQ");
  EXPECT_EQ(rules.conditional.at("clone")[0]["args"][0]["value"], 0x7E020000);
  EXPECT_EQ(rules.conditional.at("clone")[0]["args"][0]["valueTwo"], 0);
  ASSERT_EQ(rules.conditional.at("socket").size(), 1u);
  EXPECT_EQ(rules.conditional.at("socket")[0]["args"][0]["value"], 40);
  EXPECT_EQ(rules.conditional.at("socket")[0]["args"][0]["op"], "SCMP_CMP_NE");
  EXPECT_EQ(rules.conditional.count("mknodat"), 0u);
}

TEST_F(SpecTest, SeccompWithoutADeviceCgroupAllowsOnlyHarmlessDeviceNodes) {
  Meta meta;
  meta.args = {"true"};
  const SeccompRules rules = Rules(Spec(meta, {}, /*restrict_devices=*/true)["linux"]["seccomp"]);
  EXPECT_THAT(rules.plain_allowed, ::testing::Not(::testing::Contains("mknodat")));
  EXPECT_THAT(rules.plain_allowed, ::testing::Not(::testing::Contains("mknod")));
  std::set<uint64_t> char_devices;
  std::set<uint64_t> other_types;
  for (const json& rule : rules.conditional.at("mknodat")) {
    const json& type = rule["args"][0];
    EXPECT_EQ(type["index"], 2);
    EXPECT_EQ(type["value"], S_IFMT);
    if (type["valueTwo"] == S_IFCHR) {
      ASSERT_EQ(rule["args"].size(), 2u);
      EXPECT_EQ(rule["args"][1]["index"], 3);
      char_devices.insert(rule["args"][1]["value"].get<uint64_t>());
    } else {
      other_types.insert(type["valueTwo"].get<uint64_t>());
    }
  }
  EXPECT_EQ(other_types, (std::set<uint64_t>{0, S_IFREG, S_IFIFO, S_IFSOCK}));  // never S_IFBLK
  EXPECT_TRUE(char_devices.count(makedev(0, 0)));                               // whiteouts
  EXPECT_TRUE(char_devices.count(makedev(1, 3)));                               // null
  EXPECT_FALSE(char_devices.count(makedev(1, 1)));                              // mem
  EXPECT_EQ(rules.conditional.at("mknod").size(), rules.conditional.at("mknodat").size());
}

}  // namespace
}  // namespace kiln::executor::internal
