#include "daemon/server/server.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "base/unique_fd.h"
#include "daemon/util/fs.h"
#include "daemon/util/logging.h"
#include "grpcpp/server_posix.h"

namespace kiln::server {
namespace {

// True when something accepts connections on the unix socket at `path`.
bool SocketIsLive(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::strncpy(sa.sun_path, path.c_str(), sizeof(sa.sun_path) - 1);
  bool live = ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) == 0;
  ::close(fd);
  return live;
}

absl::Status PrepareUnixSocket(const ListenAddress& a) {
  if (a.path.size() >= sizeof(sockaddr_un::sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat("address ", a.original,
                                                   ": socket path is longer than ",
                                                   sizeof(sockaddr_un::sun_path) - 1, " bytes"));
  }
  std::filesystem::path parent = std::filesystem::path(a.path).parent_path();
  if (!parent.empty()) {
    KILN_RETURN_IF_ERROR(
        Annotate(util::EnsureDir(parent, 0755), absl::StrCat("address ", a.original)));
  }
  struct stat st;
  if (::lstat(a.path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return absl::FailedPreconditionError(
          absl::StrCat("address ", a.original, ": ", a.path, " exists and is not a socket"));
    }
    if (SocketIsLive(a.path)) {
      return absl::AlreadyExistsError(absl::StrCat(
          "address ", a.original, ": another process is already listening on ", a.path));
    }
    ::unlink(a.path.c_str());  // stale socket from a daemon that died
  }
  return absl::OkStatus();
}

// TCP's security: null for plain TCP (--insecure-tcp), else the mutual TLS kilnd terminates.
absl::StatusOr<std::unique_ptr<TlsTerminator>> TcpTls(const ListenAddress& a, const TlsFiles& tls,
                                                      bool insecure_tcp) {
  bool any_tls = !tls.cert.empty() || !tls.key.empty() || !tls.ca.empty();
  if (!any_tls) {
    if (insecure_tcp) {
      Logger("server")->warn(
          "{}: plain TCP without TLS (--insecure-tcp): anyone who can reach "
          "this port can run builds",
          a.original);
      return nullptr;
    }
    return absl::FailedPreconditionError(absl::StrCat(
        "address ", a.original,
        ": TCP needs --tlscert, --tlskey and --tlscacert (mutual TLS), or --insecure-tcp to "
        "serve without TLS"));
  }
  if (tls.cert.empty() || tls.key.empty() || tls.ca.empty()) {
    return absl::FailedPreconditionError(absl::StrCat("address ", a.original,
                                                      ": TLS needs all of --tlscert, --tlskey and "
                                                      "--tlscacert (missing: ",
                                                      tls.cert.empty() ? "--tlscert " : "",
                                                      tls.key.empty() ? "--tlskey " : "",
                                                      tls.ca.empty() ? "--tlscacert" : "", ")"));
  }
  auto read = [&](const std::string& path, std::string_view flag) -> absl::StatusOr<std::string> {
    auto data = util::ReadFile(path);
    if (!data.ok()) return Annotate(data.status(), flag);
    if (!absl::StrContains(*data, "-----BEGIN ")) {
      return absl::InvalidArgumentError(absl::StrCat(AV(flag), " ", path, " is not a PEM file"));
    }
    return data;
  };
  KILN_ASSIGN_OR_RETURN(std::string cert, read(tls.cert, "--tlscert"));
  KILN_ASSIGN_OR_RETURN(std::string key, read(tls.key, "--tlskey"));
  KILN_ASSIGN_OR_RETURN(std::string ca, read(tls.ca, "--tlscacert"));
  return TlsTerminator::Create(cert, key, ca);
}

// A listening TCP socket on "host:port" (port 0: any free port, written to `port`).
absl::StatusOr<UniqueFd> ListenTcp(const ListenAddress& a, int* port) {
  const size_t colon = a.hostport.rfind(':');
  std::string host = a.hostport.substr(0, colon);
  const std::string service = a.hostport.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* res = nullptr;
  if (int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &res);
      rc != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("address ", a.original, ": ", ::gai_strerror(rc)));
  }
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> free_res(res, &::freeaddrinfo);
  int err = 0;
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    UniqueFd fd(::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol));
    if (!fd.valid()) {
      err = errno;
      continue;
    }
    const int one = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (::bind(fd.get(), ai->ai_addr, ai->ai_addrlen) != 0 || ::listen(fd.get(), SOMAXCONN) != 0) {
      err = errno;
      continue;
    }
    sockaddr_storage ss{};
    socklen_t len = sizeof(ss);
    if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
      err = errno;
      continue;
    }
    *port = ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                                           : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
    return fd;
  }
  return absl::UnavailableError(
      absl::StrCat("cannot listen on ", a.original, ": ", std::strerror(err)));
}

}  // namespace

