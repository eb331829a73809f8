#include "daemon/registry/reference.h"

#include <cctype>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/digest.h"
#include "base/status.h"

namespace kiln::registry {
namespace {

constexpr char kDefaultDomain[] = "docker.io";
constexpr char kOfficialPrefix[] = "library/";
constexpr size_t kMaxNameLength = 255;

bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// One path component: [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*
bool ValidComponent(std::string_view c) {
  if (c.empty() || !IsLowerAlnum(c.front()) || !IsLowerAlnum(c.back())) return false;
  size_t i = 0;
  while (i < c.size()) {
    if (IsLowerAlnum(c[i])) {
      ++i;
      continue;
    }
    size_t start = i;
    while (i < c.size() && !IsLowerAlnum(c[i])) ++i;
    std::string_view sep = c.substr(start, i - start);
    bool dashes = sep.find_first_not_of('-') == std::string_view::npos;
    if (!(sep == "." || sep == "_" || sep == "__" || dashes)) return false;
  }
  return true;
}

// host[:port] where host is DNS-ish labels or a bracketed IPv6 address.
bool ValidDomain(std::string_view d) {
  if (d.empty()) return false;
  std::string_view host = d;
  std::string_view port;
  if (d.front() == '[') {
    size_t close = d.find(']');
    if (close == std::string_view::npos) return false;
    host = d.substr(1, close - 1);
    std::string_view rest = d.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return false;
      port = rest.substr(1);
      if (port.empty()) return false;
    }
    if (host.empty()) return false;
    for (char c : host) {
      if (!std::isxdigit(static_cast<unsigned char>(c)) && c != ':' && c != '.') return false;
    }
  } else {
    size_t colon = d.rfind(':');
    if (colon != std::string_view::npos) {
      host = d.substr(0, colon);
      port = d.substr(colon + 1);
      if (port.empty()) return false;
    }
    for (absl::string_view label : absl::StrSplit(AV(host), '.')) {
      if (label.empty() || label.front() == '-' || label.back() == '-') return false;
      for (char c : label) {
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-') return false;
      }
    }
  }
  for (char c : port) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

// [\w][\w.-]{0,127}
bool ValidTag(std::string_view t) {
  if (t.empty() || t.size() > 128) return false;
  auto word = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; };
  if (!word(t.front())) return false;
  for (char c : t) {
    if (!word(c) && c != '.' && c != '-') return false;
  }
  return true;
}

absl::Status Invalid(std::string_view text, std::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("invalid image reference \"", AV(text), "\": ", AV(why)));
}

}  // namespace

std::string Reference::Name() const { return absl::StrCat(domain, "/", path); }

std::string Reference::String() const {
  std::string out = Name();
  if (!tag.empty()) absl::StrAppend(&out, ":", tag);
  if (!digest.empty()) absl::StrAppend(&out, "@", digest);
  return out;
}

std::string Reference::FamiliarString() const {
  std::string out;
  if (domain == kDefaultDomain) {
    std::string_view p = path;
    if (p.substr(0, sizeof(kOfficialPrefix) - 1) == kOfficialPrefix &&
        p.find('/', sizeof(kOfficialPrefix) - 1) == std::string_view::npos) {
      p.remove_prefix(sizeof(kOfficialPrefix) - 1);
    }
    out = std::string(p);
  } else {
    out = Name();
  }
  if (!tag.empty()) absl::StrAppend(&out, ":", tag);
  if (!digest.empty()) absl::StrAppend(&out, "@", digest);
  return out;
}

absl::StatusOr<Reference> ParseReference(std::string_view text) {
  if (text.empty()) return Invalid(text, "empty reference");
  Reference ref;
  std::string_view rest = text;
  if (size_t at = rest.find('@'); at != std::string_view::npos) {
    std::string_view digest = rest.substr(at + 1);
    rest = rest.substr(0, at);
    if (digest.substr(0, 7) != "sha256:") {
      return Invalid(
          text, absl::StrCat("unsupported digest \"", AV(digest), "\" (only sha256 is supported)"));
    }
    if (!IsSha256Digest(digest)) {
      return Invalid(text, absl::StrCat("malformed digest \"", AV(digest), "\""));
    }
    ref.digest = std::string(digest);
  }
  size_t last_slash = rest.rfind('/');
  size_t colon = rest.rfind(':');
  if (colon != std::string_view::npos &&
      (last_slash == std::string_view::npos || colon > last_slash)) {
    std::string_view tag = rest.substr(colon + 1);
    if (!ValidTag(tag)) return Invalid(text, absl::StrCat("invalid tag \"", AV(tag), "\""));
    ref.tag = std::string(tag);
    rest = rest.substr(0, colon);
  }
  if (rest.empty()) return Invalid(text, "missing repository name");

  std::string_view remainder = rest;
  size_t slash = rest.find('/');
  std::string_view first = rest.substr(0, slash);
  if (slash != std::string_view::npos &&
      (first.find_first_of(".:") != std::string_view::npos || first == "localhost" ||
       first.find_first_of("ABCDEFGHIJKLMNOPQRSTUVWXYZ") != std::string_view::npos)) {
    if (!ValidDomain(first)) {
      return Invalid(text, absl::StrCat("invalid registry host \"", AV(first), "\""));
    }
    ref.domain = std::string(first);
    remainder = rest.substr(slash + 1);
  } else {
    ref.domain = kDefaultDomain;
  }
  if (ref.domain == "index.docker.io") ref.domain = kDefaultDomain;
  if (ref.domain == kDefaultDomain && remainder.find('/') == std::string_view::npos) {
    ref.path = absl::StrCat(kOfficialPrefix, AV(remainder));
  } else {
    ref.path = std::string(remainder);
  }
  if (remainder.find_first_of("ABCDEFGHIJKLMNOPQRSTUVWXYZ") != std::string_view::npos) {
    return Invalid(text, "repository name must be lowercase");
  }
  for (absl::string_view component : absl::StrSplit(AV(remainder), '/')) {
    if (!ValidComponent(SV(component))) {
      return Invalid(text, absl::StrCat("invalid repository path component \"", component, "\""));
    }
  }
  if (ref.Name().size() > kMaxNameLength) {
    return Invalid(text,
                   absl::StrCat("repository name longer than ", kMaxNameLength, " characters"));
  }
  if (ref.domain == kDefaultDomain && ref.path.size() == 8 + 64 &&
      IsSha256Digest(absl::StrCat("sha256:", ref.path.substr(8)))) {
    return Invalid(text, "a 64-character hexadecimal string is not a repository name");
  }
  if (ref.tag.empty() && ref.digest.empty()) ref.tag = "latest";
  return ref;
}

Reference WithDigest(const Reference& ref, std::string digest) {
  Reference out = ref;
  out.tag.clear();
  out.digest = std::move(digest);
  return out;
}

}  // namespace kiln::registry
