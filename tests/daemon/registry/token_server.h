#pragma once
// A Docker token server for tests, in the test process: an RSA key and a self-signed certificate
// made with OpenSSL at start, and a one-thread synchronous Boost.Beast HTTP server on
// 127.0.0.1:<free port> answering GET /token?service=…&scope=… with {"token": <RS256 JWT>,
// "expires_in": 300}. The JWT header carries the certificate as `x5c`, so a docker-registry in
// `auth: token` mode with the certificate as rootcertbundle accepts it.
//
// Users with the right password get the scopes they ask for; anonymous requests get a token with
// no access (as real token servers do); a wrong password gets 401. Every request is recorded.

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace kiln::testing {

class TokenServer {
 public:
  struct Options {
    std::string issuer = "kiln-test";
    std::string service = "kiln-registry";
    std::map<std::string, std::string> users;  // username -> password
    int expires_in = 300;
  };

  // One request to /token, as the server saw it.
  struct Seen {
    std::string user;  // from Basic credentials; empty when anonymous
    bool authenticated = false;
    std::string service;
    std::vector<std::string> scopes;
    int status = 0;
  };

  // Makes the key and certificate, writes the certificate PEM to `dir`/token-cert.pem and starts
  // serving.
  static absl::StatusOr<std::unique_ptr<TokenServer>> Start(const std::filesystem::path& dir,
                                                            Options options) {
    auto server = std::unique_ptr<TokenServer>(new TokenServer(std::move(options)));
    if (absl::Status st = server->MakeKeyAndCert(dir / "token-cert.pem"); !st.ok()) return st;
    boost::system::error_code ec;
    namespace ip = boost::asio::ip;
    ip::tcp::endpoint ep(ip::make_address("127.0.0.1"), 0);
    server->acceptor_.open(ep.protocol(), ec);
    if (!ec) server->acceptor_.set_option(boost::asio::socket_base::reuse_address(true), ec);
    if (!ec) server->acceptor_.bind(ep, ec);
    if (!ec) server->acceptor_.listen(16, ec);
    if (ec) return absl::InternalError(absl::StrCat("token server listen: ", ec.message()));
    server->port_ = server->acceptor_.local_endpoint().port();
    server->thread_ = std::thread([s = server.get()] { s->Serve(); });
    return server;
  }

  ~TokenServer() {
    stop_ = true;
    // Wake the blocking accept with a connection of our own.
    boost::system::error_code ec;
    boost::asio::ip::tcp::socket wake(io_);
    wake.connect({boost::asio::ip::make_address("127.0.0.1"), static_cast<uint16_t>(port_)}, ec);
    if (thread_.joinable()) thread_.join();
    wake.close(ec);
    acceptor_.close(ec);
    EVP_PKEY_free(key_);
    X509_free(cert_);
  }

  int port() const { return port_; }
  std::string realm() const { return absl::StrCat("http://127.0.0.1:", port_, "/token"); }
  const std::filesystem::path& cert_path() const { return cert_path_; }
  const Options& options() const { return options_; }

  std::vector<Seen> seen() const {
    std::lock_guard lock(mu_);
    return seen_;
  }

 private:
  explicit TokenServer(Options options) : options_(std::move(options)), acceptor_(io_) {}

  absl::Status MakeKeyAndCert(const std::filesystem::path& pem_path) {
    key_ = EVP_RSA_gen(2048);
    if (key_ == nullptr) return absl::InternalError("RSA key generation failed");
    cert_ = X509_new();
    if (cert_ == nullptr) return absl::InternalError("X509_new failed");
    X509_set_version(cert_, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert_), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert_), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert_), 24 * 3600);
    X509_set_pubkey(cert_, key_);
    X509_NAME* name = X509_get_subject_name(cert_);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("kiln-test token signer"), -1,
                               -1, 0);
    X509_set_issuer_name(cert_, name);
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, cert_, cert_, nullptr, nullptr, 0);
    for (auto [nid, value] : {std::pair{NID_basic_constraints, "critical,CA:TRUE"},
                              std::pair{NID_key_usage, "critical,digitalSignature,keyCertSign"}}) {
      X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
      if (ext == nullptr) return absl::InternalError("X509V3_EXT_conf_nid failed");
      X509_add_ext(cert_, ext, -1);
      X509_EXTENSION_free(ext);
    }
    if (X509_sign(cert_, key_, EVP_sha256()) == 0) return absl::InternalError("X509_sign failed");

    int len = i2d_X509(cert_, nullptr);
    if (len <= 0) return absl::InternalError("i2d_X509 failed");
    std::string der(static_cast<size_t>(len), '\0');
    auto* p = reinterpret_cast<unsigned char*>(der.data());
    i2d_X509(cert_, &p);
    cert_der_b64_ = absl::Base64Escape(der);

    BIO* bio = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(bio, cert_);
    char* data = nullptr;
    long n = BIO_get_mem_data(bio, &data);
    std::string pem(data, static_cast<size_t>(n));
    BIO_free(bio);
    cert_path_ = pem_path;
    std::ofstream(pem_path) << pem;
    return absl::OkStatus();
  }

  absl::StatusOr<std::string> Sign(const std::string& input) const {
    EVP_MD_CTX* md = EVP_MD_CTX_new();
    size_t len = 0;
    std::string sig;
    bool ok = md != nullptr && EVP_DigestSignInit(md, nullptr, EVP_sha256(), nullptr, key_) == 1 &&
              EVP_DigestSignUpdate(md, input.data(), input.size()) == 1 &&
              EVP_DigestSignFinal(md, nullptr, &len) == 1;
    if (ok) {
      sig.resize(len);
      ok = EVP_DigestSignFinal(md, reinterpret_cast<unsigned char*>(sig.data()), &len) == 1;
      sig.resize(len);
    }
    EVP_MD_CTX_free(md);
    if (!ok) return absl::InternalError("RS256 signing failed");
    return sig;
  }

  absl::StatusOr<std::string> MakeJwt(const std::string& subject, const nlohmann::json& access) {
    using nlohmann::json;
    int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
    json header = {{"typ", "JWT"}, {"alg", "RS256"}, {"x5c", {cert_der_b64_}}};
    json claims = {{"iss", options_.issuer},
                   {"sub", subject},
                   {"aud", options_.service},
                   {"exp", now + options_.expires_in},
                   {"nbf", now - 10},
                   {"iat", now},
                   {"jti", absl::StrCat("kiln-test-", ++jti_)},
                   {"access", access}};
    std::string input = absl::StrCat(absl::WebSafeBase64Escape(header.dump()), ".",
                                     absl::WebSafeBase64Escape(claims.dump()));
    auto sig = Sign(input);
    if (!sig.ok()) return sig.status();
    return absl::StrCat(input, ".", absl::WebSafeBase64Escape(*sig));
  }

  static std::string Unescape(absl::string_view s) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
      if (s[i] == '+') {
        out += ' ';
      } else if (s[i] == '%' && i + 2 < s.size() && absl::ascii_isxdigit(s[i + 1]) &&
                 absl::ascii_isxdigit(s[i + 2])) {
        out += absl::HexStringToBytes(s.substr(i + 1, 2));
        i += 2;
      } else {
        out += s[i];
      }
    }
    return out;
  }

  void Serve() {
    namespace http = boost::beast::http;
    while (!stop_) {
      boost::system::error_code ec;
      boost::asio::ip::tcp::socket socket(io_);
      acceptor_.accept(socket, ec);
      if (ec || stop_) break;
      boost::beast::flat_buffer buffer;
      http::request<http::string_body> req;
      http::read(socket, buffer, req, ec);
      if (ec) continue;
      http::response<http::string_body> res = Handle(req);
      res.keep_alive(false);
      res.prepare_payload();
      http::write(socket, res, ec);
      socket.shutdown(boost::asio::ip::tcp::socket::shutdown_both, ec);
    }
  }

  boost::beast::http::response<boost::beast::http::string_body> Handle(
      const boost::beast::http::request<boost::beast::http::string_body>& req) {
    namespace http = boost::beast::http;
    using nlohmann::json;
    http::response<http::string_body> res{http::status::ok, req.version()};
    res.set(http::field::content_type, "application/json");
    std::string target(req.target());
    std::string path = target.substr(0, target.find('?'));
    if (req.method() != http::verb::get || path != "/token") {
      res.result(http::status::not_found);
      res.body() = R"({"errors":[{"code":"NOT_FOUND"}]})";
      return res;
    }
    Seen seen;
    if (size_t q = target.find('?'); q != std::string::npos) {
      for (absl::string_view kv : absl::StrSplit(absl::string_view(target).substr(q + 1), '&')) {
        std::pair<absl::string_view, absl::string_view> p =
            absl::StrSplit(kv, absl::MaxSplits('=', 1));
        if (p.first == "service") seen.service = Unescape(p.second);
        if (p.first == "scope") seen.scopes.push_back(Unescape(p.second));
      }
    }
    bool bad_password = false;
    if (auto it = req.find(http::field::authorization); it != req.end()) {
      absl::string_view value(it->value().data(), it->value().size());
      std::string decoded;
      if (absl::StartsWithIgnoreCase(value, "Basic ") &&
          absl::Base64Unescape(value.substr(6), &decoded)) {
        size_t colon = decoded.find(':');
        seen.user = decoded.substr(0, colon);
        std::string password = colon == std::string::npos ? "" : decoded.substr(colon + 1);
        auto user = options_.users.find(seen.user);
        seen.authenticated = user != options_.users.end() && user->second == password;
        bad_password = !seen.authenticated;
      } else {
        bad_password = true;
      }
    }
    if (bad_password) {
      res.result(http::status::unauthorized);
      res.set(http::field::www_authenticate, "Basic realm=\"kiln-test\"");
      res.body() = R"({"details":"incorrect username or password"})";
    } else {
      json access = json::array();
      if (seen.authenticated) {
        for (const std::string& scope : seen.scopes) {
          // type:name:actions; the name may not contain ':' here.
          size_t first = scope.find(':'), last = scope.rfind(':');
          if (first == std::string::npos || first == last) continue;
          json actions = json::array();
          for (absl::string_view a : absl::StrSplit(scope.substr(last + 1), ',')) {
            actions.push_back(std::string(a));
          }
          access.push_back({{"type", scope.substr(0, first)},
                            {"name", scope.substr(first + 1, last - first - 1)},
                            {"actions", actions}});
        }
      }
      auto jwt = MakeJwt(seen.user, access);
      if (jwt.ok()) {
        res.body() = json({{"token", *jwt}, {"expires_in", options_.expires_in}}).dump();
      } else {
        res.result(http::status::internal_server_error);
        res.body() = json({{"error", std::string(jwt.status().message())}}).dump();
      }
    }
    seen.status = static_cast<int>(res.result_int());
    std::lock_guard lock(mu_);
    seen_.push_back(std::move(seen));
    return res;
  }

  const Options options_;
  boost::asio::io_context io_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  int port_ = 0;
  EVP_PKEY* key_ = nullptr;
  X509* cert_ = nullptr;
  std::string cert_der_b64_;
  std::filesystem::path cert_path_;
  int jti_ = 0;  // only touched by the serving thread
  mutable std::mutex mu_;
  std::vector<Seen> seen_;
};

}  // namespace kiln::testing
