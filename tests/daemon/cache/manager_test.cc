#include "daemon/cache/manager.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <filesystem>
#include <fstream>
#include <random>

#include "tests/testutil/status_matchers.h"

namespace kiln::cache {
namespace {

namespace fs = std::filesystem;
using ::kiln::testing::IsOk;
using ::kiln::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

constexpr int64_t kSec = 1'000'000'000;

class ManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::path(::testing::TempDir()) /
            ("kiln_manager_test_" + std::to_string(std::random_device{}()));
    fs::create_directories(root_);
    Reopen();
  }
  void TearDown() override {
    manager_.reset();
    fs::remove_all(root_);
  }
  void Reopen() {
    manager_.reset();
    auto m = Manager::Open({.root = root_, .now_ns = [this] { return now_; }});
    ASSERT_THAT(m, IsOk());
    manager_ = std::move(*m);
  }
  // Adds a record whose snapshot directory holds `bytes` of file data.
  void Add(const std::string& id, const std::string& type, int64_t last_used_ns,
           size_t bytes = 4096, std::vector<std::string> parents = {}) {
    fs::path dir = manager_->SnapshotDir(id) / "fs";
    fs::create_directories(dir);
    std::ofstream(dir / "data") << std::string(bytes, 'x');
    Record r{.id = id,
             .record_type = type,
             .description = "test " + id,
             .created_at_ns = last_used_ns,
             .last_used_at_ns = last_used_ns,
             .usage_count = 1,
             .parents = std::move(parents)};
    ASSERT_THAT(manager_->store().Put(r), IsOk());
  }
  std::vector<std::string> Ids(const std::vector<std::string>& filters = {}) {
    auto du = manager_->DiskUsage(filters);
    EXPECT_THAT(du, IsOk());
    std::vector<std::string> out;
    for (const auto& u : *du) out.push_back(u.record.id);
    return out;
  }
  std::vector<std::string> Prune(const PruneOptions& o) {
    std::vector<std::string> removed;
    EXPECT_THAT(manager_->Prune(o, [&](const UsageInfo& u) { removed.push_back(u.record.id); }),
                IsOk());
    return removed;
  }

  fs::path root_;
  int64_t now_ = 1'000'000 * kSec;
  std::unique_ptr<Manager> manager_;
};

TEST_F(ManagerTest, EmptyRootHasNoUsage) {
  EXPECT_THAT(Ids(), IsEmpty());
  EXPECT_THAT(Prune({.all = true}), IsEmpty());
  EXPECT_TRUE(fs::exists(root_ / "kiln.db"));
}

TEST_F(ManagerTest, DiskUsageMeasuresSizeAndPersistsRecords) {
  Add("a", kTypeRegular, now_, 100000);
  auto du = manager_->DiskUsage({});
  ASSERT_THAT(du, IsOk());
  ASSERT_EQ(du->size(), 1u);
  EXPECT_GE((*du)[0].record.size, 100000);
  EXPECT_EQ((*du)[0].record.description, "test a");
  Reopen();
  EXPECT_THAT(Ids(), ElementsAre("a"));
}

