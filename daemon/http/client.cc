#include "daemon/http/client.h"

#include <openssl/ssl.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <limits>
#include <memory>
#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/status.h"

namespace kiln::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using boost::system::error_code;

std::string S(beast::string_view v) { return std::string(v.data(), v.size()); }

// Splits an authority into host (without IPv6 brackets) and port (default for the scheme).
std::pair<std::string, std::string> SplitAuthority(const std::string& authority, bool https) {
  std::string host = authority;
  std::string port = https ? "443" : "80";
  if (!authority.empty() && authority.front() == '[') {
    size_t close = authority.find(']');
    host = authority.substr(1, close == std::string::npos ? std::string::npos : close - 1);
    if (close != std::string::npos && close + 1 < authority.size() && authority[close + 1] == ':')
      port = authority.substr(close + 2);
  } else if (size_t colon = authority.rfind(':'); colon != std::string::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }
  return {host, port};
}

bool IsIpAddress(const std::string& host) {
  error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

// One request on one connection. Not thread-safe; lives for one RoundTrip.
class Call {
 public:
  Call(const Context& ctx, const Endpoint& endpoint, const TransportOptions& options)
      : ctx_(ctx), endpoint_(endpoint), options_(options) {}

  absl::StatusOr<Response> Run(const Request& request, const SinkFactory& sink_factory,
                               FailureKind* kind);

 private:
  tcp::socket& Socket() { return tls_ ? beast::get_lowest_layer(*tls_).socket() : tcp_->socket(); }

  // Starts an asynchronous operation with `start(handler)` and runs the io_context until it
  // completes. Closes the socket when `ctx_` stops or `timeout` passes; stopped_ says which.
  template <typename Start>
  error_code Wait(Start&& start, std::chrono::milliseconds timeout) {
    bool done = false;
    error_code result;
    start([&](error_code ec, auto&&...) {
      result = ec;
      done = true;
    });
    Clock::time_point deadline = Clock::now() + timeout;
    if (ctx_.deadline() && *ctx_.deadline() < deadline) deadline = *ctx_.deadline();
    bool aborted = false;
    ioc_.restart();
    while (!done) {
      ioc_.run_one_for(std::chrono::milliseconds(20));
      if (done || aborted) continue;
      bool cancelled = ctx_.Cancelled();
      if (cancelled || Clock::now() >= deadline) {
        aborted = true;
        stopped_ = cancelled ? Stop::kContext : Stop::kTimeout;
        error_code ignored;
        resolver_.cancel();
        Socket().close(ignored);
      }
    }
    return result;
  }

  absl::Status Fail(FailureKind kind, std::string_view what, const error_code& ec) {
    if (stopped_ == Stop::kContext) {
      kind_ = FailureKind::kStopped;
      absl::Status st = ctx_.Check(options_.what.c_str());
      if (!st.ok()) return Annotate(st, absl::StrCat(AV(what), " ", endpoint_.authority));
    }
    kind_ = kind;
    std::string reason = stopped_ == Stop::kTimeout ? "timed out"
                         : ec == bhttp::error::partial_message
                             ? "the connection closed before the whole body arrived"
                             : ec.message();
    return absl::UnavailableError(absl::StrCat(AV(what), " ", endpoint_.authority, ": ", reason));
  }

  template <typename Stream>
  absl::StatusOr<Response> Exchange(Stream& stream, const Request& request,
                                    const SinkFactory& sink_factory);

  enum class Stop { kNo, kContext, kTimeout };

  const Context& ctx_;
  const Endpoint& endpoint_;
  const TransportOptions& options_;
  asio::io_context ioc_;
  tcp::resolver resolver_{ioc_};
  std::optional<asio::ssl::context> ssl_ctx_;
  std::unique_ptr<beast::tcp_stream> tcp_;
  std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> tls_;
  Stop stopped_ = Stop::kNo;
  FailureKind kind_ = FailureKind::kNone;
};

absl::StatusOr<Response> Call::Run(const Request& request, const SinkFactory& sink_factory,
                                   FailureKind* kind) {
  auto finish = [&](absl::StatusOr<Response> r) {
    if (kind) *kind = r.ok() ? FailureKind::kNone : kind_;
    error_code ignored;
    Socket().shutdown(tcp::socket::shutdown_both, ignored);
    Socket().close(ignored);
    return r;
  };
  if (absl::Status st = ctx_.Check(options_.what.c_str()); !st.ok()) {
    if (kind) *kind = FailureKind::kStopped;
    return st;
  }
  auto [host, port] = SplitAuthority(endpoint_.authority, endpoint_.https);
  if (endpoint_.https) {
    ssl_ctx_.emplace(asio::ssl::context::tls_client);
    if (endpoint_.insecure) {
      ssl_ctx_->set_verify_mode(asio::ssl::verify_none);
    } else {
      error_code ignored;
      ssl_ctx_->set_default_verify_paths(ignored);
      ssl_ctx_->set_verify_mode(asio::ssl::verify_peer);
    }
    tls_ = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(ioc_, *ssl_ctx_);
    if (!endpoint_.insecure) tls_->set_verify_callback(asio::ssl::host_name_verification(host));
    if (!IsIpAddress(host)) SSL_set_tlsext_host_name(tls_->native_handle(), host.c_str());
  } else {
    tcp_ = std::make_unique<beast::tcp_stream>(ioc_);
  }

  tcp::resolver::results_type addresses;
  error_code ec = Wait(
      [&](auto handler) {
        resolver_.async_resolve(host, port,
                                [&addresses, handler = std::move(handler)](
                                    error_code ec, tcp::resolver::results_type results) mutable {
                                  addresses = std::move(results);
                                  handler(ec);
                                });
      },
      options_.connect_timeout);
  if (ec) return finish(Fail(FailureKind::kConnect, "resolve", ec));
  beast::tcp_stream& lowest = tls_ ? beast::get_lowest_layer(*tls_) : *tcp_;
  ec = Wait([&](auto handler) { lowest.async_connect(addresses, std::move(handler)); },
            options_.connect_timeout);
  if (ec) return finish(Fail(FailureKind::kConnect, "connect to", ec));
  if (tls_) {
    ec = Wait(
        [&](auto handler) {
          tls_->async_handshake(asio::ssl::stream_base::client, std::move(handler));
        },
        options_.connect_timeout);
    if (ec) return finish(Fail(FailureKind::kTls, "TLS handshake with", ec));
    return finish(Exchange(*tls_, request, sink_factory));
  }
  return finish(Exchange(*tcp_, request, sink_factory));
}

template <typename Stream>
absl::StatusOr<Response> Call::Exchange(Stream& stream, const Request& request,
                                        const SinkFactory& sink_factory) {
  bhttp::request<bhttp::string_body> req;
  req.method_string(request.method);
  req.target(request.target);
  req.version(11);
  req.set(bhttp::field::host, endpoint_.authority);
  if (!options_.user_agent.empty()) req.set(bhttp::field::user_agent, options_.user_agent);
  for (const auto& [name, value] : request.headers) req.insert(name, value);
  req.body() = request.body;
  req.keep_alive(false);
  if (!request.body.empty() || request.method == "PUT" || request.method == "POST" ||
      request.method == "PATCH") {
    req.prepare_payload();
  }
  error_code ec = Wait([&](auto handler) { bhttp::async_write(stream, req, std::move(handler)); },
                       options_.io_timeout);
  if (ec) return Fail(FailureKind::kIo, "send request to", ec);

  beast::flat_buffer buffer;
  bhttp::response_parser<bhttp::buffer_body> parser;
  parser.body_limit(std::numeric_limits<std::uint64_t>::max());
  if (request.method == "HEAD") parser.skip(true);
  ec = Wait(
      [&](auto handler) { bhttp::async_read_header(stream, buffer, parser, std::move(handler)); },
      options_.io_timeout);
  if (ec) return Fail(FailureKind::kIo, "read response from", ec);

  Response response;
  response.status = static_cast<int>(parser.get().result_int());
  response.reason = S(parser.get().reason());
  for (const auto& field : parser.get()) {
    response.headers.emplace_back(S(field.name_string()), S(field.value()));
  }
  BodySink sink;
  if (sink_factory) {
    auto made = sink_factory(response);
    if (!made.ok()) {
      kind_ = FailureKind::kSink;
      return made.status();
    }
    sink = std::move(*made);
  }
  std::string chunk(64 << 10, '\0');
  while (!parser.is_done()) {
    parser.get().body().data = chunk.data();
    parser.get().body().size = chunk.size();
    ec = Wait([&](auto handler) { bhttp::async_read(stream, buffer, parser, std::move(handler)); },
              options_.io_timeout);
    if (ec == bhttp::error::need_buffer) ec = {};
    size_t n = chunk.size() - parser.get().body().size;
    if (n > 0) {
      std::string_view data(chunk.data(), n);
      if (sink) {
        if (absl::Status st = sink(data); !st.ok()) {
          kind_ = FailureKind::kSink;
          return st;
        }
      } else {
        if (response.body.size() + n > options_.max_buffered_body) {
          kind_ = FailureKind::kProtocol;
          return absl::ResourceExhaustedError(absl::StrCat("response from ", endpoint_.authority,
                                                           " is larger than ",
                                                           options_.max_buffered_body, " bytes"));
        }
        response.body.append(data);
      }
    }
    if (ec) return Fail(FailureKind::kIo, "read response body from", ec);
  }
  return response;
}

bool Unreserved(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_' ||
         c == '~';
}

}  // namespace

