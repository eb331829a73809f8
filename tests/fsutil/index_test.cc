#include "fsutil/index.h"

#include <sys/stat.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "base/digest.h"
#include "fsutil/diffcopy.h"
#include "fsutil/stat.h"
#include "tests/fsutil/test_util.h"
#include "tests/testutil/status_matchers.h"

namespace kiln::fsutil {
namespace {

using ::kiln::fsutil::testing::MakeDirs;
using ::kiln::fsutil::testing::SetMtime;
using ::kiln::fsutil::testing::Sync;
using ::kiln::fsutil::testing::SyncResult;
using ::kiln::fsutil::testing::TempDir;
using ::kiln::fsutil::testing::WriteFile;
using ::kiln::testing::IsOk;
using ::kiln::testing::StatusIs;
using ::testing::HasSubstr;

class ContentIndexTest : public ::testing::Test {
 protected:
  void SetUp() override {
    WriteFile(root("app/main.c"), "int main() { return 0; }\n");
    WriteFile(root("app/lib/util.c"), "void util(void) {}\n");
    WriteFile(root("README"), "readme");
    MakeDirs(root("empty"));
    ASSERT_EQ(symlink("app/main.c", root("main-link").c_str()), 0);
    ASSERT_EQ(link(root("README").c_str(), root("app/README.hard").c_str()), 0);
  }
  std::string root(std::string_view rel = "") const {
    return rel.empty() ? tmp_.Sub("tree") : tmp_.Sub("tree/" + std::string(rel));
  }
  std::string index_file() const { return tmp_.Sub("tree.index"); }