absl::StatusOr<ListenAddress> ParseListenAddress(const std::string& address) {
  ListenAddress out;
  out.original = address;
  if (absl::StartsWith(address, "unix://")) {
    out.kind = ListenAddress::Kind::kUnix;
    out.path = address.substr(7);
  } else if (absl::StartsWith(address, "unix:")) {
    out.kind = ListenAddress::Kind::kUnix;
    out.path = address.substr(5);
  } else if (absl::StartsWith(address, "tcp://")) {
    out.kind = ListenAddress::Kind::kTcp;
    out.hostport = address.substr(6);
    while (!out.hostport.empty() && out.hostport.back() == '/') out.hostport.pop_back();
    size_t colon = out.hostport.rfind(':');
    if (colon == std::string::npos || colon + 1 == out.hostport.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("address ", address, ": want tcp://HOST:PORT"));
    }
  } else if (absl::StartsWith(address, "fd://")) {
    out.kind = ListenAddress::Kind::kFd;
    const std::string rest = address.substr(5);
    if (rest.empty()) {
      // systemd's protocol: LISTEN_PID names us, LISTEN_FDS counts the sockets from fd 3.
      const char* pid = std::getenv("LISTEN_PID");
      const char* n = std::getenv("LISTEN_FDS");
      int count = 0;
      if (pid == nullptr || n == nullptr || std::to_string(::getpid()) != pid ||
          !absl::SimpleAtoi(n, &count) || count <= 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "address ", address,
            ": no sockets were passed (LISTEN_PID/LISTEN_FDS are not set "
            "for this process; start kilnd from a systemd .socket unit, or use fd://N)"));
      }
      for (int i = 0; i < count; ++i) out.fds.push_back(3 + i);
    } else {
      int fd = -1;
      if (!absl::SimpleAtoi(rest, &fd) || fd < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("address ", address, ": want fd:// or fd://N"));
      }
      out.fds.push_back(fd);
    }
    for (int fd : out.fds) {
      int listening = 0;
      socklen_t len = sizeof(listening);
      if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || listening == 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("address ", address, ": fd ", fd, " is not a listening socket"));
      }
    }
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("address ", address,
                     ": unsupported scheme; want unix:///PATH, tcp://HOST:PORT or fd://[N]"));
  }
  if (out.kind == ListenAddress::Kind::kUnix && (out.path.empty() || out.path[0] != '/')) {
    return absl::InvalidArgumentError(
        absl::StrCat("address ", address, ": want an absolute socket path (unix:///PATH)"));
  }
  return out;
}

