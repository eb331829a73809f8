#include "daemon/server/tls_terminator.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <functional>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/unique_fd.h"
#include "daemon/util/logging.h"

namespace kiln::server {
namespace {

constexpr size_t kBufferCap = 256 << 10;  // per direction, before reading pauses

// OpenSSL's error queue, drained, as one line.
std::string SslErrors() {
  std::string out;
  for (unsigned long e; (e = ERR_get_error()) != 0;) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    absl::StrAppend(&out, out.empty() ? "" : "; ", buf);
  }
  return out.empty() ? "unknown error" : out;
}

using X509Ptr = std::unique_ptr<X509, decltype(&X509_free)>;

// Every certificate in a PEM string.
std::vector<X509Ptr> ReadCerts(const std::string& pem) {
  std::vector<X509Ptr> out;
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), &BIO_free);
  while (bio) {
    X509* c = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr);
    if (c == nullptr) break;
    out.emplace_back(c, &X509_free);
  }
  ERR_clear_error();  // the read past the last certificate
  return out;
}

// ALPN: "h2" when the client offers it; otherwise no protocol (and the handshake goes on).
int SelectH2(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
             unsigned int inlen, void*) {
  static const unsigned char kH2[] = {2, 'h', '2'};
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outlen, kH2, sizeof(kH2), in, inlen) ==
      OPENSSL_NPN_NEGOTIATED) {
    *out = selected;
    return SSL_TLSEXT_ERR_OK;
  }
  return SSL_TLSEXT_ERR_NOACK;
}

std::string PeerOf(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "?";
  char host[INET6_ADDRSTRLEN] = "?";
  int port = 0;
  if (ss.ss_family == AF_INET) {
    auto* in = reinterpret_cast<sockaddr_in*>(&ss);
    ::inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
    port = ntohs(in->sin_port);
  } else if (ss.ss_family == AF_INET6) {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&ss);
    ::inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
    port = ntohs(in6->sin6_port);
  }
  return absl::StrCat(host, ":", port);
}

// Moves bytes between the TLS connection and the plaintext socket until either side ends
// (HTTP/2 has no use for a half-closed connection) or `stop_fd` becomes readable. Both
// descriptors are non-blocking.
void Pump(SSL* ssl, int tcp, int local, int stop_fd) {
  std::string to_local;  // decrypted, not yet written to gRPC
  std::string to_tls;    // from gRPC, not yet encrypted
  short tls_read_wants = POLLIN, tls_write_wants = POLLOUT;
  bool done = false;
  char buf[16 << 10];
  while (!done) {
    while (to_local.size() < kBufferCap) {
      const int n = SSL_read(ssl, buf, sizeof(buf));
      if (n > 0) {
        to_local.append(buf, static_cast<size_t>(n));
        continue;
      }
      const int e = SSL_get_error(ssl, n);
      if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        tls_read_wants = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
      } else {
        done = true;  // the client closed, or the connection failed
      }
      break;
    }
    while (!to_local.empty()) {
      const ssize_t n = ::write(local, to_local.data(), to_local.size());
      if (n > 0) {
        to_local.erase(0, static_cast<size_t>(n));
      } else {
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) break;
        return;  // gRPC closed its end
      }
    }
    while (to_tls.size() < kBufferCap) {
      const ssize_t n = ::read(local, buf, sizeof(buf));
      if (n > 0) {
        to_tls.append(buf, static_cast<size_t>(n));
      } else {
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) break;
        done = true;  // gRPC closed the connection: flush what it wrote last, then end
        break;
      }
    }
    while (!to_tls.empty()) {
      const int n = SSL_write(ssl, to_tls.data(), static_cast<int>(to_tls.size()));
      if (n > 0) {
        to_tls.erase(0, static_cast<size_t>(n));
        continue;
      }
      const int e = SSL_get_error(ssl, n);
      if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) return;
      tls_write_wants = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
      break;
    }
    if (done) break;
    if (SSL_pending(ssl) > 0 && to_local.size() < kBufferCap) continue;
    pollfd p[3] = {{tcp, 0, 0}, {local, 0, 0}, {stop_fd, POLLIN, 0}};
    if (to_local.size() < kBufferCap) p[0].events |= tls_read_wants;
    if (!to_tls.empty()) p[0].events |= tls_write_wants;
    if (!to_local.empty()) p[1].events |= POLLOUT;
    if (to_tls.size() < kBufferCap) p[1].events |= POLLIN;
    if (::poll(p, 3, -1) < 0 && errno != EINTR) return;
    if (p[2].revents != 0) return;
  }
  // Best effort: what gRPC wrote last (a GOAWAY), then close_notify.
  for (int i = 0; i < 100 && !to_tls.empty(); ++i) {
    const int n = SSL_write(ssl, to_tls.data(), static_cast<int>(to_tls.size()));
    if (n > 0) {
      to_tls.erase(0, static_cast<size_t>(n));
      continue;
    }
    if (SSL_get_error(ssl, n) != SSL_ERROR_WANT_WRITE) break;
    pollfd p = {tcp, POLLOUT, 0};
    if (::poll(&p, 1, 100) <= 0) break;
  }
  SSL_shutdown(ssl);
}

}  // namespace

