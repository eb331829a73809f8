#include "daemon/executor/internal/spec.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status.h"
#include "daemon/executor/internal/root_fs.h"
#include "daemon/executor/internal/seccomp.h"

namespace kiln::executor::internal {
namespace {

using nlohmann::json;

// Indexed by capability number (linux/capability.h).
constexpr std::string_view kCapabilityNames[] = {
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
};

constexpr std::string_view kUlimitNames[] = {
    "as",   "core",   "cpu",   "data", "fsize",  "locks",  "memlock",    "msgqueue",
    "nice", "nofile", "nproc", "rss",  "rtprio", "rttime", "sigpending", "stack",
};

// Docker's masked and read-only paths.
constexpr std::string_view kMaskedPaths[] = {
    "/proc/asound",      "/proc/acpi",          "/proc/interrupts", "/proc/kcore",
    "/proc/keys",        "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
    "/proc/sched_debug", "/proc/scsi",          "/sys/firmware",    "/sys/devices/virtual/powercap",
};
constexpr std::string_view kReadonlyPaths[] = {
    "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
};

bool ValidUlimitName(std::string_view name) {
  return std::find(std::begin(kUlimitNames), std::end(kUlimitNames), name) !=
         std::end(kUlimitNames);
}

// A name usable in /etc/hosts and as a UTS hostname: no whitespace, no control characters.
bool ValidHostName(std::string_view name) {
  if (name.empty() || name.size() > 253) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u > 0x20 && u != 0x7f && c != '#';
  });
}

bool ValidIp(const std::string& ip) {
  unsigned char buf[sizeof(struct in6_addr)];
  return inet_pton(AF_INET, ip.c_str(), buf) == 1 || inet_pton(AF_INET6, ip.c_str(), buf) == 1;
}

std::string_view EnvName(std::string_view entry) { return entry.substr(0, entry.find('=')); }

json MountJson(std::string_view destination, std::string_view type, std::string_view source,
               const std::vector<std::string>& options) {
  return json{
      {"destination", destination}, {"type", type}, {"source", source}, {"options", options}};
}

json Capabilities(const std::vector<std::string>& caps) {
  // Not inheritable and not ambient: a non-root user keeps none across execve, as in Docker.
  return json{{"bounding", caps}, {"effective", caps}, {"permitted", caps}};
}

}  // namespace

const std::vector<std::string>& DefaultCapabilities() {
  static const std::vector<std::string> caps = {
      "CAP_CHOWN",   "CAP_DAC_OVERRIDE", "CAP_FSETID",           "CAP_FOWNER",
      "CAP_MKNOD",   "CAP_NET_RAW",      "CAP_SETGID",           "CAP_SETUID",
      "CAP_SETFCAP", "CAP_SETPCAP",      "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT",
      "CAP_KILL",    "CAP_AUDIT_WRITE",
  };
  return caps;
}

const std::vector<std::string>& AllCapabilities() {
  static const std::vector<std::string> caps = [] {
    // What this process holds (BuildKit's insecure mode: the daemon's own capabilities); a
    // runtime cannot grant more. Unknown bits are skipped.
    uint64_t effective = ~uint64_t{0};
    std::ifstream in("/proc/self/status");
    for (std::string line; std::getline(in, line);) {
      if (line.rfind("CapEff:", 0) == 0) effective = std::stoull(line.substr(7), nullptr, 16);
    }
    std::vector<std::string> out;
    for (size_t bit = 0; bit < std::size(kCapabilityNames); ++bit) {
      if ((effective >> bit) & 1) out.emplace_back(kCapabilityNames[bit]);
    }
    return out;
  }();
  return caps;
}

