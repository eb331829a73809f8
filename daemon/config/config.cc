#include "daemon/config/config.h"

#include <cctype>
#include <charconv>
#include <cmath>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status.h"
#include "daemon/util/fs.h"
#include "toml++/toml.h"

namespace kiln::config {
namespace {

// buildkitd.toml keys that kiln accepts but does not act on: a warning says so, by name.
const std::set<std::string, std::less<>> kUnsupportedBuildkitKeys = {
    "trace",
    "log",
    "otel",
    "cdi",
    "dns",
    "history",
    "frontend",
    "system",
    "platformsCacheMaxAge",
    "grpc.debugAddress",
    "grpc.uid",
    "grpc.gid",
    "grpc.securityDescriptor",
    "worker.containerd",
    "worker.oci.enabled",
    "worker.oci.labels",
    "worker.oci.platforms",
    "worker.oci.snapshotter",
    "worker.oci.rootless",
    "worker.oci.noProcessSandbox",
    "worker.oci.gc",
    "worker.oci.reservedSpace",
    "worker.oci.maxUsedSpace",
    "worker.oci.minFreeSpace",
    "worker.oci.gcpolicy",
    "worker.oci.networkMode",
    "worker.oci.cniConfigPath",
    "worker.oci.cniBinaryPath",
    "worker.oci.cniPoolSize",
    "worker.oci.bridgeName",
    "worker.oci.bridgeSubnet",
    "worker.oci.userRemapUnsupported",
    "worker.oci.proxySnapshotterPath",
    "worker.oci.apparmor-profile",
    "worker.oci.selinux",
    "worker.oci.max-parallelism",
    "worker.oci.hostname",
    "registry.*.ca",
    "registry.*.keypair",
    "registry.*.tlsconfig"};

const char* TypeName(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::table:
      return "a table";
    default:
      return "a date/time";
  }
}

// Walks one file, collecting values into `out` and messages into `warnings`.
class Reader {
 public:
  Reader(std::string filename, Config& out, std::vector<std::string>& warnings)
      : filename_(std::move(filename)), out_(out), warnings_(warnings) {}

  absl::Status Read(const toml::table& root) {
    for (const auto& [k, v] : root) {
      std::string key(k.str());
      if (key == "root") {
        KILN_ASSIGN_OR_RETURN(out_.root, String(key, v));
        if (out_.root.empty()) return Error(key, "must not be empty");
      } else if (key == "debug") {
        KILN_ASSIGN_OR_RETURN(out_.debug, Bool(key, v));
      } else if (key == "insecure-entitlements") {
        KILN_ASSIGN_OR_RETURN(out_.insecure_entitlements, Strings(key, v));
        for (const std::string& e : out_.insecure_entitlements) {
          if (e != "security.insecure" && e != "network.host") {
            return Error(key, absl::StrCat("names unknown entitlement \"", e,
                                           "\" (want security.insecure or network.host)"));
          }
        }
      } else if (key == "grpc") {
        KILN_RETURN_IF_ERROR(ReadGrpc(key, v));
      } else if (key == "worker") {
        KILN_RETURN_IF_ERROR(ReadWorker(key, v));
      } else if (key == "registry") {
        KILN_RETURN_IF_ERROR(ReadRegistries(key, v));
      } else {
        Unknown(key);
      }
    }
    return absl::OkStatus();
  }

 private:
  absl::Status Error(const std::string& key, absl::string_view what) {
    return absl::InvalidArgumentError(
        absl::StrCat("config ", filename_, ": key '", key, "' ", what));
  }
  absl::Status WrongType(const std::string& key, const toml::node& v, const char* want) {
    return Error(key, absl::StrCat("must be ", want, ", got ", TypeName(v)));
  }
  void Unknown(const std::string& key) {
    std::string pattern = key;
    if (key.starts_with("registry.")) {
      // registry."host".field → registry.*.field
      auto last = key.rfind('.');
      pattern = absl::StrCat("registry.*", key.substr(last));
    }
    bool supported_elsewhere = kUnsupportedBuildkitKeys.contains(pattern);
    warnings_.push_back(
        supported_elsewhere
            ? absl::StrCat("config ", filename_, ": key '", key,
                           "' is a buildkitd setting that kiln does not support; ignored")
            : absl::StrCat("config ", filename_, ": unknown key '", key, "'; ignored"));
  }

