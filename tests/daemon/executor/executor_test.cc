// The executor against the real runtimes: every test runs busybox containers with crun and with
// runc. Needs root, /bin/busybox (busybox-static) and the runtime binaries; skips otherwise.

#include "daemon/executor/executor.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "base/status.h"
#include "daemon/executor/internal/device_cgroup.h"
#include "daemon/executor/internal/mounts.h"
#include "daemon/util/logging.h"
#include "spdlog/sinks/ostream_sink.h"
#include "tests/testutil/status_matchers.h"

namespace kiln::executor {
namespace {

namespace fs = std::filesystem;
using ::kiln::testing::IsOk;
using ::kiln::testing::StatusIs;
using ::testing::_;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::StartsWith;
using Clock = std::chrono::steady_clock;

constexpr char kApplets[] =
    "sh echo cat id ls pwd env true false sleep ip mount hostname grep "
    "mknod mkfifo head wc touch kill stat";

std::string Read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void Write(const fs::path& p, const std::string& data) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << data;
}

bool InPath(const std::string& name) {
  for (absl::string_view dir :
       absl::StrSplit(std::getenv("PATH") ? std::getenv("PATH") : "", ':')) {
    if (!dir.empty() && access((std::string(dir) + "/" + name).c_str(), X_OK) == 0) return true;
  }
  return false;
}

// Mount points at or below `dir` in this process's mount table.
std::vector<std::string> MountsWithin(const fs::path& dir) {
  std::vector<std::string> out;
  absl::StatusOr<std::vector<internal::MountInfo>> mounts = internal::ReadMountInfo();
  EXPECT_THAT(mounts, IsOk());
  if (!mounts.ok()) return out;
  for (const internal::MountInfo& m : *mounts) {
    if (internal::PathIsWithin(m.mount_point, dir.string())) out.push_back(m.mount_point);
  }
  return out;
}

// Command lines (NULs as spaces) of the processes whose command line contains `needle`.
std::vector<std::string> ProcessesMatching(const std::string& needle) {
  std::vector<std::string> out;
  for (const fs::directory_entry& e : fs::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string cmdline = Read(e.path() / "cmdline");
    std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
    if (cmdline.find(needle) != std::string::npos) out.push_back(name + ": " + cmdline);
  }
  return out;
}

// Regular files below `dir` whose contents contain `needle` (not following symlinks).
std::vector<std::string> FilesContaining(const fs::path& dir, const std::string& needle) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto it =
           fs::recursive_directory_iterator(dir, fs::directory_options::skip_permission_denied, ec);
       it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) break;
    if (it->is_regular_file(ec) && !it->is_symlink(ec) &&
        Read(it->path()).find(needle) != std::string::npos) {
      out.push_back(it->path().string());
    }
  }
  return out;
}

std::set<std::string> InterfaceNames(const std::string& proc_net_dev) {
  std::set<std::string> out;
  for (absl::string_view line : absl::StrSplit(proc_net_dev, '\n', absl::SkipEmpty())) {
    const size_t colon = line.find(':');
    if (colon == absl::string_view::npos) continue;  // the two header lines
    out.insert(std::string(absl::StripAsciiWhitespace(line.substr(0, colon))));
  }
  return out;
}

// "Name:\tvalue" from /proc/<pid>/status text.
std::string StatusField(const std::string& status, const std::string& name) {
  for (absl::string_view line : absl::StrSplit(status, '\n')) {
    if (absl::ConsumePrefix(&line, name + ":"))
      return std::string(absl::StripAsciiWhitespace(line));
  }
  return "";
}

// A sleep duration no other test (or concurrently running test binary) uses, so that its
// process can be told apart: "sleep <n>".
std::string UniqueSleep() {
  static std::atomic<int> counter{0};
  return absl::StrCat("sleep ", 1000000 + getpid() % 100000 * 100 + counter++);
}

struct RunResult {
  absl::Status status;
  std::string out, err;
};

class ExecutorTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root (mounts, namespaces)";
    if (access("/bin/busybox", X_OK) != 0) GTEST_SKIP() << "needs /bin/busybox (busybox-static)";
    if (!InPath(GetParam())) GTEST_SKIP() << GetParam() << " is not installed";
    dir_ = fs::path(::testing::TempDir()) /
           absl::StrCat("kiln_exec_", std::random_device{}(), "_", getpid());
    rootfs_ = dir_ / "rootfs";
    state_ = dir_ / "state";
    BuildRootfs(rootfs_);
    Write(dir_ / "resolv.conf", "nameserver 192.0.2.53\nsearch kiln.test\n");

    log_ = std::make_shared<std::ostringstream>();
    sink_ = std::make_shared<spdlog::sinks::ostream_sink_mt>(*log_);
    InitLogging(/*debug=*/true);
    Logger("executor")->sinks().push_back(sink_);

    absl::StatusOr<std::unique_ptr<Executor>> e = Executor::Create(MakeOptions());
    ASSERT_THAT(e, IsOk());
    executor_ = *std::move(e);
  }

  void TearDown() override {
    executor_.reset();
    if (sink_) {
      auto& sinks = Logger("executor")->sinks();
      sinks.erase(std::remove(sinks.begin(), sinks.end(), sink_), sinks.end());
    }
    if (dir_.empty()) return;
    // Never delete through a mount that a failed test left behind.
    for (const std::string& m : MountsWithin(dir_)) {
      ADD_FAILURE() << "mount left behind: " << m;
      umount2(m.c_str(), MNT_DETACH);
    }
    fs::remove_all(dir_);
  }

  Options MakeOptions() const {
    Options o;
    o.runtime = GetParam();
    o.state_dir = state_;
    o.resolv_conf_source = (dir_ / "resolv.conf").string();
    return o;
  }

  static void BuildRootfs(const fs::path& root) {
    fs::create_directories(root / "bin");
    fs::copy_file("/bin/busybox", root / "bin/busybox");
    for (absl::string_view applet : absl::StrSplit(kApplets, ' ')) {
      fs::create_symlink("busybox", root / "bin" / std::string(applet));
    }
    for (const char* d : {"proc", "sys", "dev", "etc", "root"}) fs::create_directories(root / d);
    fs::create_directories(root / "tmp");
    fs::permissions(root / "tmp", static_cast<fs::perms>(01777));
    Write(root / "etc/passwd",
          "root:x:0:0:root:/root:/bin/sh\n"
          "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
          "kiln:x:1000:1000:Kiln:/home/kiln:/bin/sh\n");
    Write(root / "etc/group",
          "root:x:0:\n"
          "wheel:x:10:root,kiln\n"
          "staff:x:50:nobody,kiln\n"
          "kiln:x:1000:\n"
          "nogroup:x:65534:\n");
  }

  RunResult Run(const Meta& meta, const std::vector<Mount>& mounts = {},
                const Context& ctx = Context(), const std::string& id = "") {
    RunResult r;
    r.status = executor_->Run(
        ctx, id.empty() ? NextId() : id, rootfs_, meta, mounts,
        [&r](int fd, std::string_view data) { (fd == 1 ? r.out : r.err).append(data); });
    return r;
  }

  RunResult Sh(const std::string& script, Meta meta = {}, const std::vector<Mount>& mounts = {}) {
    meta.args = {"/bin/sh", "-c", script};
    return Run(meta, mounts);
  }

  std::string NextId() { return absl::StrCat("t", next_id_++); }

  // The state directory holds nothing (it may itself be the executor's private bind).
  void ExpectNothingLeft() {
    EXPECT_THAT(MountsWithin(state_), ::testing::AnyOf(IsEmpty(), ElementsAre(state_.string())));
    std::vector<std::string> entries;
    for (const fs::directory_entry& e : fs::directory_iterator(state_)) {
      entries.push_back(e.path().string());
    }
    EXPECT_THAT(entries, IsEmpty());
    EXPECT_THAT(ProcessesMatching(state_.string()), IsEmpty());
  }

  fs::path dir_, rootfs_, state_;
  std::unique_ptr<Executor> executor_;
  std::shared_ptr<std::ostringstream> log_;
  spdlog::sink_ptr sink_;
  int next_id_ = 0;
};

TEST_P(ExecutorTest, StreamsStdoutAndStderr) {
  RunResult r = Sh("echo out; echo err >&2; echo more");
  ASSERT_THAT(r.status, IsOk()) << r.err;
  EXPECT_EQ(r.out, "out\nmore\n");
  EXPECT_EQ(r.err, "err\n");
  ExpectNothingLeft();
}

TEST_P(ExecutorTest, NonzeroExitIsBuildKitsError) {
  RunResult r = Sh("exit 3");
  EXPECT_THAT(
      r.status,
      StatusIs(absl::StatusCode::kUnknown,
               "process \"/bin/sh -c exit 3\" did not complete successfully: exit code: 3"));
  EXPECT_EQ(ExitCodeOf(r.status), 3);
  r = Sh("false");
  EXPECT_EQ(r.status.message(),
            "process \"/bin/sh -c false\" did not complete successfully: exit code: 1");
  EXPECT_EQ(ExitCodeOf(r.status), 1);
  EXPECT_EQ(ExitCodeOf(absl::OkStatus()), std::nullopt);
  ExpectNothingLeft();
}