absl::StatusOr<std::unique_ptr<TlsTerminator>> TlsTerminator::Create(
    const std::string& cert_chain_pem, const std::string& key_pem, const std::string& ca_pem) {
  std::unique_ptr<TlsTerminator> t(new TlsTerminator());
  t->ctx_.reset(SSL_CTX_new(TLS_server_method()));
  SSL_CTX* ctx = t->ctx_.get();
  if (ctx == nullptr) return absl::InternalError(absl::StrCat("TLS: ", SslErrors()));
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);

  std::vector<X509Ptr> chain = ReadCerts(cert_chain_pem);
  if (chain.empty()) return absl::InvalidArgumentError("--tlscert holds no certificate");
  if (SSL_CTX_use_certificate(ctx, chain[0].get()) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("--tlscert: ", SslErrors()));
  }
  for (size_t i = 1; i < chain.size(); ++i) {
    if (SSL_CTX_add1_chain_cert(ctx, chain[i].get()) != 1) {
      return absl::InvalidArgumentError(absl::StrCat("--tlscert: ", SslErrors()));
    }
  }
  {
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(
        BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size())), &BIO_free);
    std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(
        bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr,
        &EVP_PKEY_free);
    if (!key || SSL_CTX_use_PrivateKey(ctx, key.get()) != 1) {
      return absl::InvalidArgumentError(absl::StrCat("--tlskey: ", SslErrors()));
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("--tlskey does not match --tlscert: ", SslErrors()));
    }
  }
  std::vector<X509Ptr> cas = ReadCerts(ca_pem);
  if (cas.empty()) return absl::InvalidArgumentError("--tlscacert holds no certificate");
  X509_STORE* store = SSL_CTX_get_cert_store(ctx);
  for (const X509Ptr& ca : cas) {
    if (X509_STORE_add_cert(store, ca.get()) != 1 || SSL_CTX_add_client_CA(ctx, ca.get()) != 1) {
      return absl::InvalidArgumentError(absl::StrCat("--tlscacert: ", SslErrors()));
    }
  }
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  SSL_CTX_set_alpn_select_cb(ctx, SelectH2, nullptr);

  t->stop_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (t->stop_fd_ < 0) return absl::InternalError(absl::StrCat("eventfd: ", std::strerror(errno)));
  return t;
}

TlsTerminator::~TlsTerminator() {
  Shutdown();
  if (stop_fd_ >= 0) ::close(stop_fd_);
}

void TlsTerminator::Serve(int tcp_fd, HandOff hand_off) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!hand_offs_) {
      ::close(tcp_fd);
      return;
    }
    if (handshaking_ >= max_handshakes) {
      Logger("server")->warn("TLS connection from {} refused: {} handshakes in progress",
                             PeerOf(tcp_fd), handshaking_);
      ::close(tcp_fd);
      return;
    }
    ++active_;
    ++handshaking_;
  }
  std::thread([this, tcp_fd, hand_off = std::move(hand_off)] {
    Run(tcp_fd, hand_off);
    std::lock_guard<std::mutex> lock(mu_);
    --active_;
    idle_.notify_all();
  }).detach();
}

void TlsTerminator::Run(int fd, const HandOff& hand_off) {
  // A peer that went away is EPIPE from write(2) here, not a SIGPIPE for the process.
  sigset_t pipe;
  sigemptyset(&pipe);
  sigaddset(&pipe, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe, nullptr);
  UniqueFd tcp(fd);
  bool handshaking = true;
  auto handshake_over = [&] {
    if (!std::exchange(handshaking, false)) return;
    std::lock_guard<std::mutex> lock(mu_);
    --handshaking_;
  };
  struct Finally {
    std::function<void()> fn;
    ~Finally() { fn(); }
  } on_return{handshake_over};
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  const std::string peer = PeerOf(fd);
  std::unique_ptr<SSL, decltype(&SSL_free)> ssl(SSL_new(ctx_.get()), &SSL_free);
  if (!ssl || SSL_set_fd(ssl.get(), fd) != 1) {
    Logger("server")->warn("TLS connection from {}: {}", peer, SslErrors());
    return;
  }
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(handshake_timeout_ms);
  for (;;) {
    ERR_clear_error();
    const int r = SSL_accept(ssl.get());
    if (r == 1) break;
    const int e = SSL_get_error(ssl.get(), r);
    if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
      Logger("server")->debug("TLS handshake with {} failed: {}", peer, SslErrors());
      return;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          deadline - std::chrono::steady_clock::now())
                          .count();
    if (left <= 0) {
      Logger("server")->debug("TLS handshake with {} timed out", peer);
      return;
    }
    pollfd p[2] = {{fd, static_cast<short>(e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT), 0},
                   {stop_fd_, POLLIN, 0}};
    if (::poll(p, 2, static_cast<int>(left)) < 0 && errno != EINTR) return;
    if (p[1].revents != 0) return;
  }
  handshake_over();
  const unsigned char* alpn = nullptr;
  unsigned int alpn_len = 0;
  SSL_get0_alpn_selected(ssl.get(), &alpn, &alpn_len);
  Logger("server")->debug("TLS connection from {} (ALPN {})", peer,
                          alpn_len > 0 ? std::string(reinterpret_cast<const char*>(alpn), alpn_len)
                                       : std::string("none"));
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) {
    Logger("server")->warn("TLS connection from {}: socketpair: {}", peer, std::strerror(errno));
    return;
  }
  UniqueFd local(sv[0]);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!hand_offs_) {
      ::close(sv[1]);
      return;
    }
    hand_off(sv[1]);
  }
  Pump(ssl.get(), fd, local.get(), stop_fd_);
}

void TlsTerminator::StopHandOffs() {
  std::lock_guard<std::mutex> lock(mu_);
  hand_offs_ = false;
}

void TlsTerminator::Shutdown() {
  std::unique_lock<std::mutex> lock(mu_);
  hand_offs_ = false;
  if (!shut_down_) {
    shut_down_ = true;
    const uint64_t one = 1;
    if (stop_fd_ >= 0) (void)!::write(stop_fd_, &one, sizeof(one));
  }
  idle_.wait(lock, [this] { return active_ == 0; });
}

}  // namespace kiln::server