  absl::StatusOr<std::string> String(const std::string& key, const toml::node& v) {
    if (auto s = v.value<std::string>(); s && v.is_string()) return *s;
    return WrongType(key, v, "a string");
  }
  absl::StatusOr<bool> Bool(const std::string& key, const toml::node& v) {
    if (v.is_boolean()) return *v.value<bool>();
    return WrongType(key, v, "a boolean");
  }
  absl::StatusOr<std::vector<std::string>> Strings(const std::string& key, const toml::node& v) {
    std::vector<std::string> out;
    if (v.is_string()) {  // buildkitd accepts a single string where it wants a list
      out.push_back(*v.value<std::string>());
      return out;
    }
    const toml::array* arr = v.as_array();
    if (arr == nullptr) return WrongType(key, v, "an array of strings");
    for (size_t i = 0; i < arr->size(); ++i) {
      const toml::node& e = *arr->get(i);
      if (!e.is_string()) {
        return Error(absl::StrCat(key, "[", i, "]"),
                     absl::StrCat("must be a string, got ", TypeName(e)));
      }
      out.push_back(*e.value<std::string>());
    }
    return out;
  }
  absl::StatusOr<const toml::table*> Table(const std::string& key, const toml::node& v) {
    if (const toml::table* t = v.as_table()) return t;
    return WrongType(key, v, "a table");
  }

  absl::Status ReadGrpc(const std::string& prefix, const toml::node& v) {
    KILN_ASSIGN_OR_RETURN(const toml::table* t, Table(prefix, v));
    for (const auto& [k, child] : *t) {
      std::string key = absl::StrCat(prefix, ".", AV(k.str()));
      if (k.str() == "address") {
        KILN_ASSIGN_OR_RETURN(out_.addresses, Strings(key, child));
      } else if (k.str() == "tls") {
        KILN_ASSIGN_OR_RETURN(const toml::table* tls, Table(key, child));
        for (const auto& [tk, tv] : *tls) {
          std::string tkey = absl::StrCat(key, ".", AV(tk.str()));
          if (tk.str() == "cert") {
            KILN_ASSIGN_OR_RETURN(out_.tls.cert, String(tkey, tv));
          } else if (tk.str() == "key") {
            KILN_ASSIGN_OR_RETURN(out_.tls.key, String(tkey, tv));
          } else if (tk.str() == "ca") {
            KILN_ASSIGN_OR_RETURN(out_.tls.ca, String(tkey, tv));
          } else {
            Unknown(tkey);
          }
        }
      } else {
        Unknown(key);
      }
    }
    return absl::OkStatus();
  }

  absl::Status ReadWorker(const std::string& prefix, const toml::node& v) {
    KILN_ASSIGN_OR_RETURN(const toml::table* t, Table(prefix, v));
    for (const auto& [k, child] : *t) {
      std::string key = absl::StrCat(prefix, ".", AV(k.str()));
      if (k.str() != "oci") {
        Unknown(key);
        continue;
      }
      KILN_ASSIGN_OR_RETURN(const toml::table* oci, Table(key, child));
      for (const auto& [ok, ov] : *oci) {
        std::string okey = absl::StrCat(key, ".", AV(ok.str()));
        if (ok.str() == "gckeepstorage") {
          KILN_ASSIGN_OR_RETURN(out_.gc_keep_storage, Space(okey, ov));
        } else if (ok.str() == "binary") {
          KILN_ASSIGN_OR_RETURN(out_.oci_binary, String(okey, ov));
        } else {
          Unknown(okey);
        }
      }
    }
    return absl::OkStatus();
  }

  absl::StatusOr<DiskSpace> Space(const std::string& key, const toml::node& v) {
    if (v.is_integer()) {
      int64_t n = *v.value<int64_t>();
      if (n < 0) return Error(key, "must not be negative");
      return DiskSpace{.bytes = n};
    }
    if (!v.is_string()) return WrongType(key, v, "a size (an integer, \"10GB\" or \"10%\")");
    auto parsed = ParseDiskSpace(*v.value<std::string>());
    if (!parsed.ok()) return Error(key, parsed.status().message());
    return *parsed;
  }