absl::Status ValidateMeta(const Meta& meta, const std::vector<Mount>& mounts) {
  if (meta.args.empty()) return absl::InvalidArgumentError("no command to run (empty args)");
  for (const std::vector<std::string>* list : {&meta.env, &meta.secret_env}) {
    for (const std::string& e : *list) {
      const size_t eq = e.find('=');
      if (eq == std::string::npos || eq == 0) {
        // Never echo the entry: it may be a secret.
        return absl::InvalidArgumentError(
            absl::StrCat(list == &meta.env ? "environment" : "secret environment",
                         " entry without a NAME=: \"", AV(EnvName(e).substr(0, 64)), "...\""));
      }
    }
  }
  for (const Ulimit& u : meta.ulimits) {
    if (!ValidUlimitName(u.name)) {
      return absl::InvalidArgumentError(absl::StrCat("invalid ulimit name: \"", u.name, "\""));
    }
    if (u.soft > u.hard) {
      return absl::InvalidArgumentError(
          absl::StrCat("ulimit ", u.name, ": soft limit ", u.soft, " exceeds hard limit ", u.hard));
    }
  }
  if (!meta.hostname.empty() && (!ValidHostName(meta.hostname) || meta.hostname.size() > 64)) {
    return absl::InvalidArgumentError(absl::StrCat("invalid hostname \"", meta.hostname, "\""));
  }
  for (const auto& [host, ip] : meta.extra_hosts) {
    if (!ValidHostName(host)) {
      return absl::InvalidArgumentError(absl::StrCat("invalid extra host name \"", host, "\""));
    }
    if (!ValidIp(ip)) {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid IP address \"", ip, "\" for extra host ", host));
    }
  }
  for (const Mount& m : mounts) {
    if (m.destination.empty() || m.destination[0] != '/') {
      return absl::InvalidArgumentError(
          absl::StrCat("mount destination must be absolute: \"", m.destination, "\""));
    }
    if (m.type.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("mount ", m.destination, ": no type"));
    }
    if (m.type == "bind" && m.source.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("bind mount ", m.destination, ": no source"));
    }
  }
  return absl::OkStatus();
}

std::vector<std::string> MergeEnv(const std::vector<std::string>& env,
                                  const std::vector<std::string>& secret_env) {
  std::vector<std::string> out;
  std::map<std::string_view, size_t> index;  // name → position in out
  auto add = [&](const std::string& entry) {
    const std::string_view name = EnvName(entry);
    if (auto it = index.find(name); it != index.end()) {
      out[it->second] = entry;
      return;
    }
    out.push_back(entry);
    // Key into `entry`, which outlives `out`'s reallocations (it is one of the inputs).
    index.emplace(name, out.size() - 1);
  };
  for (const std::string& e : env) add(e);
  for (const std::string& e : secret_env) add(e);
  if (index.find("PATH") == index.end()) out.push_back(absl::StrCat("PATH=", AV(kDefaultPath)));
  return out;
}

std::vector<std::string> EnvNames(const std::vector<std::string>& env) {
  std::vector<std::string> names;
  names.reserve(env.size());
  for (const std::string& e : env) names.emplace_back(EnvName(e));
  return names;
}

std::string HostsFile(std::string_view hostname,
                      const std::vector<std::pair<std::string, std::string>>& extra_hosts) {
  std::string out = absl::StrCat("127.0.0.1\tlocalhost ", AV(hostname),
                                 "\n::1\tlocalhost ip6-localhost ip6-loopback\n");
  for (const auto& [host, ip] : extra_hosts) absl::StrAppend(&out, ip, "\t", host, "\n");
  return out;
}

