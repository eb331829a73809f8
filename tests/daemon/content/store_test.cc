#include "daemon/content/store.h"

#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "base/digest.h"
#include "tests/testutil/status_matchers.h"

namespace kiln::content {
namespace {

namespace fs = std::filesystem;
using ::kiln::testing::IsOk;
using ::kiln::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/kiln-content-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = fs::path(tmpl) / "content";
    auto store = Store::Open(root_);
    ASSERT_THAT(store, IsOk());
    store_ = std::move(*store);
  }
  void TearDown() override { fs::remove_all(root_.parent_path()); }

  std::unique_ptr<Writer> MustOpen(Store& store, const std::string& key, const std::string& digest,
                                   int64_t size) {
    auto w = store.OpenWriter(Context(), key, digest, size);
    EXPECT_THAT(w, IsOk());
    return w.ok() ? std::move(*w) : nullptr;
  }

  fs::path root_;
  std::unique_ptr<Store> store_;
};

std::string Blob(size_t n, char seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(seed + i * 7 % 251);
  return s;
}

TEST(ValidDigestTest, AcceptsOnlyLowercaseSha256) {
  EXPECT_TRUE(ValidDigest(Sha256Digest("x")));
  EXPECT_FALSE(ValidDigest("sha512:abcd"));
  EXPECT_FALSE(ValidDigest("sha256:ABCDEF"));
  EXPECT_FALSE(ValidDigest(""));
}

TEST_F(StoreTest, PutReadSizeListDelete) {
  auto d = store_->Put("hello");
  ASSERT_THAT(d, IsOk());
  EXPECT_EQ(*d, Sha256Digest("hello"));
  EXPECT_TRUE(store_->Has(*d));
  EXPECT_EQ(*store_->Size(*d), 5);
  EXPECT_EQ(*store_->Read(*d, 100), "hello");
  EXPECT_THAT(store_->Read(*d, 4), StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("5")));
  auto path = store_->BlobPath(*d);
  ASSERT_THAT(path, IsOk());
  EXPECT_EQ(*path, root_ / "blobs" / "sha256" / d->substr(7));
  auto list = store_->List();
  ASSERT_THAT(list, IsOk());
  EXPECT_EQ(*list, std::vector<std::string>{*d});
  // Put again is a no-op.
  EXPECT_THAT(store_->Put("hello", *d), IsOk());
  ASSERT_THAT(store_->Delete(*d), IsOk());
  EXPECT_FALSE(store_->Has(*d));
  EXPECT_THAT(store_->Size(*d), StatusIs(absl::StatusCode::kNotFound, HasSubstr(*d)));
  EXPECT_THAT(store_->BlobPath(*d), StatusIs(absl::StatusCode::kNotFound, HasSubstr(*d)));
  EXPECT_THAT(store_->Delete(*d), IsOk());
  EXPECT_THAT(store_->Size("sha256:nothex"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("nothex")));
}

TEST_F(StoreTest, PutWithWrongDigestStoresNothing) {
  std::string wrong = Sha256Digest("other");
  EXPECT_THAT(store_->Put("hello", wrong),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr(wrong), HasSubstr(Sha256Digest("hello")))));
  EXPECT_FALSE(store_->Has(Sha256Digest("hello")));
  EXPECT_TRUE(store_->List()->empty());
}

TEST_F(StoreTest, WriterCommitPublishesAndThenAlreadyExists) {
  std::string data = Blob(3 << 20, 'a');
  std::string digest = Sha256Digest(data);
  auto w = MustOpen(*store_, "k", digest, static_cast<int64_t>(data.size()));
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->offset(), 0);
  ASSERT_THAT(w->Write(std::string_view(data).substr(0, 1000)), IsOk());
  EXPECT_FALSE(store_->Has(digest));  // not visible before Commit
  ASSERT_THAT(w->Write(std::string_view(data).substr(1000)), IsOk());
  EXPECT_EQ(w->offset(), static_cast<int64_t>(data.size()));
  ASSERT_THAT(w->Commit(), IsOk());
  EXPECT_EQ(*store_->Read(digest, 1 << 30), data);
  EXPECT_THAT(store_->OpenWriter(Context(), "k", digest, -1),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr(digest)));
  // Nothing is left behind in ingest/.
  EXPECT_TRUE(fs::is_empty(root_ / "ingest"));
}

