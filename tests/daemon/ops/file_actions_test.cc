// Behaviour of the FileOp actions against BuildKit's backend semantics: each action and option.
// Escape attempts live in file_actions_security_test.cc.

#include "daemon/ops/file_actions.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "tests/daemon/ops/test_tree.h"
#include "tests/testutil/status_matchers.h"

namespace kiln::ops {
namespace {

using ::kiln::testing::IsOk;
using ::kiln::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using namespace ::kiln::ops::test;  // NOLINT(build/namespaces): test helpers

constexpr int64_t kTs = 1600000000123456789;  // unix nanoseconds

bool IsRoot() { return geteuid() == 0; }

mode_t Perm(const std::string& path) { return Lstat(path)->st_mode & 07777; }

int64_t MtimeNs(const std::string& path) {
  struct stat st = *Lstat(path);
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
}

class FileActionsTest : public ::testing::Test {
 protected:
  ScratchDir src_{"src"};
  ScratchDir dst_{"dst"};
  Context ctx_;

  absl::Status DoCopy(const pb::FileActionCopy& a) {
    return Copy(ctx_, src_.path(), dst_.path(), a);
  }
};

// ---------------------------------------------------------------------------------------------
// mkdir

TEST_F(FileActionsTest, MkdirCreatesDirectoryWithExactModeDespiteUmask) {
  const mode_t old = umask(022);
  absl::Status s = Mkdir(dst_.path(), MkdirAction("/a", 0777));
  umask(old);
  ASSERT_THAT(s, IsOk());
  EXPECT_TRUE(S_ISDIR(Lstat(dst_ / "a")->st_mode));
  EXPECT_EQ(Perm(dst_ / "a"), 0777u);
}

TEST_F(FileActionsTest, MkdirModeDropsSpecialBits) {
  ASSERT_THAT(Mkdir(dst_.path(), MkdirAction("a", 04755)), IsOk());
  EXPECT_EQ(Perm(dst_ / "a"), 0755u);
}

TEST_F(FileActionsTest, MkdirWithoutParentsNeedsTheParent) {
  EXPECT_THAT(
      Mkdir(dst_.path(), MkdirAction("/a/b", 0755)),
      StatusIs(absl::StatusCode::kNotFound, "mkdir /a/b: parent directory /a does not exist"));
  EXPECT_FALSE(Exists(dst_ / "a"));
}

TEST_F(FileActionsTest, MkdirOfAnExistingEntryIsNotAnError) {
  MakeDirs(dst_ / "d", 0700);
  WriteFile(dst_ / "f", "x");
  EXPECT_THAT(Mkdir(dst_.path(), MkdirAction("/d", 0755)), IsOk());
  EXPECT_THAT(Mkdir(dst_.path(), MkdirAction("/f", 0755)), IsOk());  // BuildKit ignores EEXIST
  EXPECT_EQ(Perm(dst_ / "d"), 0700u);
  EXPECT_TRUE(S_ISREG(Lstat(dst_ / "f")->st_mode));
}

TEST_F(FileActionsTest, MkdirMakeParentsAppliesModeAndTimestampToEveryNewDirectory) {
  MakeDirs(dst_ / "a", 0700);
  const int64_t before = MtimeNs(dst_ / "a");
  pb::FileActionMkDir a = MkdirAction("/a/b/c", 0750, /*parents=*/true);
  a.set_timestamp(kTs);
  ASSERT_THAT(Mkdir(dst_.path(), a), IsOk());
  EXPECT_EQ(Perm(dst_ / "a/b"), 0750u);
  EXPECT_EQ(Perm(dst_ / "a/b/c"), 0750u);
  EXPECT_EQ(MtimeNs(dst_ / "a/b/c"), kTs);
  EXPECT_EQ(Perm(dst_ / "a"), 0700u);  // existing: untouched
  EXPECT_NE(MtimeNs(dst_ / "a"), kTs);
  (void)before;
}

TEST_F(FileActionsTest, MkdirMakeParentsAcceptsExistingDirectoryAndLeavesIt) {
  MakeDirs(dst_ / "a", 0700);
  pb::FileActionMkDir a = MkdirAction("/a", 0755, true);
  a.set_timestamp(kTs);
  ASSERT_THAT(Mkdir(dst_.path(), a), IsOk());
  EXPECT_EQ(Perm(dst_ / "a"), 0700u);
  EXPECT_NE(MtimeNs(dst_ / "a"), kTs);
}

TEST_F(FileActionsTest, MkdirMakeParentsThroughAFileFails) {
  WriteFile(dst_ / "f", "x");
  EXPECT_THAT(
      Mkdir(dst_.path(), MkdirAction("/f/b/c", 0755, true)),
      StatusIs(absl::StatusCode::kFailedPrecondition, "mkdir /f/b/c: mkdir /f: not a directory"));
}

TEST_F(FileActionsTest, MkdirFollowsSymlinksInsideTheRoot) {
  MakeDirs(dst_ / "real");
  MakeSymlink("/real", dst_ / "link");
  ASSERT_THAT(Mkdir(dst_.path(), MkdirAction("/link/sub", 0755)), IsOk());
  EXPECT_TRUE(S_ISDIR(Lstat(dst_ / "real/sub")->st_mode));
}

TEST_F(FileActionsTest, MkdirOwnerByIdAppliesToCreatedDirectories) {
  if (!IsRoot()) GTEST_SKIP() << "chown needs root";
  pb::FileActionMkDir a = MkdirAction("/x/y", 0755, true);
  a.mutable_owner()->mutable_user()->set_byid(1001);
  a.mutable_owner()->mutable_group()->set_byid(1002);
  ASSERT_THAT(Mkdir(dst_.path(), a), IsOk());
  EXPECT_EQ(Lstat(dst_ / "x")->st_uid, 1001u);
  EXPECT_EQ(Lstat(dst_ / "x/y")->st_gid, 1002u);
}

// ---------------------------------------------------------------------------------------------
// mkfile

TEST_F(FileActionsTest, MkfileWritesDataModeAndTimestamp) {
  pb::FileActionMkFile a = MkfileAction("/hello.txt", "hi there", 0640);
  a.set_timestamp(kTs);
  ASSERT_THAT(Mkfile(dst_.path(), a), IsOk());
  EXPECT_EQ(Lstat(dst_ / "hello.txt")->st_atim.tv_nsec, kTs % 1000000000);  // before reading
  EXPECT_EQ(MtimeNs(dst_ / "hello.txt"), kTs);
  EXPECT_EQ(ReadFile(dst_ / "hello.txt"), "hi there");
  EXPECT_EQ(Perm(dst_ / "hello.txt"), 0640u);
}

TEST_F(FileActionsTest, MkfileOverwriteTruncatesAndKeepsTheExistingMode) {
  WriteFile(dst_ / "f", "a much longer previous content", 0600);
  ASSERT_THAT(Mkfile(dst_.path(), MkfileAction("/f", "new", 0777)), IsOk());
  EXPECT_EQ(ReadFile(dst_ / "f"), "new");
  EXPECT_EQ(Perm(dst_ / "f"), 0600u);  // os.WriteFile: mode only for new files
}

TEST_F(FileActionsTest, MkfileNeedsItsParentDirectory) {
  EXPECT_THAT(Mkfile(dst_.path(), MkfileAction("/etc/foo", "x", 0644)),
              StatusIs(absl::StatusCode::kNotFound,
                       "mkfile /etc/foo: parent directory /etc does not exist"));
}

TEST_F(FileActionsTest, MkfileOnADirectoryFails) {
  MakeDirs(dst_ / "d");
  EXPECT_THAT(
      Mkfile(dst_.path(), MkfileAction("/d", "x", 0644)),
      StatusIs(absl::StatusCode::kFailedPrecondition, "mkfile /d: open /d: is a directory"));
}

TEST_F(FileActionsTest, MkfileRefusesToOpenAFifo) {
  ASSERT_EQ(mkfifo((dst_ / "fifo").c_str(), 0644), 0);
  EXPECT_THAT(Mkfile(dst_.path(), MkfileAction("/fifo", "x", 0644)),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("not a regular file")));
}

TEST_F(FileActionsTest, MkfileThroughADanglingSymlinkCreatesItsTarget) {
  MakeDirs(dst_ / "data");
  MakeSymlink("/data/real.txt", dst_ / "link.txt");
  ASSERT_THAT(Mkfile(dst_.path(), MkfileAction("/link.txt", "via link", 0644)), IsOk());
  EXPECT_EQ(ReadFile(dst_ / "data/real.txt"), "via link");
  EXPECT_EQ(ReadLink(dst_ / "link.txt"), "/data/real.txt");
}

TEST_F(FileActionsTest, MkfileOwnerByName) {
  if (!IsRoot()) GTEST_SKIP() << "chown needs root";
  WriteFile(dst_ / "etc/passwd", "root:x:0:0:root:/root:/bin/sh\napp:x:1234:2345::/app:/bin/sh\n");
  WriteFile(dst_ / "etc/group", "# groups\nroot:x:0:\nstaff:x:50:app\n");
  pb::FileActionMkFile a = MkfileAction("/owned", "x", 0644);
  a.mutable_owner()->mutable_user()->mutable_byname()->set_name("app");
  ASSERT_THAT(Mkfile(dst_.path(), a), IsOk());
  EXPECT_EQ(Lstat(dst_ / "owned")->st_uid, 1234u);
  EXPECT_EQ(Lstat(dst_ / "owned")->st_gid, 2345u);

  a.set_path("/owned2");
  a.mutable_owner()->mutable_group()->mutable_byname()->set_name("staff");
  ASSERT_THAT(Mkfile(dst_.path(), a), IsOk());
  EXPECT_EQ(Lstat(dst_ / "owned2")->st_uid, 1234u);
  EXPECT_EQ(Lstat(dst_ / "owned2")->st_gid, 50u);
}

TEST_F(FileActionsTest, UnknownUserNameFallsBackToRootLikeBuildKit) {
  if (!IsRoot()) GTEST_SKIP() << "chown needs root";
  WriteFile(dst_ / "etc/passwd", "app:x:1234:2345::/app:/bin/sh\n");
  pb::FileActionMkFile a = MkfileAction("/f", "x", 0644);
  a.mutable_owner()->mutable_user()->mutable_byname()->set_name("nobody-here");
  ASSERT_THAT(Mkfile(dst_.path(), a), IsOk());
  EXPECT_EQ(Lstat(dst_ / "f")->st_uid, 0u);
  EXPECT_EQ(Lstat(dst_ / "f")->st_gid, 0u);
}

TEST_F(FileActionsTest, OwnerNamesCanComeFromAnotherRoot) {
  if (!IsRoot()) GTEST_SKIP() << "chown needs root";
  WriteFile(src_ / "etc/passwd", "builder:x:777:778::/:/bin/sh\n");
  pb::FileActionMkDir a = MkdirAction("/d", 0755);
  a.mutable_owner()->mutable_user()->mutable_byname()->set_name("builder");
  ASSERT_THAT(Mkdir(dst_.path(), a, OwnerRoots{src_.path(), src_.path()}), IsOk());
  EXPECT_EQ(Lstat(dst_ / "d")->st_uid, 777u);
  EXPECT_EQ(Lstat(dst_ / "d")->st_gid, 778u);
}

// ---------------------------------------------------------------------------------------------
// rm

TEST_F(FileActionsTest, RmRemovesFilesAndDirectoriesRecursively) {
  WriteFile(dst_ / "d/a/b/c.txt", "x");
  MakeDirs(dst_ / "d/a/ro", 0500);
  WriteFile(dst_ / "f", "x");
  ASSERT_THAT(Rm(dst_.path(), RmAction("/d")), IsOk());
  ASSERT_THAT(Rm(dst_.path(), RmAction("f")), IsOk());
  EXPECT_THAT(ListTree(dst_.path()), IsEmpty());
}

TEST_F(FileActionsTest, RmMissingPathFailsUnlessAllowed) {
  EXPECT_THAT(
      Rm(dst_.path(), RmAction("/nope")),
      StatusIs(absl::StatusCode::kNotFound, "rm /nope: stat /nope: no such file or directory"));
  EXPECT_THAT(Rm(dst_.path(), RmAction("/no/such/dir")),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("no such file")));
  pb::FileActionRm a = RmAction("/nope");
  a.set_allownotfound(true);
  EXPECT_THAT(Rm(dst_.path(), a), IsOk());
  a.set_path("/no/such/dir");
  EXPECT_THAT(Rm(dst_.path(), a), IsOk());
}

