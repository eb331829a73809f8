#pragma once
// The client side of file transfers in a session: FileSync serves the --local directories
// (the daemon pulls them), FileSend receives outputs (fsutil packets into a directory for
// type=local, raw bytes into a file for type=tar). Thread-safe.

#include <grpcpp/grpcpp.h>

#include <map>
#include <string>
#include <vector>

#include "proto/moby/filesync/v1/filesync.grpc.pb.h"

namespace kiln::client {

class FileSyncService final : public moby::filesync::v1::FileSync::Service {
 public:
  explicit FileSyncService(std::map<std::string, std::string> dirs) : dirs_(std::move(dirs)) {}
  grpc::Status DiffCopy(
      grpc::ServerContext* ctx,
      grpc::ServerReaderWriter<::fsutil::types::Packet, ::fsutil::types::Packet>* stream) override;

 private:
  const std::map<std::string, std::string> dirs_;  // --local name → directory
};

// Where each exporter's output goes, by exporter index.
struct OutputTarget {
  std::string type;  // "local" or "tar"
  std::string dest;  // directory (local), file or "-" for stdout (tar)
};

// FileSend/DiffCopy is declared with BytesMessage but carries fsutil packets for local
// outputs, so this service handles the method on raw buffers and parses per output type.
class FileSendService final : public grpc::Service {
 public:
  explicit FileSendService(std::vector<OutputTarget> outputs);

 private:
  grpc::Status DiffCopy(grpc::ServerContext* ctx,
                        grpc::ServerReaderWriter<grpc::ByteBuffer, grpc::ByteBuffer>* stream);
  const std::vector<OutputTarget> outputs_;
};

}  // namespace kiln::client