  absl::Status ReadRegistries(const std::string& prefix, const toml::node& v) {
    KILN_ASSIGN_OR_RETURN(const toml::table* t, Table(prefix, v));
    for (const auto& [host, child] : *t) {
      std::string hkey = absl::StrCat(prefix, ".\"", AV(host.str()), "\"");
      KILN_ASSIGN_OR_RETURN(const toml::table* reg, Table(hkey, child));
      RegistryConfig rc;
      for (const auto& [rk, rv] : *reg) {
        std::string rkey = absl::StrCat(hkey, ".", AV(rk.str()));
        if (rk.str() == "mirrors") {
          KILN_ASSIGN_OR_RETURN(rc.mirrors, Strings(rkey, rv));
        } else if (rk.str() == "http") {
          KILN_ASSIGN_OR_RETURN(rc.http, Bool(rkey, rv));
        } else if (rk.str() == "insecure") {
          KILN_ASSIGN_OR_RETURN(rc.insecure, Bool(rkey, rv));
        } else {
          Unknown(rkey);
        }
      }
      out_.registries[std::string(host.str())] = std::move(rc);
    }
    return absl::OkStatus();
  }

  std::string filename_;
  Config& out_;
  std::vector<std::string>& warnings_;
};

}  // namespace

int64_t DiskSpace::AsBytes(int64_t total_bytes) const {
  if (bytes != 0) return bytes;
  if (percentage == 0) return 0;
  if (total_bytes <= 0) return 2'000'000'000;  // as buildkitd when the filesystem is unknown
  return total_bytes / 100 * percentage;
}

absl::StatusOr<DiskSpace> ParseDiskSpace(std::string_view text) {
  std::string s(absl::StripAsciiWhitespace(AV(text)));
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') s = s.substr(1, s.size() - 2);
  auto bad = [&] {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid size \"", AV(text),
                     "\": want bytes (\"1000000\", \"512MiB\", \"10GB\") or \"10%\""));
  };
  if (s.empty()) return bad();
  if (s.back() == '%') {
    int64_t pct = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size() - 1, pct);
    if (ec != std::errc() || p != s.data() + s.size() - 1 || pct < 0 || pct > 100) return bad();
    return DiskSpace{.percentage = pct};
  }
  // Number, then an optional unit: k/m/g/t/p with optional "b" or "ib" (binary multiples).
  size_t i = 0;
  while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) ++i;
  if (i == 0) return bad();
  double number = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + i, number);
  if (ec != std::errc() || p != s.data() + i) return bad();
  std::string unit = absl::AsciiStrToLower(absl::string_view(s).substr(i));
  unit = std::string(absl::StripAsciiWhitespace(unit));
  double mult = 1;
  if (!unit.empty()) {
    static constexpr std::string_view kUnits = "kmgtp";
    size_t pos = kUnits.find(unit[0]);
    std::string_view rest = std::string_view(unit).substr(1);
    if (unit == "b") {
      mult = 1;
    } else if (pos == std::string_view::npos || !(rest.empty() || rest == "b" || rest == "ib")) {
      return bad();
    } else {
      mult = std::pow(1024.0, static_cast<double>(pos + 1));
    }
  }
  double value = number * mult;
  if (value > 9.2e18) return bad();
  return DiskSpace{.bytes = static_cast<int64_t>(value)};
}

absl::StatusOr<LoadResult> ParseConfig(std::string_view text, std::string_view filename) {
  toml::table parsed;
  try {
    parsed = toml::parse(text, filename);
  } catch (const toml::parse_error& err) {
    return absl::InvalidArgumentError(
        absl::StrCat("config ", AV(filename), ": line ", err.source().begin.line, ", column ",
                     err.source().begin.column, ": ", AV(err.description())));
  }
  LoadResult result;
  Reader reader(std::string(filename), result.config, result.warnings);
  KILN_RETURN_IF_ERROR(reader.Read(parsed));
  return result;
}

absl::StatusOr<LoadResult> LoadConfigFile(const std::string& path) {
  auto text = util::ReadFile(path);
  if (!text.ok()) return Annotate(text.status(), "config");
  return ParseConfig(*text, path);
}

}  // namespace kiln::config