TEST_F(FileActionsTest, RmRemovesTheSymlinkNotItsTarget) {
  WriteFile(dst_ / "keep/file", "x");
  MakeSymlink("/keep", dst_ / "link");
  ASSERT_THAT(Rm(dst_.path(), RmAction("/link")), IsOk());
  EXPECT_FALSE(Exists(dst_ / "link"));
  EXPECT_EQ(ReadFile(dst_ / "keep/file"), "x");
}

TEST_F(FileActionsTest, RmWildcardRemovesEveryMatch) {
  WriteFile(dst_ / "logs/a.log", "x");
  WriteFile(dst_ / "logs/b.log", "x");
  WriteFile(dst_ / "logs/keep.txt", "x");
  WriteFile(dst_ / "logs/sub/c.log", "x");
  pb::FileActionRm a = RmAction("/logs/*.log");
  a.set_allowwildcard(true);
  ASSERT_THAT(Rm(dst_.path(), a), IsOk());
  EXPECT_THAT(ListTree(dst_ / "logs"), ElementsAre("keep.txt", "sub", "sub/c.log"));
  a.set_path("/logs/*.none");
  EXPECT_THAT(Rm(dst_.path(), a), IsOk());  // no match: nothing to do
}

TEST_F(FileActionsTest, RmRefusesTheRoot) {
  WriteFile(dst_ / "f", "x");
  for (const char* p : {"/", ".", "", "a/..", "../.."}) {
    EXPECT_THAT(Rm(dst_.path(), RmAction(p)),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("cannot be removed")))
        << p;
  }
  EXPECT_TRUE(Exists(dst_ / "f"));
}

