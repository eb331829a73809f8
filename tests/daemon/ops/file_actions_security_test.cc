// Escape attempts against the FileOp actions: every one must stay inside its root. A "victim"
// directory outside both roots stands for the host; it must stay exactly as it was.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include "daemon/ops/file_actions.h"
#include "tests/daemon/ops/test_tree.h"
#include "tests/testutil/status_matchers.h"

namespace kiln::ops {
namespace {

using ::kiln::testing::IsOk;
using ::kiln::testing::StatusIs;
using ::testing::_;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using namespace ::kiln::ops::test;  // NOLINT(build/namespaces): test helpers

class FileActionsSecurityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    WriteFile(victim_ / "secret", "host secret");
    victim_before_ = ListTree(victim_.path());
  }
  void TearDown() override {
    EXPECT_EQ(ListTree(victim_.path()), victim_before_) << "something was written to the host";
    EXPECT_EQ(ReadFile(victim_ / "secret"), "host secret");
  }

  absl::Status DoCopy(const pb::FileActionCopy& a) {
    return Copy(ctx_, src_.path(), dst_.path(), a);
  }
  // A path below the destination root that mirrors the victim's host path, i.e. where an
  // absolute symlink to the victim lands when it is resolved inside the root.
  std::string DstMirror(const std::string& rel) const {
    return dst_.path() + victim_.path() + "/" + rel;
  }

  ScratchDir src_{"src"};
  ScratchDir dst_{"dst"};
  ScratchDir victim_{"victim"};
  std::vector<std::string> victim_before_;
  Context ctx_;
};

// ---------------------------------------------------------------------------------------------
// copy sources

TEST_F(FileActionsSecurityTest, SourceThroughAbsoluteSymlinkReadsInsideTheSourceRoot) {
  MakeSymlink("/etc", src_ / "link");
  // No etc/passwd in the source root: the copy fails rather than reading the host's.
  EXPECT_THAT(DoCopy(CopyAction("/link/passwd", "/out")),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("no such file or directory")));
  EXPECT_THAT(ListTree(dst_.path()), IsEmpty());
  // With one there, that one is copied.
  WriteFile(src_ / "etc/passwd", "fake:x:1:1::/:/bin/false\n");
  ASSERT_THAT(DoCopy(CopyAction("/link/passwd", "/out")), IsOk());
  EXPECT_EQ(ReadFile(dst_ / "out"), "fake:x:1:1::/:/bin/false\n");
}

TEST_F(FileActionsSecurityTest, SourceThroughSymlinkToTheVictimReadsInsideTheSourceRoot) {
  MakeSymlink(victim_.path(), src_ / "link");
  EXPECT_THAT(DoCopy(CopyAction("/link/secret", "/out")), StatusIs(absl::StatusCode::kNotFound, _));
  pb::FileActionCopy a = CopyAction("/link", "/out2");
  a.set_followsymlink(true);
  EXPECT_THAT(DoCopy(a), StatusIs(absl::StatusCode::kNotFound, _));
  EXPECT_FALSE(Exists(dst_ / "out"));
  EXPECT_FALSE(Exists(dst_ / "out2"));
}

TEST_F(FileActionsSecurityTest, SourceThroughRelativeClimbingSymlinkStopsAtTheRoot) {
  WriteFile(src_ / "etc/passwd", "inside\n");
  MakeSymlink("../../../../../../../../../etc", src_ / "a/b/link");
  ASSERT_THAT(DoCopy(CopyAction("/a/b/link/passwd", "/out")), IsOk());
  EXPECT_EQ(ReadFile(dst_ / "out"), "inside\n");
}

TEST_F(FileActionsSecurityTest, SourceDotDotPathsStopAtTheRoot) {
  WriteFile(src_ / "etc/passwd", "inside\n");
  ASSERT_THAT(DoCopy(CopyAction("../../../../etc/passwd", "/out")), IsOk());
  EXPECT_EQ(ReadFile(dst_ / "out"), "inside\n");
}

