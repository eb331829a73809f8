// The daemon reading and writing a client's local cache directory: ClientContentStore through a
// real session tunnel to the client's ContentService (client/localcache.h), both speaking
// containerd's content protocol.

#include "daemon/session/content.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <random>

#include "base/digest.h"
#include "client/localcache.h"
#include "proto/containerd/services/content/v1/content.grpc.pb.h"
#include "tests/testutil/files.h"
#include "tests/testutil/session_pair.h"
#include "tests/testutil/status_matchers.h"

namespace kiln::session {
namespace {

namespace fs = std::filesystem;
namespace pb = containerd::services::content::v1;
using ::kiln::testing::IsOk;
using ::kiln::testing::ReadFile;
using ::kiln::testing::SessionPair;
using ::kiln::testing::StatusIs;
using ::kiln::testing::WriteFile;
using ::testing::_;
using ::testing::HasSubstr;

class ClientContentStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::path(::testing::TempDir()) /
            ("kiln_content_test_" + std::to_string(std::random_device{}()));
    fs::create_directories(root_);
    dir_ = root_ / "cache";
    auto store = client::OciLayoutStore::Open(dir_.string(), true);
    ASSERT_THAT(store, IsOk());
    local_ = std::shared_ptr<client::OciLayoutStore>(*std::move(store));
    service_ = std::make_unique<client::ContentService>(
        std::map<std::string, std::shared_ptr<client::OciLayoutStore>>{{id(), local_}});
    auto pair = SessionPair::Start(root_.string(),
                                   {{service_.get(), "containerd.services.content.v1.Content"}});
    ASSERT_THAT(pair, IsOk());
    pair_ = *std::move(pair);
    store_ = std::make_unique<ClientContentStore>(pair_->session(), id());
  }
  void TearDown() override {
    store_.reset();
    pair_.reset();
    fs::remove_all(root_);
  }
  std::string id() const { return "local:" + dir_.string(); }
  fs::path BlobPath(const std::string& digest) const {
    return dir_ / "blobs/sha256" / digest.substr(7);
  }

  fs::path root_, dir_;
  std::shared_ptr<client::OciLayoutStore> local_;
  std::unique_ptr<client::ContentService> service_;
  std::unique_ptr<SessionPair> pair_;
  std::unique_ptr<ClientContentStore> store_;
};

TEST_F(ClientContentStoreTest, WritesAndReadsBlobsOfManyChunks) {
  std::string big(3 * (1 << 20) + 123, '\0');
  std::mt19937 rng(7);
  for (char& c : big) c = static_cast<char>(rng());
  const std::string digest = Sha256Digest(big);
  ASSERT_THAT(store_->WriteBlob(Context(), digest, big), IsOk());
  EXPECT_EQ(ReadFile(BlobPath(digest)), big);
  EXPECT_EQ(*store_->Info(Context(), digest), static_cast<int64_t>(big.size()));
  EXPECT_EQ(*store_->ReadBlob(Context(), digest, 16 << 20), big);
  // From an offset, as a resumed download reads.
  std::string tail;
  ASSERT_THAT(store_->Read(Context(), digest, 1000, INT64_MAX,
                           [&](std::string_view chunk) {
                             tail.append(chunk);
                             return absl::OkStatus();
                           }),
              IsOk());
  EXPECT_EQ(tail, big.substr(1000));
  // A blob the client already has is accepted without a second copy.
  EXPECT_THAT(store_->WriteBlob(Context(), digest, big), IsOk());
  // And a file of this daemon's store.
  const fs::path file = root_ / "layer";
  WriteFile(file, "layer data");
  ASSERT_THAT(store_->WriteFile(Context(), Sha256Digest("layer data"), 10, file), IsOk());
  EXPECT_EQ(ReadFile(BlobPath(Sha256Digest("layer data"))), "layer data");
  EXPECT_FALSE(fs::exists(dir_ / "ingest") && !fs::is_empty(dir_ / "ingest"));
}

TEST_F(ClientContentStoreTest, MissingBlobsAreNotFound) {
  EXPECT_THAT(store_->Info(Context(), Sha256Digest("absent")),
              StatusIs(absl::StatusCode::kNotFound, _));
  EXPECT_THAT(store_->ReadBlob(Context(), Sha256Digest("absent"), 100),
              StatusIs(absl::StatusCode::kNotFound, _));
}