// ---------------------------------------------------------------------------------------------
// symlink

TEST_F(FileActionsTest, SymlinkStoresTheTargetVerbatim) {
  ASSERT_THAT(Symlink(dst_.path(), SymlinkAction("../../etc/passwd", "/l1")), IsOk());
  ASSERT_THAT(Symlink(dst_.path(), SymlinkAction("/abs/target", "l2")), IsOk());
  EXPECT_EQ(ReadLink(dst_ / "l1"), "../../etc/passwd");
  EXPECT_EQ(ReadLink(dst_ / "l2"), "/abs/target");
}

TEST_F(FileActionsTest, SymlinkOverAnExistingEntryFails) {
  WriteFile(dst_ / "f", "x");
  EXPECT_THAT(
      Symlink(dst_.path(), SymlinkAction("target", "/f")),
      StatusIs(absl::StatusCode::kAlreadyExists, "symlink /f: symlink target /f: file exists"));
}

TEST_F(FileActionsTest, SymlinkTimestampAndOwnerApplyToTheLinkItself) {
  pb::FileActionSymlink a = SymlinkAction("/nowhere", "/l");
  a.set_timestamp(kTs);
  if (IsRoot()) a.mutable_owner()->mutable_user()->set_byid(4242);
  ASSERT_THAT(Symlink(dst_.path(), a), IsOk());
  EXPECT_EQ(MtimeNs(dst_ / "l"), kTs);
  if (IsRoot()) {
    EXPECT_EQ(Lstat(dst_ / "l")->st_uid, 4242u);
  }
}

TEST_F(FileActionsTest, SymlinkNeedsItsParent) {
  EXPECT_THAT(Symlink(dst_.path(), SymlinkAction("x", "/missing/l")),
              StatusIs(absl::StatusCode::kNotFound,
                       "symlink /missing/l: parent directory /missing does not exist"));
}

// ---------------------------------------------------------------------------------------------
// copy: destinations

TEST_F(FileActionsTest, CopyFileToANewName) {
  WriteFile(src_ / "a.txt", "A", 0640);
  ASSERT_THAT(DoCopy(CopyAction("/a.txt", "/b.txt")), IsOk());
  EXPECT_EQ(ReadFile(dst_ / "b.txt"), "A");
  EXPECT_EQ(Perm(dst_ / "b.txt"), 0640u);
  EXPECT_EQ(MtimeNs(dst_ / "b.txt"), MtimeNs(src_ / "a.txt"));
}