TEST_F(ManagerTest, DiskUsageFilters) {
  Add("a", kTypeRegular, now_);
  Add("b", kTypeCacheMount, now_);
  EXPECT_THAT(Ids({"type==exec.cachemount"}), ElementsAre("b"));
  EXPECT_THAT(Ids({"type==regular", "id==b"}), ElementsAre("a", "b"));
  EXPECT_THAT(manager_->DiskUsage({"~=x"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("invalid filter")));
}

TEST_F(ManagerTest, PruneSkipsInternalUnlessAll) {
  Add("reg", kTypeRegular, now_);
  Add("int", kTypeInternal, now_);
  Add("fe", kTypeFrontend, now_);
  EXPECT_THAT(Prune({}), ElementsAre("reg"));
  EXPECT_FALSE(fs::exists(manager_->SnapshotDir("reg")));
  EXPECT_THAT(Prune({.all = true}), UnorderedElementsAre("int", "fe"));
  EXPECT_THAT(Ids(), IsEmpty());
}

TEST_F(ManagerTest, PruneKeepDuration) {
  Add("old", kTypeRegular, now_ - 100 * kSec);
  Add("new", kTypeRegular, now_ - 10 * kSec);
  EXPECT_THAT(Prune({.keep_duration_ns = 50 * kSec}), ElementsAre("old"));
  EXPECT_THAT(Ids(), ElementsAre("new"));
}

TEST_F(ManagerTest, PruneRemovesChildrenBeforeParents) {
  Add("base", kTypeRegular, now_ - 100 * kSec);
  Add("child", kTypeRegular, now_, 4096, {"base"});
  EXPECT_THAT(Prune({}), ElementsAre("child", "base"));
}

TEST_F(ManagerTest, PruneToMaxUsedSpaceRemovesLeastRecentlyUsedFirst) {
  Add("oldest", kTypeRegular, now_ - 300 * kSec, 100000);
  Add("middle", kTypeRegular, now_ - 200 * kSec, 100000);
  Add("newest", kTypeRegular, now_ - 100 * kSec, 100000);
  auto du = manager_->DiskUsage({});
  ASSERT_THAT(du, IsOk());
  int64_t one = (*du)[0].record.size;
  // Room for two records: only the least recently used one goes.
  EXPECT_THAT(Prune({.max_used_space = 2 * one + 1}), ElementsAre("oldest"));
  EXPECT_THAT(Ids(), UnorderedElementsAre("middle", "newest"));
  // Reserved space wins over a smaller cap.
  EXPECT_THAT(Prune({.reserved_space = 2 * one, .max_used_space = 1}), IsEmpty());
}

TEST_F(ManagerTest, PruneWithFilter) {
  Add("a", kTypeRegular, now_);
  Add("m", kTypeCacheMount, now_);
  EXPECT_THAT(Prune({.filters = {"type==exec.cachemount"}}), ElementsAre("m"));
  EXPECT_THAT(Ids(), ElementsAre("a"));
}

TEST_F(ManagerTest, OpenSweepsSnapshotsWithoutRecords) {
  Add("kept", kTypeRegular, now_);
  fs::create_directories(manager_->SnapshotDir("orphan") / "fs");
  Reopen();
  EXPECT_FALSE(fs::exists(manager_->SnapshotDir("orphan")));
  EXPECT_TRUE(fs::exists(manager_->SnapshotDir("kept")));
}

TEST_F(ManagerTest, NamedValuesPersistAndReplace) {
  ASSERT_THAT(manager_->store().SetValue("image-resolve\nx", "sha256:a sha256:b"), IsOk());
  ASSERT_THAT(manager_->store().SetValue("image-resolve\nx", "sha256:c sha256:d"), IsOk());
  Reopen();
  auto v = manager_->store().GetValue("image-resolve\nx");
  ASSERT_THAT(v, IsOk());
  EXPECT_EQ(*v, std::optional<std::string>("sha256:c sha256:d"));
  auto none = manager_->store().GetValue("other");
  ASSERT_THAT(none, IsOk());
  EXPECT_EQ(*none, std::nullopt);
}

TEST_F(ManagerTest, DefaultGcPolicyMatchesBuildkit) {
  auto p = DefaultGcPolicy(0, int64_t{100} << 30);
  ASSERT_EQ(p.size(), 4u);
  EXPECT_EQ(p[0].max_used_space, 512'000'000);
  EXPECT_EQ(p[0].keep_duration_ns, 48 * 3600 * kSec);
  EXPECT_EQ(p[1].reserved_space, 10'000'000'000);  // 10% of 100GiB, capped at 10GB
  EXPECT_EQ(p[1].max_used_space, 81'000'000'000);  // 80% of 100GiB rounded up to whole GB
  EXPECT_TRUE(p[3].all);
  auto keep = DefaultGcPolicy(5'000'000'000, int64_t{100} << 30);
  EXPECT_EQ(keep[2].reserved_space, 5'000'000'000);
  EXPECT_EQ(keep[2].max_used_space, 0);
}

}  // namespace
}  // namespace kiln::cache

namespace kiln::cache {
namespace {

std::string ReadAll(const fs::path& p) {
  std::ifstream in(p);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

class RefsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (mounts)";
    root_ = fs::path(::testing::TempDir()) /
            ("kiln_refs_test_" + std::to_string(std::random_device{}()));
    fs::create_directories(root_);
    auto m = Manager::Open({.root = root_, .max_stack_depth = 3});
    ASSERT_THAT(m, IsOk());
    manager_ = std::move(*m);
  }
  void TearDown() override {
    manager_.reset();
    if (!root_.empty()) fs::remove_all(root_);
  }
  ImmutableRef Layer(const ImmutableRef* parent, const std::string& file, const std::string& data) {
    auto m = manager_->New(parent);
    EXPECT_THAT(m, IsOk());
    std::ofstream(m->root() / file) << data;
    auto r = m->Commit("write " + file);
    EXPECT_THAT(r, IsOk());
    return *std::move(r);
  }

  fs::path root_;
  std::unique_ptr<Manager> manager_;
};

TEST_F(RefsTest, CommitThenReadBack) {
  ImmutableRef base = Layer(nullptr, "a", "A");
  ImmutableRef child = Layer(&base, "b", "B");
  EXPECT_EQ(child.stack(), (std::vector<std::string>{base.id(), child.id()}));
  auto view = child.Mount();
  ASSERT_THAT(view, IsOk());
  EXPECT_EQ(ReadAll((*view)->root() / "a"), "A");
  EXPECT_EQ(ReadAll((*view)->root() / "b"), "B");
  // Only the new file lives in the child's own layer.
  EXPECT_FALSE(fs::exists(manager_->SnapshotDir(child.id()) / "fs/a") &&
               manager_->snapshotter().name() == "overlayfs");
}

TEST_F(RefsTest, RefsMarkRecordsInUseAndProtectThemFromPrune) {
  std::string id;
  {
    ImmutableRef r = Layer(nullptr, "a", "A");
    id = r.id();
    auto du = manager_->DiskUsage({});
    ASSERT_THAT(du, IsOk());
    ASSERT_EQ(du->size(), 1u);
    EXPECT_TRUE((*du)[0].in_use);
    std::vector<std::string> removed;
    ASSERT_THAT(
        manager_->Prune({.all = true}, [&](const UsageInfo& u) { removed.push_back(u.record.id); }),
        IsOk());
    EXPECT_THAT(removed, IsEmpty());
  }
  EXPECT_FALSE(manager_->InUse(id));
  std::vector<std::string> removed;
  ASSERT_THAT(
      manager_->Prune({.all = true}, [&](const UsageInfo& u) { removed.push_back(u.record.id); }),
      IsOk());
  EXPECT_THAT(removed, ElementsAre(id));
  EXPECT_FALSE(fs::exists(manager_->SnapshotDir(id)));
}

TEST_F(RefsTest, UncommittedLayersLeaveNothingBehind) {
  std::string id;
  {
    auto m = manager_->New(nullptr);
    ASSERT_THAT(m, IsOk());
    std::ofstream(m->root() / "junk") << "x";
  }
  auto du = manager_->DiskUsage({});
  ASSERT_THAT(du, IsOk());
  EXPECT_THAT(*du, IsEmpty());
  EXPECT_TRUE(fs::is_empty(root_ / "snapshots"));
  EXPECT_TRUE(fs::is_empty(root_ / "tmp"));
}

TEST_F(RefsTest, CacheKeysResolveToRecordsAndDieWithThem) {
  ImmutableRef a = Layer(nullptr, "a", "A");
  ImmutableRef b = Layer(nullptr, "b", "B");
  ASSERT_THAT(manager_->SaveCacheKey("k1", {&a, &b}), IsOk());
  auto loaded = manager_->LoadCacheKey("k1");
  ASSERT_THAT(loaded, IsOk());
  ASSERT_EQ(loaded->size(), 2u);
  EXPECT_EQ((*loaded)[0].id(), a.id());
  EXPECT_EQ((*loaded)[1].id(), b.id());
  auto none = manager_->LoadCacheKey("other");
  ASSERT_THAT(none, IsOk());
  EXPECT_THAT(*none, IsEmpty());
  std::string a_id = a.id();
  loaded->clear();
  { ImmutableRef gone = std::move(a); }
  ASSERT_THAT(manager_->Prune({.filters = {"id==" + a_id}, .all = true}, [](const UsageInfo&) {}),
              IsOk());
  auto after = manager_->LoadCacheKey("k1");
  ASSERT_THAT(after, IsOk());
  EXPECT_THAT(*after, IsEmpty());
}

TEST_F(RefsTest, MergeStacksInputsInOrder) {
  ImmutableRef base = Layer(nullptr, "f", "base");
  ImmutableRef x = Layer(&base, "x", "X");
  ImmutableRef y = Layer(&base, "f", "Y");
  auto merged = manager_->Merge({&x, &y}, "merge");
  ASSERT_THAT(merged, IsOk());
  auto view = merged->Mount();
  ASSERT_THAT(view, IsOk());
  EXPECT_EQ(ReadAll((*view)->root() / "x"), "X");
  EXPECT_EQ(ReadAll((*view)->root() / "f"), "Y");
}

TEST_F(RefsTest, DiffOfAStackedChildIsJustItsLayers) {
  ImmutableRef base = Layer(nullptr, "a", "A");
  ImmutableRef child = Layer(&base, "b", "B");
  auto diff = manager_->Diff(&base, child, "diff");
  ASSERT_THAT(diff, IsOk());
  auto view = diff->Mount();
  ASSERT_THAT(view, IsOk());
  EXPECT_FALSE(fs::exists((*view)->root() / "a"));
  EXPECT_EQ(ReadAll((*view)->root() / "b"), "B");
}

TEST_F(RefsTest, DiffOfUnrelatedTreesAppliesOntoAnotherTree) {
  ImmutableRef lower = Layer(nullptr, "same", "S");
  auto m = manager_->New(nullptr);
  ASSERT_THAT(m, IsOk());
  fs::copy_file(manager_->SnapshotDir(lower.id()) / "fs/same", m->root() / "same");
  fs::last_write_time(m->root() / "same",
                      fs::last_write_time(manager_->SnapshotDir(lower.id()) / "fs/same"));
  std::ofstream(m->root() / "new") << "N";
  auto upper = m->Commit("upper");
  ASSERT_THAT(upper, IsOk());
  auto diff = manager_->Diff(&lower, *upper, "diff");
  ASSERT_THAT(diff, IsOk());
  EXPECT_EQ(diff->stack().size(), 1u);
  EXPECT_FALSE(fs::exists(manager_->SnapshotDir(diff->id()) / "fs/same"));  // unchanged
  ImmutableRef other = Layer(nullptr, "other", "O");
  auto merged = manager_->Merge({&other, &*diff}, "merge");
  ASSERT_THAT(merged, IsOk());
  auto view = merged->Mount();
  ASSERT_THAT(view, IsOk());
  EXPECT_EQ(ReadAll((*view)->root() / "new"), "N");
  EXPECT_EQ(ReadAll((*view)->root() / "other"), "O");
  EXPECT_FALSE(fs::exists((*view)->root() / "same"));
}

TEST_F(RefsTest, ImportedLayersStackWithWhiteoutsAndFailuresLeaveNothing) {
  ImmutableRef base = Layer(nullptr, "gone", "G");
  auto imported = manager_->ImportLayer(
      &base,
      [](const fs::path& layer) {
        std::ofstream(layer / "added") << "A";
        // An overlay whiteout: a 0:0 character device hides "gone" below.
        if (::mknod((layer / "gone").c_str(), S_IFCHR | 0000, makedev(0, 0)) != 0) {
          return absl::InternalError("mknod");
        }
        return absl::OkStatus();
      },
      kTypeRegular, "image layer");
  ASSERT_THAT(imported, IsOk());
  EXPECT_EQ(imported->stack(), (std::vector<std::string>{base.id(), imported->id()}));
  auto view = imported->Mount();
  ASSERT_THAT(view, IsOk());
  EXPECT_EQ(ReadAll((*view)->root() / "added"), "A");
  EXPECT_FALSE(fs::exists((*view)->root() / "gone"));
  view->reset();

  auto failed = manager_->ImportLayer(
      nullptr,
      [](const fs::path& layer) {
        std::ofstream(layer / "half") << "x";
        return absl::DataLossError("truncated layer");
      },
      kTypeRegular, "broken");
  EXPECT_THAT(failed, StatusIs(absl::StatusCode::kDataLoss, HasSubstr("truncated")));
  auto du = manager_->DiskUsage({});
  ASSERT_THAT(du, IsOk());
  EXPECT_EQ(du->size(), 2u);  // base and the imported layer only
}

TEST_F(RefsTest, DeepStacksAreFlattened) {
  ImmutableRef r = Layer(nullptr, "0", "0");
  for (int i = 1; i < 6; ++i) r = Layer(&r, std::to_string(i), std::to_string(i));
  EXPECT_LE(r.stack().size(), 3u);
  auto view = r.Mount();
  ASSERT_THAT(view, IsOk());
  for (int i = 0; i < 6; ++i)
    EXPECT_EQ(ReadAll((*view)->root() / std::to_string(i)), std::to_string(i));
}

TEST_F(RefsTest, RecordsSurviveReopen) {
  std::string id;
  {
    ImmutableRef r = Layer(nullptr, "a", "A");
    id = r.id();
    ASSERT_THAT(manager_->SaveCacheKey("key", {&r}), IsOk());
  }
  manager_.reset();
  auto m = Manager::Open({.root = root_});
  ASSERT_THAT(m, IsOk());
  manager_ = std::move(*m);
  auto loaded = manager_->LoadCacheKey("key");
  ASSERT_THAT(loaded, IsOk());
  ASSERT_EQ(loaded->size(), 1u);
  auto view = (*loaded)[0].Mount();
  ASSERT_THAT(view, IsOk());
  EXPECT_EQ(ReadAll((*view)->root() / "a"), "A");
}

}  // namespace
}  // namespace kiln::cache
