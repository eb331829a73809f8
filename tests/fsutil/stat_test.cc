#include "fsutil/stat.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstring>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/fsutil/test_util.h"
#include "tests/testutil/status_matchers.h"

namespace kiln::fsutil {
namespace {

using ::kiln::fsutil::testing::SetMtime;
using ::kiln::fsutil::testing::TempDir;
using ::kiln::fsutil::testing::WriteFile;
using ::kiln::testing::IsOk;
using ::kiln::testing::StatusIs;

TEST(StatTest, GoFileModeBitsAreGos) {
  EXPECT_EQ(kModeDir, 0x80000000u);
  EXPECT_EQ(kModeSymlink, 1u << 27);
  EXPECT_EQ(kModeDevice, 1u << 26);
  EXPECT_EQ(kModeNamedPipe, 1u << 25);
  EXPECT_EQ(kModeSocket, 1u << 24);
  EXPECT_EQ(kModeSetuid, 1u << 23);
  EXPECT_EQ(kModeSetgid, 1u << 22);
  EXPECT_EQ(kModeCharDevice, 1u << 21);
  EXPECT_EQ(kModeSticky, 1u << 20);
  EXPECT_EQ(kModeIrregular, 1u << 19);
}

TEST(StatTest, PosixToGoMode) {
  EXPECT_EQ(GoModeFromPosix(S_IFREG | 0644), 0644u);
  EXPECT_EQ(GoModeFromPosix(S_IFDIR | 0755), kModeDir | 0755);
  EXPECT_EQ(GoModeFromPosix(S_IFLNK | 0777), kModeSymlink | 0777);
  EXPECT_EQ(GoModeFromPosix(S_IFIFO | 0600), kModeNamedPipe | 0600);
  EXPECT_EQ(GoModeFromPosix(S_IFSOCK | 0755), kModeSocket | 0755);
  EXPECT_EQ(GoModeFromPosix(S_IFBLK | 0660), kModeDevice | 0660);
  EXPECT_EQ(GoModeFromPosix(S_IFCHR | 0666), kModeDevice | kModeCharDevice | 0666);
  EXPECT_EQ(GoModeFromPosix(S_IFREG | S_ISUID | S_ISGID | 0755), kModeSetuid | kModeSetgid | 0755);
  EXPECT_EQ(GoModeFromPosix(S_IFDIR | S_ISVTX | 0777), kModeDir | kModeSticky | 0777);
}

TEST(StatTest, GoToPosixModeRoundTrips) {
  for (mode_t type : {S_IFREG, S_IFDIR, S_IFLNK, S_IFIFO, S_IFSOCK, S_IFBLK, S_IFCHR}) {
    for (mode_t perm : {0000, 0644, 0755, 04755, 02755, 01777, 07777}) {
      const mode_t mode = type | perm;
      EXPECT_EQ(PosixModeFromGo(GoModeFromPosix(mode)), mode) << std::oct << mode;
    }
  }
  EXPECT_EQ(PosixPermFromGo(kModeDir | kModeSetgid | 0750), static_cast<mode_t>(S_ISGID | 0750));
  EXPECT_EQ(PosixModeFromGo(kModeIrregular | 0600), static_cast<mode_t>(S_IFREG | 0600));
}

TEST(StatTest, DeviceNumbersUseFsutilSplit) {
  const uint64_t rdev = makedev(8, 17);
  EXPECT_EQ(DevMajor(rdev), 8);
  EXPECT_EQ(DevMinor(rdev), 17);
  const uint64_t big = makedev(259, 300000);
  EXPECT_EQ(DevMajor(big), 259);
  EXPECT_EQ(DevMinor(big), 300000);
}

TEST(StatTest, StatsFilesDirsAndSymlinks) {
  TempDir dir;
  WriteFile(dir.Sub("d/file"), "hello", 0640);
  SetMtime(dir.Sub("d/file"), 1234567890123456789);
  ASSERT_EQ(symlink("../elsewhere", dir.Sub("d/link").c_str()), 0);

  absl::StatusOr<::fsutil::types::Stat> file = StatPath(dir.path(), "d/file");
  ASSERT_THAT(file, IsOk());
  EXPECT_EQ(file->path(), "d/file");
  EXPECT_EQ(file->mode(), 0640u);
  EXPECT_EQ(file->size(), 5);
  EXPECT_EQ(file->modtime(), 1234567890123456789);
  EXPECT_EQ(file->uid(), geteuid());
  EXPECT_EQ(file->gid(), getegid());
  EXPECT_TRUE(IsRegular(*file));

  absl::StatusOr<::fsutil::types::Stat> d = StatPath(dir.path(), "./d/");
  ASSERT_THAT(d, IsOk());
  EXPECT_EQ(d->path(), "d");
  EXPECT_TRUE(IsDir(*d));
  EXPECT_EQ(d->size(), 0);  // directories carry no size

  absl::StatusOr<::fsutil::types::Stat> link = StatPath(dir.path(), "d/link");
  ASSERT_THAT(link, IsOk());
  EXPECT_TRUE(IsSymlink(*link));
  EXPECT_EQ(link->linkname(), "../elsewhere");
  EXPECT_EQ(link->size(), static_cast<int64_t>(strlen("../elsewhere")));

  absl::StatusOr<::fsutil::types::Stat> root = StatPath(dir.path(), "");
  ASSERT_THAT(root, IsOk());
  EXPECT_TRUE(IsDir(*root));
}

TEST(StatTest, FifoAndSocket) {
  TempDir dir;
  ASSERT_EQ(mkfifo(dir.Sub("fifo").c_str(), 0600), 0);
  absl::StatusOr<::fsutil::types::Stat> fifo = StatPath(dir.path(), "fifo");
  ASSERT_THAT(fifo, IsOk());
  EXPECT_EQ(fifo->mode(), kModeNamedPipe | 0600);

  const int s = socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(s, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const std::string path = dir.Sub("sock");
  ASSERT_LT(path.size(), sizeof(addr.sun_path));
  strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  ASSERT_EQ(bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  absl::StatusOr<::fsutil::types::Stat> sock = StatPath(dir.path(), "sock");
  close(s);
  ASSERT_THAT(sock, IsOk());
  // fsutil clears the socket bit: sockets travel as (empty) regular files.
  EXPECT_EQ(sock->mode() & kModeType, 0u);
}

TEST(StatTest, ReadsXattrsWhenSupported) {
  TempDir dir;
  WriteFile(dir.Sub("f"), "x");
  if (setxattr(dir.Sub("f").c_str(), "user.kiln", "v1", 2, 0) != 0) {
    GTEST_SKIP() << "user xattrs not supported here";
  }
  absl::StatusOr<::fsutil::types::Stat> st = StatPath(dir.path(), "f");
  ASSERT_THAT(st, IsOk());
  ASSERT_EQ(st->xattrs().count("user.kiln"), 1u);
  EXPECT_EQ(st->xattrs().at("user.kiln"), "v1");
  absl::StatusOr<::fsutil::types::Stat> bare =
      StatPath(dir.path(), "f", StatOptions{.xattrs = false});
  ASSERT_THAT(bare, IsOk());
  EXPECT_TRUE(bare->xattrs().empty());
}

TEST(StatTest, RefusesPathsOutsideRootAndThroughSymlinks) {
  TempDir dir;
  WriteFile(dir.Sub("outside/secret"), "s");
  testing::MakeDirs(dir.Sub("root"));
  ASSERT_EQ(symlink("../outside", dir.Sub("root/link").c_str()), 0);
  EXPECT_THAT(StatPath(dir.Sub("root"), "../outside/secret"),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  EXPECT_THAT(StatPath(dir.Sub("root"), "link/secret"),
              StatusIs(absl::StatusCode::kFailedPrecondition, ::testing::_));
  EXPECT_THAT(StatPath(dir.Sub("root"), "missing"),
              StatusIs(absl::StatusCode::kNotFound, ::testing::_));
}

}  // namespace
}  // namespace kiln::fsutil
