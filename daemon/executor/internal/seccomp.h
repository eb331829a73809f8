#pragma once
// The seccomp profile for SecurityMode::kSandbox, in OCI runtime-spec form (linux.seccomp): an
// allowlist in the spirit of Docker's default profile for Docker's default capability set,
// optionally restricting mknod(2) where no device cgroup does. Thread-safe (pure).

#include <nlohmann/json.hpp>

namespace kiln::executor::internal {

// Deny-by-default (EPERM) profile for the architecture the daemon was built for (x86_64 with
// its 32-bit and x32 ABIs, or aarch64 with arm). Differences from Docker's default profile:
//  - io_uring_* are denied (as in recent Docker and containerd releases);
//  - with `restrict_mknod`, mknod/mknodat may create regular files, FIFOs, sockets, overlay
//    whiteouts (0:0) and the standard pseudo devices (null, zero, full, random, urandom, tty,
//    ptmx) but no other device nodes. For containers without a device cgroup, which would
//    otherwise be free to use any device node they create.
nlohmann::json SandboxSeccompProfile(bool restrict_mknod);

}  // namespace kiln::executor::internal
