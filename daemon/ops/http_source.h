#pragma once
// SourceOp "http://…" / "https://…": one downloaded file, as BuildKit's http source gives it.
// The result tree holds a single file /FILENAME (http.filename, else the URL path's base name,
// else "__unnamed__") with mode http.perm (default 0600), owned by http.uid:http.gid, its mtime
// the response's Last-Modified (else the Unix epoch).
//
// With http.checksum the cache key is known without a request, so a warm cache never touches
// the network; the body is fetched in Exec and must match. Without it GetCacheMap downloads:
// the ETags of earlier downloads of the same URL (kept in the cache's metadata store) go out
// as If-None-Match, and a 304 reuses the stored record; otherwise the body streams into a new
// cache record while it is hashed, and the key derives from its digest.

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "daemon/ops/worker.h"
#include "daemon/solver/types.h"

namespace kiln::ops {

struct HttpSourceAttrs {
  std::string url;                 // the identifier, "http://…" or "https://…"
  std::string checksum;            // http.checksum, "sha256:<hex>"; empty when not pinned
  std::string filename;            // http.filename; empty = derived from the URL
  uint32_t perm = 0;               // http.perm; 0 = 0600
  uint32_t uid = 0;                // http.uid
  uint32_t gid = 0;                // http.gid
  std::string auth_header_secret;  // http.authheadersecret: a secret id, never its value
  // http.header.accept / http.header.user-agent (BuildKit's only user-definable headers),
  // sorted by name.
  std::vector<std::pair<std::string, std::string>> headers;
};

// Parses an http(s) SourceOp. INVALID_ARGUMENT names the bad attr (a checksum that is not
// sha256, a filename that is not a single path component, a perm/uid/gid that is not a
// number); UNIMPLEMENTED for signature verification (http.sig.*), which kilnd cannot do.
[[nodiscard]] absl::StatusOr<HttpSourceAttrs> ParseHttpSource(
    const std::string& identifier, const google::protobuf::Map<std::string, std::string>& attrs);

// The name of the file in the result tree: http.filename, else the base name of the URL's
// path when that is a usable name, else "__unnamed__".
std::string HttpSourceFileName(const HttpSourceAttrs& attrs);

// The op for one vertex of one job. Like every solver::Op it is called from one thread at a
// time; its result ref is shared with the solver through RefResult.
class HttpSourceOp final : public solver::Op {
 public:
  HttpSourceOp(Worker worker, HttpSourceAttrs attrs)
      : worker_(std::move(worker)), attrs_(std::move(attrs)) {}
  absl::StatusOr<solver::CacheMap> GetCacheMap(const Context& ctx) override;
  absl::StatusOr<std::vector<solver::ResultPtr>> Exec(
      const Context& ctx, const std::vector<solver::ResultPtr>& inputs) override;

 private:
  // One GET (following redirects), conditional on the ETags of earlier downloads; sets ref_,
  // digest_ and last_modified_. A pinned checksum must match.
  absl::Status Fetch(const Context& ctx);
  // The Authorization header from the build's secrets (http.authheadersecret, else BuildKit's
  // HTTP_AUTH_HEADER_<host> / HTTP_AUTH_TOKEN_<host>); none when there is no such secret.
  absl::StatusOr<std::optional<std::string>> Authorization(const Context& ctx);

  Worker worker_;
  HttpSourceAttrs attrs_;
  // What Fetch found: the record with the file, its content digest and Last-Modified.
  std::optional<cache::ImmutableRef> ref_;
  std::string digest_;
  std::string last_modified_;  // the header as sent; empty when absent
};

}  // namespace kiln::ops