absl::StatusOr<std::unique_ptr<Server>> Server::Start(ServerOptions options) {
  if (options.addresses.empty()) {
    return absl::InvalidArgumentError("no address to listen on");
  }
  if (options.services.empty() && options.fallback == nullptr) {
    return absl::InvalidArgumentError("no service to serve");
  }
  std::unique_ptr<Server> server(new Server());
  grpc::ServerBuilder builder;
  builder.SetMaxReceiveMessageSize(kMaxMessageBytes);
  builder.SetMaxSendMessageSize(kMaxMessageBytes);
  std::vector<std::pair<ListenAddress, std::unique_ptr<int>>> bound;
  std::vector<UniqueFd> tls_listeners;
  for (const std::string& address : options.addresses) {
    KILN_ASSIGN_OR_RETURN(ListenAddress a, ParseListenAddress(address));
    auto port = std::make_unique<int>(0);
    if (a.kind == ListenAddress::Kind::kFd) {
      // Served by accept loops once the server runs (plain gRPC, as buildkitd's fd://).
      *port = 1;
    } else if (a.kind == ListenAddress::Kind::kUnix) {
      KILN_RETURN_IF_ERROR(PrepareUnixSocket(a));
      builder.AddListeningPort(absl::StrCat("unix:", a.path), grpc::InsecureServerCredentials(),
                               port.get());
    } else {
      KILN_ASSIGN_OR_RETURN(std::unique_ptr<TlsTerminator> tls,
                            TcpTls(a, options.tls, options.insecure_tcp));
      if (tls == nullptr) {
        builder.AddListeningPort(a.hostport, grpc::InsecureServerCredentials(), port.get());
      } else {
        // Served by accept loops that terminate TLS (see tls_terminator.h).
        if (server->tls_ == nullptr) server->tls_ = std::move(tls);
        KILN_ASSIGN_OR_RETURN(UniqueFd fd, ListenTcp(a, port.get()));
        tls_listeners.push_back(std::move(fd));
      }
    }
    bound.emplace_back(std::move(a), std::move(port));
  }
  for (grpc::Service* s : options.services) builder.RegisterService(s);
  if (options.fallback) builder.RegisterCallbackGenericService(options.fallback);

  server->server_ = builder.BuildAndStart();
  if (!server->server_) {
    return absl::UnavailableError("gRPC server failed to start (see the log above)");
  }
  for (auto& [a, port] : bound) {
    if (*port == 0) {
      server->server_->Shutdown();
      return absl::UnavailableError(absl::StrCat("cannot listen on ", a.original));
    }
    if (a.kind == ListenAddress::Kind::kFd) {
      for (int fd : a.fds) {
        ::fcntl(fd, F_SETFD, FD_CLOEXEC);
        server->fd_listeners_.push_back(fd);
        server->listening_.push_back(absl::StrCat("fd://", fd));
      }
    } else if (a.kind == ListenAddress::Kind::kUnix) {
      server->socket_paths_.push_back(a.path);
      if (::chmod(a.path.c_str(), 0660) != 0) {
        Logger("server")->warn("chmod 0660 {}: {}", a.path, std::strerror(errno));
      }
      server->listening_.push_back(absl::StrCat("unix://", a.path));
    } else {
      std::string host = a.hostport.substr(0, a.hostport.rfind(':'));
      server->listening_.push_back(absl::StrCat("tcp://", host, ":", *port));
    }
  }
  for (UniqueFd& fd : tls_listeners) server->tls_listeners_.push_back(fd.Release());
  if (!server->fd_listeners_.empty() || !server->tls_listeners_.empty()) {
    server->wake_fd_ = ::eventfd(0, EFD_CLOEXEC);
    if (server->wake_fd_ < 0) return ErrnoToStatus(errno, "eventfd");
    for (int fd : server->fd_listeners_) {
      server->acceptors_.emplace_back([s = server.get(), fd] { s->AcceptLoop(fd, false); });
    }
    for (int fd : server->tls_listeners_) {
      server->acceptors_.emplace_back([s = server.get(), fd] { s->AcceptLoop(fd, true); });
    }
  }
  return server;
}

void Server::AcceptLoop(int listen_fd, bool tls) {
  for (;;) {
    pollfd pfds[2] = {{listen_fd, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    if (::poll(pfds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      Logger("server")->error("poll on fd://{}: {}", listen_fd, std::strerror(errno));
      return;
    }
    if (pfds[1].revents != 0) return;
    // gRPC's endpoint needs a non-blocking descriptor.
    const int conn = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (conn < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == ECONNABORTED) continue;
      Logger("server")->error("accept on fd://{}: {}", listen_fd, std::strerror(errno));
      continue;
    }
    if (tls) {
      tls_->Serve(conn,
                  [this](int plain) { grpc::AddInsecureChannelFromFd(server_.get(), plain); });
      continue;
    }
    grpc::AddInsecureChannelFromFd(server_.get(), conn);  // takes the descriptor
  }
}

void Server::Shutdown(int grace_ms) {
  if (shut_down_) return;
  shut_down_ = true;
  if (wake_fd_ >= 0) {
    const uint64_t one = 1;
    (void)!::write(wake_fd_, &one, sizeof(one));
    for (std::thread& t : acceptors_) t.join();
    ::close(wake_fd_);
    for (int fd : fd_listeners_) ::close(fd);
    for (int fd : tls_listeners_) ::close(fd);
  }
  if (tls_) tls_->StopHandOffs();
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(grace_ms));
  server_->Wait();
  if (tls_) tls_->Shutdown();  // ends the TLS connections gRPC left open
  for (const std::string& path : socket_paths_) ::unlink(path.c_str());
}

Server::~Server() {
  if (server_) Shutdown(0);
}

}  // namespace kiln::server
