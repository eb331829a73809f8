#include "daemon/ops/http_source.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/digest.h"
#include "base/status.h"
#include "daemon/http/client.h"
#include "daemon/session/secrets.h"
#include "daemon/util/logging.h"
#include "kiln_version.h"

namespace kiln::ops {
namespace {

using json = nlohmann::json;

constexpr char kUnnamed[] = "__unnamed__";
constexpr int kMaxRedirects = 10;  // as Go's http.Client
// Downloads of one URL remembered for conditional requests, newest first.
constexpr size_t kMaxStoredDownloads = 8;
// BuildKit's implicit per-host secrets, asked for when no http.authheadersecret is given.
constexpr char kAuthHeaderSecretPrefix[] = "HTTP_AUTH_HEADER_";
constexpr char kAuthTokenSecretPrefix[] = "HTTP_AUTH_TOKEN_";

bool IsSingleComponent(std::string_view name) {
  if (name.empty() || name == "." || name == "..") return false;
  return std::none_of(name.begin(), name.end(), [](char c) {
    return c == '/' || absl::ascii_iscntrl(static_cast<unsigned char>(c));
  });
}

// The value of a hex digit; 16 for any other character.
int DigitValue(char c) {
  const unsigned char u = static_cast<unsigned char>(c);
  if (absl::ascii_isdigit(u)) return c - '0';
  if (absl::ascii_isxdigit(u)) return absl::ascii_tolower(u) - 'a' + 10;
  return 16;
}

// A number as Go's strconv.ParseInt(v, 0, 64) reads it ("0644" and "0o644" octal, "0x1a4" hex,
// "0b1" binary, else decimal), limited to [0, max].
absl::StatusOr<uint32_t> ParseNumberAttr(const std::string& key, const std::string& v, uint32_t max,
                                         std::string_view what) {
  auto bad = [&] {
    return absl::InvalidArgumentError(absl::StrCat(key, " \"", v, "\": not ", AV(what)));
  };
  std::string_view rest = v;
  int base = 10;
  if (rest.size() > 1 && rest[0] == '0') {
    const char prefix = absl::ascii_tolower(static_cast<unsigned char>(rest[1]));
    base = prefix == 'x' ? 16 : prefix == 'b' ? 2 : 8;
    rest.remove_prefix(prefix == 'x' || prefix == 'b' || prefix == 'o' ? 2 : 1);
  }
  if (rest.empty()) return bad();
  uint64_t n = 0;
  for (char c : rest) {
    const int d = DigitValue(c);
    if (d >= base) return bad();
    n = n * base + d;
    if (n > max) return bad();
  }
  return static_cast<uint32_t>(n);
}

// Decodes %XX escapes as Go's url.Parse does for a URL's path; malformed escapes stay as is.
std::string PathUnescape(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && DigitValue(s[i + 1]) < 16 && DigitValue(s[i + 2]) < 16) {
      out.push_back(static_cast<char>(DigitValue(s[i + 1]) * 16 + DigitValue(s[i + 2])));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

// An HTTP date (RFC 9110: IMF-fixdate, RFC 850 or asctime) as Unix seconds.
std::optional<time_t> ParseHttpDate(const std::string& s) {
  for (const char* format :
       {"%a, %d %b %Y %H:%M:%S GMT", "%A, %d-%b-%y %H:%M:%S GMT", "%a %b %e %H:%M:%S %Y"}) {
    struct tm tm {};
    const char* end = strptime(s.c_str(), format, &tm);
    if (end != nullptr && *end == '\0') return timegm(&tm);
  }
  return std::nullopt;
}

std::string FormatHttpDate(time_t t) {
  struct tm tm {};
  gmtime_r(&t, &tm);
  char buf[64];
  strftime(buf, sizeof(buf), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return buf;
}

// A weak ETag compares equal to its strong form (BuildKit's etagValue).
std::string EtagValue(std::string_view v) {
  if (absl::StartsWith(AV(v), "W/")) v.remove_prefix(2);
  return std::string(v);
}

// The host of a URL's authority, without port or IPv6 brackets (Go's URL.Hostname).
std::string HostName(const std::string& authority) {
  if (!authority.empty() && authority.front() == '[') {
    return authority.substr(1, authority.find(']') - 1);
  }
  return authority.substr(0, authority.rfind(':'));
}

// One earlier download of a URL: what its conditional request and its reuse need.
struct Stored {
  std::string etag;  // EtagValue of the response's ETag; empty when it had none
  std::string digest;
  std::string record;
  std::string last_modified;
};

// The metadata-store name under which downloads of the same source (URL and everything that
// shapes the file) are remembered.
std::string StoredName(const HttpSourceAttrs& a) {
  json id = json::object();
  id["url"] = a.url;
  id["filename"] = a.filename;
  id["perm"] = a.perm;
  id["uid"] = a.uid;
  id["gid"] = a.gid;
  id["auth"] = a.auth_header_secret;
  id["headers"] = a.headers;
  return absl::StrCat("http-source\n", Sha256Digest(id.dump()));
}

std::vector<Stored> LoadStored(cache::MetadataStore& meta, const std::string& name) {
  std::vector<Stored> out;
  auto value = meta.GetValue(name);
  if (!value.ok() || !*value) return out;
  try {
    for (const json& e : json::parse(**value)) {
      out.push_back({e.at("etag").get<std::string>(), e.at("digest").get<std::string>(),
                     e.at("record").get<std::string>(), e.at("last_modified").get<std::string>()});
    }
  } catch (const json::exception& e) {
    Logger("ops")->warn("ignoring corrupt http source metadata {}: {}", name, e.what());
    out.clear();
  }
  return out;
}

absl::Status SaveStored(cache::MetadataStore& meta, const std::string& name, const Stored& s) {
  std::vector<Stored> all = LoadStored(meta, name);
  std::erase_if(all, [&](const Stored& o) {
    return o.record == s.record || (!s.etag.empty() && o.etag == s.etag);
  });
  all.insert(all.begin(), s);
  if (all.size() > kMaxStoredDownloads) all.resize(kMaxStoredDownloads);
  json out = json::array();
  for (const Stored& e : all) {
    out.push_back({{"etag", e.etag},
                   {"digest", e.digest},
                   {"record", e.record},
                   {"last_modified", e.last_modified}});
  }
  return meta.SetValue(name, out.dump());
}

// The file being downloaded into a new cache record: written and hashed chunk by chunk. The
// layer is discarded unless Commit runs. Not thread-safe.
class Download {
 public:
  static absl::StatusOr<std::unique_ptr<Download>> Start(cache::Manager& cache,
                                                         const std::string& name, mode_t mode) {
    KILN_ASSIGN_OR_RETURN(cache::MutableRef layer, cache.New(nullptr, cache::kTypeRegular));
    const std::filesystem::path path = layer.root() / name;
    int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0) return ErrnoToStatus(errno, absl::StrCat("create ", name));
    return std::unique_ptr<Download>(new Download(std::move(layer), fd));
  }
  ~Download() {
    if (fd_ >= 0) close(fd_);
  }

  absl::Status Write(std::string_view chunk) {
    hash_.Update(chunk);
    bytes_ += static_cast<int64_t>(chunk.size());
    while (!chunk.empty()) {
      ssize_t n = write(fd_, chunk.data(), chunk.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return ErrnoToStatus(errno, "write the downloaded file");
      chunk.remove_prefix(static_cast<size_t>(n));
    }
    return absl::OkStatus();
  }
  int64_t bytes() const { return bytes_; }

  // Sets the file's mode (exactly, whatever the umask), owner and times and closes it; returns
  // the content digest.
  absl::StatusOr<std::string> Finish(mode_t mode, uid_t uid, gid_t gid, time_t mtime) {
    if (fchmod(fd_, mode) != 0) return ErrnoToStatus(errno, "chmod the downloaded file");
    if ((uid != 0 || gid != 0) && fchown(fd_, uid, gid) != 0) {
      return ErrnoToStatus(errno, absl::StrCat("chown the downloaded file to ", uid, ":", gid));
    }
    const struct timespec times[2] = {{mtime, 0}, {mtime, 0}};
    if (futimens(fd_, times) != 0) return ErrnoToStatus(errno, "set the downloaded file's times");
    int fd = fd_;
    fd_ = -1;
    if (close(fd) != 0) return ErrnoToStatus(errno, "close the downloaded file");
    return absl::StrCat("sha256:", hash_.HexDigest());
  }

  absl::StatusOr<cache::ImmutableRef> Commit(const std::string& description) {
    return layer_.Commit(description);
  }

 private:
  Download(cache::MutableRef layer, int fd) : layer_(std::move(layer)), fd_(fd) {}
  cache::MutableRef layer_;
  int fd_;
  Sha256 hash_;
  int64_t bytes_ = 0;
};

bool IsRedirect(int status) {
  return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

absl::Status StatusError(const std::string& url, const http::Response& r) {
  std::string msg = absl::StrCat("invalid response status ", r.status, r.reason.empty() ? "" : " ",
                                 r.reason, " from ", url);
  if (r.status == 404 || r.status == 410) return absl::NotFoundError(msg);
  if (r.status == 401 || r.status == 403) return absl::PermissionDeniedError(msg);
  if (r.status >= 500 || r.status == 429) return absl::UnavailableError(msg);
  return absl::FailedPreconditionError(msg);
}

// The cache key: the file's content and everything that shapes the tree around it, in the
// fields of BuildKit's formatCacheKey.
std::string CacheKey(const HttpSourceAttrs& a, const std::string& digest,
                     const std::string& last_modified) {
  json key = json::object();
  key["Filename"] = HttpSourceFileName(a);
  key["Perm"] = a.perm;
  key["UID"] = a.uid;
  key["GID"] = a.gid;
  key["Checksum"] = digest;
  if (auto t = ParseHttpDate(last_modified)) key["LastModTime"] = FormatHttpDate(*t);
  if (!a.auth_header_secret.empty()) key["AuthHeaderSecret"] = a.auth_header_secret;
  if (!a.headers.empty()) key["Header"] = a.headers;
  return Sha256Digest(absl::StrCat("http-source\n", key.dump()));
}

}  // namespace

absl::StatusOr<HttpSourceAttrs> ParseHttpSource(
    const std::string& identifier, const google::protobuf::Map<std::string, std::string>& attrs) {
  HttpSourceAttrs out;
  out.url = identifier;
  KILN_RETURN_IF_ERROR(http::ParseUrl(identifier).status());
  for (const auto& [k, v] : attrs) {
    if (k == "http.checksum") {
      const size_t colon = v.find(':');
      const std::string algo = v.substr(0, colon == std::string::npos ? 0 : colon);
      if (algo.empty() || colon + 1 == v.size()) {
        return absl::InvalidArgumentError(
            absl::StrCat("http.checksum \"", v, "\": not a digest (want sha256:<64 hex digits>)"));
      }
      if (algo != "sha256") {
        return absl::InvalidArgumentError(absl::StrCat("http.checksum \"", v,
                                                       "\": unsupported digest algorithm \"", algo,
                                                       "\" (kilnd verifies sha256 only)"));
      }
      if (!IsSha256Digest(v)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "http.checksum \"", v, "\": not a sha256 digest (want sha256:<64 lowercase hex>)"));
      }
      out.checksum = v;
    } else if (k == "http.filename") {
      if (!IsSingleComponent(v)) {
        return absl::InvalidArgumentError(absl::StrCat("http.filename \"", absl::CEscape(v),
                                                       "\": must be a single path component"));
      }
      out.filename = v;
    } else if (k == "http.perm") {
      KILN_ASSIGN_OR_RETURN(out.perm, ParseNumberAttr(k, v, 07777, "a file mode"));
    } else if (k == "http.uid") {
      KILN_ASSIGN_OR_RETURN(out.uid, ParseNumberAttr(k, v, 0xfffffffe, "a user id"));
    } else if (k == "http.gid") {
      KILN_ASSIGN_OR_RETURN(out.gid, ParseNumberAttr(k, v, 0xfffffffe, "a group id"));
    } else if (k == "http.authheadersecret") {
      out.auth_header_secret = v;
    } else if (absl::StartsWith(k, "http.header.")) {
      const std::string name = absl::AsciiStrToLower(k.substr(std::strlen("http.header.")));
      // As BuildKit: other header names are dropped silently.
      if (name == "accept" || name == "user-agent") out.headers.emplace_back(name, v);
    } else if (absl::StartsWith(k, "http.sig.")) {
      return absl::UnimplementedError(absl::StrCat(
          k, ": PGP signature verification of http sources is not supported by this kilnd yet"));
    }
  }
  std::sort(out.headers.begin(), out.headers.end());
  return out;
}

std::string HttpSourceFileName(const HttpSourceAttrs& attrs) {
  if (!attrs.filename.empty()) return attrs.filename;
  auto url = http::ParseUrl(attrs.url);
  if (!url.ok()) return kUnnamed;
  std::string path = PathUnescape(url->target.substr(0, url->target.find('?')));
  // Go's path.Base: trailing slashes do not count.
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  std::string base = path.substr(path.rfind('/') + 1);
  return IsSingleComponent(base) ? base : kUnnamed;
}

absl::StatusOr<std::optional<std::string>> HttpSourceOp::Authorization(const Context& ctx) {
  const bool named = !attrs_.auth_header_secret.empty();
  std::vector<std::pair<std::string, bool>> secrets;  // (id, is a bearer token)
  if (named) {
    secrets.emplace_back(attrs_.auth_header_secret, false);
  } else {
    KILN_ASSIGN_OR_RETURN(http::Url url, http::ParseUrl(attrs_.url));
    const std::string host = HostName(url.endpoint.authority);
    secrets.emplace_back(absl::StrCat(kAuthHeaderSecretPrefix, host), false);
    secrets.emplace_back(absl::StrCat(kAuthTokenSecretPrefix, host), true);
  }
  auto failed = [&](const absl::Status& st) {
    return Annotate(
        st, absl::StrCat("failed to retrieve HTTP auth secret ", attrs_.auth_header_secret));
  };
  if (worker_.sessions == nullptr || worker_.session_id.empty()) {
    if (named) return failed(absl::FailedPreconditionError("the build has no session"));
    return std::optional<std::string>();
  }
  auto session = worker_.sessions->Get(ctx, worker_.session_id, std::chrono::milliseconds(5000));
  if (!session.ok()) {
    if (named) return failed(session.status());
    return std::optional<std::string>();
  }
  std::optional<std::string> header;
  for (const auto& [id, token] : secrets) {
    absl::StatusOr<std::string> value = session::GetSecret(ctx, **session, id);
    if (value.ok()) {
      header = token ? absl::StrCat("Bearer ", *value) : *std::move(value);
    } else if (named) {
      return failed(value.status());
    }
  }
  return header;
}

absl::Status HttpSourceOp::Fetch(const Context& ctx) {
  cache::Manager& cache = *worker_.cache;
  cache::MetadataStore& meta = cache.store();
  const std::string stored_name = StoredName(attrs_);
  const std::string name = HttpSourceFileName(attrs_);
  const mode_t mode = attrs_.perm != 0 ? attrs_.perm : 0600;

  // Earlier downloads whose records are still here, by ETag: the server may answer 304.
  std::map<std::string, std::pair<Stored, cache::ImmutableRef>> known;
  for (Stored& s : LoadStored(meta, stored_name)) {
    if (s.etag.empty() || known.contains(s.etag)) continue;
    auto ref = cache.Get(s.record);
    if (!ref.ok()) continue;
    std::string etag = s.etag;
    known.emplace(std::move(etag), std::make_pair(std::move(s), *std::move(ref)));
  }

  http::TransportOptions transport{.user_agent = absl::StrCat("kiln/", kVersion)};
  http::Request request{.method = "GET"};
  for (const auto& [k, v] : attrs_.headers) {
    if (k == "user-agent") {
      transport.user_agent = v;
    } else {
      request.headers.emplace_back(k, v);
    }
  }
  if (!known.empty()) {
    std::vector<std::string> etags;
    for (const auto& [etag, unused] : known) etags.push_back(etag);
    request.headers.emplace_back("If-None-Match", absl::StrJoin(etags, ", "));
  }
  KILN_ASSIGN_OR_RETURN(std::optional<std::string> authorization, Authorization(ctx));
  KILN_ASSIGN_OR_RETURN(http::Url url, http::ParseUrl(attrs_.url));
  const http::Endpoint origin = url.endpoint;

  const std::string progress_id = absl::StrCat("downloading ", attrs_.url);
  std::unique_ptr<Download> download;
  int64_t total = 0;
  auto last_report = std::chrono::steady_clock::now();
  auto sink_factory = [&](const http::Response& head) -> absl::StatusOr<http::BodySink> {
    if (head.status < 200 || head.status >= 300) {
      return http::BodySink([](std::string_view) { return absl::OkStatus(); });  // discarded
    }
    KILN_ASSIGN_OR_RETURN(download, Download::Start(cache, name, mode));
    if (!absl::SimpleAtoi(head.Header("Content-Length"), &total)) total = 0;
    ReportStatus(progress_id, 0, total, false);
    return http::BodySink([&](std::string_view chunk) -> absl::Status {
      KILN_RETURN_IF_ERROR(download->Write(chunk));
      auto now = std::chrono::steady_clock::now();
      if (now - last_report >= std::chrono::milliseconds(100)) {
        last_report = now;
        ReportStatus(progress_id, download->bytes(), total, false);
      }
      return absl::OkStatus();
    });
  };

  // BuildKit's validatePinnedChecksum message.
  auto check_pinned = [&]() -> absl::Status {
    if (attrs_.checksum.empty() || digest_ == attrs_.checksum) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat("digest mismatch for ", attrs_.url, ": ",
                                                   digest_, " (expected: ", attrs_.checksum, ")"));
  };