TEST_P(ExecutorTest, DeathBySignalIs128PlusSignal) {
  // The process is pid 1 of its namespace, which ignores SIGKILL from inside: kill it from here.
  const std::string sleep = UniqueSleep();
  Meta meta;
  meta.args = {"/bin/sh", "-c", "echo started; exec " + sleep};
  RunResult r;
  r.status = executor_->Run(Context(), "signal", rootfs_, meta, {}, [&](int fd, std::string_view) {
    for (int i = 0; i < 200; ++i) {
      for (const std::string& p : ProcessesMatching(sleep)) {
        if (absl::StrContains(p, "--root")) continue;  // not the runtime
        ASSERT_EQ(kill(std::stoi(p.substr(0, p.find(':'))), SIGKILL), 0);
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ADD_FAILURE() << "sleep did not start";
  });
  EXPECT_EQ(r.status.message(), "process \"/bin/sh -c echo started; exec " + sleep +
                                    "\" did not complete successfully: exit code: 137");
  EXPECT_EQ(ExitCodeOf(r.status), 137);
  ExpectNothingLeft();
}

TEST_P(ExecutorTest, MissingExecutableReportsTheRuntimesMessage) {
  Meta meta;
  meta.args = {"/nonexistent", "arg"};
  RunResult r = Run(meta);
  EXPECT_THAT(r.status,
              StatusIs(absl::StatusCode::kUnknown,
                       StartsWith("process \"/nonexistent arg\" did not complete successfully: ")));
  EXPECT_THAT(std::string(r.status.message()), HasSubstr("/nonexistent"));
  EXPECT_THAT(std::string(r.status.message()), Not(HasSubstr("exit code")));
  EXPECT_EQ(ExitCodeOf(r.status), std::nullopt);
  ExpectNothingLeft();
}

TEST_P(ExecutorTest, EnvironmentGetsBuildKitsDefaultPath) {
  Meta meta;
  meta.env = {"FOO=bar baz", "EMPTY="};
  RunResult r = Sh("env", meta);
  ASSERT_THAT(r.status, IsOk()) << r.err;
  std::vector<std::string> lines = absl::StrSplit(r.out, '\n', absl::SkipEmpty());
  EXPECT_THAT(lines, ::testing::IsSupersetOf(
                         {"FOO=bar baz", "EMPTY=",
                          "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}));
  // A given PATH is kept, and args[0] is looked up in it.
  meta.env = {"PATH=/bin"};
  meta.args = {"sh", "-c", "echo $PATH"};
  r = Run(meta);
  ASSERT_THAT(r.status, IsOk()) << r.err;
  EXPECT_EQ(r.out, "/bin\n");
}

TEST_P(ExecutorTest, CreatesTheWorkingDirectory) {
  Meta meta;
  meta.cwd = "/work/a/b";
  RunResult r = Sh("pwd", meta);
  ASSERT_THAT(r.status, IsOk()) << r.err;
  EXPECT_EQ(r.out, "/work/a/b\n");
  struct stat st;
  ASSERT_EQ(stat((rootfs_ / "work/a/b").c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  EXPECT_EQ(st.st_uid, 0u);
  EXPECT_EQ(st.st_gid, 0u);
}

TEST_P(ExecutorTest, WorkingDirectoryThroughASymlinkStaysInTheRootfs) {
  const fs::path outside = dir_ / "outside";
  fs::create_directories(outside);
  fs::create_symlink("/../../../../../.." + outside.string(), rootfs_ / "escape");
  Meta meta;
  meta.cwd = "/escape/made";
  RunResult r = Sh("pwd", meta);
  ASSERT_THAT(r.status, IsOk()) << r.err;
  EXPECT_FALSE(fs::exists(outside / "made"));
  EXPECT_TRUE(fs::is_directory(rootfs_ / outside.relative_path() / "made"));
}

TEST_P(ExecutorTest, ResolvesUsersAndGroupsFromTheRootfs) {
  auto ids = [&](const std::string& user) {
    Meta meta;
    meta.user = user;
    RunResult r = Sh("grep -E '^(Uid|Gid|Groups):' /proc/self/status", meta);
    EXPECT_THAT(r.status, IsOk()) << user << ": " << r.err;
    std::string uid = StatusField(r.out, "Uid"), gid = StatusField(r.out, "Gid");
    return absl::StrCat(uid.substr(0, uid.find('\t')), " ", gid.substr(0, gid.find('\t')), " [",
                        StatusField(r.out, "Groups"), "]");
  };
  EXPECT_EQ(ids(""), "0 0 []");
  EXPECT_EQ(ids("kiln"), "1000 1000 [10 50]");
  EXPECT_EQ(ids("1000"), "1000 1000 [10 50]");
  EXPECT_EQ(ids("1000:1000"), "1000 1000 []");
  EXPECT_EQ(ids("kiln:staff"), "1000 50 []");
  EXPECT_EQ(ids("1000:staff"), "1000 50 []");
  EXPECT_EQ(ids("nobody"), "65534 65534 [50]");
  EXPECT_EQ(ids("4242"), "4242 0 []");

  Meta meta;
  meta.user = "ghost";
  RunResult r = Sh("true", meta);
  EXPECT_THAT(r.status, StatusIs(absl::StatusCode::kNotFound,
                                 "unable to find user ghost: no matching entries in passwd file"));
  ExpectNothingLeft();
}

TEST_P(ExecutorTest, PasswdSymlinkCannotLeaveTheRootfs) {
  Write(dir_ / "host-passwd", "escape:x:4321:4321::/:/bin/sh\n");
  fs::remove(rootfs_ / "etc/passwd");
  fs::create_symlink((dir_ / "host-passwd").string(), rootfs_ / "etc/passwd");
  Meta meta;
  meta.user = "escape";
  EXPECT_THAT(Sh("id", meta).status,
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("unable to find user escape")));
  // The same absolute target, resolved inside the rootfs, is used.
  Write(rootfs_ / (dir_ / "host-passwd").relative_path(), "inside:x:4321:4321::/:/bin/sh\n");
  meta.user = "inside";
  RunResult r = Sh("id -u", meta);
  ASSERT_THAT(r.status, IsOk()) << r.err;
  EXPECT_EQ(r.out, "4321\n");
}

TEST_P(ExecutorTest, HostnameDefaultsToBuildkitsandbox) {
  RunResult r = Sh("hostname");
  ASSERT_THAT(r.status, IsOk()) << r.err;
  EXPECT_EQ(r.out, "buildkitsandbox\n");
  Meta meta;
  meta.hostname = "builder-1";
  r = Sh("hostname; grep builder-1 /etc/hosts", meta);
  ASSERT_THAT(r.status, IsOk()) << r.err;
  EXPECT_EQ(r.out, "builder-1\n127.0.0.1\tlocalhost builder-1\n");
}

TEST_P(ExecutorTest, HostsAndResolvConfAreGeneratedReadOnly) {
  Meta meta;
  meta.extra_hosts = {{"db.internal", "10.1.2.3"}, {"v6.internal", "fd00::7"}};
  RunResult r = Sh("cat /etc/hosts; echo ---; cat /etc/resolv.conf; echo x >> /etc/hosts", meta);
  EXPECT_THAT(r.status, Not(IsOk()));  // the append fails: read-only
  EXPECT_EQ(r.out,
            "127.0.0.1\tlocalhost buildkitsandbox\n"
            "::1\tlocalhost ip6-localhost ip6-loopback\n"
            "10.1.2.3\tdb.internal\n"
            "fd00::7\tv6.internal\n"
            "---\n"
            "nameserver 192.0.2.53\nsearch kiln.test\n");
  EXPECT_THAT(r.err, HasSubstr("Read-only file system"));
  // The mount targets the runtime created in the rootfs are gone again.
  EXPECT_FALSE(fs::exists(rootfs_ / "etc/hosts"));
  EXPECT_FALSE(fs::exists(rootfs_ / "etc/resolv.conf"));
}

TEST_P(ExecutorTest, RemovesMountStubs) {
  fs::create_directories(dir_ / "data");
  const std::vector<Mount> mounts = {{"/mnt/new/dir", "bind", (dir_ / "data").string(), {"rbind"}}};
  Meta meta;
  ASSERT_THAT(Sh("ls /mnt/new/dir", meta, mounts).status, IsOk());
  EXPECT_FALSE(fs::exists(rootfs_ / "mnt/new/dir"));
  EXPECT_TRUE(fs::is_directory(rootfs_ / "mnt/new"));  // not recursive: only the target goes
  fs::remove_all(rootfs_ / "mnt");
  meta.remove_mount_stubs_recursive = true;
  ASSERT_THAT(Sh("ls /mnt/new/dir", meta, mounts).status, IsOk());
  EXPECT_FALSE(fs::exists(rootfs_ / "mnt"));
  // What the process put in a created directory stays.
  ASSERT_THAT(Sh("echo keep > /mnt/new/file", meta, mounts).status, IsOk());
  EXPECT_EQ(Read(rootfs_ / "mnt/new/file"), "keep\n");
  EXPECT_FALSE(fs::exists(rootfs_ / "mnt/new/dir"));
}

TEST_P(ExecutorTest, NetNoneHasOnlyLoopback) {
  Meta meta;
  meta.net = NetMode::kNone;
  RunResult r = Sh("cat /proc/net/dev; echo ---; ip -o addr show lo", meta);
  ASSERT_THAT(r.status, IsOk()) << r.err;
  const std::vector<std::string> parts = absl::StrSplit(r.out, "---\n");
  ASSERT_EQ(parts.size(), 2u);
  EXPECT_THAT(InterfaceNames(parts[0]), ElementsAre("lo"));
  EXPECT_THAT(parts[1], HasSubstr("inet 127.0.0.1/8"));  // loopback is up
}

TEST_P(ExecutorTest, NetHostSeesTheHostsInterfaces) {
  RunResult r = Sh("cat /proc/net/dev");
  ASSERT_THAT(r.status, IsOk()) << r.err;
  const std::set<std::string> host = InterfaceNames(Read("/proc/net/dev"));
  EXPECT_EQ(InterfaceNames(r.out), host);
  EXPECT_GT(host.size(), 1u) << "this host has only a loopback device; the test proves little";
}

TEST_P(ExecutorTest, BindMountsReadOnlyAndReadWrite) {
  Write(dir_ / "ro/file", "ro-data");
  fs::create_directories(dir_ / "rw");
  const std::vector<Mount> mounts = {
      {"/in/ro", "bind", (dir_ / "ro").string(), {"rbind", "ro"}},
      {"/in/rw", "bind", (dir_ / "rw").string(), {"rbind"}},
  };
  RunResult r = Sh("cat /in/ro/file; echo new > /in/rw/f; echo x > /in/ro/g", {}, mounts);
  EXPECT_THAT(r.status, Not(IsOk()));
  EXPECT_EQ(r.out, "ro-data");
  EXPECT_THAT(r.err, HasSubstr("Read-only file system"));
  EXPECT_EQ(Read(dir_ / "rw/f"), "new\n");
  EXPECT_FALSE(fs::exists(dir_ / "ro/g"));
}

TEST_P(ExecutorTest, TmpfsMount) {
  const std::vector<Mount> mounts = {{"/scratch", "tmpfs", "tmpfs", {"size=8m", "mode=1777"}}};
  RunResult r =
      Sh("grep ' /scratch ' /proc/mounts; echo hi > /scratch/f && cat /scratch/f", {}, mounts);
  ASSERT_THAT(r.status, IsOk()) << r.err;
  EXPECT_THAT(r.out, StartsWith("tmpfs /scratch tmpfs rw"));
  EXPECT_THAT(r.out, HasSubstr("\nhi\n"));
  EXPECT_FALSE(fs::exists(rootfs_ / "scratch/f"));
}

TEST_P(ExecutorTest, SecretEnvStaysOffDiskAndOutOfLogs) {
  const std::string secret = absl::StrCat("s3cr3t-", std::random_device{}(), "-", getpid());
  Meta meta;
  // The process waits (up to 30 s) for the test to finish looking: a fixed sleep was too
  // short on a loaded machine, and the bundle vanished mid-scan.
  meta.args = {"/bin/sh", "-c",
               "echo \"token=$TOKEN\"; echo ready; i=0; "
               "while [ ! -e /release ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done"};
  meta.env = {"TOKEN=overridden", "PLAIN=1"};
  meta.secret_env = {"TOKEN=" + secret};
  bool checked = false;
  std::string out;
  absl::Status status =
      executor_->Run(Context(), "secret", rootfs_, meta, {}, [&](int fd, std::string_view data) {
        if (fd != 1) return;
        out.append(data);
        if (checked || out.find("ready\n") == std::string::npos) return;
        checked = true;
        // While the process runs, the secret exists only in files on a tmpfs.
        // (config.json, and the runtime's copy of it in its state directory.)
        const std::vector<std::string> files = FilesContaining(state_, secret);
        EXPECT_THAT(files, ::testing::Contains(HasSubstr("/secret/config.json")));
        for (const std::string& f : files) {
          struct statfs sfs;
          ASSERT_EQ(statfs(f.c_str(), &sfs), 0);
          EXPECT_EQ(sfs.f_type, TMPFS_MAGIC) << f;
        }
        std::ofstream(rootfs_ / "release") << "";
      });
  fs::remove(rootfs_ / "release");
  ASSERT_THAT(status, IsOk());
  EXPECT_TRUE(checked);
  EXPECT_THAT(out, HasSubstr("token=" + secret + "\n"));
  EXPECT_THAT(FilesContaining(dir_, secret), IsEmpty());
  const std::string log = log_->str();
  EXPECT_THAT(log, HasSubstr("secret_env=[TOKEN]"));  // the run was logged, by name
  EXPECT_THAT(log, Not(HasSubstr(secret)));
  ExpectNothingLeft();
}

TEST_P(ExecutorTest, CancellationKillsTheContainerAndCleansUp) {
  const std::string sleep = UniqueSleep();
  Context ctx;
  Meta meta;
  meta.args = {"/bin/sh", "-c", "echo started; exec " + sleep};
  Clock::time_point cancelled_at;
  absl::Status status =
      executor_->Run(ctx, "cancel", rootfs_, meta, {}, [&](int fd, std::string_view data) {
        if (fd == 1 && absl::StrContains(AV(data), "started")) {
          for (int i = 0; i < 200 && ProcessesMatching(sleep).empty(); ++i) {
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
          }
          EXPECT_THAT(ProcessesMatching(sleep), Not(IsEmpty()));
          cancelled_at = Clock::now();
          ctx.Cancel();
        }
      });
  const auto took = Clock::now() - cancelled_at;
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kCancelled, HasSubstr(sleep)));
  EXPECT_LT(took, std::chrono::seconds(2));
  EXPECT_THAT(ProcessesMatching(sleep), IsEmpty());
  ExpectNothingLeft();
}

TEST_P(ExecutorTest, AlreadyCancelledContextRunsNothing) {
  Context ctx;
  ctx.Cancel();
  Meta meta;
  meta.args = {"/bin/sh", "-c", "touch /ran"};
  EXPECT_THAT(Run(meta, {}, ctx).status, StatusIs(absl::StatusCode::kCancelled, _));
  EXPECT_FALSE(fs::exists(rootfs_ / "ran"));
  ExpectNothingLeft();
}

TEST_P(ExecutorTest, DeadlineKillsTheContainer) {
  const std::string sleep = UniqueSleep();
  Meta meta;
  meta.args = {"/bin/sh", "-c", "exec " + sleep};
  const Clock::time_point start = Clock::now();
  RunResult r = Run(meta, {}, Context().WithDeadline(start + std::chrono::milliseconds(500)));
  EXPECT_THAT(r.status, StatusIs(absl::StatusCode::kDeadlineExceeded, _));
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(3));
  EXPECT_THAT(ProcessesMatching(sleep), IsEmpty());
  ExpectNothingLeft();
}

TEST_P(ExecutorTest, ConcurrentRunsAndDuplicateIds) {
  const std::string sleep = UniqueSleep();
  Context ctx;
  std::atomic<bool> started{false};
  absl::Status first;
  std::thread t([&] {
    Meta meta;
    meta.args = {"/bin/sh", "-c", "echo started; exec " + sleep};
    first = executor_->Run(ctx, "dup", rootfs_, meta, {}, [&](int fd, std::string_view data) {
      if (absl::StrContains(AV(data), "started")) started = true;
    });
  });
  while (!started) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  Meta meta;
  meta.args = {"true"};
  EXPECT_THAT(Run(meta, {}, Context(), "dup").status,
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("dup")));
  // Other ids run meanwhile, in parallel with each other too.
  std::vector<std::thread> others;
  std::vector<absl::Status> results(3);
  for (int i = 0; i < 3; ++i) {
    others.emplace_back([&, i] {
      Meta m;
      m.args = {"/bin/sh", "-c", absl::StrCat("echo ", i)};
      results[i] = executor_->Run(Context(), absl::StrCat("par", i), rootfs_, m, {},
                                  [](int, std::string_view) {});
    });
  }
  for (std::thread& o : others) o.join();
  for (const absl::Status& s : results) EXPECT_THAT(s, IsOk());
  ctx.Cancel();
  t.join();
  EXPECT_THAT(first, StatusIs(absl::StatusCode::kCancelled, _));
  ExpectNothingLeft();
}

TEST_P(ExecutorTest, UlimitsApply) {
  Meta meta;
  meta.ulimits = {{"nofile", 1234, 2345}};
  RunResult r = Sh("ulimit -n; ulimit -Hn", meta);
  ASSERT_THAT(r.status, IsOk()) << r.err;
  EXPECT_EQ(r.out, "1234\n2345\n");
}

TEST_P(ExecutorTest, SandboxHasDockersCapabilitiesSeccompAndNoNewPrivs) {
  const char* script = "grep -E '^(CapEff|CapBnd|Seccomp|NoNewPrivs):' /proc/self/status";
  RunResult r = Sh(script);
  ASSERT_THAT(r.status, IsOk()) << r.err;
  EXPECT_EQ(StatusField(r.out, "CapEff"), "00000000a80425fb");
  EXPECT_EQ(StatusField(r.out, "CapBnd"), "00000000a80425fb");
  EXPECT_EQ(StatusField(r.out, "Seccomp"), "2");
  EXPECT_EQ(StatusField(r.out, "NoNewPrivs"), "1");

  Meta user;
  user.user = "kiln";
  r = Sh(script, user);
  ASSERT_THAT(r.status, IsOk()) << r.err;
  EXPECT_EQ(StatusField(r.out, "CapEff"), "0000000000000000");  // nothing ambient

  Meta insecure;
  insecure.security = SecurityMode::kInsecure;
  r = Sh(script, insecure);
  ASSERT_THAT(r.status, IsOk()) << r.err;
  const uint64_t eff = std::stoull(StatusField(r.out, "CapEff"), nullptr, 16);
  EXPECT_NE(eff & (1ULL << 21), 0u) << "CAP_SYS_ADMIN";
  EXPECT_EQ(StatusField(r.out, "Seccomp"), "0");
  EXPECT_EQ(StatusField(r.out, "NoNewPrivs"), "0");
}

TEST_P(ExecutorTest, SandboxMasksAndProtectsKernelFiles) {
  ASSERT_GT(Read("/proc/timer_list").size(), 16u);
  ASSERT_FALSE(fs::is_empty("/sys/firmware"));
  RunResult r =
      Sh("head -c 16 /proc/timer_list | wc -c; ls /sys/firmware | wc -l; "
         "grep -E ' /proc/sys | /sys ' /proc/mounts; "
         "echo 1 > /proc/sys/kernel/ns_last_pid && echo wrote");
  EXPECT_THAT(r.status, Not(IsOk()));
  const std::vector<std::string> lines = absl::StrSplit(r.out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 4u) << r.out;
  EXPECT_EQ(lines[0], "0");  // masked
  EXPECT_EQ(lines[1], "0");
  EXPECT_THAT(lines[2], HasSubstr(" ro,"));  // read-only
  EXPECT_THAT(lines[3], HasSubstr(" ro,"));
  EXPECT_THAT(r.err, HasSubstr("Read-only file system"));

  Meta insecure;
  insecure.security = SecurityMode::kInsecure;
  r =
      Sh("head -c 16 /proc/timer_list | wc -c; ls /sys/firmware | wc -l; "
         "grep ' /sys ' /proc/mounts",
         insecure);
  ASSERT_THAT(r.status, IsOk()) << r.err;
  EXPECT_THAT(r.out, StartsWith("16\n"));
  EXPECT_THAT(r.out, Not(HasSubstr("\n0\n")));
  EXPECT_THAT(r.out, HasSubstr("sysfs /sys sysfs rw"));
}

TEST_P(ExecutorTest, SandboxHasDockersDeviceRules) {
  // A device node shipped in the image (here made on the host: /dev/kmsg's numbers) cannot be
  // opened; any node can be created (as in Docker), only the standard ones used.
  ASSERT_EQ(mknod((rootfs_ / "hostkmsg").c_str(), S_IFCHR | 0600, makedev(1, 11)), 0);
  RunResult r =
      Sh("true < /hostkmsg || echo no-kmsg; "
         "mknod /tmp/disk b 8 0 && echo made-disk; true < /tmp/disk || echo no-disk; "
         "mknod /tmp/null c 1 3 && echo x > /tmp/null && echo null-ok; "
         "mknod /tmp/wh c 0 0 && echo whiteout-ok; mkfifo /tmp/fifo && echo fifo-ok; "
         "echo x > /dev/null && head -c 4 /dev/urandom | wc -c");
  ASSERT_THAT(r.status, IsOk()) << r.err;
  EXPECT_EQ(r.out, "no-kmsg\nmade-disk\nno-disk\nnull-ok\nwhiteout-ok\nfifo-ok\n4\n");
  EXPECT_THAT(r.err, HasSubstr("Operation not permitted"));

  Meta insecure;
  insecure.security = SecurityMode::kInsecure;
  r = Sh("true < /hostkmsg && echo kmsg-ok", insecure);
  ASSERT_THAT(r.status, IsOk()) << r.err;
  EXPECT_EQ(r.out, "kmsg-ok\n");
}

TEST_P(ExecutorTest, TwentyRunsInARowLeaveNothingBehind) {
  Meta meta;
  meta.args = {"true"};
  const Clock::time_point start = Clock::now();
  for (int i = 0; i < 20; ++i) ASSERT_THAT(Run(meta).status, IsOk()) << i;
  const auto per_run =
      std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start).count() / 20;
  std::printf("[ %s ] %.1f ms per run of `true`\n", GetParam().c_str(), per_run / 1000.0);
  ExpectNothingLeft();
}

TEST_P(ExecutorTest, CreateRemovesLeftoversOfACrashedDaemon) {
  executor_.reset();
  // A run directory still mounted, as a killed daemon leaves it.
  const fs::path leftover = state_ / "crashed";
  fs::create_directories(leftover);
  ASSERT_EQ(mount("tmpfs", leftover.c_str(), "tmpfs", 0, "size=1m"), 0);
  Write(leftover / "config.json", "{}");
  // And, for crun, the device cgroup of a run of that daemon (a pid that no longer exists).
  const std::string device_parent = internal::FindDeviceCgroupParent();
  fs::path stale_cgroup;
  if (GetParam() == "crun" && !device_parent.empty()) {
    const pid_t dead = fork();
    if (dead == 0) _exit(0);
    ASSERT_GT(dead, 0);
    ASSERT_EQ(waitpid(dead, nullptr, 0), dead);
    stale_cgroup = fs::path(device_parent) / absl::StrCat("kiln-", dead, "-crashed");
    ASSERT_TRUE(fs::create_directory(stale_cgroup));
  }
  absl::StatusOr<std::unique_ptr<Executor>> e = Executor::Create(MakeOptions());
  ASSERT_THAT(e, IsOk());
  executor_ = *std::move(e);
  EXPECT_FALSE(fs::exists(leftover));
  if (!stale_cgroup.empty()) {
    EXPECT_FALSE(fs::exists(stale_cgroup));
    if (fs::exists(stale_cgroup)) rmdir(stale_cgroup.c_str());
  }
  ExpectNothingLeft();
}

TEST_P(ExecutorTest, StateDirOnASharedMountDoesNotPropagate) {
  // /shared is a shared mount and /peer its peer, as on a systemd host where / is shared and
  // some other mount namespace holds a copy.
  const fs::path shared = dir_ / "shared", peer = dir_ / "peer";
  fs::create_directories(shared);
  fs::create_directories(peer);
  ASSERT_EQ(mount("tmpfs", shared.c_str(), "tmpfs", 0, "size=4m"), 0);
  absl::Cleanup unmount_shared = [&] { umount2(shared.c_str(), MNT_DETACH); };
  ASSERT_EQ(mount(nullptr, shared.c_str(), nullptr, MS_SHARED, nullptr), 0);
  ASSERT_EQ(mount(shared.c_str(), peer.c_str(), nullptr, MS_BIND, nullptr), 0);
  absl::Cleanup unmount_peer = [&] { umount2(peer.c_str(), MNT_DETACH); };
  // Control: a mount below /shared shows up in /peer.
  fs::create_directories(shared / "probe");
  ASSERT_EQ(mount("tmpfs", (shared / "probe").c_str(), "tmpfs", 0, "size=1m"), 0);
  EXPECT_THAT(MountsWithin(peer / "probe"), Not(IsEmpty()));
  ASSERT_EQ(umount2((shared / "probe").c_str(), 0), 0);

  Options o = MakeOptions();
  o.state_dir = shared / "state";
  absl::StatusOr<std::unique_ptr<Executor>> e = Executor::Create(o);
  ASSERT_THAT(e, IsOk());
  EXPECT_THAT(MountsWithin(o.state_dir), ElementsAre(o.state_dir.string()));  // private bind
  Meta meta;
  meta.args = {"/bin/sh", "-c", "echo running"};
  bool checked = false;
  absl::Status s =
      (*e)->Run(Context(), "shared", rootfs_, meta, {}, [&](int fd, std::string_view data) {
        EXPECT_THAT(MountsWithin(o.state_dir / "shared"), Not(IsEmpty()));
        // (The bind of state_dir itself reached /peer, once, at Create.)
        EXPECT_THAT(MountsWithin(peer / "state" / "shared"), IsEmpty());
        checked = true;
      });
  EXPECT_THAT(s, IsOk());
  EXPECT_TRUE(checked);
  e->reset();
  EXPECT_THAT(MountsWithin(o.state_dir), IsEmpty());  // the bind went with the executor
}

INSTANTIATE_TEST_SUITE_P(Runtimes, ExecutorTest, ::testing::Values("crun", "runc"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

TEST(ExecutorCreateTest, FailsClearlyWithoutARuntime) {
  Options o;
  o.runtime = "kiln-no-such-runtime";
  o.state_dir = fs::path(::testing::TempDir()) / "kiln_exec_none";
  EXPECT_THAT(Executor::Create(o),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("OCI runtime \"kiln-no-such-runtime\" not found")));
  o.runtime = "/bin/false";
  EXPECT_THAT(Executor::Create(o), StatusIs(absl::StatusCode::kFailedPrecondition,
                                            HasSubstr("--version` exited with code 1")));
  o.state_dir.clear();
  o.runtime = "crun";
  EXPECT_THAT(Executor::Create(o), StatusIs(absl::StatusCode::kInvalidArgument, _));
}

}  // namespace
}  // namespace kiln::executor
