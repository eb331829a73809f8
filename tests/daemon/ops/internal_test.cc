// Unit tests of the FileOp internals: symbolic modes, passwd/group parsing, wildcard splitting
// and the in-root resolver.

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <string>

#include "daemon/ops/internal/mode_set.h"
#include "daemon/ops/internal/owner.h"
#include "daemon/ops/internal/root_fs.h"
#include "daemon/ops/internal/wildcards.h"
#include "tests/daemon/ops/test_tree.h"
#include "tests/testutil/status_matchers.h"

namespace kiln::ops::internal {
namespace {

using ::kiln::testing::IsOk;
using ::kiln::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using namespace ::kiln::ops::test;  // NOLINT(build/namespaces): test helpers

mode_t ApplyMode(const std::string& s, mode_t st_mode) {
  absl::StatusOr<ModeSet> set = ModeSet::Parse(s);
  EXPECT_TRUE(set.ok()) << s << ": " << set.status();
  return set.ok() ? set->Apply(st_mode) : 0;
}

TEST(ModeSetTest, OctalModes) {
  EXPECT_EQ(ApplyMode("755", S_IFREG | 0600), 0755u);
  EXPECT_EQ(ApplyMode("0644", S_IFREG | 04777), 0644u);
  EXPECT_EQ(ApplyMode("4755", S_IFREG | 0600), 04755u);
  EXPECT_EQ(ApplyMode("1777", S_IFDIR | 0700), 01777u);
}

TEST(ModeSetTest, SymbolicModes) {
  const mode_t file = S_IFREG;
  EXPECT_EQ(ApplyMode("u+x", file | 0644), 0744u);
  EXPECT_EQ(ApplyMode("g-w", file | 0664), 0644u);
  EXPECT_EQ(ApplyMode("go=", file | 0755), 0700u);
  EXPECT_EQ(ApplyMode("u=rwx,go=rx", file | 0600), 0755u);
  EXPECT_EQ(ApplyMode("go=u-w", file | 0700), 0755u);
  EXPECT_EQ(ApplyMode("u+x,g-w,o=", file | 0666), 0740u);
  EXPECT_EQ(ApplyMode("a+r", file | 0600), 0644u);
  EXPECT_EQ(ApplyMode("+x", file | 0644), 0755u);
  EXPECT_EQ(ApplyMode("=r", file | 0777), 0444u);
  EXPECT_EQ(ApplyMode("u+x-w", file | 0644), 0544u);
}

TEST(ModeSetTest, CapitalXLooksAtTheOriginalModeAndDirectories) {
  EXPECT_EQ(ApplyMode("a+X", S_IFREG | 0644), 0644u);
  EXPECT_EQ(ApplyMode("a+X", S_IFREG | 0744), 0755u);
  EXPECT_EQ(ApplyMode("a+X", S_IFDIR | 0600), 0711u);
  // "X" tests the mode before the clause: -x then +X still re-adds.
  EXPECT_EQ(ApplyMode("a-x,a+X", S_IFREG | 0744), 0755u);
  EXPECT_EQ(ApplyMode("=rw,+X", S_IFREG | 0751), 0777u);
}

TEST(ModeSetTest, SpecialBitsFollowBsdRules) {
  EXPECT_EQ(ApplyMode("u+s", S_IFREG | 0755), 04755u);
  EXPECT_EQ(ApplyMode("g+s", S_IFREG | 0755), 02755u);
  EXPECT_EQ(ApplyMode("o+s", S_IFREG | 0755), 0755u);  // set-id ignored for "other" only
  EXPECT_EQ(ApplyMode("+t", S_IFDIR | 0755), 01755u);
  EXPECT_EQ(ApplyMode("+rt", S_IFDIR | 0700), 01700u);   // BSD: only the sticky bit
  EXPECT_EQ(ApplyMode("=rw", S_IFDIR | 01777), 01666u);  // "=" without who keeps sticky
  EXPECT_EQ(ApplyMode("u-s", S_IFREG | 04755), 0755u);
}

TEST(ModeSetTest, RejectsMalformedModes) {
  for (const char* bad : {"", "u", "u+q", "8", "07777x", "17777", "u+x,", ",u+x", "z+x", "u*x"}) {
    EXPECT_THAT(ModeSet::Parse(bad),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("invalid mode")))
        << bad;
  }
}

TEST(OwnerTest, FindsPasswdEntries) {
  const std::string passwd =
      "root:x:0:0:root:/root:/bin/bash\n"
      "  app:x:1000:1001:App:/home/app:/bin/sh  \r\n"
      "\n"
      "bad:x:notanumber:12\n"
      "short:x:7\n"
      "app:x:5:5::/:/bin/sh\n";
  EXPECT_EQ(FindPasswdEntry(passwd, "app")->uid, 1000u);
  EXPECT_EQ(FindPasswdEntry(passwd, "app")->gid, 1001u);
  EXPECT_EQ(FindPasswdEntry(passwd, "bad")->uid, 0u);
  EXPECT_EQ(FindPasswdEntry(passwd, "bad")->gid, 12u);
  EXPECT_EQ(FindPasswdEntry(passwd, "short")->uid, 7u);
  EXPECT_EQ(FindPasswdEntry(passwd, "short")->gid, 0u);
  EXPECT_FALSE(FindPasswdEntry(passwd, "nobody").has_value());
  EXPECT_FALSE(FindPasswdEntry(passwd, "ap").has_value());
}

TEST(OwnerTest, FindsGroupEntriesSkippingComments) {
  const std::string group = "#staff:x:1:\nstaff:x:50:a,b\nwheel:x:10\n";
  EXPECT_EQ(FindGroupEntry(group, "staff"), 50u);
  EXPECT_EQ(FindGroupEntry(group, "wheel"), 10u);
  EXPECT_FALSE(FindGroupEntry(group, "#staff").has_value());
}

TEST(OwnerTest, ResolvesIdsAndNames) {
  ScratchDir root("owner");
  WriteFile(root / "etc/passwd", "app:x:1000:1001::/:/bin/sh\n");
  WriteFile(root / "etc/group", "web:x:33:\n");
  pb::ChownOpt opt;
  EXPECT_FALSE(ResolveOwner(false, opt, root.path(), root.path())->has_value());
  // An empty ChownOpt means root:root, as in BuildKit.
  absl::StatusOr<std::optional<Owner>> o = ResolveOwner(true, opt, root.path(), root.path());
  ASSERT_THAT(o, IsOk());
  EXPECT_EQ((*o)->uid, 0u);
  opt.mutable_user()->set_byid(42);
  o = ResolveOwner(true, opt, root.path(), root.path());
  EXPECT_EQ((*o)->uid, 42u);
  EXPECT_EQ((*o)->gid, 42u);
  opt.mutable_user()->mutable_byname()->set_name("app");
  opt.mutable_group()->mutable_byname()->set_name("web");
  o = ResolveOwner(true, opt, root.path(), root.path());
  EXPECT_EQ((*o)->uid, 1000u);
  EXPECT_EQ((*o)->gid, 33u);
  opt.mutable_group()->set_byid(7);
  o = ResolveOwner(true, opt, root.path(), root.path());
  EXPECT_EQ((*o)->gid, 7u);
}

TEST(OwnerTest, MissingAccountFilesMeanNoEntry) {
  ScratchDir root("owner-empty");
  pb::ChownOpt opt;
  opt.mutable_user()->mutable_byname()->set_name("app");
  absl::StatusOr<std::optional<Owner>> o = ResolveOwner(true, opt, root.path(), root.path());
  ASSERT_THAT(o, IsOk());
  EXPECT_EQ((*o)->uid, 0u);
}

TEST(OwnerTest, RefusesNonRegularAccountFiles) {
  ScratchDir root("owner-fifo");
  MakeDirs(root / "etc");
  ASSERT_EQ(mkfifo((root / "etc/passwd").c_str(), 0644), 0);
  pb::ChownOpt opt;
  opt.mutable_user()->mutable_byname()->set_name("app");
  EXPECT_THAT(ResolveOwner(true, opt, root.path(), root.path()),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("not a regular file")));
}