TEST_F(FileActionsTest, CopyFileIntoAnExistingDirectory) {
  WriteFile(src_ / "a.txt", "A");
  MakeDirs(dst_ / "app");
  ASSERT_THAT(DoCopy(CopyAction("/a.txt", "/app")), IsOk());
  EXPECT_EQ(ReadFile(dst_ / "app/a.txt"), "A");
}

TEST_F(FileActionsTest, CopyToATrailingSlashCreatesTheDirectory) {
  WriteFile(src_ / "a.txt", "A");
  ASSERT_THAT(DoCopy(CopyAction("/a.txt", "/app/")), IsOk());
  EXPECT_EQ(ReadFile(dst_ / "app/a.txt"), "A");
  EXPECT_EQ(Perm(dst_ / "app"), 0755u);
}

TEST_F(FileActionsTest, CopyWithoutCreateDestPathNeedsTheParent) {
  WriteFile(src_ / "a.txt", "A");
  EXPECT_THAT(DoCopy(CopyAction("/a.txt", "/x/y/z.txt")),
              StatusIs(absl::StatusCode::kNotFound,
                       "copy /a.txt: failed to stat /x/y/z.txt: lstat /x/y: no such file or "
                       "directory"));
  EXPECT_THAT(ListTree(dst_.path()), IsEmpty());
}

TEST_F(FileActionsTest, CopyCreateDestPathMakesParents) {
  WriteFile(src_ / "a.txt", "A");
  pb::FileActionCopy a = CopyAction("/a.txt", "/x/y/z.txt");
  a.set_createdestpath(true);
  ASSERT_THAT(DoCopy(a), IsOk());
  EXPECT_EQ(ReadFile(dst_ / "x/y/z.txt"), "A");
  EXPECT_EQ(Perm(dst_ / "x/y"), 0755u);
}

TEST_F(FileActionsTest, CopyMissingSourceFails) {
  EXPECT_THAT(DoCopy(CopyAction("/missing", "/x")),
              StatusIs(absl::StatusCode::kNotFound,
                       "copy /missing: lstat /missing: no such file or directory"));
}

TEST_F(FileActionsTest, CopyDirectoryWithoutDirCopyContents) {
  WriteFile(src_ / "dir/a", "A");
  WriteFile(src_ / "dir/sub/b", "B");
  MakeDirs(src_ / "dir", 0711);
  // Missing destination: it becomes the copy of the directory, with the directory's mode.
  ASSERT_THAT(DoCopy(CopyAction("/dir", "/new")), IsOk());
  EXPECT_THAT(ListTree(dst_ / "new"), ElementsAre("a", "sub", "sub/b"));
  EXPECT_EQ(Perm(dst_ / "new"), 0711u);
  // Existing destination: the directory goes inside it.
  MakeDirs(dst_ / "existing");
  ASSERT_THAT(DoCopy(CopyAction("/dir", "/existing")), IsOk());
  EXPECT_THAT(ListTree(dst_ / "existing"), ElementsAre("dir", "dir/a", "dir/sub", "dir/sub/b"));
}

TEST_F(FileActionsTest, CopyDirectoryContents) {
  WriteFile(src_ / "dir/a", "A");
  WriteFile(src_ / "dir/sub/b", "B");
  MakeDirs(src_ / "dir", 0700);
  pb::FileActionCopy a = CopyAction("/dir", "/new");
  a.set_dircopycontents(true);
  ASSERT_THAT(DoCopy(a), IsOk());
  EXPECT_THAT(ListTree(dst_ / "new"), ElementsAre("a", "sub", "sub/b"));
  EXPECT_EQ(Perm(dst_ / "new"), 0755u);  // created by MkdirAll, not a copy of /dir
  EXPECT_EQ(MtimeNs(dst_ / "new"), MtimeNs(src_ / "dir"));
  // Into an existing directory: merged.
  WriteFile(dst_ / "existing/old", "O");
  a.set_dest("/existing");
  ASSERT_THAT(DoCopy(a), IsOk());
  EXPECT_THAT(ListTree(dst_ / "existing"), ElementsAre("a", "old", "sub", "sub/b"));
}

TEST_F(FileActionsTest, CopyDotSuffixCopiesContentsIntoAnExistingDirectory) {
  WriteFile(src_ / "dir/a", "A");
  MakeDirs(dst_ / "out");
  ASSERT_THAT(DoCopy(CopyAction("/dir/.", "/out")), IsOk());
  EXPECT_THAT(ListTree(dst_ / "out"), ElementsAre("a"));
}

TEST_F(FileActionsTest, CopyTheWholeSourceRoot) {
  WriteFile(src_ / "a", "A");
  WriteFile(src_ / "d/b", "B");
  pb::FileActionCopy a = CopyAction("/", "/");
  a.set_dircopycontents(true);
  ASSERT_THAT(DoCopy(a), IsOk());
  EXPECT_THAT(ListTree(dst_.path()), ElementsAre("a", "d", "d/b"));
}

TEST_F(FileActionsTest, CopyFileOntoADirectoryWithoutReplaceFails) {
  WriteFile(src_ / "dir/x", "file");
  WriteFile(dst_ / "out/x/inner", "I");
  pb::FileActionCopy a = CopyAction("/dir", "/out");
  a.set_dircopycontents(true);
  EXPECT_THAT(DoCopy(a), StatusIs(absl::StatusCode::kFailedPrecondition,
                                  HasSubstr("cannot replace to directory /out/x with file")));
}

