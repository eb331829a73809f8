#include "fsutil/diffcopy.h"

#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <set>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "fsutil/stat.h"
#include "tests/fsutil/test_util.h"
#include "tests/testutil/status_matchers.h"

namespace kiln::fsutil {
namespace {

using ::fsutil::types::Packet;
using ::fsutil::types::Stat;
using ::kiln::fsutil::testing::DumpTree;
using ::kiln::fsutil::testing::Exists;
using ::kiln::fsutil::testing::MakeDirs;
using ::kiln::fsutil::testing::MakePipe;
using ::kiln::fsutil::testing::ReadFile;
using ::kiln::fsutil::testing::SetMtime;
using ::kiln::fsutil::testing::Sync;
using ::kiln::fsutil::testing::SyncResult;
using ::kiln::fsutil::testing::TempDir;
using ::kiln::fsutil::testing::WriteFile;
using ::kiln::testing::IsOk;
using ::kiln::testing::StatusIs;
using ::testing::HasSubstr;

constexpr int64_t kTime = 1700000000123456789;

class DiffCopyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    MakeDirs(src());
    MakeDirs(dst());
  }
  std::string src(std::string_view rel = "") const {
    return rel.empty() ? tmp_.Sub("src") : tmp_.Sub("src/" + std::string(rel));
  }
  std::string dst(std::string_view rel = "") const {
    return rel.empty() ? tmp_.Sub("dst") : tmp_.Sub("dst/" + std::string(rel));
  }

  // A tree with every kind of entry a context has.
  void MakeSource() {
    WriteFile(src("Dockerfile"), "FROM scratch\nCOPY . /\n", 0644);
    WriteFile(src("bin/run.sh"), "#!/bin/sh\necho hi\n", 0755);
    WriteFile(src("secret/key"), "k", 0600);
    WriteFile(src("deep/a/b/c/d/e.txt"), "deep", 0644);
    std::string big;
    for (int i = 0; i < 300000; ++i) big.push_back(static_cast<char>('a' + i % 26));
    WriteFile(src("big.bin"), big);  // several 32 KiB chunks
    WriteFile(src("empty-file"), "");
    MakeDirs(src("empty-dir"));
    ASSERT_EQ(symlink("bin/run.sh", src("run").c_str()), 0);
    ASSERT_EQ(symlink("/nonexistent/abs", src("abs-link").c_str()), 0);
    ASSERT_EQ(symlink("../../outside", src("deep/escape").c_str()), 0);
    ASSERT_EQ(link(src("Dockerfile").c_str(), src("deep/hardlink").c_str()), 0);
    ASSERT_EQ(mkfifo(src("fifo").c_str(), 0640), 0);
    ASSERT_EQ(chmod(src("bin").c_str(), 0750), 0);
    ASSERT_EQ(chmod(src("secret/key").c_str(), 04600), 0);
    for (const char* p : {"Dockerfile", "bin/run.sh", "secret/key", "deep/a/b/c/d/e.txt", "big.bin",
                          "empty-file", "empty-dir", "fifo", "deep/a/b/c/d", "deep/a/b/c",
                          "deep/a/b", "deep/a", "deep", "bin", "secret"}) {
      SetMtime(src(p), kTime);
    }
    SetMtime(src("run"), kTime + 5);
  }

  SyncResult Run(const SendOptions& so = {}, const ReceiveOptions& ro = {}) {
    return Sync(src(), dst(), so, ro);
  }

  TempDir tmp_;
};

