#include "daemon/server/worker_info.h"

#include <sys/utsname.h>
#include <unistd.h>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "base/ids.h"
#include "base/status.h"
#include "daemon/util/fs.h"

namespace kiln::server {

std::vector<Platform> DetectPlatforms() {
  struct utsname u;
  std::string machine = ::uname(&u) == 0 ? u.machine : "";
  std::vector<Platform> out;
  if (machine == "x86_64") {
    out.push_back({"linux", "amd64", ""});
#if defined(__x86_64__)
    __builtin_cpu_init();
    // x86-64 micro-architecture levels, as in the psABI.
    bool v2 = __builtin_cpu_supports("popcnt") && __builtin_cpu_supports("sse4.2") &&
              __builtin_cpu_supports("ssse3") && __builtin_cpu_supports("sse3");
    bool v3 = v2 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("bmi2") &&
              __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi");
    bool v4 = v3 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
              __builtin_cpu_supports("avx512cd") && __builtin_cpu_supports("avx512dq") &&
              __builtin_cpu_supports("avx512vl");
    if (v2) out.push_back({"linux", "amd64", "v2"});
    if (v3) out.push_back({"linux", "amd64", "v3"});
    if (v4) out.push_back({"linux", "amd64", "v4"});
#endif
  } else if (machine == "aarch64" || machine == "arm64") {
    out.push_back({"linux", "arm64", ""});
  } else if (machine == "riscv64" || machine == "ppc64le" || machine == "s390x") {
    out.push_back({"linux", machine, ""});
  } else if (machine.starts_with("armv7")) {
    out.push_back({"linux", "arm", "v7"});
    out.push_back({"linux", "arm", "v6"});
  } else {
    out.push_back({"linux", machine, ""});
  }
  return out;
}

absl::StatusOr<std::string> LoadOrCreateWorkerId(const std::filesystem::path& root) {
  std::filesystem::path path = root / "workerid";
  auto existing = util::ReadFile(path);
  if (existing.ok()) {
    std::string id(absl::StripAsciiWhitespace(*existing));
    if (!id.empty()) return id;
  } else if (!absl::IsNotFound(existing.status())) {
    return existing.status();
  }
  std::string id = NewRandomId();
  KILN_RETURN_IF_ERROR(util::WriteFileAtomic(path, id + "\n", 0644));
  return id;
}

std::map<std::string, std::string> WorkerLabels(const std::string& oci_binary) {
  char host[256] = {};
  ::gethostname(host, sizeof(host) - 1);
  auto key = [](const char* k) { return std::string("org.mobyproject.buildkit.worker.") + k; };
  return {
      {key("executor"), "oci"},
      {key("snapshotter"), "overlayfs"},
      {key("hostname"), host},
      {key("network"), "host"},
      {key("oci.process-mode"), "sandbox"},
      {key("selinux.enabled"), "false"},
      {"org.kiln.worker.oci.runtime", oci_binary},
  };
}

}  // namespace kiln::server