TEST_F(StoreTest, ResumesAfterWriterDestructionAndStoreReopen) {
  std::string data = Blob(100000, 'r');
  std::string digest = Sha256Digest(data);
  {
    auto w = MustOpen(*store_, "pull-x", digest, static_cast<int64_t>(data.size()));
    ASSERT_THAT(w->Write(std::string_view(data).substr(0, 40000)), IsOk());
  }  // dropped without Commit
  {
    auto w = MustOpen(*store_, "pull-x", digest, static_cast<int64_t>(data.size()));
    EXPECT_EQ(w->offset(), 40000);
    ASSERT_THAT(w->Write(std::string_view(data).substr(40000, 20000)), IsOk());
  }
  // A new Store on the same root, as after a daemon restart.
  auto reopened = Store::Open(root_);
  ASSERT_THAT(reopened, IsOk());
  auto w = MustOpen(**reopened, "pull-x", digest, static_cast<int64_t>(data.size()));
  ASSERT_EQ(w->offset(), 60000);
  ASSERT_THAT(w->Write(std::string_view(data).substr(60000)), IsOk());
  ASSERT_THAT(w->Commit(), IsOk());  // the digest covers the resumed bytes too
  EXPECT_EQ(*store_->Read(digest, 1 << 20), data);
}

TEST_F(StoreTest, SameKeyForAnotherDigestStartsOver) {
  std::string a = Blob(1000, 'a'), b = Blob(1000, 'b');
  {
    auto w = MustOpen(*store_, "key", Sha256Digest(a), 1000);
    ASSERT_THAT(w->Write(a.substr(0, 500)), IsOk());
  }
  auto w = MustOpen(*store_, "key", Sha256Digest(b), 1000);
  EXPECT_EQ(w->offset(), 0);
  ASSERT_THAT(w->Write(b), IsOk());
  EXPECT_THAT(w->Commit(), IsOk());
}

TEST_F(StoreTest, DigestMismatchDeletesPartialData) {
  std::string data = Blob(5000, 'm');
  std::string wrong = Sha256Digest("something else");
  auto w = MustOpen(*store_, "bad", wrong, 5000);
  ASSERT_THAT(w->Write(data), IsOk());
  EXPECT_THAT(w->Commit(), StatusIs(absl::StatusCode::kFailedPrecondition,
                                    AllOf(HasSubstr(wrong), HasSubstr(Sha256Digest(data)))));
  EXPECT_FALSE(store_->Has(wrong));
  EXPECT_FALSE(store_->Has(Sha256Digest(data)));
  EXPECT_TRUE(fs::is_empty(root_ / "ingest"));
  auto again = MustOpen(*store_, "bad", wrong, 5000);
  EXPECT_EQ(again->offset(), 0);
}

TEST_F(StoreTest, SizeMismatchAndOverlongWritesFail) {
  std::string data = Blob(100, 's');
  std::string digest = Sha256Digest(data);
  auto w = MustOpen(*store_, "short", digest, 100);
  ASSERT_THAT(w->Write(data.substr(0, 60)), IsOk());
  EXPECT_THAT(w->Write(data + data), StatusIs(absl::StatusCode::kOutOfRange, HasSubstr("100")));
  EXPECT_EQ(w->offset(), 60);
  EXPECT_THAT(w->Commit(), StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("size")));
  EXPECT_FALSE(store_->Has(digest));
}

TEST_F(StoreTest, TruncateDropsWrittenBytes) {
  std::string data = Blob(300, 't');
  std::string digest = Sha256Digest(data);
  auto w = MustOpen(*store_, "t", digest, 300);
  ASSERT_THAT(w->Write("garbage that a server sent before ignoring Range"), IsOk());
  ASSERT_THAT(w->Truncate(), IsOk());
  EXPECT_EQ(w->offset(), 0);
  ASSERT_THAT(w->Write(data), IsOk());
  EXPECT_THAT(w->Commit(), IsOk());
  EXPECT_EQ(*store_->Read(digest, 1000), data);
}

TEST_F(StoreTest, SecondWriterOfAKeyWaitsForTheFirst) {
  std::string data = Blob(1000, 'w');
  std::string digest = Sha256Digest(data);
  auto first = MustOpen(*store_, "same", digest, 1000);
  ASSERT_THAT(first->Write(data.substr(0, 10)), IsOk());

  // While held: a waiter with a deadline gives up.
  Context short_ctx =
      Context().WithDeadline(Context::Clock::now() + std::chrono::milliseconds(150));
  EXPECT_THAT(store_->OpenWriter(short_ctx, "same", digest, 1000),
              StatusIs(absl::StatusCode::kDeadlineExceeded, HasSubstr("lock")));

  auto second = std::async(std::launch::async, [&] {
    return store_->OpenWriter(Context(), "same", digest, 1000).status();
  });
  EXPECT_EQ(second.wait_for(std::chrono::milliseconds(200)), std::future_status::timeout);
  ASSERT_THAT(first->Write(data.substr(10)), IsOk());
  ASSERT_THAT(first->Commit(), IsOk());
  EXPECT_THAT(second.get(), StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr(digest)));
}

