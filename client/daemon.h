#pragma once
// The daemon `kiln build` starts for the user when none runs at the default address (no
// --addr, KILN_HOST or BUILDKIT_HOST): kilnd with its defaults, detached from the terminal,
// logging into its state root. `kiln daemon start|stop|status` manage the same daemon.

#include <sys/types.h>

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace kiln::client {

struct LocalDaemon {
  std::string socket = "/run/kiln/kilnd.sock";
  std::string root = "/var/lib/kiln";
  std::string address() const { return "unix://" + socket; }
  std::string log() const { return root + "/kilnd.log"; }
  std::string lock() const { return root + "/kilnd.lock"; }
};

// True when something accepts connections on the unix socket at `path`.
bool SocketAccepts(const std::string& path);

// The kilnd binary to start: $KILND, else kilnd next to this kiln (installed together), else
// ../daemon/kilnd (a build tree), else kilnd on PATH. NOT_FOUND names the places looked at.
[[nodiscard]] absl::StatusOr<std::string> FindKilnd();

struct Started {
  pid_t pid = 0;
  bool by_us = true;  // false: another kiln started it while we waited
};

// Starts kilnd for `d` unless one already accepts connections there; waits until it does.
// Fails with the daemon's last log lines when it exits or does not come up in time.
[[nodiscard]] absl::StatusOr<Started> StartLocalDaemon(const LocalDaemon& d);

// The pid of the kilnd holding `d`'s state root, or 0 when none does.
pid_t LocalDaemonPid(const LocalDaemon& d);

// Stops the kilnd holding `d`'s state root (SIGTERM, then waits for it to exit).
[[nodiscard]] absl::Status StopLocalDaemon(const LocalDaemon& d);

}  // namespace kiln::client