TEST_F(DiffCopyTest, FullSyncReproducesTheTree) {
  MakeSource();
  SyncResult r = Run();
  ASSERT_THAT(r.send, IsOk());
  ASSERT_THAT(r.receive, IsOk());
  EXPECT_EQ(DumpTree(dst()), DumpTree(src()));
  EXPECT_EQ(ReadFile(dst("big.bin")), ReadFile(src("big.bin")));
  EXPECT_EQ(ReadFile(dst("bin/run.sh")), "#!/bin/sh\necho hi\n");
  EXPECT_EQ(r.receive->files_requested, 6u);  // regular files; the hard link is made locally
  EXPECT_EQ(r.receive->bytes_received, 300000u + 22 + 18 + 1 + 4);
  EXPECT_EQ(r.receive->entries_deleted, 0u);

  struct stat a, b;
  ASSERT_EQ(lstat(dst("Dockerfile").c_str(), &a), 0);
  ASSERT_EQ(lstat(dst("deep/hardlink").c_str(), &b), 0);
  EXPECT_EQ(a.st_ino, b.st_ino);
  ASSERT_EQ(lstat(dst("secret/key").c_str(), &a), 0);
  EXPECT_EQ(a.st_mode & 07777, 04600u);
  ASSERT_EQ(lstat(dst("bin").c_str(), &a), 0);
  EXPECT_EQ(a.st_mode & 07777, 0750u);
  EXPECT_EQ(a.st_mtim.tv_sec * 1000000000 + a.st_mtim.tv_nsec, kTime);
  EXPECT_TRUE(S_ISFIFO((lstat(dst("fifo").c_str(), &a), a.st_mode)));
  EXPECT_FALSE(Exists(tmp_.Sub("outside")));
}

TEST_F(DiffCopyTest, ResyncTransfersOnlyWhatChanged) {
  MakeSource();
  ASSERT_THAT(Run().receive, IsOk());

  SyncResult again = Run();
  ASSERT_THAT(again.receive, IsOk());
  EXPECT_EQ(again.receive->files_requested, 0u);
  EXPECT_EQ(again.receive->bytes_received, 0u);

  WriteFile(src("deep/a/b/c/d/e.txt"), "changed!");
  SetMtime(src("deep/a/b/c/d/e.txt"), kTime + 1);
  SetMtime(src("deep/a/b/c/d"), kTime);
  std::vector<std::pair<ChangeKind, std::string>> changes;
  ReceiveOptions ro;
  ro.notify = [&](ChangeKind k, std::string_view p) { changes.emplace_back(k, std::string(p)); };
  SyncResult one = Run({}, ro);
  ASSERT_THAT(one.receive, IsOk());
  EXPECT_EQ(one.receive->files_requested, 1u);
  EXPECT_EQ(one.receive->bytes_received, 8u);
  EXPECT_EQ(ReadFile(dst("deep/a/b/c/d/e.txt")), "changed!");
  EXPECT_EQ(changes, (std::vector<std::pair<ChangeKind, std::string>>{
                         {ChangeKind::kModify, "deep/a/b/c/d/e.txt"}}));
  EXPECT_EQ(DumpTree(dst()), DumpTree(src()));

  // A metadata-only change is applied without transferring data... except that fsutil's diff
  // sees a mode change as a change of the entry, and files are re-sent whole.
  ASSERT_EQ(chmod(src("big.bin").c_str(), 0600), 0);
  SyncResult mode = Run();
  ASSERT_THAT(mode.receive, IsOk());
  EXPECT_EQ(mode.receive->files_requested, 1u);
  EXPECT_EQ(DumpTree(dst()), DumpTree(src()));
}

TEST_F(DiffCopyTest, DeletionsAndTypeChanges) {
  MakeSource();
  ASSERT_THAT(Run().receive, IsOk());
  // Leftovers in the destination that the sender never had go too.
  WriteFile(dst("stray/file"), "x");
  ASSERT_EQ(std::filesystem::remove_all(src("deep")), 8u);
  ASSERT_EQ(unlink(src("empty-file").c_str()), 0);
  // file → directory, directory → symlink, symlink → file
  ASSERT_EQ(unlink(src("Dockerfile").c_str()), 0);
  WriteFile(src("Dockerfile/inner"), "now a dir");
  std::filesystem::remove_all(src("bin"));
  ASSERT_EQ(symlink("secret", src("bin").c_str()), 0);
  ASSERT_EQ(unlink(src("run").c_str()), 0);
  WriteFile(src("run"), "plain");

  SyncResult r = Run();
  ASSERT_THAT(r.send, IsOk());
  ASSERT_THAT(r.receive, IsOk());
  EXPECT_EQ(DumpTree(dst()), DumpTree(src()));
  EXPECT_FALSE(Exists(dst("deep")));
  EXPECT_FALSE(Exists(dst("stray")));
  EXPECT_EQ(r.receive->entries_deleted, 3u);  // deep, empty-file, stray (directories count once)
  EXPECT_EQ(ReadFile(dst("Dockerfile/inner")), "now a dir");
  EXPECT_EQ(ReadFile(dst("run")), "plain");
}