TEST_F(FileActionsTest, CopyAlwaysReplaceExistingDestPaths) {
  WriteFile(src_ / "dir/x", "file");
  MakeDirs(src_ / "dir/y");
  WriteFile(src_ / "dir/y/inner", "I");
  WriteFile(dst_ / "out/x/old", "O");     // a directory where the source has a file
  WriteFile(dst_ / "out/y", "old file");  // a file where the source has a directory
  pb::FileActionCopy a = CopyAction("/dir", "/out");
  a.set_dircopycontents(true);
  EXPECT_THAT(DoCopy(a), StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("cannot")));
  a.set_alwaysreplaceexistingdestpaths(true);
  ASSERT_THAT(DoCopy(a), IsOk());
  EXPECT_EQ(ReadFile(dst_ / "out/x"), "file");
  EXPECT_EQ(ReadFile(dst_ / "out/y/inner"), "I");
}

TEST_F(FileActionsTest, CopyDirectoryOntoAFileWithoutReplaceFails) {
  WriteFile(src_ / "dir/y/inner", "I");
  WriteFile(dst_ / "out/y", "old file");
  pb::FileActionCopy a = CopyAction("/dir", "/out");
  a.set_dircopycontents(true);
  EXPECT_THAT(DoCopy(a), StatusIs(absl::StatusCode::kFailedPrecondition,
                                  HasSubstr("cannot copy to non-directory: /out/y")));
}

TEST_F(FileActionsTest, CopyReplacesAnExistingFile) {
  WriteFile(src_ / "a", "new");
  WriteFile(dst_ / "a", "old old old", 0600);
  ASSERT_THAT(DoCopy(CopyAction("/a", "/a")), IsOk());
  EXPECT_EQ(ReadFile(dst_ / "a"), "new");
  EXPECT_EQ(Perm(dst_ / "a"), 0644u);
}

// ---------------------------------------------------------------------------------------------
// copy: sources

TEST_F(FileActionsTest, CopyWildcardMatchesInWalkOrder) {
  WriteFile(src_ / "s/b.txt", "B");
  WriteFile(src_ / "s/a.txt", "A");
  WriteFile(src_ / "s/c.md", "C");
  WriteFile(src_ / "s/deep/d.txt", "D");
  pb::FileActionCopy a = CopyAction("/s/*.txt", "/out/");
  a.set_allowwildcard(true);
  ASSERT_THAT(DoCopy(a), IsOk());
  EXPECT_THAT(ListTree(dst_ / "out"), ElementsAre("a.txt", "b.txt"));

  a.set_src("/s/*/*.txt");
  a.set_dest("/out2/");
  ASSERT_THAT(DoCopy(a), IsOk());
  EXPECT_THAT(ListTree(dst_ / "out2"), ElementsAre("d.txt"));
}

TEST_F(FileActionsTest, CopyWildcardMatchingADirectoryCopiesIt) {
  WriteFile(src_ / "pkg-a/x", "X");
  WriteFile(src_ / "pkg-b/y", "Y");
  pb::FileActionCopy a = CopyAction("/pkg-*", "/out/");
  a.set_allowwildcard(true);
  ASSERT_THAT(DoCopy(a), IsOk());
  EXPECT_THAT(ListTree(dst_ / "out"), ElementsAre("pkg-a", "pkg-a/x", "pkg-b", "pkg-b/y"));
}

TEST_F(FileActionsTest, CopyEmptyWildcard) {
  MakeDirs(src_ / "s");
  pb::FileActionCopy a = CopyAction("/s/*.txt", "/out/");
  a.set_allowwildcard(true);
  EXPECT_THAT(DoCopy(a), StatusIs(absl::StatusCode::kNotFound,
                                  "copy /s/*.txt: no source files were specified"));
  a.set_allowemptywildcard(true);
  EXPECT_THAT(DoCopy(a), IsOk());
  EXPECT_FALSE(Exists(dst_ / "out"));
}

TEST_F(FileActionsTest, CopyWildcardInAMissingDirectoryFails) {
  pb::FileActionCopy a = CopyAction("/nope/*.txt", "/out/");
  a.set_allowwildcard(true);
  EXPECT_THAT(DoCopy(a), StatusIs(absl::StatusCode::kNotFound,
                                  "copy /nope/*.txt: lstat /nope: no such file or directory"));
}

TEST_F(FileActionsTest, CopySymlinkIsCopiedAsASymlinkUnlessFollowed) {
  WriteFile(src_ / "real.txt", "R");
  MakeSymlink("real.txt", src_ / "link.txt");
  ASSERT_THAT(DoCopy(CopyAction("/link.txt", "/a")), IsOk());
  EXPECT_EQ(ReadLink(dst_ / "a"), "real.txt");

  pb::FileActionCopy a = CopyAction("/link.txt", "/b");
  a.set_followsymlink(true);
  ASSERT_THAT(DoCopy(a), IsOk());
  EXPECT_TRUE(S_ISREG(Lstat(dst_ / "b")->st_mode));
  EXPECT_EQ(ReadFile(dst_ / "b"), "R");
}

TEST_F(FileActionsTest, CopyFollowSymlinkAppliesOnlyToTheSourcePathNotTheTree) {
  WriteFile(src_ / "real/f", "F");
  MakeSymlink("f", src_ / "real/inner-link");
  MakeSymlink("/real", src_ / "dirlink");
  pb::FileActionCopy a = CopyAction("/dirlink", "/out");
  a.set_followsymlink(true);
  ASSERT_THAT(DoCopy(a), IsOk());
  EXPECT_TRUE(S_ISDIR(Lstat(dst_ / "out")->st_mode));
  EXPECT_EQ(ReadLink(dst_ / "out/inner-link"), "f");
}

// ---------------------------------------------------------------------------------------------
// copy: filters and metadata