absl::StatusOr<json> GenerateSpec(const SpecInput& in) {
  const Meta& meta = *in.meta;
  const bool sandbox = meta.security == SecurityMode::kSandbox;

  json rlimits = json::array();
  for (const Ulimit& u : meta.ulimits) {
    if (!ValidUlimitName(u.name)) {
      return absl::InvalidArgumentError(absl::StrCat("invalid ulimit name: \"", u.name, "\""));
    }
    rlimits.push_back(json{{"type", absl::StrCat("RLIMIT_", absl::AsciiStrToUpper(u.name))},
                           {"soft", u.soft},
                           {"hard", u.hard}});
  }

  json process = {
      {"terminal", false},
      {"user",
       {{"uid", in.user.uid}, {"gid", in.user.gid}, {"additionalGids", in.user.additional_gids}}},
      {"args", meta.args},
      {"env", MergeEnv(meta.env, meta.secret_env)},
      {"cwd", CleanAbs(meta.cwd.empty() ? "/" : meta.cwd)},
      {"capabilities", Capabilities(sandbox ? DefaultCapabilities() : AllCapabilities())},
      {"noNewPrivileges", sandbox},
  };
  if (!rlimits.empty()) process["rlimits"] = std::move(rlimits);

  json mounts = json::array({
      MountJson("/proc", "proc", "proc", {"nosuid", "noexec", "nodev"}),
      MountJson("/dev", "tmpfs", "tmpfs", {"nosuid", "strictatime", "mode=755", "size=65536k"}),
      MountJson("/dev/pts", "devpts", "devpts",
                {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}),
      MountJson("/dev/shm", "tmpfs", "shm",
                {"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}),
      MountJson("/dev/mqueue", "mqueue", "mqueue", {"nosuid", "noexec", "nodev"}),
      MountJson("/sys", "sysfs", "sysfs", {"nosuid", "noexec", "nodev", sandbox ? "ro" : "rw"}),
      MountJson("/etc/resolv.conf", "bind", in.resolv_conf_path,
                {"rbind", "ro", "nosuid", "nodev", "noexec"}),
      MountJson("/etc/hosts", "bind", in.hosts_path, {"rbind", "ro", "nosuid", "nodev", "noexec"}),
  });
  // The caller's mounts come last; one on the same destination as a standard mount replaces
  // it (BuildKit's dedupMounts). Parents before children regardless of the given order.
  // Without a device cgroup, binds are nodev: a bound tree may hold device nodes (an image
  // layer, a client's context) that nothing else would stop the process from opening.
  std::vector<Mount> user_mounts = in.mounts;
  for (Mount& m : user_mounts) {
    m.destination = CleanAbs(m.destination);
    if (sandbox && in.restrict_device_nodes && m.type == "bind" &&
        std::none_of(m.options.begin(), m.options.end(),
                     [](const std::string& o) { return o == "dev" || o == "nodev"; })) {
      m.options.push_back("nodev");
    }
  }
  std::stable_sort(user_mounts.begin(), user_mounts.end(), [](const Mount& a, const Mount& b) {
    return std::count(a.destination.begin(), a.destination.end(), '/') <
           std::count(b.destination.begin(), b.destination.end(), '/');
  });
  for (const Mount& m : user_mounts) {
    json replaced = json::array();
    for (json& existing : mounts) {
      if (existing["destination"] != m.destination) replaced.push_back(std::move(existing));
    }
    mounts = std::move(replaced);
    mounts.push_back(MountJson(m.destination, m.type, m.source, m.options));
  }

  json namespaces =
      json::array({{{"type", "pid"}}, {{"type", "ipc"}}, {{"type", "uts"}}, {{"type", "mount"}}});
  if (meta.net == NetMode::kNone) namespaces.push_back({{"type", "network"}});

  json linux = {{"namespaces", std::move(namespaces)}};
  if (sandbox) {
    linux["maskedPaths"] = kMaskedPaths;
    linux["readonlyPaths"] = kReadonlyPaths;
    linux["seccomp"] = SandboxSeccompProfile(in.restrict_device_nodes);
    // For runtimes that manage a device cgroup (runc): deny all, then the runtime's defaults.
    linux["resources"] = {{"devices", json::array({{{"allow", false}, {"access", "rwm"}}})}};
  } else {
    linux["resources"] = {{"devices", json::array({{{"allow", true}, {"access", "rwm"}}})}};
  }

  return json{
      {"ociVersion", "1.0.2"},
      {"process", std::move(process)},
      {"root", {{"path", in.root_path}, {"readonly", false}}},
      {"hostname", meta.hostname.empty() ? std::string(kDefaultHostname) : meta.hostname},
      {"mounts", std::move(mounts)},
      {"linux", std::move(linux)},
  };
}

}  // namespace kiln::executor::internal
