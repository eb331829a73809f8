#include "daemon/session/ssh.h"

#include <grpcpp/grpcpp.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <functional>
#include <stop_token>

#include "absl/strings/str_cat.h"
#include "base/ids.h"
#include "base/socket_io.h"
#include "base/status.h"
#include "daemon/util/logging.h"
#include "proto/moby/sshforward/v1/ssh.grpc.pb.h"

namespace kiln::session {
namespace {

namespace pb = moby::sshforward::v1;
constexpr size_t kChunk = 32 << 10;               // what BuildKit's sshforward.Copy reads at a time
constexpr char kThreadName[] = "kiln-ssh-proxy";  // tests look for leftovers by this name

absl::Status NoKey(const std::string& id) {
  return absl::NotFoundError(absl::StrCat("no SSH key \"", id,
                                          "\" forwarded from the client (pass --ssh ", id,
                                          "[=SOCKET|KEYFILE] to the build)"));
}

}  // namespace

absl::Status CheckSshAgent(const Context& ctx, const Session& session, const std::string& id) {
  const std::string want = id.empty() ? kDefaultSshId : id;
  KILN_RETURN_IF_ERROR(ctx.Check("check SSH agent"));
  if (absl::Status st = session.CheckMethod(kSshCheckAgentMethod); !st.ok()) {
    if (st.code() == absl::StatusCode::kFailedPrecondition) return NoKey(want);
    return Annotate(st, absl::StrCat("check SSH agent \"", want, "\""));
  }
  grpc::ClientContext call;
  if (auto deadline = ctx.deadline()) {
    call.set_deadline(std::chrono::system_clock::now() + (*deadline - Context::Clock::now()));
  }
  std::stop_callback<std::function<void()>> cancel(ctx.stop_token(), [&call] { call.TryCancel(); });
  pb::CheckAgentRequest req;
  req.set_id(want);
  pb::CheckAgentResponse resp;
  grpc::Status st = pb::SSH::NewStub(session.channel())->CheckAgent(&call, req, &resp);
  if (st.ok()) return absl::OkStatus();
  if (ctx.Cancelled()) return ctx.Check("check SSH agent");
  switch (st.error_code()) {
    case grpc::StatusCode::NOT_FOUND:      // kiln's client
    case grpc::StatusCode::UNIMPLEMENTED:  // no SSH provider behind the advertised method
    case grpc::StatusCode::UNKNOWN:        // BuildKit's client: "unset ssh forward key ID"
      return NoKey(want);
    default:
      return absl::Status(static_cast<absl::StatusCode>(st.error_code()),
                          absl::StrCat("check SSH agent \"", want, "\": ", st.error_message()));
  }
}

// One accepted connection and its ForwardAgent stream.
struct SshAgentProxy::Conn {
  explicit Conn(int fd) : fd(fd) {}
  const int fd;  // closed by whoever joins `thread`
  grpc::ClientContext call;
  std::thread thread;  // Serve()
  std::atomic<bool> done{false};
};

absl::StatusOr<std::unique_ptr<SshAgentProxy>> SshAgentProxy::Start(
    const Context& ctx, std::shared_ptr<Session> session, Options options) {
  const std::string id = options.id.empty() ? kDefaultSshId : options.id;
  std::error_code ec;
  if (!std::filesystem::is_directory(options.dir, ec)) {
    return absl::FailedPreconditionError(
        absl::StrCat("SSH agent socket directory ", options.dir, " does not exist"));
  }
  KILN_RETURN_IF_ERROR(CheckSshAgent(ctx, *session, id));

  std::string path = (std::filesystem::path(options.dir) /
                      absl::StrCat("ssh-", NewRandomId().substr(0, 12), ".sock"))
                         .string();
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) {
    return absl::FailedPreconditionError(
        absl::StrCat("SSH agent socket path ", path, " is too long for a unix socket"));
  }
  path.copy(addr.sun_path, path.size());

  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return ErrnoToStatus(errno, "create SSH agent socket");
  auto fail = [&](const char* what) {
    absl::Status st = ErrnoToStatus(errno, absl::StrCat(what, " ", path));
    ::close(fd);
    ::unlink(path.c_str());
    return st;
  };
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    absl::Status st = ErrnoToStatus(errno, absl::StrCat("bind SSH agent socket ", path));
    ::close(fd);
    return st;
  }
  if ((options.uid >= 0 || options.gid >= 0) &&
      ::chown(path.c_str(), options.uid >= 0 ? static_cast<uid_t>(options.uid) : uid_t(-1),
              options.gid >= 0 ? static_cast<gid_t>(options.gid) : gid_t(-1)) != 0) {
    return fail("chown SSH agent socket");
  }
  if (::chmod(path.c_str(), options.mode & 0777) != 0) return fail("chmod SSH agent socket");
  if (::listen(fd, 128) != 0) return fail("listen on SSH agent socket");
  int wake = ::eventfd(0, EFD_CLOEXEC);
  if (wake < 0) return fail("eventfd for SSH agent socket");

  std::unique_ptr<SshAgentProxy> proxy(
      new SshAgentProxy(std::move(session), id, std::move(path), fd, wake));
  SshAgentProxy* raw = proxy.get();
  proxy->acceptor_ = std::thread([raw] { raw->AcceptLoop(); });
  return proxy;
}