std::string Response::Header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (absl::EqualsIgnoreCase(AV(k), AV(name))) return v;
  }
  return "";
}

std::vector<std::string> Response::HeaderValues(std::string_view name) const {
  std::vector<std::string> out;
  for (const auto& [k, v] : headers) {
    if (absl::EqualsIgnoreCase(AV(k), AV(name))) out.push_back(v);
  }
  return out;
}

absl::StatusOr<Url> ParseUrl(std::string_view url) {
  Url out;
  std::string_view rest;
  if (absl::StartsWithIgnoreCase(AV(url), "https://")) {
    out.endpoint.https = true;
    rest = url.substr(8);
  } else if (absl::StartsWithIgnoreCase(AV(url), "http://")) {
    out.endpoint.https = false;
    rest = url.substr(7);
  } else {
    return absl::InvalidArgumentError(absl::StrCat("not an http(s) URL: \"", AV(url), "\""));
  }
  size_t slash = rest.find_first_of("/?");
  out.endpoint.authority = std::string(rest.substr(0, slash));
  if (out.endpoint.authority.empty() || out.endpoint.authority.find('@') != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("bad host in URL \"", AV(url), "\""));
  }
  out.target = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  if (out.target.front() == '?') out.target.insert(0, "/");
  if (size_t hash = out.target.find('#'); hash != std::string::npos) out.target.resize(hash);
  return out;
}