TEST_F(FileActionsSecurityTest, FollowedFinalSymlinkChainStaysInside) {
  WriteFile(src_ / "etc/shadow", "inside shadow\n");
  MakeSymlink("../../../etc/shadow", src_ / "x/y");  // relative, climbing
  MakeSymlink("/x/y", src_ / "start");               // absolute, chained
  pb::FileActionCopy a = CopyAction("/start", "/out");
  a.set_followsymlink(true);
  ASSERT_THAT(DoCopy(a), IsOk());
  EXPECT_EQ(ReadFile(dst_ / "out"), "inside shadow\n");
}

TEST_F(FileActionsSecurityTest, SymlinksInsideACopiedTreeAreCopiedNotFollowed) {
  MakeSymlink("/etc/passwd", src_ / "tree/abs");
  MakeSymlink(victim_.path(), src_ / "tree/victim");
  MakeSymlink("../../../../../../etc", src_ / "tree/rel");
  pb::FileActionCopy a = CopyAction("/tree", "/out");
  a.set_followsymlink(true);  // applies to "/tree" only
  ASSERT_THAT(DoCopy(a), IsOk());
  EXPECT_EQ(ReadLink(dst_ / "out/abs"), "/etc/passwd");
  EXPECT_EQ(ReadLink(dst_ / "out/victim"), victim_.path());
  EXPECT_EQ(ReadLink(dst_ / "out/rel"), "../../../../../../etc");
  EXPECT_TRUE(S_ISLNK(Lstat(dst_ / "out/abs")->st_mode));
}

TEST_F(FileActionsSecurityTest, WildcardThroughASymlinkToTheVictimFindsNothingOutside) {
  MakeSymlink(victim_.path(), src_ / "link");
  pb::FileActionCopy a = CopyAction("/link/*", "/out/");
  a.set_allowwildcard(true);
  a.set_followsymlink(true);
  EXPECT_THAT(DoCopy(a), StatusIs(absl::StatusCode::kNotFound, _));
  EXPECT_FALSE(Exists(dst_ / "out"));
}

// ---------------------------------------------------------------------------------------------
// copy destinations

TEST_F(FileActionsSecurityTest, DestinationThroughAbsoluteSymlinkWritesInsideTheRoot) {
  WriteFile(src_ / "payload", "pwned");
  MakeSymlink(victim_.path(), dst_ / "out");  // dest_root/out -> /tmp/.../victim
  pb::FileActionCopy a = CopyAction("/payload", "/out/payload");
  a.set_createdestpath(true);
  ASSERT_THAT(DoCopy(a), IsOk());
  EXPECT_EQ(ReadFile(DstMirror("payload")), "pwned");
}

TEST_F(FileActionsSecurityTest, DestinationDirectorySymlinkAsTheTarget) {
  WriteFile(src_ / "d/payload", "pwned");
  MakeSymlink(victim_.path(), dst_ / "out");
  pb::FileActionCopy a = CopyAction("/d", "/out");
  a.set_dircopycontents(true);
  // Without createDestPath the destination's (mirrored) parent must exist, as in BuildKit.
  EXPECT_THAT(DoCopy(a), StatusIs(absl::StatusCode::kNotFound, HasSubstr("failed to stat /out")));
  a.set_createdestpath(true);
  ASSERT_THAT(DoCopy(a), IsOk());
  EXPECT_EQ(ReadFile(DstMirror("payload")), "pwned");
}

TEST_F(FileActionsSecurityTest, DestinationThroughRelativeClimbingSymlinkStopsAtTheRoot) {
  WriteFile(src_ / "payload", "pwned");
  MakeSymlink("../../../../../../../../.." + victim_.path(), dst_ / "a/out");
  pb::FileActionCopy a = CopyAction("/payload", "/a/out/");
  a.set_createdestpath(true);
  ASSERT_THAT(DoCopy(a), IsOk());
  EXPECT_EQ(ReadFile(DstMirror("payload")), "pwned");
}