SshAgentProxy::SshAgentProxy(std::shared_ptr<Session> session, std::string id,
                             std::string socket_path, int listen_fd, int wake_fd)
    : session_(std::move(session)),
      id_(std::move(id)),
      socket_path_(std::move(socket_path)),
      listen_fd_(listen_fd),
      wake_fd_(wake_fd) {}

SshAgentProxy::~SshAgentProxy() { Stop(); }

void SshAgentProxy::AcceptLoop() {
  pthread_setname_np(pthread_self(), kThreadName);
  while (true) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      Logger("session")->warn("SSH agent proxy {}: poll: {}", socket_path_, std::strerror(errno));
      return;
    }
    if (fds[1].revents != 0) return;  // Stop()
    if (fds[0].revents == 0) continue;
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == ECONNABORTED) continue;
      // Out of descriptors and the like: back off instead of spinning on poll.
      Logger("session")->warn("SSH agent proxy {}: accept: {}", socket_path_, std::strerror(errno));
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    ReapFinished();
    std::lock_guard lock(mu_);
    if (stopped_) {
      ::close(fd);
      return;
    }
    auto conn = std::make_unique<Conn>(fd);
    conn->call.AddMetadata(kSshIdMetadataKey, id_);
    Conn* raw = conn.get();
    conn->thread = std::thread([this, raw] { Serve(raw); });
    conns_.push_back(std::move(conn));
  }
}

// Pumps one connection: this thread moves the client's agent's replies into the socket while a
// helper moves the container's requests into the stream, as BuildKit's sshforward.Copy does.
void SshAgentProxy::Serve(Conn* conn) {
  pthread_setname_np(pthread_self(), kThreadName);
  auto stub = pb::SSH::NewStub(session_->channel());
  auto stream = stub->ForwardAgent(&conn->call);
  std::thread requests([conn, &stream] {
    pthread_setname_np(pthread_self(), kThreadName);
    std::string buf(kChunk, '\0');
    pb::BytesMessage msg;
    while (true) {
      ssize_t n = ::read(conn->fd, buf.data(), buf.size());
      if (n < 0 && errno == EINTR) continue;
      if (n == 0) {
        stream->WritesDone();  // the container closed its end; replies may still follow
        return;
      }
      if (n < 0) {
        conn->call.TryCancel();
        return;
      }
      msg.set_data(buf.data(), static_cast<size_t>(n));
      if (!stream->Write(msg)) return;  // the stream failed; Read below sees it too
    }
  });
  pb::BytesMessage msg;
  while (stream->Read(&msg)) {
    if (!SendAll(conn->fd, msg.data())) {
      conn->call.TryCancel();
      break;
    }
  }
  // The client's agent is done (or the stream failed): whatever it sent is already in the
  // socket; end both directions so the request pump stops too.
  ::shutdown(conn->fd, SHUT_RDWR);
  requests.join();
  grpc::Status st = stream->Finish();
  if (!st.ok() && st.error_code() != grpc::StatusCode::CANCELLED) {
    Logger("session")->debug("SSH agent \"{}\" forwarding on session {} ended: {}", id_,
                             session_->id(), st.error_message());
  }
  conn->done = true;
}

void SshAgentProxy::ReapFinished() {
  std::lock_guard lock(mu_);
  for (auto it = conns_.begin(); it != conns_.end();) {
    if ((*it)->done) {
      (*it)->thread.join();
      ::close((*it)->fd);
      it = conns_.erase(it);
    } else {
      ++it;
    }
  }
}

void SshAgentProxy::Stop() {
  {
    std::lock_guard lock(mu_);
    if (stopped_) return;
    stopped_ = true;
  }
  uint64_t one = 1;
  if (::write(wake_fd_, &one, sizeof(one)) != sizeof(one)) {
    KILN_RELEASE_ASSERT(false && "eventfd write failed");
  }
  if (acceptor_.joinable()) acceptor_.join();
  std::list<std::unique_ptr<Conn>> conns;
  {
    std::lock_guard lock(mu_);
    conns.swap(conns_);
  }
  for (auto& c : conns) {
    c->call.TryCancel();
    ::shutdown(c->fd, SHUT_RDWR);
  }
  for (auto& c : conns) {
    c->thread.join();
    ::close(c->fd);
  }
  ::close(listen_fd_);
  ::close(wake_fd_);
  ::unlink(socket_path_.c_str());
}

}  // namespace kiln::session