TEST_F(DiffCopyTest, EmptySourceEmptiesTheDestination) {
  WriteFile(dst("old/file"), "x");
  SyncResult r = Run();
  ASSERT_THAT(r.receive, IsOk());
  EXPECT_EQ(DumpTree(dst()), "");
}

TEST_F(DiffCopyTest, MergeKeepsExistingEntriesAndResendsFiles) {
  MakeSource();
  WriteFile(dst("mine"), "keep me");
  WriteFile(dst("Dockerfile"), "old");
  SyncResult r = Run({}, ReceiveOptions{.merge = true});
  ASSERT_THAT(r.receive, IsOk());
  EXPECT_EQ(ReadFile(dst("mine")), "keep me");
  EXPECT_EQ(ReadFile(dst("Dockerfile")), ReadFile(src("Dockerfile")));
  SyncResult again = Run({}, ReceiveOptions{.merge = true});
  ASSERT_THAT(again.receive, IsOk());
  EXPECT_EQ(again.receive->files_requested, 6u);
}

TEST_F(DiffCopyTest, SenderFiltersApply) {
  MakeSource();
  SendOptions so;
  so.exclude_patterns = {"deep", "*.bin"};
  so.include_patterns = {"bin", "deep", "big.bin", "Dockerfile", "run"};
  so.follow_paths = {"run"};
  SyncResult r = Run(so);
  ASSERT_THAT(r.receive, IsOk());
  EXPECT_EQ(DumpTree(dst()).find("deep"), std::string::npos);
  EXPECT_TRUE(Exists(dst("bin/run.sh")));
  EXPECT_TRUE(Exists(dst("Dockerfile")));
  EXPECT_FALSE(Exists(dst("big.bin")));
  EXPECT_FALSE(Exists(dst("secret")));
}

TEST_F(DiffCopyTest, ReceiveFilterRewritesOwnersAndLeavesOutEntries) {
  MakeSource();
  ReceiveOptions ro;
  std::set<std::string> seen;
  ro.filter = [&](std::string_view path, Stat* st) {
    seen.insert(std::string(path));
    st->set_uid(geteuid());
    st->set_gid(getegid());
    return path != "secret";
  };
  SyncResult r = Run({}, ro);
  ASSERT_THAT(r.receive, IsOk());
  EXPECT_FALSE(Exists(dst("secret")));
  EXPECT_EQ(seen.count("secret/key"), 0u);  // a left-out directory's contents are not offered
  EXPECT_TRUE(Exists(dst("bin/run.sh")));
}

TEST_F(DiffCopyTest, ProgressIsCumulativeAndFinal) {
  MakeSource();
  std::vector<std::pair<int64_t, bool>> sent, received;
  SendOptions so;
  so.progress = [&](int64_t b, bool last) { sent.emplace_back(b, last); };
  ReceiveOptions ro;
  ro.progress = [&](int64_t b, bool last) { received.emplace_back(b, last); };
  SyncResult r = Run(so, ro);
  ASSERT_THAT(r.receive, IsOk());
  ASSERT_FALSE(sent.empty());
  ASSERT_FALSE(received.empty());
  EXPECT_TRUE(sent.back().second);
  EXPECT_TRUE(received.back().second);
  EXPECT_GT(received.back().first, 300000);
  for (size_t i = 1; i < received.size(); ++i) EXPECT_GE(received[i].first, received[i - 1].first);
}

TEST_F(DiffCopyTest, XattrsTravel) {
  WriteFile(src("f"), "x");
  if (setxattr(src("f").c_str(), "user.kiln", "v", 1, 0) != 0) GTEST_SKIP() << "no user xattrs";
  ASSERT_THAT(Run().receive, IsOk());
  char buf[8];
  ASSERT_EQ(getxattr(dst("f").c_str(), "user.kiln", buf, sizeof(buf)), 1);
  EXPECT_EQ(buf[0], 'v');
}

