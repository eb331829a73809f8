#include "daemon/session/content.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <fstream>
#include <stop_token>

#include "absl/strings/str_cat.h"
#include "base/digest.h"
#include "base/status.h"
#include "proto/containerd/services/content/v1/content.grpc.pb.h"

namespace kiln::session {
namespace {

namespace pb = containerd::services::content::v1;

// Below the 4 MiB a Go gRPC server (buildctl's session) accepts in one message.
constexpr size_t kWriteChunk = 1 << 20;

// One call to the client's store: its deadline and cancellation follow `ctx`, and it names
// the store.
class Call {
 public:
  Call(const Context& ctx, const std::string& store_id)
      : cancel_(ctx.stop_token(), [this] { call_.TryCancel(); }) {
    if (auto deadline = ctx.deadline()) {
      call_.set_deadline(std::chrono::system_clock::now() + (*deadline - Context::Clock::now()));
    }
    call_.AddMetadata(kContentStoreIdHeader, store_id);
  }
  grpc::ClientContext* get() { return &call_; }

 private:
  grpc::ClientContext call_;
  std::stop_callback<std::function<void()>> cancel_;
};

absl::Status FromGrpc(const Context& ctx, const grpc::Status& st, const std::string& what) {
  if (st.ok()) return absl::OkStatus();
  if (ctx.Cancelled()) return ctx.Check(what.c_str());
  return absl::Status(static_cast<absl::StatusCode>(st.error_code()),
                      absl::StrCat(what, ": ", st.error_message()));
}

absl::Status CheckDigest(const std::string& digest) {
  if (IsSha256Digest(digest)) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("invalid digest \"", digest, "\""));
}

}  // namespace

absl::StatusOr<int64_t> ClientContentStore::Info(const Context& ctx,
                                                 const std::string& digest) const {
  KILN_RETURN_IF_ERROR(CheckDigest(digest));
  KILN_RETURN_IF_ERROR(session_->CheckMethod(kContentInfoMethod));
  Call call(ctx, store_id_);
  pb::InfoRequest req;
  req.set_digest(digest);
  pb::InfoResponse resp;
  grpc::Status st = pb::Content::NewStub(session_->channel())->Info(call.get(), req, &resp);
  KILN_RETURN_IF_ERROR(FromGrpc(ctx, st, absl::StrCat(store_id_, " blob ", digest)));
  return resp.info().size();
}

absl::Status ClientContentStore::Read(
    const Context& ctx, const std::string& digest, int64_t offset, int64_t limit,
    const std::function<absl::Status(std::string_view)>& sink) const {
  KILN_RETURN_IF_ERROR(CheckDigest(digest));
  KILN_RETURN_IF_ERROR(session_->CheckMethod(kContentReadMethod));
  Call call(ctx, store_id_);
  pb::ReadContentRequest req;
  req.set_digest(digest);
  req.set_offset(offset);
  auto reader = pb::Content::NewStub(session_->channel())->Read(call.get(), req);
  pb::ReadContentResponse resp;
  int64_t total = 0;
  absl::Status failed;
  while (reader->Read(&resp)) {
    total += static_cast<int64_t>(resp.data().size());
    if (total > limit) {
      failed = absl::DataLossError(
          absl::StrCat(store_id_, " blob ", digest, " is longer than expected"));
    } else {
      failed = sink(resp.data());
    }
    if (!failed.ok()) {
      call.get()->TryCancel();
      reader->Finish().IgnoreError();
      return failed;
    }
  }
  return FromGrpc(ctx, reader->Finish(), absl::StrCat("read ", store_id_, " blob ", digest));
}

absl::StatusOr<std::string> ClientContentStore::ReadBlob(const Context& ctx,
                                                         const std::string& digest,
                                                         int64_t max_bytes) const {
  std::string out;
  KILN_RETURN_IF_ERROR(Read(ctx, digest, 0, INT64_MAX, [&](std::string_view chunk) {
    if (static_cast<int64_t>(out.size() + chunk.size()) > max_bytes) {
      return absl::ResourceExhaustedError(
          absl::StrCat(store_id_, " blob ", digest, " is larger than ", max_bytes, " bytes"));
    }
    out.append(chunk);
    return absl::OkStatus();
  }));
  if (Sha256Digest(out) != digest) {
    return absl::DataLossError(absl::StrCat(store_id_, " blob ", digest,
                                            " has other content (digest ", Sha256Digest(out), ")"));
  }
  return out;
}