absl::StatusOr<Url> ResolveLocation(const Url& base, std::string_view location) {
  if (location.empty()) return absl::InvalidArgumentError("empty Location header");
  Url out;
  if (location.substr(0, 2) == "//") {
    KILN_ASSIGN_OR_RETURN(
        out, ParseUrl(absl::StrCat(base.endpoint.https ? "https:" : "http:", AV(location))));
  } else if (location.front() == '/') {
    out.endpoint = base.endpoint;
    out.target = std::string(location);
    return out;
  } else if (location.find("://") != std::string_view::npos) {
    KILN_ASSIGN_OR_RETURN(out, ParseUrl(location));
  } else {
    // Relative to the base path's directory.
    std::string dir = base.target.substr(0, base.target.find('?'));
    dir = dir.substr(0, dir.rfind('/') + 1);
    out.endpoint = base.endpoint;
    out.target = dir + std::string(location);
    return out;
  }
  if (out.endpoint.authority == base.endpoint.authority &&
      out.endpoint.https == base.endpoint.https) {
    out.endpoint.insecure = base.endpoint.insecure;
  }
  return out;
}

std::string QueryEscape(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char c : s) {
    if (Unreserved(c)) {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(kHex[static_cast<unsigned char>(c) >> 4]);
      out.push_back(kHex[static_cast<unsigned char>(c) & 0xf]);
    }
  }
  return out;
}

std::string AppendQuery(std::string target, std::string_view name, std::string_view value) {
  target.push_back(target.find('?') == std::string::npos ? '?' : '&');
  if (target.back() == '&' && target[target.size() - 2] == '?') target.pop_back();
  absl::StrAppend(&target, QueryEscape(name), "=", QueryEscape(value));
  return target;
}

absl::StatusOr<Response> RoundTrip(const Context& ctx, const Endpoint& endpoint,
                                   const Request& request, const TransportOptions& options,
                                   const SinkFactory& sink, FailureKind* kind) {
  try {
    Call call(ctx, endpoint, options);
    return call.Run(request, sink, kind);
  } catch (const std::exception& e) {  // Beast/Asio throw on invalid header values and the like
    if (kind) *kind = FailureKind::kProtocol;
    return absl::InternalError(
        absl::StrCat("HTTP request to ", endpoint.authority, " failed: ", e.what()));
  }
}

}  // namespace kiln::http