  TempDir tmp_;
};

TEST_F(ContentIndexTest, RecordsEveryEntryWithDigests) {
  IndexBuildStats stats;
  absl::StatusOr<ContentIndex> index = BuildIndex(root(), nullptr, &stats);
  ASSERT_THAT(index, IsOk());
  std::vector<std::string> paths;
  for (const IndexRecord& r : index->records()) paths.push_back(r.path);
  EXPECT_EQ(paths,
            (std::vector<std::string>{"README", "app", "app/README.hard", "app/lib",
                                      "app/lib/util.c", "app/main.c", "empty", "main-link"}));
  const IndexRecord* readme = index->Find("README");
  ASSERT_NE(readme, nullptr);
  EXPECT_EQ(readme->sha256, Sha256Digest("readme").substr(7));
  EXPECT_EQ(index->Find("app/README.hard")->sha256, readme->sha256);
  EXPECT_EQ(index->Find("app/README.hard")->linkname, "README");
  EXPECT_EQ(index->Find("main-link")->linkname, "app/main.c");
  EXPECT_TRUE(index->Find("app")->sha256.empty());
  EXPECT_EQ(index->Find("nope"), nullptr);
  EXPECT_EQ(stats.files_hashed, 3u);  // the hard link is read once
}

TEST_F(ContentIndexTest, UnchangedFilesAreNotReadAgain) {
  absl::StatusOr<ContentIndex> first = BuildIndex(root(), nullptr);
  ASSERT_THAT(first, IsOk());
  IndexBuildStats stats;
  absl::StatusOr<ContentIndex> second = BuildIndex(root(), &*first, &stats);
  ASSERT_THAT(second, IsOk());
  EXPECT_EQ(stats.files_hashed, 0u);
  EXPECT_EQ(stats.bytes_hashed, 0u);
  EXPECT_EQ(stats.files_reused, 3u);

  // Same size, same mtime, new content: the ctime gives it away.
  WriteFile(root("app/main.c"), "int main() { return 1; }\n");
  SetMtime(root("app/main.c"), first->Find("app/main.c")->mtime_ns);
  stats = {};
  absl::StatusOr<ContentIndex> third = BuildIndex(root(), &*second, &stats);
  ASSERT_THAT(third, IsOk());
  EXPECT_EQ(stats.files_hashed, 1u);
  EXPECT_NE(third->Find("app/main.c")->sha256, first->Find("app/main.c")->sha256);
}

TEST_F(ContentIndexTest, SaveAndLoadRoundTrip) {
  WriteFile(root("odd\tname\nwith%stuff"), "x");
  absl::StatusOr<ContentIndex> index = BuildIndex(root(), nullptr);
  ASSERT_THAT(index, IsOk());
  ASSERT_THAT(index->Save(index_file()), IsOk());
  absl::StatusOr<ContentIndex> loaded = ContentIndex::Load(index_file());
  ASSERT_THAT(loaded, IsOk());
  ASSERT_EQ(loaded->records().size(), index->records().size());
  for (size_t i = 0; i < index->records().size(); ++i) {
    const IndexRecord& a = index->records()[i];
    const IndexRecord& b = loaded->records()[i];
    EXPECT_EQ(a.path, b.path);
    EXPECT_EQ(a.mode, b.mode);
    EXPECT_EQ(a.ino, b.ino);
    EXPECT_EQ(a.ctime_ns, b.ctime_ns);
    EXPECT_EQ(a.sha256, b.sha256);
    EXPECT_EQ(a.linkname, b.linkname);
  }
  EXPECT_THAT(loaded->Checksum(""), ::testing::Eq(index->Checksum("")));

  WriteFile(index_file(), "garbage\n");
  EXPECT_THAT(ContentIndex::Load(index_file()),
              StatusIs(absl::StatusCode::kDataLoss, ::testing::_));
  EXPECT_THAT(ContentIndex::Load(tmp_.Sub("none")),
              StatusIs(absl::StatusCode::kNotFound, ::testing::_));
}

TEST_F(ContentIndexTest, ChecksumsFollowContentNotTimes) {
  absl::StatusOr<ContentIndex> index = BuildIndex(root(), nullptr);
  ASSERT_THAT(index, IsOk());
  absl::StatusOr<std::string> all = index->Checksum("");
  absl::StatusOr<std::string> app = index->Checksum("app");
  ASSERT_THAT(all, IsOk());
  ASSERT_THAT(app, IsOk());
  EXPECT_THAT(*all, ::testing::StartsWith("sha256:"));
  EXPECT_NE(*all, *app);
  EXPECT_EQ(index->Checksum("/"), all);
  EXPECT_EQ(index->Checksum("./app/"), app);
  EXPECT_THAT(index->Checksum("missing"), StatusIs(absl::StatusCode::kNotFound, ::testing::_));
  // "app" does not include its sibling "app.txt"-style names; a file selector works too.
  EXPECT_THAT(index->Checksum("app/main.c"), IsOk());

  // Touching files keeps checksums; changing a byte in "app" changes "app" and "", not "empty".
  SetMtime(root("README"), 42);
  absl::StatusOr<ContentIndex> touched = BuildIndex(root(), &*index);
  ASSERT_THAT(touched, IsOk());
  EXPECT_EQ(touched->Checksum(""), all);
  const auto empty_before = index->Checksum("empty");
  WriteFile(root("app/lib/util.c"), "void util(void) { }\n");
  absl::StatusOr<ContentIndex> edited = BuildIndex(root(), &*touched);
  ASSERT_THAT(edited, IsOk());
  EXPECT_NE(edited->Checksum("app"), app);
  EXPECT_NE(edited->Checksum(""), all);
  EXPECT_EQ(edited->Checksum("empty"), empty_before);

  // Modes count.
  ASSERT_EQ(chmod(root("README").c_str(), 0600), 0);
  absl::StatusOr<ContentIndex> chmodded = BuildIndex(root(), &*edited);
  ASSERT_THAT(chmodded, IsOk());
  EXPECT_NE(chmodded->Checksum(""), edited->Checksum(""));

  // The same content elsewhere checksums the same (paths are relative to the selector).
  TempDir other;
  WriteFile(other.Sub("x/lib/util.c"), "void util(void) { }\n");
  ASSERT_EQ(chmod(other.Sub("x/lib").c_str(), 0755), 0);
  ASSERT_EQ(chmod(root("app/lib").c_str(), 0755), 0);
  absl::StatusOr<ContentIndex> copy = BuildIndex(other.path(), nullptr);
  absl::StatusOr<ContentIndex> now = BuildIndex(root(), nullptr);
  ASSERT_THAT(copy, IsOk());
  ASSERT_THAT(now, IsOk());
  EXPECT_EQ(copy->Checksum("x/lib"), now->Checksum("app/lib"));
}

TEST_F(ContentIndexTest, TreeChecksumsPersistTheIndex) {
  IndexBuildStats stats;
  absl::StatusOr<std::vector<std::string>> sums =
      TreeChecksums(root(), index_file(), {"", "app"}, &stats);
  ASSERT_THAT(sums, IsOk());
  ASSERT_EQ(sums->size(), 2u);
  EXPECT_EQ(stats.files_hashed, 3u);
  stats = {};
  absl::StatusOr<std::vector<std::string>> again =
      TreeChecksums(root(), index_file(), {"", "app"}, &stats);
  ASSERT_THAT(again, IsOk());
  EXPECT_EQ(*again, *sums);
  EXPECT_EQ(stats.files_hashed, 0u);
  EXPECT_THAT(TreeChecksums(root(), index_file(), {"nope"}),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("nope")));
}

TEST_F(ContentIndexTest, ReceiveMaintainsTheIndexWithoutRereading) {
  const std::string dest = tmp_.Sub("synced");
  MakeDirs(dest);
  ReceiveOptions ro;
  ro.index_path = tmp_.Sub("synced.index");
  SyncResult first = Sync(root(), dest, {}, ro);
  ASSERT_THAT(first.receive, IsOk());
  EXPECT_EQ(first.receive->files_hashed, 0u);  // digests came with the data

  absl::StatusOr<ContentIndex> index = ContentIndex::Load(ro.index_path);
  ASSERT_THAT(index, IsOk());
  absl::StatusOr<ContentIndex> fresh = BuildIndex(dest, nullptr);
  ASSERT_THAT(fresh, IsOk());
  EXPECT_EQ(index->Checksum(""), fresh->Checksum(""));
  absl::StatusOr<ContentIndex> source = BuildIndex(root(), nullptr);
  ASSERT_THAT(source, IsOk());
  EXPECT_EQ(index->Checksum(""), source->Checksum(""));

  // An unchanged context: nothing transferred, nothing read.
  SyncResult second = Sync(root(), dest, {}, ro);
  ASSERT_THAT(second.receive, IsOk());
  EXPECT_EQ(second.receive->files_requested, 0u);
  EXPECT_EQ(second.receive->files_hashed, 0u);

  // One edit: one transfer, still nothing read back.
  WriteFile(root("app/lib/util.c"), "changed");
  SyncResult third = Sync(root(), dest, {}, ro);
  ASSERT_THAT(third.receive, IsOk());
  EXPECT_EQ(third.receive->files_requested, 1u);
  EXPECT_EQ(third.receive->files_hashed, 0u);
  absl::StatusOr<ContentIndex> updated = ContentIndex::Load(ro.index_path);
  ASSERT_THAT(updated, IsOk());
  EXPECT_EQ(updated->Find("app/lib/util.c")->sha256, Sha256Digest("changed").substr(7));
  EXPECT_NE(updated->Checksum(""), index->Checksum(""));

  // A lost index is rebuilt by reading the files.
  ASSERT_EQ(unlink(ro.index_path.c_str()), 0);
  SyncResult fourth = Sync(root(), dest, {}, ro);
  ASSERT_THAT(fourth.receive, IsOk());
  EXPECT_EQ(fourth.receive->files_hashed, 3u);
}

}  // namespace
}  // namespace kiln::fsutil
