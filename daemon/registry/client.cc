#include "daemon/registry/client.h"

#include <fcntl.h>
#include <unistd.h>
#include <algorithm>
#include <thread>

#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "base/digest.h"
#include "base/status.h"
#include "daemon/util/logging.h"

namespace kiln::registry {

using http::Request;
using http::Response;
using http::Url;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

constexpr char kDockerHub[] = "docker.io";
constexpr char kDockerHubApi[] = "registry-1.docker.io";
constexpr int64_t kMaxManifestBytes = 4 << 20;
constexpr int kMaxRedirects = 5;

const std::string& ManifestAccept() {
  static const std::string kAccept = absl::StrJoin(
      {kMediaTypeOciIndex, kMediaTypeDockerList, kMediaTypeOciManifest, kMediaTypeDockerManifest},
      ", ");
  return kAccept;
}

bool IsLoopback(const std::string& authority) {
  std::string host = authority;
  if (!host.empty() && host.front() == '[') {
    host = host.substr(1, host.find(']') - 1);
  } else if (size_t colon = host.rfind(':'); colon != std::string::npos) {
    host = host.substr(0, colon);
  }
  return host == "localhost" || absl::StartsWith(host, "127.") || host == "::1";
}

std::string MediaTypeOnly(const std::string& content_type) {
  std::string mt = content_type.substr(0, content_type.find(';'));
  return std::string(absl::StripAsciiWhitespace(mt));
}

// "404 manifest unknown; …" from a distribution error body, else the status line.
std::string ErrorDetail(const Response& r) {
  std::vector<std::string> messages;
  json doc = json::parse(r.body, nullptr, /*allow_exceptions=*/false);
  if (doc.is_object()) {
    if (auto errors = doc.find("errors"); errors != doc.end() && errors->is_array()) {
      for (const auto& e : *errors) {
        if (!e.is_object()) continue;
        std::string message = e.value("message", "");
        std::string code = absl::AsciiStrToLower(e.value("code", ""));
        absl::StrReplaceAll({{"_", " "}}, &code);
        if (message.empty()) message = code;
        if (!message.empty()) messages.push_back(message);
      }
    }
  }
  std::string detail =
      messages.empty() ? absl::AsciiStrToLower(r.reason) : absl::StrJoin(messages, "; ");
  return detail.empty() ? absl::StrCat(r.status) : absl::StrCat(r.status, " ", detail);
}

// A user-facing error for an unexpected response about `subject` (an image or blob).
absl::Status ResponseError(const Response& r, std::string_view subject, bool push,
                           std::string_view host) {
  std::string detail = ErrorDetail(r);
  std::string access = absl::StrCat(push ? "push" : "pull", " access denied for ", AV(subject),
                                    " (registry ", AV(host), "): ", detail);
  switch (r.status) {
    case 401:
      return absl::UnauthenticatedError(access);
    case 403:
      return absl::PermissionDeniedError(access);
    case 404:
      return absl::NotFoundError(
          absl::StrCat(AV(subject), ": not found (registry ", AV(host), "): ", detail));
    case 429:
      return absl::ResourceExhaustedError(
          absl::StrCat(AV(subject), ": rate limited (registry ", AV(host), "): ", detail));
    default:
      break;
  }
  std::string msg =
      absl::StrCat(AV(subject), ": unexpected response from registry ", AV(host), ": ", detail);
  if (r.status >= 500) return absl::UnavailableError(msg);
  return absl::FailedPreconditionError(msg);
}

std::string BlobsPath(const Reference& repo, std::string_view digest) {
  return absl::StrCat("/v2/", repo.path, "/blobs/", AV(digest));
}

bool IsRedirect(int status) {
  return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

}  // namespace

struct Client::Host {
  std::string name;  // authority, also what credentials are looked up by
  http::Endpoint endpoint;
  bool fallback_http = false;
  bool mirror = false;
};

struct Client::Manifest {
  std::string bytes;
  std::string media_type;
  std::string digest;
};

Client::Client(Options options)
    : options_(std::move(options)),
      transport_{.user_agent = options_.user_agent,
                 .what = "registry request",
                 .connect_timeout = options_.connect_timeout,
                 .io_timeout = options_.io_timeout,
                 .max_buffered_body = static_cast<size_t>(kMaxManifestBytes)} {}

Client::~Client() = default;

Client::Host Client::OriginHost(const std::string& domain) {
  Host h;
  h.name = domain == kDockerHub ? kDockerHubApi : domain;
  config::RegistryConfig cfg;
  if (auto it = options_.hosts.find(domain); it != options_.hosts.end()) {
    cfg = it->second;
  } else if (auto it2 = options_.hosts.find(h.name); it2 != options_.hosts.end()) {
    cfg = it2->second;
  }
  h.endpoint = {.authority = h.name, .https = !cfg.http, .insecure = cfg.insecure};
  // Loopback registries and insecure ones may speak plain HTTP: tried when TLS fails.
  h.fallback_http = !cfg.http && (IsLoopback(h.name) || cfg.insecure);
  std::lock_guard lock(mu_);
  if (h.fallback_http && plain_http_.count(h.name) != 0) h.endpoint.https = false;
  return h;
}

std::vector<Client::Host> Client::PullHosts(const std::string& domain) {
  std::vector<Host> out;
  auto it = options_.hosts.find(domain);
  if (it != options_.hosts.end()) {
    for (std::string mirror : it->second.mirrors) {
      std::optional<bool> https;
      if (absl::StartsWith(mirror, "http://")) {
        https = false;
        mirror = mirror.substr(7);
      } else if (absl::StartsWith(mirror, "https://")) {
        https = true;
        mirror = mirror.substr(8);
      }
      mirror = mirror.substr(0, mirror.find('/'));
      if (mirror.empty()) continue;
      Host h = OriginHost(mirror);
      if (https) {
        h.endpoint.https = *https;
        h.fallback_http = false;
      }
      h.mirror = true;
      out.push_back(std::move(h));
    }
  }
  out.push_back(OriginHost(domain));
  return out;
}

std::chrono::milliseconds Client::Backoff(int attempt) const {
  auto d = options_.retry.initial_backoff * (1 << std::min(attempt - 1, 16));
  return std::min<std::chrono::milliseconds>(d, options_.retry.max_backoff);
}

absl::Status Client::Sleep(const Context& ctx, std::chrono::milliseconds d) {
  auto until = Clock::now() + d;
  while (Clock::now() < until) {
    KILN_RETURN_IF_ERROR(ctx.Check("registry request"));
    std::this_thread::sleep_for(
        std::min<Clock::duration>(std::chrono::milliseconds(10), until - Clock::now()));
  }
  return ctx.Check("registry request");
}

absl::StatusOr<Credentials> Client::CredentialsFor(const std::string& host) {
  if (!options_.credentials) return Credentials{};
  auto creds = options_.credentials(host);
  if (!creds.ok() && absl::IsNotFound(creds.status())) return Credentials{};
  if (!creds.ok()) return Annotate(creds.status(), absl::StrCat("credentials for ", host));
  return creds;
}

std::string Client::AuthHeader(const std::string& host, const std::vector<std::string>& scopes) {
  std::lock_guard lock(mu_);
  auto it = tokens_.find(absl::StrCat(host, " ", absl::StrJoin(scopes, " ")));
  if (it != tokens_.end()) {
    if (Clock::now() < it->second.expires) return absl::StrCat("Bearer ", it->second.value);
    tokens_.erase(it);
  }
  if (auto b = basic_.find(host); b != basic_.end()) return b->second;
  return "";
}

absl::StatusOr<std::string> Client::FetchToken(const Context& ctx, const Host& host,
                                               const std::map<std::string, std::string>& challenge,
                                               const std::vector<std::string>& scopes) {
  auto realm_it = challenge.find("realm");
  if (realm_it == challenge.end()) {
    return absl::UnauthenticatedError(
        absl::StrCat("registry ", host.name, " sent a Bearer challenge without a realm"));
  }
  KILN_ASSIGN_OR_RETURN(Url realm, http::ParseUrl(realm_it->second));
  std::string service;
  if (auto s = challenge.find("service"); s != challenge.end()) service = s->second;
  KILN_ASSIGN_OR_RETURN(Credentials creds, CredentialsFor(host.name));

  Request req;
  if (!creds.identity_token.empty()) {
    // OAuth2 refresh-token grant, as docker does for identity tokens.
    req.method = "POST";
    req.target = realm.target;
    req.headers.emplace_back("Content-Type", "application/x-www-form-urlencoded");
    req.body = absl::StrCat("grant_type=refresh_token&client_id=kiln&refresh_token=",
                            http::QueryEscape(creds.identity_token));
    if (!service.empty()) absl::StrAppend(&req.body, "&service=", http::QueryEscape(service));
    if (!scopes.empty()) {
      absl::StrAppend(&req.body, "&scope=", http::QueryEscape(absl::StrJoin(scopes, " ")));
    }
  } else {
    req.method = "GET";
    req.target = realm.target;
    if (!service.empty()) req.target = http::AppendQuery(req.target, "service", service);
    for (const auto& scope : scopes) req.target = http::AppendQuery(req.target, "scope", scope);
    if (!creds.username.empty()) {
      req.headers.emplace_back("Authorization",
                               absl::StrCat("Basic ", absl::Base64Escape(absl::StrCat(
                                                          creds.username, ":", creds.secret))));
    }
  }
  Host token_host{.name = realm.endpoint.authority, .endpoint = realm.endpoint};
  KILN_ASSIGN_OR_RETURN(Response resp, Send(ctx, token_host, {}, realm, req,
                                            /*idempotent=*/req.method == "GET"));
  if (resp.status != 200) {
    // Name the repositories ("host/path") and whether it was a push, not the raw scope strings.
    std::vector<std::string> repos;
    bool push = false;
    for (const auto& scope : scopes) {  // "repository:<path>:<actions>"
      size_t first = scope.find(':'), last = scope.rfind(':');
      if (first == std::string::npos || first == last) continue;
      repos.push_back(absl::StrCat(host.name, "/", scope.substr(first + 1, last - first - 1)));
      push = push || absl::StrContains(scope.substr(last + 1), "push");
    }
    absl::Status st =
        ResponseError(resp, repos.empty() ? absl::StrJoin(scopes, " ") : absl::StrJoin(repos, ", "),
                      push, host.name);
    return Annotate(st, absl::StrCat("token request to ", realm.endpoint.authority));
  }
  json doc = json::parse(resp.body, nullptr, /*allow_exceptions=*/false);
  std::string token;
  if (doc.is_object()) {
    token = doc.value("token", "");
    if (token.empty()) token = doc.value("access_token", "");
  }
  if (token.empty()) {
    return absl::UnauthenticatedError(
        absl::StrCat("token server ", realm.endpoint.authority, " returned no token"));
  }
  int64_t expires_in = 60;
  if (doc.contains("expires_in") && doc["expires_in"].is_number_integer()) {
    expires_in = std::max<int64_t>(doc["expires_in"].get<int64_t>(), 60);
  }
  std::lock_guard lock(mu_);
  // Renew a little early so a request does not race the expiry.
  tokens_[absl::StrCat(host.name, " ", absl::StrJoin(scopes, " "))] =
      Token{token, Clock::now() + std::chrono::seconds(expires_in) - std::chrono::seconds(5)};
  return token;
}

absl::Status Client::Authorize(const Context& ctx, const Host& host,
                               const std::vector<std::string>& scopes,
                               const Response& challenge_response, bool* changed) {
  *changed = false;
  std::vector<Challenge> challenges;
  for (const auto& value : challenge_response.HeaderValues("WWW-Authenticate")) {
    auto parsed = ParseWwwAuthenticate(value);
    challenges.insert(challenges.end(), parsed.begin(), parsed.end());
  }
  for (const auto& ch : challenges) {
    if (ch.scheme == "bearer") {
      KILN_RETURN_IF_ERROR(FetchToken(ctx, host, ch.params, scopes).status());
      *changed = true;
      return absl::OkStatus();
    }
  }
  for (const auto& ch : challenges) {
    if (ch.scheme == "basic") {
      KILN_ASSIGN_OR_RETURN(Credentials creds, CredentialsFor(host.name));
      if (creds.username.empty()) return absl::OkStatus();  // nothing to offer
      std::string header = absl::StrCat(
          "Basic ", absl::Base64Escape(absl::StrCat(creds.username, ":", creds.secret)));
      std::lock_guard lock(mu_);
      *changed = basic_[host.name] != header;
      basic_[host.name] = header;
      return absl::OkStatus();
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Response> Client::Send(const Context& ctx, Host& host,
                                      const std::vector<std::string>& scopes, Url url,
                                      const Request& request, bool idempotent,
                                      const http::SinkFactory& sink,
                                      const std::function<void(Request&)>& prepare) {
  auto log = Logger("registry");
  int attempt = 1;
  int redirects = 0;
  bool authorized = false;
  // Only successful responses reach the caller's sink; errors are buffered for their message.
  http::SinkFactory factory;
  if (sink) {
    factory = [&sink](const Response& head) -> absl::StatusOr<http::BodySink> {
      if (head.status < 200 || head.status >= 300) return http::BodySink();
      return sink(head);
    };
  }
  // Set when TLS failed and plain HTTP is being tried instead; if that fails too (a TLS-only
  // server answers 400), the TLS error is the one to report.
  std::optional<absl::Status> tls_failure;
  auto tls_failed_too = [&](std::string_view http_outcome) {
    host.endpoint.https = true;
    {
      std::lock_guard lock(mu_);
      plain_http_.erase(host.name);
    }
    return absl::UnavailableError(absl::StrCat(tls_failure->message(), " (plain HTTP to ",
                                               host.name, " failed too: ", AV(http_outcome), ")"));
  };
  for (;;) {
    KILN_RETURN_IF_ERROR(ctx.Check("registry request"));
    Request req = request;
    if (prepare) prepare(req);
    const bool same_host = url.endpoint.authority == host.endpoint.authority;
    if (same_host) url.endpoint.https = host.endpoint.https;
    if (same_host && !scopes.empty()) {
      if (std::string auth = AuthHeader(host.name, scopes); !auth.empty()) {
        req.headers.emplace_back("Authorization", std::move(auth));
      }
    }
    http::FailureKind kind = http::FailureKind::kNone;
    auto resp = http::RoundTrip(ctx, url.endpoint, req, transport_, factory, &kind);
    if (!resp.ok()) {
      using http::FailureKind;
      if (kind == FailureKind::kTls && same_host && host.fallback_http && url.endpoint.https) {
        log->debug("{}: {}; falling back to plain HTTP", host.name, SV(resp.status().message()));
        tls_failure = resp.status();
        host.endpoint.https = false;
        std::lock_guard lock(mu_);
        plain_http_[host.name] = true;
        continue;
      }
      if (tls_failure) return tls_failed_too(SV(resp.status().message()));
      bool retryable = kind == FailureKind::kConnect || (kind == FailureKind::kIo && idempotent);
      if (!retryable || attempt >= options_.retry.max_attempts) {
        if (attempt > 1) {
          return Annotate(resp.status(), absl::StrCat("after ", attempt, " attempts"));
        }
        return resp.status();
      }
      log->debug("{} {}{}: {}; retrying", req.method, host.name, req.target,
                 SV(resp.status().message()));
      KILN_RETURN_IF_ERROR(Sleep(ctx, Backoff(attempt++)));
      continue;
    }
    if (tls_failure && resp->status == 400) return tls_failed_too(ErrorDetail(*resp));
    tls_failure.reset();
    if (resp->status == 401 && same_host && !scopes.empty() && !authorized) {
      authorized = true;
      bool changed = false;
      KILN_RETURN_IF_ERROR(Authorize(ctx, host, scopes, *resp, &changed));
      if (changed) continue;
      return resp;
    }
    if (IsRedirect(resp->status) && (req.method == "GET" || req.method == "HEAD") &&
        redirects < kMaxRedirects) {
      ++redirects;
      KILN_ASSIGN_OR_RETURN(url, http::ResolveLocation(url, resp->Header("Location")));
      continue;
    }
    if ((resp->status >= 500 || resp->status == 429) && idempotent &&
        attempt < options_.retry.max_attempts) {
      std::chrono::milliseconds wait = Backoff(attempt);
      int64_t seconds = 0;
      if (absl::SimpleAtoi(AV(resp->Header("Retry-After")), &seconds) && seconds >= 0) {
        wait = std::min<std::chrono::milliseconds>(std::chrono::seconds(seconds),
                                                   options_.retry.max_backoff);
      }
      log->debug("{} {}{}: HTTP {}; retrying in {} ms", req.method, host.name, req.target,
                 resp->status, wait.count());
      ++attempt;
      KILN_RETURN_IF_ERROR(Sleep(ctx, wait));
      continue;
    }
    return resp;
  }
}

absl::StatusOr<Client::Manifest> Client::GetManifest(const Context& ctx, Host& host,
                                                     const Reference& ref,
                                                     const std::string& locator,
                                                     const std::string& expected_digest) {
  Request req{.method = "GET",
              .target = absl::StrCat("/v2/", ref.path, "/manifests/", locator),
              .headers = {{"Accept", ManifestAccept()}}};
  std::string subject =
      absl::StrCat(ref.Name(), locator.find(':') == std::string::npos ? ":" : "@", locator);
  KILN_ASSIGN_OR_RETURN(Response resp,
                        Send(ctx, host, {RepositoryScope(ref.path, false)},
                             Url{host.endpoint, req.target}, req, /*idempotent=*/true));
  if (resp.status != 200) return ResponseError(resp, subject, false, host.name);
  Manifest m;
  m.digest = Sha256Digest(resp.body);
  if (!expected_digest.empty() && m.digest != expected_digest) {
    return absl::FailedPreconditionError(absl::StrCat("manifest ", subject, " from registry ",
                                                      host.name, " does not match its digest: got ",
                                                      m.digest));
  }
  m.media_type = MediaTypeOnly(resp.Header("Content-Type"));
  m.bytes = std::move(resp.body);
  return m;
}

absl::StatusOr<ResolveResult> Client::ResolveFrom(const Context& ctx, Host& host,
                                                  const Reference& ref, const Platform& platform) {
  KILN_ASSIGN_OR_RETURN(Manifest top, GetManifest(ctx, host, ref, ref.Locator(), ref.digest));
  auto parsed = ParseManifest(top.bytes, top.media_type);
  if (!parsed.ok()) return Annotate(parsed.status(), ref.String());
  ResolveResult result;
  result.ref = ref;
  result.registry_host = host.name;
  result.root = Descriptor{.media_type = parsed->media_type,
                           .digest = top.digest,
                           .size = static_cast<int64_t>(top.bytes.size())};
  if (!parsed->IsIndex()) {
    result.manifest = result.root;
    result.manifest_bytes = std::move(top.bytes);
    return result;
  }
  auto chosen = SelectPlatform(parsed->manifests, platform);
  if (!chosen.ok()) return Annotate(chosen.status(), ref.String());
  const Descriptor& desc = parsed->manifests[*chosen];
  KILN_ASSIGN_OR_RETURN(Manifest m, GetManifest(ctx, host, ref, desc.digest, desc.digest));
  if (static_cast<int64_t>(m.bytes.size()) != desc.size) {
    return absl::FailedPreconditionError(absl::StrCat("manifest ", desc.digest, " of ",
                                                      ref.String(), " is ", m.bytes.size(),
                                                      " bytes, the index says ", desc.size));
  }
  result.manifest = desc;
  if (result.manifest.media_type.empty()) result.manifest.media_type = m.media_type;
  result.manifest_bytes = std::move(m.bytes);
  result.index_bytes = std::move(top.bytes);
  return result;
}

absl::StatusOr<ResolveResult> Client::Resolve(const Context& ctx, const Reference& ref,
                                              const std::optional<Platform>& platform) {
  Platform want = platform ? *platform : llb::HostPlatform();
  absl::Status last;
  for (Host& host : PullHosts(ref.domain)) {
    auto result = ResolveFrom(ctx, host, ref, want);
    if (result.ok() || !host.mirror) return result;
    KILN_RETURN_IF_ERROR(ctx.Check("resolve"));
    Logger("registry")
        ->debug("mirror {} failed for {}: {}", host.name, ref.String(),
                SV(result.status().message()));
  }
  return absl::InternalError("no registry host to try");  // unreachable: the origin is last
}

absl::StatusOr<std::string> Client::FetchManifest(const Context& ctx, const Reference& repo,
                                                  const Descriptor& desc) {
  if (!IsSha256Digest(desc.digest)) {
    return absl::InvalidArgumentError(absl::StrCat("invalid digest \"", desc.digest, "\""));
  }
  for (Host& host : PullHosts(repo.domain)) {
    auto m = GetManifest(ctx, host, repo, desc.digest, desc.digest);
    if (m.ok() && static_cast<int64_t>(m->bytes.size()) != desc.size) {
      m = absl::FailedPreconditionError(absl::StrCat("manifest ", desc.digest, " of ", repo.Name(),
                                                     " is ", m->bytes.size(), " bytes, expected ",
                                                     desc.size));
    }
    if (m.ok()) return std::move(m->bytes);
    if (!host.mirror) return m.status();
    KILN_RETURN_IF_ERROR(ctx.Check("fetch manifest"));
  }
  return absl::InternalError("no registry host to try");
}

absl::Status Client::FetchBlobFrom(const Context& ctx, Host& host, const Reference& repo,
                                   const Descriptor& desc, content::Writer& writer) {
  Request req{.method = "GET", .target = BlobsPath(repo, desc.digest)};
  int64_t requested_from = 0;
  auto prepare = [&](Request& r) {
    requested_from = writer.offset();
    if (requested_from > 0) {
      r.headers.emplace_back("Range", absl::StrCat("bytes=", requested_from, "-"));
    }
  };
  auto sink = [&](const Response& head) -> absl::StatusOr<http::BodySink> {
    if (head.status == 206) {
      std::string range = head.Header("Content-Range");  // "bytes 100-199/200"
      int64_t start = -1;
      if (absl::StartsWith(range, "bytes ")) {
        std::string_view s = std::string_view(range).substr(6);
        (void)absl::SimpleAtoi(AV(s.substr(0, s.find('-'))), &start);
      }
      if (start != requested_from) {
        KILN_RETURN_IF_ERROR(writer.Truncate());
        return absl::UnavailableError(absl::StrCat("registry ", host.name, " answered range ",
                                                   requested_from, "- with \"", range, "\""));
      }
    } else if (writer.offset() > 0) {
      KILN_RETURN_IF_ERROR(writer.Truncate());  // the whole blob again: start over
    }
    return http::BodySink([&writer](std::string_view chunk) { return writer.Write(chunk); });
  };
  KILN_ASSIGN_OR_RETURN(
      Response resp, Send(ctx, host, {RepositoryScope(repo.path, false)},
                          Url{host.endpoint, req.target}, req, /*idempotent=*/true, sink, prepare));
  if (resp.status == 416) {  // our partial data is no prefix of theirs
    KILN_RETURN_IF_ERROR(writer.Truncate());
    return absl::UnavailableError(
        absl::StrCat("registry ", host.name, " refused to resume blob ", desc.digest));
  }
  if (resp.status != 200 && resp.status != 206) {
    return ResponseError(resp, absl::StrCat(repo.Name(), "@", desc.digest), false, host.name);
  }
  if (desc.size >= 0 && writer.offset() != desc.size) {
    return absl::UnavailableError(absl::StrCat("blob ", desc.digest, " from registry ", host.name,
                                               " ended after ", writer.offset(), " of ", desc.size,
                                               " bytes"));
  }
  return absl::OkStatus();
}

absl::Status Client::FetchBlob(const Context& ctx, const Reference& repo, const Descriptor& desc,
                               content::Store& store) {
  if (!IsSha256Digest(desc.digest)) {
    return absl::InvalidArgumentError(absl::StrCat("invalid digest \"", desc.digest, "\""));
  }
  if (store.Has(desc.digest)) return absl::OkStatus();
  auto opened = store.OpenWriter(ctx, absl::StrCat("fetch-", desc.digest), desc.digest, desc.size);
  if (absl::IsAlreadyExists(opened.status())) return absl::OkStatus();
  KILN_RETURN_IF_ERROR(opened.status());
  std::unique_ptr<content::Writer> writer = std::move(*opened);
  absl::Status last;
  for (Host& host : PullHosts(repo.domain)) {
    // A transfer broken off mid-body resumes from where it stopped, a few times.
    for (int pass = 0; pass < options_.retry.max_attempts; ++pass) {
      if (desc.size > 0 && writer->offset() == desc.size) break;  // all there already
      last = FetchBlobFrom(ctx, host, repo, desc, *writer);
      if (last.ok() || !absl::IsUnavailable(last)) break;
      KILN_RETURN_IF_ERROR(ctx.Check("fetch blob"));
    }
    if (last.ok() || (desc.size > 0 && writer->offset() == desc.size)) {
      absl::Status st = writer->Commit();
      if (!st.ok()) {
        return Annotate(
            st, absl::StrCat("blob ", repo.Name(), "@", desc.digest, " from registry ", host.name));
      }
      return absl::OkStatus();
    }
    KILN_RETURN_IF_ERROR(ctx.Check("fetch blob"));
    if (!host.mirror) break;
    Logger("registry")
        ->debug("mirror {} failed for {}@{}: {}", host.name, repo.Name(), desc.digest,
                SV(last.message()));
  }
  // A cancelled pull keeps its partial data for the next attempt; a failed one leaves nothing.
  if (!ctx.Check("fetch blob").ok()) return last;
  writer->Abort();
  if (absl::StrContains(last.message(), desc.digest)) return last;
  return Annotate(last, absl::StrCat("blob ", repo.Name(), "@", desc.digest));
}

absl::Status Client::Upload(const Context& ctx, Host& host, const Reference& repo,
                            const std::vector<std::string>& scopes, Url location,
                            const Descriptor& desc, content::Store& store) {
  const std::string subject = absl::StrCat(repo.Name(), "@", desc.digest);
  auto next_location = [&](const Response& resp) -> absl::Status {
    std::string loc = resp.Header("Location");
    if (loc.empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat("registry ", host.name, " sent no upload Location for ", subject));
    }
    KILN_ASSIGN_OR_RETURN(location, http::ResolveLocation(location, loc));
    return absl::OkStatus();
  };
  KILN_ASSIGN_OR_RETURN(std::filesystem::path path, store.BlobPath(desc.digest));
  if (desc.size <= options_.monolithic_upload_limit) {
    KILN_ASSIGN_OR_RETURN(std::string data, store.Read(desc.digest, desc.size));
    Request put{.method = "PUT",
                .target = http::AppendQuery(location.target, "digest", desc.digest),
                .headers = {{"Content-Type", "application/octet-stream"}},
                .body = std::move(data)};
    KILN_ASSIGN_OR_RETURN(Response resp, Send(ctx, host, scopes, Url{location.endpoint, put.target},
                                              put, /*idempotent=*/false));
    if (resp.status != 201) return ResponseError(resp, subject, true, host.name);
    return absl::OkStatus();
  }
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoToStatus(errno, absl::StrCat("open blob ", desc.digest));
  struct CloseFd {
    int fd;
    ~CloseFd() { ::close(fd); }
  } closer{fd};
  int64_t offset = 0;
  while (offset < desc.size) {
    int64_t n = std::min<int64_t>(options_.upload_chunk_size, desc.size - offset);
    Request patch{.method = "PATCH",
                  .target = location.target,
                  .headers = {{"Content-Type", "application/octet-stream"},
                              {"Content-Range", absl::StrCat(offset, "-", offset + n - 1)}}};
    patch.body.resize(static_cast<size_t>(n));
    size_t got = 0;
    while (got < patch.body.size()) {
      ssize_t r = ::pread(fd, patch.body.data() + got, patch.body.size() - got,
                          static_cast<off_t>(offset + static_cast<int64_t>(got)));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0)
        return ErrnoToStatus(r < 0 ? errno : EIO, absl::StrCat("read blob ", desc.digest));
      got += static_cast<size_t>(r);
    }
    KILN_ASSIGN_OR_RETURN(Response resp, Send(ctx, host, scopes, location, patch,
                                              /*idempotent=*/false));
    if (resp.status != 202) return ResponseError(resp, subject, true, host.name);
    KILN_RETURN_IF_ERROR(next_location(resp));
    offset += n;
  }
  Request put{.method = "PUT", .target = http::AppendQuery(location.target, "digest", desc.digest)};
  KILN_ASSIGN_OR_RETURN(Response resp, Send(ctx, host, scopes, Url{location.endpoint, put.target},
                                            put, /*idempotent=*/false));
  if (resp.status != 201) return ResponseError(resp, subject, true, host.name);
  return absl::OkStatus();
}

absl::Status Client::PushBlob(const Context& ctx, const Reference& repo, const Descriptor& desc,
                              content::Store& store, std::optional<std::string> mount_from_repo) {
  if (!IsSha256Digest(desc.digest)) {
    return absl::InvalidArgumentError(absl::StrCat("invalid digest \"", desc.digest, "\""));
  }
  KILN_ASSIGN_OR_RETURN(int64_t stored_size, store.Size(desc.digest));
  if (stored_size != desc.size) {
    return absl::FailedPreconditionError(absl::StrCat("blob ", desc.digest, " is ", stored_size,
                                                      " bytes in the content store, the "
                                                      "descriptor says ",
                                                      desc.size));
  }
  Host host = OriginHost(repo.domain);
  const std::string subject = absl::StrCat(repo.Name(), "@", desc.digest);
  std::vector<std::string> scopes = {RepositoryScope(repo.path, true)};

  Request head{.method = "HEAD", .target = BlobsPath(repo, desc.digest)};
  KILN_ASSIGN_OR_RETURN(Response exists, Send(ctx, host, scopes, Url{host.endpoint, head.target},
                                              head, /*idempotent=*/true));
  if (exists.status == 200) return absl::OkStatus();
  if (exists.status != 404) return ResponseError(exists, subject, true, host.name);

  Request start{.method = "POST", .target = absl::StrCat("/v2/", repo.path, "/blobs/uploads/")};
  if (mount_from_repo) {
    std::string from = *mount_from_repo;
    if (absl::StartsWith(from, repo.domain + "/")) from = from.substr(repo.domain.size() + 1);
    if (from != repo.path) {
      start.target = http::AppendQuery(start.target, "mount", desc.digest);
      start.target = http::AppendQuery(start.target, "from", from);
      scopes.push_back(RepositoryScope(from, false));
    }
  }
  KILN_ASSIGN_OR_RETURN(Response started, Send(ctx, host, scopes, Url{host.endpoint, start.target},
                                               start, /*idempotent=*/true));
  if (started.status == 201) return absl::OkStatus();  // mounted
  if (started.status != 202) return ResponseError(started, subject, true, host.name);
  std::string loc = started.Header("Location");
  if (loc.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("registry ", host.name, " sent no upload Location for ", subject));
  }
  KILN_ASSIGN_OR_RETURN(Url location, http::ResolveLocation(Url{host.endpoint, start.target}, loc));
  return Upload(ctx, host, repo, scopes, std::move(location), desc, store);
}

absl::StatusOr<std::string> Client::PushManifest(const Context& ctx, const Reference& ref,
                                                 std::string_view media_type,
                                                 std::string_view bytes) {
  std::string digest = Sha256Digest(bytes);
  if (!ref.digest.empty() && ref.digest != digest) {
    return absl::InvalidArgumentError(
        absl::StrCat("manifest for ", ref.String(), " has digest ", digest));
  }
  Host host = OriginHost(ref.domain);
  const std::string& locator = ref.tag.empty() ? digest : ref.tag;
  Request put{.method = "PUT",
              .target = absl::StrCat("/v2/", ref.path, "/manifests/", locator),
              .headers = {{"Content-Type", std::string(media_type)}},
              .body = std::string(bytes)};
  KILN_ASSIGN_OR_RETURN(Response resp,
                        Send(ctx, host, {RepositoryScope(ref.path, true)},
                             Url{host.endpoint, put.target}, put, /*idempotent=*/true));
  if (resp.status != 201 && resp.status != 200) {
    return ResponseError(resp, ref.String(), true, host.name);
  }
  return digest;
}

}  // namespace kiln::registry