TEST_F(DiffCopyTest, DevicesWhenPrivileged) {
  if (geteuid() != 0) GTEST_SKIP() << "mknod needs root";
  if (mknod(src("null").c_str(), S_IFCHR | 0666, makedev(1, 3)) != 0) GTEST_SKIP() << "no mknod";
  SetMtime(src("null"), kTime);
  SyncResult r = Run();
  ASSERT_THAT(r.receive, IsOk());
  struct stat st;
  ASSERT_EQ(lstat(dst("null").c_str(), &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_EQ(major(st.st_rdev), 1u);
  EXPECT_EQ(minor(st.st_rdev), 3u);
}

TEST_F(DiffCopyTest, ReadOnlyDirectoriesAreFilledAndRestored) {
  WriteFile(src("ro/inner/file"), "x");
  ASSERT_EQ(chmod(src("ro/inner").c_str(), 0555), 0);
  ASSERT_EQ(chmod(src("ro").c_str(), 0500), 0);
  ASSERT_THAT(Run().receive, IsOk());
  EXPECT_EQ(DumpTree(dst()), DumpTree(src()));
  // Second round: existing read-only directories must not block updates.
  ASSERT_EQ(chmod(src("ro/inner").c_str(), 0755), 0);
  ASSERT_EQ(chmod(src("ro").c_str(), 0755), 0);
  WriteFile(src("ro/inner/file2"), "y");
  ASSERT_EQ(chmod(src("ro/inner").c_str(), 0555), 0);
  ASSERT_EQ(chmod(src("ro").c_str(), 0500), 0);
  ASSERT_THAT(Run().receive, IsOk());
  EXPECT_EQ(DumpTree(dst()), DumpTree(src()));
  // A destination directory without any permission (say, from an earlier sync) does not block
  // the next one.
  ASSERT_EQ(chmod(src("ro/inner").c_str(), 0755), 0);
  WriteFile(src("ro/inner/closed/file"), "z");
  ASSERT_EQ(chmod(src("ro/inner").c_str(), 0555), 0);
  ASSERT_EQ(chmod(dst("ro").c_str(), 0700), 0);
  ASSERT_EQ(chmod(dst("ro/inner").c_str(), 0700), 0);
  WriteFile(dst("ro/inner/closed/file"), "old");
  ASSERT_EQ(chmod(dst("ro/inner/closed").c_str(), 0), 0);
  ASSERT_THAT(Run().receive, IsOk());
  EXPECT_EQ(DumpTree(dst()), DumpTree(src()));
  EXPECT_EQ(ReadFile(dst("ro/inner/closed/file")), "z");
  chmod(src("ro").c_str(), 0755);
  chmod(src("ro/inner").c_str(), 0755);
}

TEST_F(DiffCopyTest, SourceMustExist) {
  SyncResult r = Sync(tmp_.Sub("missing"), dst());
  EXPECT_THAT(r.send, StatusIs(absl::StatusCode::kNotFound, ::testing::_));
  EXPECT_THAT(r.receive, StatusIs(absl::StatusCode::kAborted, HasSubstr("error from sender")));
}

TEST_F(DiffCopyTest, DestinationMustExist) {
  MakeSource();
  SyncResult r = Sync(src(), tmp_.Sub("missing"));
  EXPECT_THAT(r.receive, StatusIs(absl::StatusCode::kNotFound, ::testing::_));
  EXPECT_FALSE(r.send.ok());
}

// ---------------------------------------------------------------------------------------------
// A scripted, possibly malicious, peer.

Packet StatPacket(const std::string& path, uint32_t mode, const std::string& linkname = "",
                  int64_t size = 0) {
  Packet p;
  p.set_type(Packet::PACKET_STAT);
  Stat* st = p.mutable_stat();
  st->set_path(path);
  st->set_mode(mode);
  st->set_uid(geteuid());
  st->set_gid(getegid());
  st->set_size(size);
  st->set_modtime(kTime);
  st->set_linkname(linkname);
  return p;
}

Packet EndOfStats() {
  Packet p;
  p.set_type(Packet::PACKET_STAT);
  return p;
}

// Sends `script`, then answers requests with `contents[id]` and FIN with FIN.
class FakeSender {
 public:
  FakeSender(PacketStream& stream, std::vector<Packet> script,
             std::map<uint32_t, std::string> contents, bool hang_up)
      : stream_(stream),
        script_(std::move(script)),
        contents_(std::move(contents)),
        hang_up_(hang_up) {}

  void Run() {
    for (const Packet& p : script_) {
      if (!stream_.Send(p).ok()) return;
    }
    if (hang_up_) return;
    Packet in;
    while (stream_.Recv(&in).ok()) {
      if (in.type() == Packet::PACKET_REQ) {
        requested.push_back(in.id());
        Packet data;
        data.set_type(Packet::PACKET_DATA);
        data.set_id(in.id());
        data.set_data(contents_[in.id()]);
        if (!data.data().empty() && !stream_.Send(data).ok()) return;
        data.clear_data();
        if (!stream_.Send(data).ok()) return;
      } else if (in.type() == Packet::PACKET_FIN) {
        Packet fin;
        fin.set_type(Packet::PACKET_FIN);
        (void)stream_.Send(fin);
        return;
      } else if (in.type() == Packet::PACKET_ERR) {
        error = in.data();
        return;
      }
    }
  }

  std::vector<uint32_t> requested;
  std::string error;

 private:
  PacketStream& stream_;
  std::vector<Packet> script_;
  std::map<uint32_t, std::string> contents_;
  bool hang_up_;
};

class MaliciousSenderTest : public DiffCopyTest {
 protected:
  void SetUp() override {
    DiffCopyTest::SetUp();
    WriteFile(tmp_.Sub("outside/victim"), "original");
    before_ = DumpTree(tmp_.Sub("outside"));
  }

  absl::StatusOr<ReceiveStats> Receive(std::vector<Packet> script,
                                       std::map<uint32_t, std::string> contents = {},
                                       const ReceiveOptions& ro = {}, bool hang_up = false) {
    auto [peer, daemon] = MakePipe();
    FakeSender sender(*peer, std::move(script), std::move(contents), hang_up);
    std::thread t([&, p = peer.get()] {
      sender.Run();
      p->CloseSend();
    });
    absl::StatusOr<ReceiveStats> r = fsutil::Receive(*daemon, dst(), ro);
    daemon->CloseSend();
    t.join();
    error_seen_by_sender_ = sender.error;
    return r;
  }

  void ExpectOutsideUntouched() {
    EXPECT_EQ(DumpTree(tmp_.Sub("outside")), before_);
    EXPECT_EQ(ReadFile(tmp_.Sub("outside/victim")), "original");
    EXPECT_FALSE(Exists(tmp_.Sub("pwned")));
    EXPECT_FALSE(Exists(tmp_.Sub("outside/pwned")));
  }

  std::string before_;
  std::string error_seen_by_sender_;
};

TEST_F(MaliciousSenderTest, RejectsDotDotPaths) {
  for (const char* path : {"..", "../pwned", "a/../../pwned", "../outside/victim"}) {
    SCOPED_TRACE(path);
    EXPECT_THAT(Receive({StatPacket(path, 0644, "", 3), EndOfStats()}, {{0, "bad"}}),
                StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
    ExpectOutsideUntouched();
  }
  EXPECT_THAT(error_seen_by_sender_, HasSubstr("../outside/victim"));
}

TEST_F(MaliciousSenderTest, RejectsAbsoluteUncleanAndNulPaths) {
  const std::string tmp_abs = tmp_.Sub("pwned");
  for (const std::string& path :
       {tmp_abs, std::string("/etc/passwd"), std::string("a//b"), std::string("./a"),
        std::string("a/"), std::string("."), std::string(""), std::string("a\0b", 3)}) {
    SCOPED_TRACE(path);
    EXPECT_THAT(Receive({StatPacket(path, 0644), EndOfStats()}),
                StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  }
  ExpectOutsideUntouched();
}

TEST_F(MaliciousSenderTest, RejectsWritingThroughAFreshSymlink) {
  // symlink "link" → ../outside, then a file "link/victim": the file's directory was never sent
  // as a directory, so the order check refuses it before anything is written.
  EXPECT_THAT(Receive({StatPacket("link", kModeSymlink | 0777, "../outside"),
                       StatPacket("link/victim", 0644, "", 5), EndOfStats()},
                      {{1, "pwned"}}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("out of order")));
  ExpectOutsideUntouched();
  // Same with an absolute target and a directory entry for the symlink's path sent later.
  EXPECT_THAT(Receive({StatPacket("link", kModeSymlink | 0777, tmp_.Sub("outside")),
                       StatPacket("link", kModeDir | 0755), StatPacket("link/victim", 0644, "", 5),
                       EndOfStats()},
                      {{2, "pwned"}}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("out of order")));
  ExpectOutsideUntouched();
}

TEST_F(MaliciousSenderTest, ExistingSymlinkInDestinationIsReplacedNotFollowed) {
  ASSERT_EQ(symlink(tmp_.Sub("outside").c_str(), dst("evil").c_str()), 0);
  for (bool merge : {true, false}) {
    SCOPED_TRACE(merge);
    absl::StatusOr<ReceiveStats> r = Receive(
        {StatPacket("evil", kModeDir | 0755), StatPacket("evil/victim", 0644, "", 5), EndOfStats()},
        {{1, "pwned"}}, ReceiveOptions{.merge = merge});
    ASSERT_THAT(r, IsOk());
    ExpectOutsideUntouched();
    struct stat st;
    ASSERT_EQ(lstat(dst("evil").c_str(), &st), 0);
    EXPECT_TRUE(S_ISDIR(st.st_mode));
    EXPECT_EQ(ReadFile(dst("evil/victim")), "pwned");
    std::filesystem::remove_all(dst("evil"));
    ASSERT_EQ(symlink(tmp_.Sub("outside").c_str(), dst("evil").c_str()), 0);
  }
}

TEST_F(MaliciousSenderTest, ExistingSymlinkedFileIsReplacedNotWrittenThrough) {
  ASSERT_EQ(symlink(tmp_.Sub("outside/victim").c_str(), dst("victim").c_str()), 0);
  absl::StatusOr<ReceiveStats> r = Receive({StatPacket("victim", 0644, "", 5), EndOfStats()},
                                           {{0, "pwned"}}, ReceiveOptions{.merge = true});
  ASSERT_THAT(r, IsOk());
  ExpectOutsideUntouched();
  EXPECT_EQ(ReadFile(dst("victim")), "pwned");
}

TEST_F(MaliciousSenderTest, RejectsHardLinksToUnknownOrOutsidePaths) {
  for (const char* target : {"../outside/victim", "nothere", "/etc/passwd"}) {
    SCOPED_TRACE(target);
    EXPECT_THAT(
        Receive({StatPacket("a", 0644, "", 0), StatPacket("b", 0644, target), EndOfStats()}),
        StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("invalid link")));
  }
  // A link to a symlink entry is refused too (symlinks are not link sources).
  EXPECT_THAT(Receive({StatPacket("a", kModeSymlink | 0777, tmp_.Sub("outside/victim")),
                       StatPacket("b", 0644, "a"), EndOfStats()}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("invalid link")));
  ExpectOutsideUntouched();
}

TEST_F(MaliciousSenderTest, RejectsDataForFilesNotRequested) {
  Packet data;
  data.set_type(Packet::PACKET_DATA);
  data.set_id(7);
  data.set_data("sneaky");
  EXPECT_THAT(Receive({StatPacket("a", 0644, "", 1), data, EndOfStats()}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("invalid file request 7")));
  // Data for a directory's id is not a file request either.
  data.set_id(0);
  EXPECT_THAT(Receive({StatPacket("d", kModeDir | 0755), data, EndOfStats()}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("invalid file request 0")));
}

TEST_F(MaliciousSenderTest, RejectsOutOfOrderAndDuplicateEntries) {
  EXPECT_THAT(Receive({StatPacket("b", 0644), StatPacket("a", 0644), EndOfStats()}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("out of order")));
  EXPECT_THAT(Receive({StatPacket("a", 0644), StatPacket("a", 0644), EndOfStats()}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("out of order")));
  EXPECT_THAT(Receive({StatPacket("x/y", 0644), EndOfStats()}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("out of order")));
  EXPECT_THAT(Receive({StatPacket("f", 0644, "", 1), EndOfStats(), StatPacket("g", 0644)}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("end of the listing")));
}

TEST_F(MaliciousSenderTest, SenderErrorsAndEarlyEndsFailTheTransfer) {
  Packet err;
  err.set_type(Packet::PACKET_ERR);
  err.set_data("disk on fire");
  EXPECT_THAT(Receive({StatPacket("a", 0644), err}),
              StatusIs(absl::StatusCode::kAborted, HasSubstr("disk on fire")));
  EXPECT_THAT(Receive({StatPacket("a", kModeDir | 0755)}, {}, {}, /*hang_up=*/true),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("closed the stream")));
  Packet fin;
  fin.set_type(Packet::PACKET_FIN);
  EXPECT_THAT(Receive({StatPacket("a", kModeDir | 0755), fin}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("finished before")));
  Packet part;
  part.set_type(Packet::PACKET_DATA);
  part.set_id(0);
  part.set_data("part");
  EXPECT_THAT(Receive({StatPacket("f", 0644, "", 10), part, err}),
              StatusIs(absl::StatusCode::kAborted, HasSubstr("disk on fire")));
  // Nothing half-written is left behind under a temporary name.
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dst())) {
    EXPECT_EQ(entry.path().filename().string().rfind(".kiln-tmp-", 0), std::string::npos)
        << entry.path();
  }
}