TEST_F(StoreTest, FlockSerializesStoresOnOneRoot) {
  // Two Store objects share no in-process state: only the flock keeps them apart, as between
  // two processes.
  auto other = Store::Open(root_);
  ASSERT_THAT(other, IsOk());
  std::string data = Blob(1000, 'f');
  std::string digest = Sha256Digest(data);
  auto first = MustOpen(*store_, "k", digest, 1000);
  Context short_ctx =
      Context().WithDeadline(Context::Clock::now() + std::chrono::milliseconds(150));
  EXPECT_THAT((*other)->OpenWriter(short_ctx, "k", digest, 1000),
              StatusIs(absl::StatusCode::kDeadlineExceeded, ::testing::_));
  ASSERT_THAT(first->Write(data.substr(0, 400)), IsOk());
  first.reset();
  auto second = MustOpen(**other, "k", digest, 1000);
  EXPECT_EQ(second->offset(), 400);
}

TEST_F(StoreTest, AnotherProcessHoldingTheKeyBlocksUntilItExits) {
  std::string data = Blob(2000, 'p');
  std::string digest = Sha256Digest(data);
  int ready[2], go[2];
  ASSERT_EQ(::pipe(ready), 0);
  ASSERT_EQ(::pipe(go), 0);
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    auto store = Store::Open(root_);
    if (!store.ok()) ::_exit(2);
    auto w = (*store)->OpenWriter(Context(), "proc", digest, 2000);
    if (!w.ok() || !(*w)->Write(std::string_view(data).substr(0, 1500)).ok()) ::_exit(3);
    char c = 1;
    (void)!::write(ready[1], &c, 1);
    (void)!::read(go[0], &c, 1);
    ::_exit(0);  // dies holding the writer: the flock goes with the process
  }
  char c;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  Context short_ctx =
      Context().WithDeadline(Context::Clock::now() + std::chrono::milliseconds(150));
  EXPECT_THAT(store_->OpenWriter(short_ctx, "proc", digest, 2000),
              StatusIs(absl::StatusCode::kDeadlineExceeded, ::testing::_));
  ASSERT_EQ(::write(go[1], &c, 1), 1);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  auto w = MustOpen(*store_, "proc", digest, 2000);
  ASSERT_EQ(w->offset(), 1500);
  ASSERT_THAT(w->Write(std::string_view(data).substr(1500)), IsOk());
  EXPECT_THAT(w->Commit(), IsOk());
  for (int fd : {ready[0], ready[1], go[0], go[1]}) ::close(fd);
}

TEST_F(StoreTest, UnknownSizeIsAccepted) {
  std::string data = Blob(777, 'u');
  auto w = MustOpen(*store_, "u", Sha256Digest(data), -1);
  ASSERT_THAT(w->Write(data), IsOk());
  EXPECT_THAT(w->Commit(), IsOk());
  EXPECT_EQ(*store_->Size(Sha256Digest(data)), 777);
}

}  // namespace
}  // namespace kiln::content

namespace kiln::content {
namespace {

TEST_F(StoreTest, WriterWithoutDigestPublishesUnderTheComputedOne) {
  auto w = store_->OpenWriter(Context(), "layer-export", "", -1);
  ASSERT_THAT(w, IsOk());
  ASSERT_THAT((*w)->Write("compressed "), IsOk());
  ASSERT_THAT((*w)->Write("layer"), IsOk());
  ASSERT_THAT((*w)->Commit(), IsOk());
  const std::string want = Sha256Digest("compressed layer");
  EXPECT_EQ((*w)->digest(), want);
  EXPECT_TRUE(store_->Has(want));
  EXPECT_EQ(*store_->Read(want, 100), "compressed layer");
  // The same bytes again: nothing to publish, no error, nothing left in ingest.
  auto again = store_->OpenWriter(Context(), "layer-export", "", -1);
  ASSERT_THAT(again, IsOk());
  ASSERT_THAT((*again)->Write("compressed layer"), IsOk());
  ASSERT_THAT((*again)->Commit(), IsOk());
  EXPECT_EQ((*again)->digest(), want);
  EXPECT_TRUE(fs::is_empty(root_ / "ingest"));
}

TEST_F(StoreTest, AbortDeletesPartialDataOfAResumableWriter) {
  std::string data = Blob(5000, 'x');
  auto w = MustOpen(*store_, "pull-abort", Sha256Digest(data), 5000);
  ASSERT_THAT(w->Write(std::string_view(data).substr(0, 2000)), IsOk());
  w->Abort();
  w->Abort();  // idempotent
  EXPECT_THAT(w->Write("more"),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("committed")));
  EXPECT_TRUE(fs::is_empty(root_ / "ingest"));
  EXPECT_FALSE(store_->Has(Sha256Digest(data)));
  auto again = MustOpen(*store_, "pull-abort", Sha256Digest(data), 5000);
  EXPECT_EQ(again->offset(), 0);
}

TEST_F(StoreTest, DroppedWriterWithoutDigestLeavesNothing) {
  {
    auto w = MustOpen(*store_, "layer-export", "", -1);
    ASSERT_THAT(w->Write("half a layer"), IsOk());
  }  // an export that failed: it could never be resumed
  EXPECT_TRUE(fs::is_empty(root_ / "ingest"));
}

}  // namespace
}  // namespace kiln::content