TEST_F(FileActionsSecurityTest, ExistingSymlinksInsideTheDestinationTreeAreNotFollowed) {
  WriteFile(src_ / "d/sub/file", "pwned");
  WriteFile(src_ / "d/secret", "overwrite?");
  // The destination already has "sub" and "secret" as symlinks to the victim.
  MakeSymlink(victim_.path(), dst_ / "out/sub");
  MakeSymlink(victim_ / "secret", dst_ / "out/secret");
  pb::FileActionCopy a = CopyAction("/d", "/out");
  a.set_dircopycontents(true);
  // A directory is not merged into a symlink (fsutil: "cannot copy to non-directory").
  EXPECT_THAT(DoCopy(a), StatusIs(absl::StatusCode::kFailedPrecondition,
                                  HasSubstr("cannot copy to non-directory")));
  // Replacing: the symlinks themselves are removed and replaced.
  a.set_alwaysreplaceexistingdestpaths(true);
  ASSERT_THAT(DoCopy(a), IsOk());
  EXPECT_EQ(ReadFile(dst_ / "out/sub/file"), "pwned");
  EXPECT_EQ(ReadFile(dst_ / "out/secret"), "overwrite?");
  EXPECT_TRUE(S_ISREG(Lstat(dst_ / "out/secret")->st_mode));
}

TEST_F(FileActionsSecurityTest, DestinationDotDotPathsStopAtTheRoot) {
  WriteFile(src_ / "payload", "x");
  pb::FileActionCopy a = CopyAction("/payload", "../../../../x");
  ASSERT_THAT(DoCopy(a), IsOk());
  EXPECT_EQ(ReadFile(dst_ / "x"), "x");
}

TEST_F(FileActionsSecurityTest, HardlinkedSourceFilesDoNotLinkOutside) {
  WriteFile(src_ / "d/a", "shared");
  ASSERT_EQ(link((src_ / "d/a").c_str(), (src_ / "d/b").c_str()), 0);
  MakeSymlink(victim_.path(), dst_ / "out");
  pb::FileActionCopy a = CopyAction("/d", "/out");
  a.set_dircopycontents(true);
  a.set_createdestpath(true);
  ASSERT_THAT(DoCopy(a), IsOk());
  EXPECT_EQ(Lstat(DstMirror("a"))->st_ino, Lstat(DstMirror("b"))->st_ino);
}

// ---------------------------------------------------------------------------------------------
// mkdir, mkfile, symlink, rm

TEST_F(FileActionsSecurityTest, MkfileThroughSymlinkedParentWritesInsideTheRoot) {
  MakeSymlink(victim_.path(), dst_ / "out");
  // The parent resolves to dest_root/<victim path>, which does not exist.
  EXPECT_THAT(Mkfile(dst_.path(), MkfileAction("/out/pwned", "x", 0644)),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("does not exist")));
  MakeDirs(DstMirror(""));
  ASSERT_THAT(Mkfile(dst_.path(), MkfileAction("/out/pwned", "x", 0644)), IsOk());
  EXPECT_EQ(ReadFile(DstMirror("pwned")), "x");
}

TEST_F(FileActionsSecurityTest, MkfileOnAFinalSymlinkToTheHostWritesInsideTheRoot) {
  MakeDirs(DstMirror(""));
  MakeSymlink(victim_ / "secret", dst_ / "f");
  ASSERT_THAT(Mkfile(dst_.path(), MkfileAction("/f", "overwritten", 0644)), IsOk());
  EXPECT_EQ(ReadFile(DstMirror("secret")), "overwritten");
}

TEST_F(FileActionsSecurityTest, MkdirParentsThroughSymlinksStayInside) {
  MakeSymlink(victim_.path(), dst_ / "abs");
  MakeSymlink("../../../../../../../..", dst_ / "rel");
  ASSERT_THAT(Mkdir(dst_.path(), MkdirAction("/abs/a/b", 0755, true)), IsOk());
  ASSERT_THAT(Mkdir(dst_.path(), MkdirAction("/rel/c", 0755, true)), IsOk());
  EXPECT_TRUE(Exists(DstMirror("a/b")));
  EXPECT_TRUE(Exists(dst_ / "c"));
}

TEST_F(FileActionsSecurityTest, SymlinkActionThroughSymlinkedParentStaysInside) {
  MakeSymlink(victim_.path(), dst_ / "out");
  MakeDirs(DstMirror(""));
  ASSERT_THAT(Symlink(dst_.path(), SymlinkAction("/etc/shadow", "/out/l")), IsOk());
  EXPECT_EQ(ReadLink(DstMirror("l")), "/etc/shadow");
}

