#include "llb/git_url.h"

#include <cctype>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/gopath.h"
#include "base/status.h"

namespace kiln::llb {
namespace {

// Percent-decoding as Go's url.QueryUnescape ('+' is a space).
absl::StatusOr<std::string> QueryUnescape(absl::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out.push_back(' ');
    } else if (s[i] == '%') {
      if (i + 2 >= s.size() || !std::isxdigit(static_cast<unsigned char>(s[i + 1])) ||
          !std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
        return absl::InvalidArgumentError(absl::StrCat("invalid URL escape in \"", s, "\""));
      }
      out.push_back(static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16)));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

absl::Status ParseQuery(absl::string_view raw, GitUrl& out) {
  if (raw.empty()) return absl::OkStatus();
  for (absl::string_view part : absl::StrSplit(raw, '&')) {
    if (part.empty()) continue;
    std::pair<absl::string_view, absl::string_view> kv =
        absl::StrSplit(part, absl::MaxSplits('=', 1));
    KILN_ASSIGN_OR_RETURN(std::string k, QueryUnescape(kv.first));
    KILN_ASSIGN_OR_RETURN(std::string v, QueryUnescape(kv.second));
    out.query.emplace_back(std::move(k), std::move(v));
  }
  return absl::OkStatus();
}

void ParseFragment(absl::string_view fragment, GitUrl& out) {
  if (fragment.empty()) return;
  const size_t colon = fragment.find(':');
  out.ref = std::string(fragment.substr(0, colon));
  if (colon != absl::string_view::npos) {
    std::string subdir = GoCleanPath(absl::StrCat("/", fragment.substr(colon + 1)));
    out.subdir = subdir.substr(1);
  }
}

bool IsSchemeChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }

// The scheme of "scheme://...", as BuildKit's `^[a-zA-Z0-9]+://`; empty when there is none.
absl::string_view SchemeOf(absl::string_view url) {
  size_t i = 0;
  while (i < url.size() && IsSchemeChar(url[i])) ++i;
  if (i == 0 || url.substr(i, 3) != "://") return {};
  return url.substr(0, i);
}

// BuildKit's scp-style pattern `^([a-zA-Z0-9-_]+)@([a-zA-Z0-9-.]+):(.*?)(?:\?(.*?))?(?:#(.*))?$`.
bool SplitScp(absl::string_view url, absl::string_view& user, absl::string_view& host,
              absl::string_view& rest) {
  const size_t at = url.find('@');
  if (at == absl::string_view::npos || at == 0) return false;
  user = url.substr(0, at);
  for (char c : user) {
    if (!IsSchemeChar(c) && c != '-' && c != '_') return false;
  }
  const size_t colon = url.find(':', at + 1);
  if (colon == absl::string_view::npos || colon == at + 1) return false;
  host = url.substr(at + 1, colon - at - 1);
  for (char c : host) {
    if (!IsSchemeChar(c) && c != '-' && c != '.') return false;
  }
  rest = url.substr(colon + 1);
  return true;
}

}  // namespace

bool IsCommitSha(std::string_view s) {
  if (s.size() != 40 && s.size() != 64) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

bool IsGitTransport(std::string_view url_in) {
  const absl::string_view url = AV(url_in);
  const std::string scheme = absl::AsciiStrToLower(SchemeOf(url));
  if (!scheme.empty()) {
    return scheme == "http" || scheme == "https" || scheme == "ssh" || scheme == "git";
  }
  absl::string_view user, host, rest;
  return SplitScp(url, user, host, rest);
}

absl::StatusOr<GitUrl> ParseGitUrl(std::string_view url_in) {
  const absl::string_view url = AV(url_in);
  GitUrl out;
  const std::string scheme = absl::AsciiStrToLower(SchemeOf(url));
  absl::string_view rest;
  if (!scheme.empty()) {
    if (scheme != "http" && scheme != "https" && scheme != "ssh" && scheme != "git") {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid protocol ", scheme, " in git URL \"", url, "\""));
    }
    out.scheme = scheme;
    rest = url.substr(scheme.size() + 3);
  } else {
    absl::string_view user, host;
    if (!SplitScp(url, user, host, rest)) {
      return absl::NotFoundError(absl::StrCat("unknown protocol in git URL \"", url, "\""));
    }
    out.scheme = "ssh";
    out.user = std::string(user);
    out.host = std::string(host);
  }
  // Fragment, then query (a '?' inside the fragment belongs to it).
  absl::string_view fragment;
  if (size_t hash = rest.find('#'); hash != absl::string_view::npos) {
    fragment = rest.substr(hash + 1);
    rest = rest.substr(0, hash);
  }
  absl::string_view query;
  if (size_t q = rest.find('?'); q != absl::string_view::npos) {
    query = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }
  if (!scheme.empty()) {
    const size_t slash = rest.find('/');
    absl::string_view authority = rest.substr(0, slash);
    out.path = slash == absl::string_view::npos ? "" : std::string(rest.substr(slash));
    if (size_t at = authority.rfind('@'); at != absl::string_view::npos) {
      out.user = std::string(authority.substr(0, at));
      authority = authority.substr(at + 1);
    }
    if (authority.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("git URL \"", url, "\" has no host"));
    }
    for (char c : authority) {
      if (std::isspace(static_cast<unsigned char>(c)) || c == '\\') {
        return absl::InvalidArgumentError(absl::StrCat("invalid host in git URL \"", url, "\""));
      }
    }
    out.host = std::string(authority);
    out.remote =
        absl::StrCat(scheme, "://", out.user.empty() ? "" : out.user + "@", out.host, out.path);
  } else {
    out.path = std::string(rest);
    out.remote = absl::StrCat(out.user, "@", out.host, ":", out.path);
  }
  for (char c : out.remote) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      return absl::InvalidArgumentError(
          absl::StrCat("git URL \"", absl::CHexEscape(url), "\" contains control characters"));
    }
  }
  KILN_RETURN_IF_ERROR(ParseQuery(query, out));
  ParseFragment(fragment, out);
  return out;
}

}  // namespace kiln::llb