absl::Status ClientContentStore::WriteBlob(const Context& ctx, const std::string& digest,
                                           std::string_view data) const {
  return Write(ctx, digest, static_cast<int64_t>(data.size()),
               [data](int64_t offset, size_t max) -> absl::StatusOr<std::string> {
                 return std::string(data.substr(static_cast<size_t>(offset), max));
               });
}

absl::Status ClientContentStore::WriteFile(const Context& ctx, const std::string& digest,
                                           int64_t size, const std::filesystem::path& path) const {
  std::ifstream in(path, std::ios::binary);
  if (!in) return ErrnoToStatus(errno, absl::StrCat("open ", path.string()));
  return Write(ctx, digest, size, [&in, &path](int64_t, size_t max) -> absl::StatusOr<std::string> {
    std::string chunk(max, '\0');
    in.read(chunk.data(), static_cast<std::streamsize>(max));
    if (in.bad()) return ErrnoToStatus(errno, absl::StrCat("read ", path.string()));
    chunk.resize(static_cast<size_t>(in.gcount()));
    return chunk;
  });
}

// containerd's writer protocol, as its proxy store speaks it: a STAT opens the ref (the
// server refuses a blob it already has with ALREADY_EXISTS), WRITEs carry the data at
// increasing offsets, COMMIT verifies size and digest. Every request gets one response.
absl::Status ClientContentStore::Write(const Context& ctx, const std::string& digest, int64_t size,
                                       const ChunkSource& source) const {
  KILN_RETURN_IF_ERROR(CheckDigest(digest));
  KILN_RETURN_IF_ERROR(session_->CheckMethod(kContentWriteMethod));
  const std::string what = absl::StrCat("write ", store_id_, " blob ", digest);
  Call call(ctx, store_id_);
  auto stream = pb::Content::NewStub(session_->channel())->Write(call.get());
  pb::WriteContentResponse resp;
  // Sends `req` and reads its answer; false when the stream ended (Finish says why).
  auto exchange = [&](const pb::WriteContentRequest& req) {
    return stream->Write(req) && stream->Read(&resp);
  };
  // Finish blocks while responses are unread: containerd's server sends its last response
  // once more as the stream ends.
  auto drain = [&] {
    while (stream->Read(&resp)) {
    }
  };
  auto finish = [&]() -> absl::Status {
    stream->WritesDone();
    drain();
    grpc::Status st = stream->Finish();
    if (st.error_code() == grpc::StatusCode::ALREADY_EXISTS) return absl::OkStatus();
    if (st.ok()) return absl::DataLossError(absl::StrCat(what, ": the client ended the write"));
    return FromGrpc(ctx, st, what);
  };
  auto fail = [&](absl::Status st) {
    call.get()->TryCancel();
    stream->Finish().IgnoreError();
    return st;
  };

  pb::WriteContentRequest req;
  req.set_action(pb::STAT);
  req.set_ref(absl::StrCat("kiln-", digest));
  req.set_total(size);
  req.set_expected(digest);
  if (!exchange(req)) return finish();
  int64_t offset = 0;
  while (offset < size) {
    absl::StatusOr<std::string> chunk =
        source(offset, static_cast<size_t>(std::min<int64_t>(size - offset, kWriteChunk)));
    if (!chunk.ok()) return fail(chunk.status());
    if (chunk->empty()) {
      return fail(absl::DataLossError(
          absl::StrCat(what, ": the source ended after ", offset, " of ", size, " bytes")));
    }
    req.Clear();
    req.set_action(pb::WRITE);
    req.set_offset(offset);
    req.set_data(*std::move(chunk));
    if (!exchange(req)) return finish();
    if (resp.offset() != offset + static_cast<int64_t>(req.data().size())) {
      return fail(absl::DataLossError(absl::StrCat(what, ": the client took ", resp.offset(),
                                                   " bytes, not ", offset + req.data().size())));
    }
    offset = resp.offset();
  }
  req.Clear();
  req.set_action(pb::COMMIT);
  req.set_offset(offset);
  req.set_total(size);
  req.set_expected(digest);
  if (!exchange(req)) return finish();
  if (resp.digest() != digest || resp.offset() != size) {
    return fail(absl::DataLossError(absl::StrCat(what, ": the client committed ", resp.digest(),
                                                 " (", resp.offset(), " bytes)")));
  }
  stream->WritesDone();
  drain();
  return FromGrpc(ctx, stream->Finish(), what);
}

}  // namespace kiln::session