TEST_F(FileActionsSecurityTest, RmThroughSymlinksNeverDeletesOutside) {
  MakeSymlink(victim_.path(), dst_ / "out");
  MakeSymlink("../../../../../../.." + victim_.path(), dst_ / "rel");
  EXPECT_THAT(Rm(dst_.path(), RmAction("/out/secret")), StatusIs(absl::StatusCode::kNotFound, _));
  // The directory part of a wildcard is not followed for rm: a symlink matches nothing.
  pb::FileActionRm a = RmAction("/rel/*");
  a.set_allowwildcard(true);
  EXPECT_THAT(Rm(dst_.path(), a), IsOk());
  a.set_path("/out/*");
  EXPECT_THAT(Rm(dst_.path(), a), IsOk());
  a.set_path("/out/../out/*");
  EXPECT_THAT(Rm(dst_.path(), a), IsOk());
  // Removing the symlink itself removes only the symlink. Like BuildKit (os.Stat), a dangling
  // symlink counts as "not found" unless allowNotFound is set.
  EXPECT_THAT(Rm(dst_.path(), RmAction("/out")), StatusIs(absl::StatusCode::kNotFound, _));
  pb::FileActionRm rm = RmAction("/out");
  rm.set_allownotfound(true);
  ASSERT_THAT(Rm(dst_.path(), rm), IsOk());
  EXPECT_FALSE(Exists(dst_ / "out"));
  // A symlink whose target exists (inside the root) is removed without allowNotFound.
  MakeDirs(DstMirror(""));
  WriteFile(DstMirror("secret"), "inside");
  ASSERT_THAT(Rm(dst_.path(), RmAction("/rel")), IsOk());
  EXPECT_FALSE(Exists(dst_ / "rel"));
  EXPECT_EQ(ReadFile(DstMirror("secret")), "inside");
}

TEST_F(FileActionsSecurityTest, DotDotPathsForEveryActionStopAtTheRoot) {
  ASSERT_THAT(Mkdir(dst_.path(), MkdirAction("../../../d", 0755)), IsOk());
  ASSERT_THAT(Mkfile(dst_.path(), MkfileAction("../../../f", "x", 0644)), IsOk());
  ASSERT_THAT(Symlink(dst_.path(), SymlinkAction("t", "../../../l")), IsOk());
  EXPECT_THAT(ListTree(dst_.path()), ElementsAre("d", "f", "l"));
  ASSERT_THAT(Rm(dst_.path(), RmAction("../../../f")), IsOk());
  EXPECT_THAT(ListTree(dst_.path()), ElementsAre("d", "l"));
}

TEST_F(FileActionsSecurityTest, OwnerNamesResolveInsideTheRoot) {
  if (geteuid() != 0) GTEST_SKIP() << "chown needs root";
  // /etc in the root is a symlink to an absolute path: it is resolved inside the root, so the
  // root's own (fake) passwd decides, never the host's.
  WriteFile(dst_ / "private/etc/passwd", "root:x:4321:4321::/:/bin/sh\n");
  MakeSymlink("/private/etc", dst_ / "etc");
  pb::FileActionMkFile a = MkfileAction("/f", "x", 0644);
  a.mutable_owner()->mutable_user()->mutable_byname()->set_name("root");
  ASSERT_THAT(Mkfile(dst_.path(), a), IsOk());
  EXPECT_EQ(Lstat(dst_ / "f")->st_uid, 4321u);
}

// ---------------------------------------------------------------------------------------------
// archives

