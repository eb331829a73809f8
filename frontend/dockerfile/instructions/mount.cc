// RUN --mount parsing (BuildKit's instructions/commands_runmount.go), plus the per-type
// defaults BuildKit applies when converting to LLB (dockerfile2llb's convert_runmount.go,
// convert_secrets.go, convert_ssh.go).

#include <charconv>
#include <cmath>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "base/go_text.h"
#include "base/status.h"
#include "frontend/dockerfile/instructions/instructions.h"
#include "frontend/dockerfile/instructions/internal/mount_csv.h"
#include "frontend/dockerfile/parser/internal/parse.h"
#include "frontend/dockerfile/parser/internal/text.h"

namespace kiln::dockerfile::instructions {
namespace internal {

absl::StatusOr<std::vector<std::string>> CsvFields(std::string_view line) {
  // go-csvvalue's Fields with the default parser (',' separator, strict quotes).
  if (!line.empty() && line.back() == '\n') {
    line.remove_suffix(1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  }
  if (line.empty()) return absl::InvalidArgumentError("EOF");
  auto parse_err = [](size_t pos, std::string_view what) {
    return absl::InvalidArgumentError(
        absl::StrCat("parse error on line 1, column ", pos + 1, ": ", kiln::AV(what)));
  };
  constexpr std::string_view kBareQuote = "bare \" in non-quoted-field";
  constexpr std::string_view kQuote = "extraneous or missing \" in quoted-field";
  std::vector<std::string> out;
  size_t pos = 0;
  for (;;) {
    if (line.empty() || line[0] != '"') {
      size_t i = line.find(',');
      std::string_view field = i == std::string_view::npos ? line : line.substr(0, i);
      if (size_t j = field.find('"'); j != std::string_view::npos) {
        return parse_err(pos + j, kBareQuote);
      }
      out.emplace_back(field);
      if (i == std::string_view::npos) break;
      line.remove_prefix(i + 1);
      pos += i + 1;
      continue;
    }
    // Quoted field.
    line.remove_prefix(1);
    pos += 1;
    bool half_open = false;
    for (;;) {
      size_t i = line.find('"');
      if (i == std::string_view::npos) return parse_err(pos, kQuote);
      if (!half_open) {
        out.emplace_back(line.substr(0, i));
      } else {
        out.back().append(line.substr(0, i));
      }
      half_open = false;
      line.remove_prefix(i + 1);
      pos += i + 1;
      if (!line.empty() && line[0] == '"') {
        out.back().push_back('"');
        line.remove_prefix(1);
        pos += 1;
        half_open = true;
        continue;
      }
      if (!line.empty() && line[0] == ',') {
        line.remove_prefix(1);
        pos += 1;
        break;  // next field
      }
      if (line.empty()) return out;
      return parse_err(pos - 1, kQuote);
    }
  }
  return out;
}

}  // namespace internal

namespace {

using ::kiln::AV;
using parser::internal::PathBase;
using parser::internal::PathClean;
using parser::internal::SuggestOption;
using parser::internal::ToLower;

absl::Status WithSuggestion(std::string message, std::string_view value,
                            const std::vector<std::string>& options) {
  std::string match = SuggestOption(value, options, true);
  if (!match.empty()) absl::StrAppend(&message, " (did you mean ", match, "?)");
  return absl::InvalidArgumentError(message);
}

// strconv.ParseBool.
bool ParseGoBool(std::string_view s, bool* out) {
  if (s == "1" || s == "t" || s == "T" || s == "true" || s == "TRUE" || s == "True") {
    *out = true;
    return true;
  }
  if (s == "0" || s == "f" || s == "F" || s == "false" || s == "FALSE" || s == "False") {
    *out = false;
    return true;
  }
  return false;
}

// strconv.ParseUint(s, base, 32) for base 8 or 10.
bool ParseUint32(std::string_view s, int base, uint32_t* out) {
  if (s.empty()) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c >= '0' + base) return false;
    v = v * static_cast<uint64_t>(base) + static_cast<uint64_t>(c - '0');
    if (v > 0xFFFFFFFFu) return false;
  }
  *out = static_cast<uint32_t>(v);
  return true;
}

// go-units RAMInBytes: "64m", "1.5g", "100kb", "2GiB", "4096".
bool RamInBytes(std::string_view s, int64_t* out) {
  size_t sep = s.find_last_of("01234567890. ");
  if (sep == std::string_view::npos) return false;
  std::string_view num;
  std::string_view sfx;
  if (s[sep] != ' ') {
    num = s.substr(0, sep + 1);
    sfx = s.substr(sep + 1);
  } else {
    num = s.substr(0, sep);
    sfx = s.substr(sep + 1);
  }
  if (!num.empty() && num[0] == '+') num.remove_prefix(1);
  double size = 0;
  auto [ptr, ec] = std::from_chars(num.data(), num.data() + num.size(), size);
  if (ec != std::errc() || ptr != num.data() + num.size() || num.empty()) return false;
  if (std::isnan(size) || size < 0) return false;
  if (!sfx.empty()) {
    if (sfx.size() > 3) return false;
    std::string lower = ToLower(sfx);
    if (lower[0] == 'b') {
      if (lower.size() > 1) return false;
    } else {
      double mul;
      switch (lower[0]) {
        case 'k':
          mul = 1024.0;
          break;
        case 'm':
          mul = 1024.0 * 1024;
          break;
        case 'g':
          mul = 1024.0 * 1024 * 1024;
          break;
        case 't':
          mul = 1024.0 * 1024 * 1024 * 1024;
          break;
        case 'p':
          mul = 1024.0 * 1024 * 1024 * 1024 * 1024;
          break;
        default:
          return false;
      }
      size *= mul;
      if (lower.size() == 2 && lower[1] != 'b') return false;
      if (lower.size() == 3 && lower.substr(1) != "ib") return false;
    }
  }
  if (size >= 9.2233720368547758e18) return false;
  *out = static_cast<int64_t>(size);
  return true;
}

const char* TypeName(MountType t) {
  switch (t) {
    case MountType::kBind:
      return "bind";
    case MountType::kCache:
      return "cache";
    case MountType::kTmpfs:
      return "tmpfs";
    case MountType::kSecret:
      return "secret";
    case MountType::kSsh:
      return "ssh";
  }
  return "bind";
}

absl::Status UnexpectedKeyForType(std::string_view key, MountType t) {
  return absl::InvalidArgumentError(
      absl::StrCat("unexpected key '", AV(key), "' for mount type '", TypeName(t), "'"));
}

absl::Status InvalidValueFor(std::string_view key, std::string_view value) {
  return absl::InvalidArgumentError(absl::StrCat("invalid value for ", AV(key), ": ", AV(value)));
}

}  // namespace