  ReportStarted();
  http::Response response;
  for (int redirects = 0;; ++redirects) {
    http::Request req = request;
    // Credentials go to the origin only, as Go's client drops them on cross-host redirects.
    if (authorization && url.endpoint == origin) {
      req.headers.emplace_back("Authorization", *authorization);
    }
    req.target = url.target;
    auto resp = http::RoundTrip(ctx, url.endpoint, req, transport, sink_factory);
    if (!resp.ok()) return Annotate(resp.status(), absl::StrCat("GET ", attrs_.url));
    response = *std::move(resp);
    if (!IsRedirect(response.status) || response.Header("Location").empty()) break;
    if (redirects + 1 >= kMaxRedirects) {
      return absl::FailedPreconditionError(
          absl::StrCat("GET ", attrs_.url, ": stopped after ", kMaxRedirects, " redirects"));
    }
    auto next = http::ResolveLocation(url, response.Header("Location"));
    if (!next.ok()) return Annotate(next.status(), absl::StrCat("GET ", attrs_.url));
    url = *std::move(next);
  }

  if (response.status == 304) {
    std::string etag = EtagValue(response.Header("ETag"));
    // A 304 without an ETag answers the only one asked about.
    if (etag.empty() && known.size() == 1) etag = known.begin()->first;
    auto it = known.find(etag);
    if (it == known.end()) {
      return absl::FailedPreconditionError(
          absl::StrCat("GET ", attrs_.url, ": invalid not-modified ETag \"", etag, "\""));
    }
    auto& [stored, ref] = it->second;
    digest_ = stored.digest;
    KILN_RETURN_IF_ERROR(check_pinned());
    last_modified_ = stored.last_modified;
    ref_ = std::move(ref);
    Logger("ops")->debug("http {}: not modified, reusing {}", attrs_.url, ref_->id());
  } else {
    if (response.status < 200 || response.status >= 300) return StatusError(attrs_.url, response);
    KILN_RELEASE_ASSERT(download != nullptr);  // the sink factory ran for this 2xx answer
    last_modified_ = response.Header("Last-Modified");
    const time_t mtime = ParseHttpDate(last_modified_).value_or(0);
    KILN_ASSIGN_OR_RETURN(digest_, download->Finish(mode, attrs_.uid, attrs_.gid, mtime));
    ReportStatus(progress_id, download->bytes(), download->bytes(), true);
    // Checked before the commit, so that a wrong download leaves no record behind.
    KILN_RETURN_IF_ERROR(check_pinned());
    KILN_ASSIGN_OR_RETURN(ref_, download->Commit(absl::StrCat("http url ", attrs_.url)));
    KILN_RETURN_IF_ERROR(SaveStored(meta, stored_name,
                                    {.etag = EtagValue(response.Header("ETag")),
                                     .digest = digest_,
                                     .record = ref_->id(),
                                     .last_modified = last_modified_}));
    Logger("ops")->debug("http {}: downloaded {} bytes, {}", attrs_.url, download->bytes(),
                         digest_);
  }
  return absl::OkStatus();
}

absl::StatusOr<solver::CacheMap> HttpSourceOp::GetCacheMap(const Context& ctx) {
  if (worker_.cache == nullptr) return absl::FailedPreconditionError("this kilnd has no cache");
  // A pinned checksum is the content's identity: no request is needed to know the key.
  if (!attrs_.checksum.empty())
    return solver::CacheMap{.digest = CacheKey(attrs_, attrs_.checksum, "")};
  if (!ref_) KILN_RETURN_IF_ERROR(Fetch(ctx));
  return solver::CacheMap{.digest = CacheKey(attrs_, digest_, last_modified_)};
}

absl::StatusOr<std::vector<solver::ResultPtr>> HttpSourceOp::Exec(
    const Context& ctx, const std::vector<solver::ResultPtr>&) {
  if (worker_.cache == nullptr) return absl::FailedPreconditionError("this kilnd has no cache");
  if (!ref_ && !attrs_.checksum.empty()) {
    // An earlier download with the pinned content (its cache key lost) serves without a request.
    for (const Stored& s : LoadStored(worker_.cache->store(), StoredName(attrs_))) {
      if (s.digest != attrs_.checksum) continue;
      auto ref = worker_.cache->Get(s.record);
      if (!ref.ok()) continue;
      ref_ = *std::move(ref);
      digest_ = s.digest;
      last_modified_ = s.last_modified;
      break;
    }
  }
  if (!ref_) KILN_RETURN_IF_ERROR(Fetch(ctx));
  return std::vector<solver::ResultPtr>{std::make_shared<RefResult>(ref_->Clone())};
}

}  // namespace kiln::ops