class ArchiveSecurityTest : public FileActionsSecurityTest {
 protected:
  void SetUp() override {
    FileActionsSecurityTest::SetUp();
    if (geteuid() != 0) GTEST_SKIP() << "archive entries are owned by uid 0";
  }
  absl::Status Unpack(const std::vector<TarEntry>& entries) {
    WriteTar(src_ / "evil.tar", entries);
    pb::FileActionCopy a = CopyAction("/evil.tar", "/x/");
    a.set_attemptunpackdockercompatibility(true);
    return DoCopy(a);
  }
  static TarEntry File(const std::string& name, const std::string& data) {
    return {TarEntry::Type::kFile, name, data, "", 0644, 0, 0, 1500000000};
  }
  static TarEntry Sym(const std::string& name, const std::string& target) {
    return {TarEntry::Type::kSymlink, name, "", target, 0777, 0, 0, 1500000000};
  }
  static TarEntry Hard(const std::string& name, const std::string& target) {
    return {TarEntry::Type::kHardlink, name, "", target, 0644, 0, 0, 1500000000};
  }
};

TEST_F(ArchiveSecurityTest, DotDotEntriesLandInsideTheExtractionDirectory) {
  ASSERT_THAT(Unpack({File("../../../../../../evil", "1"), File("a/../../b", "2")}), IsOk());
  EXPECT_EQ(ReadFile(dst_ / "x/evil"), "1");
  EXPECT_EQ(ReadFile(dst_ / "x/b"), "2");
  EXPECT_THAT(ListTree(dst_.path()), ElementsAre("x", "x/b", "x/evil"));
}

TEST_F(ArchiveSecurityTest, AbsoluteEntriesLandInsideTheExtractionDirectory) {
  ASSERT_THAT(Unpack({File("/etc/cron.d/evil", "1"), File(victim_ / "secret", "2")}), IsOk());
  EXPECT_EQ(ReadFile(dst_ / "x/etc/cron.d/evil"), "1");
  EXPECT_EQ(ReadFile(dst_.path() + "/x" + victim_.path() + "/secret"), "2");
}

TEST_F(ArchiveSecurityTest, SymlinkThenFileThroughItStaysInside) {
  // Absolute symlink to the victim, then a file through it: lands at x/<victim path>/pwned.
  ASSERT_THAT(Unpack({Sym("sl", victim_.path()), File("sl/pwned", "1")}),
              StatusIs(absl::StatusCode::kNotFound, _));
  // With the mirror path present inside the extraction directory, it is written there.
  ASSERT_THAT(
      Unpack({File(victim_ / "keep", "0"), Sym("sl", victim_.path()), File("sl/pwned", "1")}),
      IsOk());
  EXPECT_EQ(ReadFile(dst_.path() + "/x" + victim_.path() + "/pwned"), "1");
  EXPECT_EQ(ReadLink(dst_ / "x/sl"), victim_.path());
}

TEST_F(ArchiveSecurityTest, RelativeClimbingSymlinkThenFileStaysInside) {
  ASSERT_THAT(Unpack({Sym("up", "../../../../../../../../.."), File("up/top", "1"),
                      Sym("d/up2", "../../../../../../../.." + victim_.path()),
                      File("d/up2/../pwned", "2")}),
              IsOk());
  EXPECT_EQ(ReadFile(dst_ / "x/top"), "1");
  // "d/up2/../pwned" is cleaned lexically first (like Go's filepath.Clean): d/pwned.
  EXPECT_EQ(ReadFile(dst_ / "x/d/pwned"), "2");
}

TEST_F(ArchiveSecurityTest, SymlinkToDirectoryThenDirectoryEntryStaysInside) {
  ASSERT_THAT(Unpack({Sym("etc", victim_.path()),
                      {TarEntry::Type::kDir, "etc", "", "", 0700, 0, 0, 1500000000},
                      File("etc/passwd", "inside")}),
              IsOk());
  // The directory entry replaced the symlink (they differ in type), so passwd is in x/etc.
  EXPECT_TRUE(S_ISDIR(Lstat(dst_ / "x/etc")->st_mode));
  EXPECT_EQ(ReadFile(dst_ / "x/etc/passwd"), "inside");
}

TEST_F(ArchiveSecurityTest, HardlinkToHostFilesFails) {
  EXPECT_THAT(Unpack({Hard("shadow", "/etc/shadow")}),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("link")));
  EXPECT_THAT(Unpack({Hard("passwd", "../../../../../../../../etc/passwd")}),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("link")));
  EXPECT_THAT(Unpack({Hard("s", victim_ / "secret")}), StatusIs(absl::StatusCode::kNotFound, _));
  EXPECT_FALSE(Exists(dst_ / "x/shadow"));
  EXPECT_FALSE(Exists(dst_ / "x/passwd"));
  EXPECT_FALSE(Exists(dst_ / "x/s"));
}

