#include "client/session.h"

#include <fcntl.h>
#include <grpcpp/server_posix.h>
#include <sys/socket.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "base/ids.h"
#include "base/socket_io.h"
#include "google/protobuf/descriptor.h"

namespace kiln::client {
namespace v1 = moby::buildkit::v1;
namespace {

constexpr int kMaxMessageBytes = 16 << 20;
constexpr size_t kChunk = 32 << 10;

}  // namespace

std::string NewSessionId() { return NewRandomId(); }

grpc::ServerUnaryReactor* HealthService::Check(grpc::CallbackServerContext* ctx,
                                               const grpc::health::v1::HealthCheckRequest*,
                                               grpc::health::v1::HealthCheckResponse* resp) {
  resp->set_status(grpc::health::v1::HealthCheckResponse::SERVING);
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

absl::StatusOr<std::unique_ptr<SessionServer>> SessionServer::Start(
    std::shared_ptr<grpc::Channel> daemon, SessionOptions options) {
  std::unique_ptr<SessionServer> s(new SessionServer());
  s->id_ = NewSessionId();
  s->stub_ = v1::Control::NewStub(daemon);

  grpc::ServerBuilder builder;
  builder.SetMaxReceiveMessageSize(kMaxMessageBytes);
  builder.SetMaxSendMessageSize(kMaxMessageBytes);
  std::vector<std::string> methods;
  const auto* pool = google::protobuf::DescriptorPool::generated_pool();
  for (auto& [service, name] : options.services) {
    const google::protobuf::ServiceDescriptor* desc = pool->FindServiceByName(name);
    if (desc == nullptr) {
      return absl::InternalError(absl::StrCat("unknown session service ", name));
    }
    for (int i = 0; i < desc->method_count(); ++i) {
      methods.push_back(absl::StrCat("/", name, "/", desc->method(i)->name()));
    }
    builder.RegisterService(service);
  }
  s->server_ = builder.BuildAndStart();
  if (!s->server_) return absl::InternalError("cannot start the session's gRPC server");

  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    return absl::InternalError("socketpair failed");
  }
  // gRPC's endpoint needs a non-blocking descriptor; our pump end stays blocking.
  ::fcntl(fds[0], F_SETFL, ::fcntl(fds[0], F_GETFL) | O_NONBLOCK);
  grpc::AddInsecureChannelFromFd(s->server_.get(), fds[0]);  // takes ownership of fds[0]
  s->fd_ = fds[1];

  s->ctx_.AddMetadata("x-docker-expose-session-uuid", s->id_);
  s->ctx_.AddMetadata("x-docker-expose-session-name", options.name);
  s->ctx_.AddMetadata("x-docker-expose-session-sharedkey", options.shared_key);
  for (const std::string& m : methods)
    s->ctx_.AddMetadata("x-docker-expose-session-grpc-method", m);
  s->stream_ = s->stub_->Session(&s->ctx_);
  SessionServer* raw = s.get();
  s->in_ = std::thread([raw] { raw->PumpStreamToFd(); });
  s->out_ = std::thread([raw] { raw->PumpFdToStream(); });
  return s;
}

void SessionServer::PumpStreamToFd() {
  v1::BytesMessage msg;
  while (stream_->Read(&msg)) {
    if (!SendAll(fd_, msg.data())) break;
  }
  ::shutdown(fd_, SHUT_RDWR);  // the daemon went away: stop the other pump too
}

void SessionServer::PumpFdToStream() {
  std::string buf(kChunk, '\0');
  v1::BytesMessage msg;
  while (true) {
    ssize_t n = ::read(fd_, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    msg.set_data(buf.data(), static_cast<size_t>(n));
    if (!stream_->Write(msg)) break;
  }
  stream_->WritesDone();
}

void SessionServer::Close() {
  if (closed_.exchange(true)) return;
  ctx_.TryCancel();
  ::shutdown(fd_, SHUT_RDWR);
  if (in_.joinable()) in_.join();
  if (out_.joinable()) out_.join();
  stream_->Finish().IgnoreError();
  server_->Shutdown(std::chrono::system_clock::now());
  server_->Wait();
  ::close(fd_);
}

SessionServer::~SessionServer() {
  if (stream_) Close();
}

}  // namespace kiln::client