absl::StatusOr<Mount> ParseMount(std::string_view value, const Expander& expand) {
  auto fields = internal::CsvFields(value);
  if (!fields.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("failed to parse csv mounts: ", fields.status().message()));
  }
  Mount m;
  bool ro_auto = true;
  bool sharing_set = false;
  bool env_set = false;
  for (const std::string& field : *fields) {
    const size_t eq = field.find('=');
    const std::string key = ToLower(std::string_view(field).substr(0, eq));
    if (eq == std::string::npos) {
      if (key == "readonly" || key == "ro") {
        m.read_only = true;
        ro_auto = false;
        continue;
      }
      if (key == "readwrite" || key == "rw") {
        m.read_only = false;
        ro_auto = false;
        continue;
      }
      if (key == "required") {
        if (m.type == MountType::kSecret || m.type == MountType::kSsh) {
          m.required = true;
          continue;
        }
        return UnexpectedKeyForType(key, m.type);
      }
      return absl::InvalidArgumentError(
          absl::StrCat("invalid field '", field, "' must be a key=value pair"));
    }
    std::string val = field.substr(eq + 1);
    if (expand) {
      KILN_ASSIGN_OR_RETURN(val, expand(val));
    }
    if (key == "type") {
      const std::string t = ToLower(val);
      if (t == "bind") {
        m.type = MountType::kBind;
      } else if (t == "cache") {
        m.type = MountType::kCache;
      } else if (t == "tmpfs") {
        m.type = MountType::kTmpfs;
      } else if (t == "secret") {
        m.type = MountType::kSecret;
      } else if (t == "ssh") {
        m.type = MountType::kSsh;
      } else {
        return WithSuggestion(absl::StrCat("unsupported mount type ", gotext::Quote(val)), val,
                              {"bind", "cache", "secret", "ssh", "tmpfs"});
      }
    } else if (key == "from") {
      m.from = val;
    } else if (key == "source" || key == "src") {
      m.source = val;
    } else if (key == "target" || key == "dst" || key == "destination") {
      m.target = val;
    } else if (key == "readonly" || key == "ro") {
      if (!ParseGoBool(val, &m.read_only)) return InvalidValueFor(key, val);
      ro_auto = false;
    } else if (key == "readwrite" || key == "rw") {
      bool rw;
      if (!ParseGoBool(val, &rw)) return InvalidValueFor(key, val);
      m.read_only = !rw;
      ro_auto = false;
    } else if (key == "required") {
      if (m.type != MountType::kSecret && m.type != MountType::kSsh) {
        return UnexpectedKeyForType(key, m.type);
      }
      if (!ParseGoBool(val, &m.required)) return InvalidValueFor(key, val);
    } else if (key == "size") {
      if (m.type != MountType::kTmpfs) return UnexpectedKeyForType(key, m.type);
      int64_t size;
      if (!RamInBytes(val, &size)) return InvalidValueFor(key, val);
      m.size_bytes = size;
    } else if (key == "id") {
      m.cache_id = val;
    } else if (key == "sharing") {
      const std::string s = ToLower(val);
      if (s == "shared") {
        m.sharing = CacheSharing::kShared;
      } else if (s == "private") {
        m.sharing = CacheSharing::kPrivate;
      } else if (s == "locked") {
        m.sharing = CacheSharing::kLocked;
      } else {
        return WithSuggestion(absl::StrCat("unsupported sharing value ", gotext::Quote(val)), val,
                              {"locked", "private", "shared"});
      }
      sharing_set = true;
    } else if (key == "mode" || key == "uid" || key == "gid") {
      uint32_t n;
      if (!ParseUint32(val, key == "mode" ? 8 : 10, &n)) {
        return absl::InvalidArgumentError(absl::StrCat("invalid value ", val, " for ", key));
      }
      (key == "mode" ? m.mode : key == "uid" ? m.uid : m.gid) = n;
    } else if (key == "env") {
      m.env = val;
      env_set = true;
    } else {
      return WithSuggestion(
          absl::StrCat("unexpected key '", key, "' in '", field, "'"), key,
          {"type", "from", "source", "target", "readonly", "id", "sharing", "required", "size",
           "mode", "uid", "gid", "src", "dst", "destination", "ro", "rw", "readwrite", "env"});
    }
  }

  const bool file_info_allowed =
      m.type == MountType::kSecret || m.type == MountType::kSsh || m.type == MountType::kCache;
  if (!file_info_allowed) {
    const char* t = TypeName(m.type);
    if (m.mode) {
      return absl::InvalidArgumentError(
          absl::StrCat("mode not allowed for \"", t, "\" type mounts"));
    }
    if (m.uid) {
      return absl::InvalidArgumentError(
          absl::StrCat("uid not allowed for \"", t, "\" type mounts"));
    }
    if (m.gid) {
      return absl::InvalidArgumentError(
          absl::StrCat("gid not allowed for \"", t, "\" type mounts"));
    }
  }
  m.read_only_set = !ro_auto;
  if (ro_auto) m.read_only = !(m.type == MountType::kCache || m.type == MountType::kTmpfs);

  if (m.type == MountType::kSecret) {
    if (!m.from.empty()) return absl::InvalidArgumentError("secret mount should not have a from");
    if (sharing_set) return absl::InvalidArgumentError("secret mount should not define sharing");
    if (m.source.empty() && m.target.empty() && m.cache_id.empty()) {
      return absl::InvalidArgumentError("invalid secret mount. one of source, target required");
    }
    if (!m.source.empty() && !m.cache_id.empty()) {
      return absl::InvalidArgumentError("both source and id can't be set");
    }
  }
  if (sharing_set && m.type != MountType::kCache) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid cache sharing set for ", TypeName(m.type), " mount"));
  }

  // Defaults BuildKit applies when converting the mount.
  switch (m.type) {
    case MountType::kBind:
    case MountType::kCache:
    case MountType::kTmpfs:
      if (m.target.empty()) return absl::InvalidArgumentError("mount target is required");
      if (m.type != MountType::kTmpfs && m.source.empty()) m.source.assign(1, '/');
      if (m.type == MountType::kCache && m.cache_id.empty()) m.cache_id = PathClean(m.target);
      break;
    case MountType::kSecret: {
      std::string id = m.cache_id;
      if (!m.source.empty()) id = m.source;
      if (id.empty()) id = PathBase(m.target);
      m.cache_id = id;
      if (!env_set && m.target.empty()) m.target = absl::StrCat("/run/secrets/", PathBase(id));
      break;
    }
    case MountType::kSsh:
      if (!m.source.empty()) return absl::InvalidArgumentError("ssh does not support source");
      m.ssh_id = m.cache_id.empty() ? "default" : m.cache_id;
      break;
  }
  return m;
}

}  // namespace kiln::dockerfile::instructions