TEST_F(FileActionsTest, CopyIncludePatternsCreateParentsOnlyWhenNeeded) {
  WriteFile(src_ / "app/a/keep/c.txt", "C");
  WriteFile(src_ / "app/b/other/d.txt", "D");
  WriteFile(src_ / "app/top.txt", "T");
  pb::FileActionCopy a = CopyAction("/app", "/out");
  a.set_dircopycontents(true);
  a.add_include_patterns("*/keep");
  ASSERT_THAT(DoCopy(a), IsOk());
  EXPECT_THAT(ListTree(dst_ / "out"), ElementsAre("a", "a/keep", "a/keep/c.txt"));
}

TEST_F(FileActionsTest, CopyRequiredPathsMustExist) {
  WriteFile(src_ / "app/a/b/c.txt", "C");
  pb::FileActionCopy a = CopyAction("/app", "/out");
  a.set_dircopycontents(true);
  a.add_include_patterns("a/b/c.txt");
  a.add_required_paths("/app/a/b/c.txt");
  ASSERT_THAT(DoCopy(a), IsOk());
  EXPECT_THAT(ListTree(dst_ / "out"), ElementsAre("a", "a/b", "a/b/c.txt"));
  pb::FileActionCopy missing = CopyAction("/app", "/out2");
  missing.set_dircopycontents(true);
  missing.add_include_patterns("a/nosuch.txt");
  missing.add_required_paths("/app/a/nosuch.txt");
  EXPECT_THAT(DoCopy(missing),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("/app/a/nosuch.txt")));
  EXPECT_FALSE(Lstat(dst_ / "out2").has_value());
}

TEST_F(FileActionsTest, CopyExcludePatternsWithExceptions) {
  WriteFile(src_ / "app/README.md", "R");
  WriteFile(src_ / "app/docs/a.md", "A");
  WriteFile(src_ / "app/docs/keep.md", "K");
  WriteFile(src_ / "app/node_modules/m/index.js", "M");
  WriteFile(src_ / "app/main.go", "G");
  pb::FileActionCopy a = CopyAction("/app", "/out");
  a.set_dircopycontents(true);
  a.add_exclude_patterns("node_modules");
  a.add_exclude_patterns("docs");
  a.add_exclude_patterns("!docs/keep.md");
  ASSERT_THAT(DoCopy(a), IsOk());
  EXPECT_THAT(ListTree(dst_ / "out"), ElementsAre("README.md", "docs", "docs/keep.md", "main.go"));
}

TEST_F(FileActionsTest, CopyExcludeWithoutExceptionsSkipsSubtrees) {
  WriteFile(src_ / "app/keep.txt", "K");
  WriteFile(src_ / "app/skip/deep/x", "X");
  pb::FileActionCopy a = CopyAction("/app", "/out");
  a.set_dircopycontents(true);
  a.add_exclude_patterns("skip");
  a.add_exclude_patterns("*.log");
  ASSERT_THAT(DoCopy(a), IsOk());
  EXPECT_THAT(ListTree(dst_ / "out"), ElementsAre("keep.txt"));
}

TEST_F(FileActionsTest, CopyRejectsInvalidPatterns) {
  WriteFile(src_ / "a", "A");
  pb::FileActionCopy a = CopyAction("/a", "/b");
  a.add_include_patterns("[");
  EXPECT_THAT(DoCopy(a), StatusIs(absl::StatusCode::kInvalidArgument,
                                  HasSubstr("invalid includepatterns: [[]")));
  EXPECT_THAT(ListTree(dst_.path()), IsEmpty());
}

TEST_F(FileActionsTest, CopyNumericModeOverridesEveryEntry) {
  WriteFile(src_ / "d/f", "F", 0600);
  MakeDirs(src_ / "d/sub", 0700);
  pb::FileActionCopy a = CopyAction("/d", "/out/d");
  a.set_mode(04751);
  a.set_createdestpath(true);
  ASSERT_THAT(DoCopy(a), IsOk());
  EXPECT_EQ(Perm(dst_ / "out/d/f"), 04751u);
  EXPECT_EQ(Perm(dst_ / "out/d/sub"), 04751u);
  EXPECT_EQ(Perm(dst_ / "out/d"), 04751u);
  EXPECT_EQ(Perm(dst_ / "out"), 0751u);  // made by MkdirAll with the numeric mode, like fsutil
}

TEST_F(FileActionsTest, CopySymbolicModeStr) {
  WriteFile(src_ / "d/f", "F", 0664);
  WriteFile(src_ / "d/x", "X", 0744);
  pb::FileActionCopy a = CopyAction("/d", "/out");
  a.set_dircopycontents(true);
  a.set_modestr("u+x,g-w,o=");
  ASSERT_THAT(DoCopy(a), IsOk());
  EXPECT_EQ(Perm(dst_ / "out/f"), 0740u);
  EXPECT_EQ(Perm(dst_ / "out/x"), 0740u);

  a.set_modestr("a+X");
  a.set_dest("/out2");
  ASSERT_THAT(DoCopy(a), IsOk());
  EXPECT_EQ(Perm(dst_ / "out2/f"), 0664u);  // not executable by anyone: X adds nothing
  EXPECT_EQ(Perm(dst_ / "out2/x"), 0755u);

  a.set_modestr("u+q");
  EXPECT_THAT(DoCopy(a), StatusIs(absl::StatusCode::kInvalidArgument,
                                  "copy /d: invalid mode \"u+q\": invalid syntax"));
}

TEST_F(FileActionsTest, CopyTimestampOverrideAppliesToEverythingItMade) {
  WriteFile(src_ / "d/f", "F");
  WriteFile(src_ / "d/sub/g", "G");
  pb::FileActionCopy a = CopyAction("/d", "/x/y/");
  a.set_timestamp(kTs);
  a.set_createdestpath(true);
  ASSERT_THAT(DoCopy(a), IsOk());
  for (const char* p : {"x", "x/y", "x/y/d", "x/y/d/f", "x/y/d/sub", "x/y/d/sub/g"}) {
    EXPECT_EQ(MtimeNs(dst_ / p), kTs) << p;
  }
}