TEST_F(ClientContentStoreTest, ChangedBytesAreDataLoss) {
  const std::string digest = Sha256Digest("manifest");
  ASSERT_THAT(store_->WriteBlob(Context(), digest, "manifest"), IsOk());
  WriteFile(BlobPath(digest), "tampered");
  EXPECT_THAT(store_->ReadBlob(Context(), digest, 100),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("other content")));
  // Longer than the caller expects: stopped early.
  EXPECT_THAT(
      store_->Read(Context(), digest, 0, 3, [](std::string_view) { return absl::OkStatus(); }),
      StatusIs(absl::StatusCode::kDataLoss, _));
  EXPECT_THAT(store_->ReadBlob(Context(), digest, 4),
              StatusIs(absl::StatusCode::kResourceExhausted, _));
}

TEST_F(ClientContentStoreTest, AnotherStoreIdIsNotFound) {
  ClientContentStore other(pair_->session(), "local:" + (root_ / "elsewhere").string());
  EXPECT_THAT(other.Info(Context(), Sha256Digest("x")),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("unknown store")));
}

// What a misbehaving daemon could send, straight to the client's service.
class RawContentTest : public ClientContentStoreTest {
 protected:
  std::unique_ptr<grpc::ClientContext> Call() {
    auto call = std::make_unique<grpc::ClientContext>();
    call->AddMetadata("buildkit-attachable-store-id", id());
    return call;
  }
  std::unique_ptr<pb::Content::Stub> Stub() {
    return pb::Content::NewStub(pair_->session()->channel());
  }
};

TEST_F(RawContentTest, DigestsThatNameOtherPathsAreRefused) {
  WriteFile(root_ / "secret", "secret");
  for (const std::string& bad : {std::string("sha256:../../secret"), std::string("../secret"),
                                 "sha256:" + std::string(64, 'G')}) {
    SCOPED_TRACE(bad);
    pb::InfoRequest info;
    info.set_digest(bad);
    pb::InfoResponse info_resp;
    EXPECT_EQ(Stub()->Info(Call().get(), info, &info_resp).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
    pb::ReadContentRequest read;
    read.set_digest(bad);
    auto call = Call();
    auto reader = Stub()->Read(call.get(), read);
    pb::ReadContentResponse chunk;
    EXPECT_FALSE(reader->Read(&chunk));
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  }
  pb::InfoRequest info;
  info.set_digest(Sha256Digest("x"));
  pb::InfoResponse resp;
  grpc::ClientContext no_id;
  EXPECT_EQ(Stub()->Info(&no_id, info, &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(RawContentTest, ACommitOfOtherBytesPublishesNothing) {
  auto call = Call();
  auto stream = Stub()->Write(call.get());
  pb::WriteContentRequest req;
  pb::WriteContentResponse resp;
  req.set_action(pb::STAT);
  req.set_ref("r1");
  req.set_expected(Sha256Digest("good"));
  ASSERT_TRUE(stream->Write(req) && stream->Read(&resp));
  // Status of the write in progress, from another call.
  pb::StatusRequest status_req;
  status_req.set_ref("r1");
  pb::StatusResponse status;
  ASSERT_TRUE(Stub()->Status(Call().get(), status_req, &status).ok());
  EXPECT_EQ(status.status().expected(), Sha256Digest("good"));
  req.Clear();
  req.set_action(pb::COMMIT);
  req.set_data("evil");
  EXPECT_TRUE(stream->Write(req));
  EXPECT_FALSE(stream->Read(&resp));
  stream->WritesDone();
  EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_FALSE(fs::exists(BlobPath(Sha256Digest("good"))));
  EXPECT_FALSE(fs::exists(BlobPath(Sha256Digest("evil"))));
  EXPECT_TRUE(fs::is_empty(dir_ / "ingest"));
}

TEST_F(RawContentTest, AbortEndsAWriteInProgress) {
  auto call = Call();
  auto stream = Stub()->Write(call.get());
  pb::WriteContentRequest req;
  pb::WriteContentResponse resp;
  req.set_action(pb::WRITE);
  req.set_ref("r2");
  req.set_data("part");
  ASSERT_TRUE(stream->Write(req) && stream->Read(&resp));
  EXPECT_EQ(resp.offset(), 4);
  pb::AbortRequest abort;
  abort.set_ref("r2");
  google::protobuf::Empty empty;
  ASSERT_TRUE(Stub()->Abort(Call().get(), abort, &empty).ok());
  req.Clear();
  req.set_action(pb::WRITE);
  req.set_offset(4);
  req.set_data("more");
  stream->Write(req);
  EXPECT_FALSE(stream->Read(&resp));
  stream->WritesDone();
  EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::ABORTED);
  EXPECT_TRUE(fs::is_empty(dir_ / "ingest"));
}

}  // namespace
}  // namespace kiln::session
