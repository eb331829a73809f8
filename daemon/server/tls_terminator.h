#pragma once
// TlsTerminator: mutual TLS for kilnd's TCP listeners, in front of a plaintext gRPC server.
//
// gRPC C++'s own TLS refuses a client that does not negotiate ALPN "h2" ("Cannot check peer:
// missing selected ALPN property"). Clients that wrap the TCP connection in Go's crypto/tls
// themselves and then speak plaintext HTTP/2 over it offer no ALPN - docker buildx's remote
// driver does exactly that - and BuildKit (Go) serves them. So kilnd completes the handshake
// itself with OpenSSL (client certificate required and verified against the CA; "h2" selected
// when offered) and hands gRPC the plaintext end of a socketpair; a thread per connection pumps
// the bytes. Thread-safe.

#include <openssl/ssl.h>

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/statusor.h"

namespace kiln::server {

class TlsTerminator {
 public:
  // PEM contents: the server's certificate chain and key, and the CA that must have signed
  // client certificates. INVALID_ARGUMENT when they do not load or do not match.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<TlsTerminator>> Create(
      const std::string& cert_chain_pem, const std::string& key_pem, const std::string& ca_pem);
  ~TlsTerminator();  // Shutdown()

  // Takes `tcp_fd`, an accepted connection, and serves it on a thread of its own: the
  // handshake (given up after `handshake_timeout_ms`), then `hand_off` with the plaintext
  // descriptor (non-blocking; `hand_off` owns it), then the byte pump until either side
  // closes.
  using HandOff = std::function<void(int plaintext_fd)>;
  void Serve(int tcp_fd, HandOff hand_off);

  // From now on, connections still in their handshake are closed instead of handed off.
  void StopHandOffs();
  // StopHandOffs(), ends every connection and waits for their threads.
  void Shutdown();

  int handshake_timeout_ms = 10000;
  // Connections still in their handshake (not yet authenticated) at most; more are closed at
  // once, so that unauthenticated peers cannot pile up threads.
  int max_handshakes = 128;

 private:
  TlsTerminator() = default;
  void Run(int tcp_fd, const HandOff& hand_off);

  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx_{nullptr, &SSL_CTX_free};
  int stop_fd_ = -1;  // eventfd: readable once Shutdown() began
  std::mutex mu_;
  std::condition_variable idle_;
  int active_ = 0;          // connection threads running
  int handshaking_ = 0;     // of those, still in their handshake
  bool hand_offs_ = true;   // guarded by mu_
  bool shut_down_ = false;  // guarded by mu_
};

}  // namespace kiln::server
