#pragma once
// A small synchronous HTTP/1.1 client over Boost.Beast, plain or TLS, for the registry client and
// the http(s) source op. Each RoundTrip dials a fresh connection on its own io_context and drives
// asynchronous Beast operations from the calling thread, so a kiln::Context can stop it at any
// point (the socket is closed when the context is cancelled or its deadline passes) and every step
// has an idle timeout. Thread-safe: calls share nothing.

#include <chrono>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "base/context.h"

namespace kiln::http {

// Where to connect.
struct Endpoint {
  std::string authority;  // "host", "host:port", "[::1]:port"
  bool https = true;
  bool insecure = false;  // accept any certificate (https only)
  bool operator==(const Endpoint&) const = default;
};

// An absolute http(s) URL split into what a request needs.
struct Url {
  Endpoint endpoint;
  std::string target;  // "/path?query"
};

// Parses "https://host[:port]/path?query". INVALID_ARGUMENT otherwise.
[[nodiscard]] absl::StatusOr<Url> ParseUrl(std::string_view url);
// Resolves a Location header against the URL it answered: absolute URLs, "//host/…" and
// absolute paths. The endpoint's TLS settings carry over when the authority is the same.
[[nodiscard]] absl::StatusOr<Url> ResolveLocation(const Url& base, std::string_view location);
// Percent-encodes a query component.
std::string QueryEscape(std::string_view s);
// Appends "name=value" (escaped) to a target's query.
std::string AppendQuery(std::string target, std::string_view name, std::string_view value);

using Headers = std::vector<std::pair<std::string, std::string>>;

struct Request {
  std::string method;
  std::string target;
  Headers headers;
  std::string body;
};

struct Response {
  int status = 0;
  std::string reason;
  Headers headers;
  std::string body;  // when buffered
  // First value of header `name` (case-insensitive); empty when absent.
  std::string Header(std::string_view name) const;
  std::vector<std::string> HeaderValues(std::string_view name) const;
};

// Receives a streamed response body, chunk by chunk.
using BodySink = std::function<absl::Status(std::string_view chunk)>;
// Called once the status line and headers are read: returns a sink to stream the body into, or
// nullptr to buffer it into Response::body. An error stops the call and is returned as is.
using SinkFactory = std::function<absl::StatusOr<BodySink>(const Response& head)>;

struct TransportOptions {
  std::string user_agent;
  // Names the requests in cancellation errors ("registry request cancelled").
  std::string what = "HTTP request";
  std::chrono::milliseconds connect_timeout{30000};
  std::chrono::milliseconds io_timeout{60000};  // longest silence while reading or writing
  size_t max_buffered_body = 16 << 20;
};

// Why a RoundTrip failed, for retry and fallback decisions.
enum class FailureKind {
  kNone,
  kConnect,  // DNS, refused, unreachable, connect timeout: nothing was sent
  kTls,      // the TLS handshake failed (e.g. a plain-HTTP server)
  kIo,       // the connection broke or timed out after the request started
  kSink,     // the body sink or sink factory returned an error
  kStopped,  // the Context was cancelled or expired
  kProtocol  // the peer did not speak HTTP/1.1 properly or the body was too large
};

// Sends `request` to `endpoint` and reads the response. Transport failures are UNAVAILABLE
// (DEADLINE_EXCEEDED / CANCELLED when `ctx` stopped) naming the endpoint; `kind`, when
// non-null, says which kind of failure it was.
[[nodiscard]] absl::StatusOr<Response> RoundTrip(const Context& ctx, const Endpoint& endpoint,
                                                 const Request& request,
                                                 const TransportOptions& options,
                                                 const SinkFactory& sink = nullptr,
                                                 FailureKind* kind = nullptr);

}  // namespace kiln::http
