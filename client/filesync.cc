#include "client/filesync.h"

#include <grpcpp/impl/codegen/method_handler.h>
#include <grpcpp/impl/codegen/rpc_service_method.h>
#include <grpcpp/support/proto_buffer_reader.h>
#include <grpcpp/support/proto_buffer_writer.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "fsutil/diffcopy.h"

namespace kiln::client {
namespace {

using ::fsutil::types::Packet;

std::vector<std::string> Values(const grpc::ServerContext* ctx, const char* key) {
  std::vector<std::string> out;
  auto range = ctx->client_metadata().equal_range(key);
  for (auto it = range.first; it != range.second; ++it)
    out.emplace_back(it->second.data(), it->second.size());
  return out;
}

grpc::Status ToGrpc(const absl::Status& st) {
  return grpc::Status(static_cast<grpc::StatusCode>(st.code()), std::string(st.message()));
}

class TypedStream final : public fsutil::PacketStream {
 public:
  TypedStream(grpc::ServerReaderWriter<Packet, Packet>* s, grpc::ServerContext* ctx)
      : s_(s), ctx_(ctx) {}
  absl::Status Send(const Packet& p) override {
    if (!s_->Write(p)) return absl::UnavailableError("the daemon closed the transfer");
    return absl::OkStatus();
  }
  absl::Status Recv(Packet* p) override {
    if (!s_->Read(p)) return absl::OutOfRangeError("end of stream");
    return absl::OkStatus();
  }
  void Cancel() override { ctx_->TryCancel(); }

 private:
  grpc::ServerReaderWriter<Packet, Packet>* s_;
  grpc::ServerContext* ctx_;
};

// Packets over a stream of raw buffers.
class RawPacketStream final : public fsutil::PacketStream {
 public:
  RawPacketStream(grpc::ServerReaderWriter<grpc::ByteBuffer, grpc::ByteBuffer>* s,
                  grpc::ServerContext* ctx)
      : s_(s), ctx_(ctx) {}
  absl::Status Send(const Packet& p) override {
    grpc::ByteBuffer buf;
    bool own = false;
    if (!grpc::GenericSerialize<grpc::ProtoBufferWriter, Packet>(p, &buf, &own).ok() ||
        !s_->Write(buf)) {
      return absl::UnavailableError("the daemon closed the transfer");
    }
    return absl::OkStatus();
  }
  absl::Status Recv(Packet* p) override {
    grpc::ByteBuffer buf;
    if (!s_->Read(&buf)) return absl::OutOfRangeError("end of stream");
    if (!grpc::GenericDeserialize<grpc::ProtoBufferReader, Packet>(&buf, p).ok()) {
      return absl::DataLossError("malformed packet from the daemon");
    }
    return absl::OkStatus();
  }
  void Cancel() override { ctx_->TryCancel(); }

 private:
  grpc::ServerReaderWriter<grpc::ByteBuffer, grpc::ByteBuffer>* s_;
  grpc::ServerContext* ctx_;
};

}  // namespace

grpc::Status FileSyncService::DiffCopy(grpc::ServerContext* ctx,
                                       grpc::ServerReaderWriter<Packet, Packet>* stream) {
  auto names = Values(ctx, "dir-name");
  if (names.empty()) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "no dir-name header");
  auto it = dirs_.find(names[0]);
  if (it == dirs_.end()) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        absl::StrCat("the build needs a local directory named \"", names[0],
                                     "\": pass --local ", names[0], "=DIR"));
  }
  fsutil::SendOptions opts;
  opts.include_patterns = Values(ctx, "include-patterns");
  opts.exclude_patterns = Values(ctx, "exclude-patterns");
  opts.follow_paths = Values(ctx, "followpaths");
  TypedStream packets(stream, ctx);
  return ToGrpc(fsutil::Send(packets, it->second, opts));
}

FileSendService::FileSendService(std::vector<OutputTarget> outputs) : outputs_(std::move(outputs)) {
  AddMethod(new grpc::internal::RpcServiceMethod(
      "/moby.filesync.v1.FileSend/DiffCopy", grpc::internal::RpcMethod::BIDI_STREAMING,
      new grpc::internal::BidiStreamingHandler<FileSendService, grpc::ByteBuffer, grpc::ByteBuffer>(
          [](FileSendService* service, grpc::ServerContext* ctx,
             grpc::ServerReaderWriter<grpc::ByteBuffer, grpc::ByteBuffer>* stream) {
            return service->DiffCopy(ctx, stream);
          },
          this)));
}

grpc::Status FileSendService::DiffCopy(
    grpc::ServerContext* ctx,
    grpc::ServerReaderWriter<grpc::ByteBuffer, grpc::ByteBuffer>* stream) {
  size_t id = 0;
  auto ids = Values(ctx, "buildkit-attachable-exporter-id");
  if (!ids.empty()) id = static_cast<size_t>(std::strtoul(ids[0].c_str(), nullptr, 10));
  if (id >= outputs_.size()) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND, absl::StrCat("exporter ", id, " not found"));
  }
  const OutputTarget& out = outputs_[id];
  if (out.type == "local") {
    std::error_code ec;
    std::filesystem::create_directories(out.dest, ec);
    if (ec) {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                          absl::StrCat("create ", out.dest, ": ", ec.message()));
    }
    RawPacketStream packets(stream, ctx);
    fsutil::ReceiveOptions opts;
    opts.merge = true;  // an output adds to the destination, never deletes from it
    return ToGrpc(fsutil::Receive(packets, out.dest, opts).status());
  }
  // Raw bytes: a tarball.
  FILE* f = out.dest == "-" ? stdout : std::fopen(out.dest.c_str(), "wb");
  if (f == nullptr) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        absl::StrCat("cannot write ", out.dest));
  }
  grpc::ByteBuffer buf;
  moby::filesync::v1::BytesMessage msg;
  bool ok = true;
  while (stream->Read(&buf)) {
    if (!grpc::GenericDeserialize<grpc::ProtoBufferReader, moby::filesync::v1::BytesMessage>(&buf,
                                                                                             &msg)
             .ok() ||
        std::fwrite(msg.data().data(), 1, msg.data().size(), f) != msg.data().size()) {
      ok = false;
      break;
    }
  }
  if (f != stdout) ok = std::fclose(f) == 0 && ok;
  if (!ok) return grpc::Status(grpc::StatusCode::DATA_LOSS, absl::StrCat("writing ", out.dest));
  return grpc::Status::OK;
}

}  // namespace kiln::client