TEST(WildcardsTest, DetectsUnescapedWildcards) {
  EXPECT_TRUE(ContainsWildcards("*.txt"));
  EXPECT_TRUE(ContainsWildcards("a?b"));
  EXPECT_TRUE(ContainsWildcards("[ab]"));
  EXPECT_FALSE(ContainsWildcards("plain"));
  EXPECT_FALSE(ContainsWildcards("a\\*b"));
  EXPECT_TRUE(ContainsWildcards("a\\\\*b"));
}

TEST(WildcardsTest, ResolvesInsideTheRoot) {
  ScratchDir root("wild");
  WriteFile(root / "src/a.txt", "");
  WriteFile(root / "src/b.md", "");
  WriteFile(root / "src/x/c.txt", "");
  WriteFile(root / "src/x/y/d.txt", "");
  absl::StatusOr<UniqueFd> fd = OpenRoot(root.path());
  ASSERT_THAT(fd, IsOk());
  EXPECT_THAT(*ResolveWildcards(fd->get(), "/src/*.txt", false), ElementsAre("/src/a.txt"));
  EXPECT_THAT(*ResolveWildcards(fd->get(), "/src/*/*.txt", false), ElementsAre("/src/x/c.txt"));
  EXPECT_THAT(*ResolveWildcards(fd->get(), "/*/x", false), ElementsAre("/src/x"));
  EXPECT_THAT(*ResolveWildcards(fd->get(), "/src/x/", false), ElementsAre("/src/x"));
  EXPECT_THAT(*ResolveWildcards(fd->get(), "/src/[ab].*", false),
              ElementsAre("/src/a.txt", "/src/b.md"));
  EXPECT_THAT(ResolveWildcards(fd->get(), "/missing/*", false),
              StatusIs(absl::StatusCode::kNotFound, "lstat /missing: no such file or directory"));
}