TEST_F(MaliciousSenderTest, UnsupportedModesAreRejected) {
  EXPECT_THAT(Receive({StatPacket("s", kModeSocket | 0755), EndOfStats()}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unsupported")));
}

// ---------------------------------------------------------------------------------------------
// A scripted receiver against the real sender.

TEST_F(DiffCopyTest, SenderRejectsUnknownRequestsAndReportsReceiverErrors) {
  WriteFile(src("f"), "data");
  MakeDirs(src("d"));
  for (uint32_t bad_id : {5u, 0u}) {  // 0 is the directory "d"
    auto [client, daemon] = MakePipe();
    absl::Status send;
    std::thread t([&, c = client.get()] {
      send = Send(*c, src(), {});
      c->CloseSend();
    });
    Packet p;
    while (daemon->Recv(&p).ok() && p.has_stat()) {
    }
    Packet req;
    req.set_type(Packet::PACKET_REQ);
    req.set_id(bad_id);
    ASSERT_THAT(daemon->Send(req), IsOk());
    std::string err;
    while (daemon->Recv(&p).ok()) {
      if (p.type() == Packet::PACKET_ERR) err = p.data();
    }
    daemon->CloseSend();
    t.join();
    EXPECT_THAT(send, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("invalid file id")));
    EXPECT_THAT(err, HasSubstr("invalid file id"));
  }

  auto [client, daemon] = MakePipe();
  absl::Status send;
  std::thread t([&, c = client.get()] {
    send = Send(*c, src(), {});
    c->CloseSend();
  });
  Packet err;
  err.set_type(Packet::PACKET_ERR);
  err.set_data("no space left");
  ASSERT_THAT(daemon->Send(err), IsOk());
  Packet p;
  while (daemon->Recv(&p).ok()) {
  }
  daemon->CloseSend();
  t.join();
  EXPECT_THAT(send, StatusIs(absl::StatusCode::kAborted, HasSubstr("no space left")));
}

TEST_F(DiffCopyTest, SenderServesRequestsWhileStillListing) {
  // Requests may arrive before the listing ends; with a tiny pipe the sender must keep reading
  // while it sends, or both sides would block.
  for (int i = 0; i < 200; ++i)
    WriteFile(src(absl::StrCat("f", 1000 + i)), std::string(40000, 'x'));
  auto [client, daemon] = MakePipe(/*capacity=*/1);
  absl::Status send;
  std::thread t([&, c = client.get()] {
    send = Send(*c, src(), {.parallel_files = 3});
    c->CloseSend();
  });
  absl::StatusOr<ReceiveStats> r = fsutil::Receive(*daemon, dst(), {});
  daemon->CloseSend();
  t.join();
  ASSERT_THAT(send, IsOk());
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->files_requested, 200u);
  EXPECT_EQ(DumpTree(dst()), DumpTree(src()));
}

}  // namespace
}  // namespace kiln::fsutil
