#include "daemon/session/filesync.h"

#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/codegen/client_callback.h>
#include <grpcpp/impl/codegen/rpc_method.h>
#include <grpcpp/impl/codegen/sync_stream.h>

#include <optional>
#include <stop_token>

#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "proto/moby/filesync/v1/filesync.grpc.pb.h"

namespace kiln::session {
namespace {

using ::fsutil::types::Packet;
using PacketStreamRW = grpc::ClientReaderWriter<Packet, Packet>;

// fsutil's PacketStream over a gRPC bidi stream of Packets.
class GrpcPacketStream final : public fsutil::PacketStream {
 public:
  GrpcPacketStream(PacketStreamRW* stream, grpc::ClientContext* ctx) : stream_(stream), ctx_(ctx) {}
  absl::Status Send(const Packet& p) override {
    if (!stream_->Write(p)) return absl::UnavailableError("the client closed the transfer");
    return absl::OkStatus();
  }
  absl::Status Recv(Packet* p) override {
    if (stream_->Read(p)) return absl::OkStatus();
    // The client ended the call: its status says whether that was the end or a failure.
    final_ = stream_->Finish();
    finished_ = true;
    if (!final_->ok()) {
      return absl::Status(static_cast<absl::StatusCode>(final_->error_code()),
                          final_->error_message());
    }
    return absl::OutOfRangeError("end of stream");
  }
  void Cancel() override { ctx_->TryCancel(); }
  // The call's final status once Recv saw the end of the stream.
  const std::optional<grpc::Status>& final_status() const { return final_; }

 private:
  PacketStreamRW* stream_;
  grpc::ClientContext* ctx_;
  bool finished_ = false;
  std::optional<grpc::Status> final_;
};

// Cancels the call when the context is cancelled.
class CancelOnStop {
 public:
  CancelOnStop(const Context& ctx, grpc::ClientContext* call)
      : cb_(ctx.stop_token(), [call] { call->TryCancel(); }) {}

 private:
  std::stop_callback<std::function<void()>> cb_;
};

// Ends a stream after a transfer and folds the call's final status into the transfer's.
absl::Status Conclude(PacketStreamRW* stream, const std::optional<grpc::Status>& final,
                      absl::Status transfer, const char* what) {
  grpc::Status st;
  if (final) {
    // Recv already turned the client's status into the transfer's error.
    if (!transfer.ok()) return Annotate(transfer, what);
    st = *final;
  } else {
    stream->WritesDone();
    st = stream->Finish();
  }
  if (!transfer.ok()) {
    if (!st.ok() && st.error_code() != grpc::StatusCode::CANCELLED) {
      return Annotate(transfer, absl::StrCat(what, " (client said: ", st.error_message(), ")"));
    }
    return Annotate(transfer, what);
  }
  if (!st.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(st.error_code()),
                        absl::StrCat(what, ": ", st.error_message()));
  }
  return absl::OkStatus();
}

// FileSend.DiffCopy is declared with BytesMessage, but for local outputs BuildKit sends fsutil
// packets through it; this opens the method with Packet as the message type on both sides.
std::unique_ptr<PacketStreamRW> OpenPacketCall(grpc::ChannelInterface* channel,
                                               grpc::ClientContext* ctx, const char* method) {
  grpc::internal::RpcMethod rpc(method, grpc::internal::RpcMethod::BIDI_STREAMING);
  return std::unique_ptr<PacketStreamRW>(
      grpc::internal::ClientReaderWriterFactory<Packet, Packet>::Create(channel, rpc, ctx));
}

}  // namespace

absl::StatusOr<fsutil::ReceiveStats> SyncFromClient(const Context& ctx, const Session& session,
                                                    const SyncRequest& request,
                                                    const std::string& dest,
                                                    const fsutil::ReceiveOptions& options) {
  KILN_RETURN_IF_ERROR(session.CheckMethod(kFileSyncMethod));
  grpc::ClientContext call;
  call.AddMetadata("dir-name", request.dir_name);
  for (const auto& p : request.include_patterns) call.AddMetadata("include-patterns", p);
  for (const auto& p : request.exclude_patterns) call.AddMetadata("exclude-patterns", p);
  for (const auto& p : request.follow_paths) call.AddMetadata("followpaths", p);
  CancelOnStop cancel(ctx, &call);
  auto stream = OpenPacketCall(session.channel().get(), &call, kFileSyncMethod);
  GrpcPacketStream packets(stream.get(), &call);
  auto stats = fsutil::Receive(packets, dest, options);
  absl::Status st = Conclude(stream.get(), packets.final_status(), stats.status(),
                             absl::StrCat("sync local \"", request.dir_name, "\"").c_str());
  if (!st.ok()) return st;
  return stats;
}

absl::Status SendTreeToClient(const Context& ctx, const Session& session, const std::string& root,
                              const std::multimap<std::string, std::string>& metadata) {
  KILN_RETURN_IF_ERROR(session.CheckMethod(kFileSendMethod));
  grpc::ClientContext call;
  for (const auto& [k, v] : metadata) call.AddMetadata(k, v);
  CancelOnStop cancel(ctx, &call);
  auto stream = OpenPacketCall(session.channel().get(), &call, kFileSendMethod);
  GrpcPacketStream packets(stream.get(), &call);
  absl::Status st = fsutil::Send(packets, root, fsutil::SendOptions{});
  return Conclude(stream.get(), packets.final_status(), st, "send output to the client");
}

absl::Status SendBytesToClient(
    const Context& ctx, const Session& session,
    const std::multimap<std::string, std::string>& metadata,
    const std::function<absl::Status(const ByteWriter& write)>& produce) {
  KILN_RETURN_IF_ERROR(session.CheckMethod(kFileSendMethod));
  grpc::ClientContext call;
  for (const auto& [k, v] : metadata) call.AddMetadata(k, v);
  CancelOnStop cancel(ctx, &call);
  auto stub = moby::filesync::v1::FileSend::NewStub(session.channel());
  auto stream = stub->DiffCopy(&call);
  moby::filesync::v1::BytesMessage msg;
  absl::Status st = produce([&](std::string_view chunk) -> absl::Status {
    msg.set_data(std::string(chunk));
    if (!stream->Write(msg)) return absl::UnavailableError("the client closed the transfer");
    return absl::OkStatus();
  });
  stream->WritesDone();
  // The receiver answers when it has stored everything; drain until it ends the stream.
  while (stream->Read(&msg)) {
  }
  grpc::Status fin = stream->Finish();
  if (!st.ok()) return Annotate(st, "send output to the client");
  if (!fin.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(fin.error_code()),
                        absl::StrCat("send output to the client: ", fin.error_message()));
  }
  return absl::OkStatus();
}

}  // namespace kiln::session
