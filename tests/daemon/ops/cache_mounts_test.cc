#include "daemon/ops/cache_mounts.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "tests/testutil/status_matchers.h"

namespace kiln::ops {
namespace {

namespace fs = std::filesystem;
using ::kiln::testing::IsOk;
using ::kiln::testing::StatusIs;
using ::testing::HasSubstr;

class CacheMountsTest : public ::testing::Test {
 protected:
  void SetUp() override { fs::create_directories(root_); }
  void TearDown() override { fs::remove_all(root_); }
  fs::path root_ = fs::path(::testing::TempDir()) /
                   ("kiln_cache_mounts_" + std::to_string(std::random_device{}()));
  CacheMounts mounts_{root_ / "cache-mounts"};
  Context ctx_;
};

TEST_F(CacheMountsTest, ContentPersistsAcrossLeases) {
  {
    auto a = mounts_.Acquire(ctx_, "go-build", CacheSharing::kShared, nullptr);
    ASSERT_THAT(a, IsOk());
    EXPECT_EQ(fs::status(a->dir()).permissions(), fs::perms(0755));
    std::ofstream(a->dir() / "f") << "kept";
  }
  auto b = mounts_.Acquire(ctx_, "go-build", CacheSharing::kShared, nullptr);
  ASSERT_THAT(b, IsOk());
  std::ifstream in(b->dir() / "f");
  std::string s;
  in >> s;
  EXPECT_EQ(s, "kept");
  auto other = mounts_.Acquire(ctx_, "npm", CacheSharing::kShared, nullptr);
  ASSERT_THAT(other, IsOk());
  EXPECT_NE(other->dir(), b->dir());
}

TEST_F(CacheMountsTest, SharedUsersGetTheSameDirectoryAtOnce) {
  auto a = mounts_.Acquire(ctx_, "k", CacheSharing::kShared, nullptr);
  auto b = mounts_.Acquire(ctx_, "k", CacheSharing::kShared, nullptr);
  ASSERT_THAT(a, IsOk());
  ASSERT_THAT(b, IsOk());
  EXPECT_EQ(a->dir(), b->dir());
}

TEST_F(CacheMountsTest, PrivateUsersGetTheirOwnDirectoryWhileBusy) {
  auto a = mounts_.Acquire(ctx_, "k", CacheSharing::kPrivate, nullptr);
  auto b = mounts_.Acquire(ctx_, "k", CacheSharing::kPrivate, nullptr);
  ASSERT_THAT(a, IsOk());
  ASSERT_THAT(b, IsOk());
  EXPECT_NE(a->dir(), b->dir());
  fs::path first = a->dir();
  *a = CacheMountLease();  // released: the next private user reuses it
  auto c = mounts_.Acquire(ctx_, "k", CacheSharing::kPrivate, nullptr);
  ASSERT_THAT(c, IsOk());
  EXPECT_EQ(c->dir(), first);
}

TEST_F(CacheMountsTest, LockedUsersTakeTurns) {
  auto a = mounts_.Acquire(ctx_, "k", CacheSharing::kLocked, nullptr);
  ASSERT_THAT(a, IsOk());
  std::atomic<bool> got{false};
  std::thread t([&] {
    auto b = mounts_.Acquire(ctx_, "k", CacheSharing::kLocked, nullptr);
    EXPECT_THAT(b, IsOk());
    got = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_FALSE(got.load());
  *a = CacheMountLease();
  t.join();
  EXPECT_TRUE(got.load());
}

TEST_F(CacheMountsTest, WaitingEndsWhenTheBuildIsCancelled) {
  auto a = mounts_.Acquire(ctx_, "k", CacheSharing::kLocked, nullptr);
  ASSERT_THAT(a, IsOk());
  Context waiter = ctx_.Child();
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    waiter.Cancel();
  });
  auto b = mounts_.Acquire(waiter, "k", CacheSharing::kLocked, nullptr);
  canceller.join();
  EXPECT_THAT(b, StatusIs(absl::StatusCode::kCancelled, ::testing::_));
}

TEST_F(CacheMountsTest, InitFillsANewInstanceOnceAndFailuresLeaveNothing) {
  int calls = 0;
  auto init = [&](const fs::path& dir) {
    ++calls;
    std::ofstream(dir / "seed") << "x";
    return absl::OkStatus();
  };
  auto a = mounts_.Acquire(ctx_, "seeded", CacheSharing::kShared, init);
  ASSERT_THAT(a, IsOk());
  EXPECT_TRUE(fs::exists(a->dir() / "seed"));
  auto b = mounts_.Acquire(ctx_, "seeded", CacheSharing::kShared, init);
  ASSERT_THAT(b, IsOk());
  EXPECT_EQ(calls, 1);

  auto bad = mounts_.Acquire(ctx_, "broken", CacheSharing::kShared, [](const fs::path& dir) {
    std::ofstream(dir / "half") << "x";
    return absl::InternalError("disk full");
  });
  EXPECT_THAT(bad, StatusIs(absl::StatusCode::kInternal, HasSubstr("broken")));
  auto retry = mounts_.Acquire(ctx_, "broken", CacheSharing::kShared, nullptr);
  ASSERT_THAT(retry, IsOk());
  EXPECT_FALSE(fs::exists(retry->dir() / "half"));
}

}  // namespace
}  // namespace kiln::ops