TEST_F(FileActionsTest, CopyKeepsSourceTimesByDefault) {
  WriteFile(src_ / "d/f", "F");
  struct timespec times[2] = {{1000, 5}, {2000, 7}};
  ASSERT_EQ(utimensat(AT_FDCWD, (src_ / "d/f").c_str(), times, 0), 0);
  ASSERT_EQ(utimensat(AT_FDCWD, (src_ / "d").c_str(), times, 0), 0);
  ASSERT_THAT(DoCopy(CopyAction("/d", "/d")), IsOk());
  EXPECT_EQ(MtimeNs(dst_ / "d/f"), 2000000000007);
  EXPECT_EQ(Lstat(dst_ / "d/f")->st_atim.tv_sec, 1000);
  EXPECT_EQ(MtimeNs(dst_ / "d"), 2000000000007);  // after its children were written
}

TEST_F(FileActionsTest, CopyPreservesHardlinksWithinOneCopy) {
  WriteFile(src_ / "d/a", "shared");
  ASSERT_EQ(link((src_ / "d/a").c_str(), (src_ / "d/b").c_str()), 0);
  WriteFile(src_ / "d/sub/c", "other");
  ASSERT_EQ(link((src_ / "d/a").c_str(), (src_ / "d/sub/c2").c_str()), 0);
  ASSERT_THAT(DoCopy(CopyAction("/d", "/out")), IsOk());
  EXPECT_EQ(Lstat(dst_ / "out/a")->st_ino, Lstat(dst_ / "out/b")->st_ino);
  EXPECT_EQ(Lstat(dst_ / "out/a")->st_ino, Lstat(dst_ / "out/sub/c2")->st_ino);
  EXPECT_EQ(Lstat(dst_ / "out/a")->st_nlink, 3u);
  EXPECT_NE(Lstat(dst_ / "out/a")->st_ino, Lstat(src_ / "d/a")->st_ino);
}

TEST_F(FileActionsTest, CopySpecialFiles) {
  ASSERT_EQ(mkfifo((src_ / "fifo").c_str(), 0640), 0);
  {
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    struct sockaddr_un addr {};
    addr.sun_family = AF_UNIX;
    const std::string sp = src_ / "sock";
    ASSERT_LT(sp.size(), sizeof(addr.sun_path));
    std::strncpy(addr.sun_path, sp.c_str(), sizeof(addr.sun_path) - 1);
    ASSERT_EQ(bind(fd, reinterpret_cast<struct sockaddr*>(&addr), sizeof(addr)), 0);
    close(fd);
  }
  if (IsRoot()) {
    ASSERT_EQ(mknod((src_ / "null").c_str(), S_IFCHR | 0666, makedev(1, 3)), 0);
  }
  pb::FileActionCopy a = CopyAction("/", "/out");
  a.set_dircopycontents(true);
  ASSERT_THAT(DoCopy(a), IsOk());
  EXPECT_TRUE(S_ISFIFO(Lstat(dst_ / "out/fifo")->st_mode));
  EXPECT_EQ(Perm(dst_ / "out/fifo"), 0640u);
  EXPECT_TRUE(S_ISREG(Lstat(dst_ / "out/sock")->st_mode));  // a stub, like fsutil
  EXPECT_EQ(Lstat(dst_ / "out/sock")->st_size, 0);
  if (IsRoot()) {
    EXPECT_TRUE(S_ISCHR(Lstat(dst_ / "out/null")->st_mode));
    EXPECT_EQ(Lstat(dst_ / "out/null")->st_rdev, makedev(1, 3));
  }
}

TEST_F(FileActionsTest, CopyXattrsBestEffort) {
  WriteFile(src_ / "f", "F");
  if (setxattr((src_ / "f").c_str(), "user.kiln", "v1", 2, 0) != 0) {
    GTEST_SKIP() << "user xattrs unsupported here";
  }
  ASSERT_THAT(DoCopy(CopyAction("/f", "/g")), IsOk());
  char buf[16] = {};
  ASSERT_EQ(getxattr((dst_ / "g").c_str(), "user.kiln", buf, sizeof(buf)), 2);
  EXPECT_EQ(std::string(buf, 2), "v1");
}

TEST_F(FileActionsTest, CopyKeepsSourceOwnershipOrAppliesOwner) {
  if (!IsRoot()) GTEST_SKIP() << "chown needs root";
  WriteFile(src_ / "d/f", "F");
  ASSERT_EQ(lchown((src_ / "d/f").c_str(), 1500, 1600), 0);
  ASSERT_THAT(DoCopy(CopyAction("/d", "/keep")), IsOk());
  EXPECT_EQ(Lstat(dst_ / "keep/f")->st_uid, 1500u);
  EXPECT_EQ(Lstat(dst_ / "keep/f")->st_gid, 1600u);

  WriteFile(dst_ / "etc/passwd", "app:x:1234:2345::/app:/bin/sh\n");
  WriteFile(dst_ / "etc/group", "web:x:99:\n");
  pb::FileActionCopy a = CopyAction("/d", "/owned/");
  a.mutable_owner()->mutable_user()->mutable_byname()->set_name("app");
  a.mutable_owner()->mutable_group()->mutable_byname()->set_name("web");
  ASSERT_THAT(DoCopy(a), IsOk());
  for (const char* p : {"owned", "owned/d", "owned/d/f"}) {
    EXPECT_EQ(Lstat(dst_ / p)->st_uid, 1234u) << p;
    EXPECT_EQ(Lstat(dst_ / p)->st_gid, 99u) << p;
  }
}