TEST_F(ArchiveSecurityTest, HardlinkThroughAnArchiveSymlinkStaysInside) {
  // "sl" points at the victim; a hardlink to "sl/secret" must not reach the host file.
  EXPECT_THAT(Unpack({Sym("sl", victim_.path()), Hard("h", "sl/secret")}),
              StatusIs(absl::StatusCode::kNotFound, _));
  EXPECT_THAT(Unpack({Sym("sl2", "/"), Hard("h2", "sl2" + victim_.path() + "/secret")}),
              StatusIs(absl::StatusCode::kNotFound, _));
  // A hardlink naming a symlink links the symlink itself, never what it points to.
  ASSERT_THAT(Unpack({Sym("sl3", victim_ / "secret"), Hard("h3", "sl3")}), IsOk());
  EXPECT_TRUE(S_ISLNK(Lstat(dst_ / "x/h3")->st_mode));
  EXPECT_EQ(Lstat(dst_ / "x/h3")->st_ino, Lstat(dst_ / "x/sl3")->st_ino);
}

TEST_F(ArchiveSecurityTest, ArchiveInsideAnOutsidePointingDestinationStaysInside) {
  MakeSymlink(victim_.path(), dst_ / "x");
  MakeDirs(DstMirror(""));
  ASSERT_THAT(Unpack({File("f", "1")}), IsOk());
  EXPECT_EQ(ReadFile(DstMirror("f")), "1");
}

TEST_F(ArchiveSecurityTest, ReplacingTheExtractionRootIsRefused) {
  EXPECT_THAT(Unpack({File("..", "x")}), StatusIs(absl::StatusCode::kInvalidArgument, _));
  EXPECT_THAT(Unpack({File("a/../..", "x")}), StatusIs(absl::StatusCode::kInvalidArgument, _));
  EXPECT_TRUE(S_ISDIR(Lstat(dst_ / "x")->st_mode));
}

// ---------------------------------------------------------------------------------------------
// no openat2, no resolution

// Runs `fn` in a child process where openat2 fails with ENOSYS (a seccomp filter) and returns
// the child's exit status: 0 if fn returned UNIMPLEMENTED naming openat2, 1 otherwise.
template <typename Fn>
int RunWithoutOpenat2(Fn fn) {
  pid_t pid = fork();
  if (pid == 0) {
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_openat2, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {static_cast<unsigned short>(sizeof(filter) / sizeof(filter[0])),
                              filter};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) _exit(2);
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) _exit(2);
    absl::Status s = fn();
    const bool ok = s.code() == absl::StatusCode::kUnimplemented &&
                    std::string(s.message()).find("openat2") != std::string::npos;
    _exit(ok ? 0 : 1);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST_F(FileActionsSecurityTest, WithoutOpenat2EveryActionFailsClosed) {
  WriteFile(src_ / "a", "A");
  const std::string src = src_.path();
  const std::string dst = dst_.path();
  EXPECT_EQ(RunWithoutOpenat2([&] { return Mkdir(dst, MkdirAction("/d", 0755)); }), 0);
  EXPECT_EQ(RunWithoutOpenat2([&] { return Mkdir(dst, MkdirAction("/d/e", 0755, true)); }), 0);
  EXPECT_EQ(RunWithoutOpenat2([&] { return Mkfile(dst, MkfileAction("/f", "x", 0644)); }), 0);
  EXPECT_EQ(RunWithoutOpenat2([&] { return Symlink(dst, SymlinkAction("t", "/l")); }), 0);
  EXPECT_EQ(RunWithoutOpenat2([&] { return Rm(dst, RmAction("/f")); }), 0);
  EXPECT_EQ(RunWithoutOpenat2([&] { return Copy(Context(), src, dst, CopyAction("/a", "/b")); }),
            0);
  EXPECT_THAT(ListTree(dst_.path()), IsEmpty());
}

}  // namespace
}  // namespace kiln::ops