TEST(ResolveTest, SymlinksAndDotDotAreConfinedToTheRoot) {
  ScratchDir root("resolve");
  WriteFile(root / "etc/passwd", "inside");
  MakeSymlink("/etc", root / "abs");
  MakeSymlink("../../../../../../etc", root / "d/rel");
  MakeSymlink("loop2", root / "loop1");
  MakeSymlink("loop1", root / "loop2");
  absl::StatusOr<UniqueFd> fd = OpenRoot(root.path());
  ASSERT_THAT(fd, IsOk());
  for (const char* p : {"/abs/passwd", "d/rel/passwd", "../../etc/passwd", "/abs/../etc/passwd"}) {
    absl::StatusOr<Location> loc = Resolve(fd->get(), p, /*follow_final=*/false);
    ASSERT_THAT(loc, IsOk()) << p;
    struct stat a;
    struct stat b;
    ASSERT_EQ(fstatat(loc->dir.get(), loc->name.c_str(), &a, AT_SYMLINK_NOFOLLOW), 0) << p;
    ASSERT_EQ(stat((root / "etc/passwd").c_str(), &b), 0);
    EXPECT_EQ(a.st_ino, b.st_ino) << p;
  }
  // The last component is followed only on request.
  absl::StatusOr<Location> nofollow = Resolve(fd->get(), "/abs", false);
  ASSERT_THAT(nofollow, IsOk());
  EXPECT_EQ(nofollow->name, "abs");
  absl::StatusOr<Location> follow = Resolve(fd->get(), "/abs", true);
  ASSERT_THAT(follow, IsOk());
  EXPECT_EQ(follow->name, "etc");
  EXPECT_THAT(Resolve(fd->get(), "/loop1", true),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("too many levels")));
  EXPECT_THAT(Resolve(fd->get(), "/nope/x", false),
              StatusIs(absl::StatusCode::kNotFound, "parent directory /nope does not exist"));
}

TEST(ResolveTest, MkdirAllCreatesThroughDanglingSymlinksInsideTheRoot) {
  ScratchDir root("mkdirall");
  MakeSymlink("/real/deep", root / "link");
  absl::StatusOr<UniqueFd> fd = OpenRoot(root.path());
  ASSERT_THAT(fd, IsOk());
  std::vector<CreatedDir> created;
  MkdirOptions opts;
  opts.mode = 0700;
  ASSERT_THAT(MkdirAll(fd->get(), "/link/x", opts, &created), IsOk());
  EXPECT_TRUE(S_ISDIR(Lstat(root / "real/deep/x")->st_mode));
  EXPECT_EQ(Lstat(root / "real/deep/x")->st_mode & 07777, 0700u);
  EXPECT_EQ(created.size(), 3u);
}

}  // namespace
}  // namespace kiln::ops::internal