TEST_F(FileActionsTest, CopyStopsWhenCancelled) {
  WriteFile(src_ / "d/f", "F");
  Context ctx;
  ctx.Cancel();
  EXPECT_THAT(Copy(ctx, src_.path(), dst_.path(), CopyAction("/d", "/out")),
              StatusIs(absl::StatusCode::kCancelled, HasSubstr("cancelled")));
}

TEST_F(FileActionsTest, CopyRejectsRelativeRoots) {
  EXPECT_THAT(Copy(ctx_, "relative/src", dst_.path(), CopyAction("/a", "/b")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("absolute path")));
}

TEST_F(FileActionsTest, CopyRefusesToCopyADirectoryIntoItself) {
  WriteFile(dst_ / "a/f", "F");
  pb::FileActionCopy a = CopyAction("/a", "/a/b");
  EXPECT_THAT(Copy(ctx_, dst_.path(), dst_.path(), a),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("into itself")));
}

// ---------------------------------------------------------------------------------------------
// copy: archives (ADD)

TEST_F(FileActionsTest, CopyUnpacksArchivesWhenAsked) {
  const std::vector<TarEntry> entries = {
      {TarEntry::Type::kDir, "pkg/", "", "", 0750, 0, 0, 1500000000},
      {TarEntry::Type::kFile, "pkg/a.txt", "alpha", "", 0640, 0, 0, 1500000001},
      {TarEntry::Type::kSymlink, "pkg/l", "", "a.txt", 0777, 0, 0, 1500000002},
      {TarEntry::Type::kHardlink, "pkg/h", "", "pkg/a.txt", 0640, 0, 0, 1500000001},
      {TarEntry::Type::kFile, "implied/dir/f", "f", "", 0600, 0, 0, 1500000003},
  };
  WriteTar(src_ / "plain.tar", entries);
  WriteTar(src_ / "pkg.tar.gz", entries, /*gzip=*/true);
  if (!IsRoot()) GTEST_SKIP() << "entries are owned by uid 0";
  for (const char* name : {"/plain.tar", "/pkg.tar.gz"}) {
    pb::FileActionCopy a = CopyAction(name, "/x/");
    a.set_attemptunpackdockercompatibility(true);
    ASSERT_THAT(DoCopy(a), IsOk()) << name;
    EXPECT_EQ(ReadFile(dst_ / "x/pkg/a.txt"), "alpha");
    EXPECT_EQ(Perm(dst_ / "x/pkg/a.txt"), 0640u);
    EXPECT_EQ(Perm(dst_ / "x/pkg"), 0750u);
    EXPECT_EQ(Lstat(dst_ / "x/pkg")->st_mtim.tv_sec, 1500000000);
    EXPECT_EQ(ReadLink(dst_ / "x/pkg/l"), "a.txt");
    EXPECT_EQ(Lstat(dst_ / "x/pkg/h")->st_ino, Lstat(dst_ / "x/pkg/a.txt")->st_ino);
    EXPECT_EQ(Perm(dst_ / "x/implied"), 0755u);
    EXPECT_EQ(ReadFile(dst_ / "x/implied/dir/f"), "f");
  }
}

TEST_F(FileActionsTest, CopyUnpackAppliesTheOwnerOverride) {
  if (!IsRoot()) GTEST_SKIP() << "chown needs root";
  WriteTar(src_ / "a.tar", {{TarEntry::Type::kFile, "f", "x", "", 0644, 5, 6, 1500000000}});
  pb::FileActionCopy a = CopyAction("/a.tar", "/out");
  a.set_attemptunpackdockercompatibility(true);
  ASSERT_THAT(DoCopy(a), IsOk());
  EXPECT_EQ(Lstat(dst_ / "out/f")->st_uid, 5u);
  a.set_dest("/out2");
  a.mutable_owner()->mutable_user()->set_byid(77);
  ASSERT_THAT(DoCopy(a), IsOk());
  EXPECT_EQ(Lstat(dst_ / "out2/f")->st_uid, 77u);
  EXPECT_EQ(Lstat(dst_ / "out2")->st_uid, 77u);
}

TEST_F(FileActionsTest, CopyWithUnpackCopiesNonArchivesAsFiles) {
  WriteFile(src_ / "notes.tar", "this is not a tar archive");
  WriteFile(src_ / "empty.tar", "");
  WriteFile(src_ / "zeros.tar", std::string(2048, '\0'));
  WriteGzip(src_ / "notes.txt.gz", "compressed, but not a tar archive");
  MakeDirs(dst_ / "out");
  for (const char* name : {"/notes.tar", "/empty.tar", "/zeros.tar", "/notes.txt.gz"}) {
    pb::FileActionCopy a = CopyAction(name, "/out/");
    a.set_attemptunpackdockercompatibility(true);
    ASSERT_THAT(DoCopy(a), IsOk()) << name;
    EXPECT_EQ(ReadFile(dst_.path() + "/out" + name), ReadFile(src_.path() + name)) << name;
  }
}

TEST_F(FileActionsTest, CopyWithoutUnpackCopiesArchivesAsFiles) {
  WriteTar(src_ / "a.tar", {{TarEntry::Type::kFile, "f", "x", "", 0644, 0, 0, 1500000000}});
  ASSERT_THAT(DoCopy(CopyAction("/a.tar", "/a.tar")), IsOk());
  EXPECT_EQ(ReadFile(dst_ / "a.tar"), ReadFile(src_ / "a.tar"));
}

}  // namespace
}  // namespace kiln::ops
