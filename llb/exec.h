#pragma once
// Exec ops: State::Run() runs a process on a state, with extra mounts, and yields the changed
// root and the writable mounts as new states. Marshaled as BuildKit's client/llb/exec.go does
// (mounts sorted by target, outputs numbered over writable bind mounts, secrets and SSH last).
//
//   ExecState run = Image("golang:1.23").Dir("/src").Run({
//       .args = {"go", "build", "-o", "/out/app", "."},
//       .mounts = {{.target = "/src", .source = Local("context"), .readonly = true},
//                  {.target = "/out", .source = Scratch()},
//                  {.target = "/root/.cache/go-build", .type = MountType::kCache,
//                   .cache_id = "gocache"}}});
//   absl::StatusOr<State> out = run.GetMount("/out");

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "llb/state.h"
#include "proto/pb/ops.pb.h"

namespace kiln::llb {

enum class MountType { kBind, kCache, kTmpfs };

// A filesystem mounted into the container at `target`.
struct Mount {
  std::string target;
  State source;          // bind: what is mounted (scratch: an empty dir); cache: initial content
  std::string selector;  // subpath of `source` to mount
  bool readonly = false;
  MountType type = MountType::kBind;
  std::string cache_id;  // required for kCache
  pb::CacheSharingOpt cache_sharing = pb::SHARED;
  int64_t tmpfs_size = 0;  // bytes; 0 means the kernel default
  bool no_output = false;  // a writable bind mount whose result is discarded
  pb::MountContentCache content_cache = pb::DEFAULT;
};

// A secret from the client's session, as a file and/or an environment variable.
struct SecretMount {
  std::string id;
  std::optional<std::string> target;  // file path in the container
  std::optional<std::string> env;     // environment variable name
  uint32_t mode = 0400;
  uint32_t uid = 0;
  uint32_t gid = 0;
  bool optional = false;
};

// An SSH agent socket forwarded from the client's session.
struct SshMount {
  std::string id;      // empty: the default agent
  std::string target;  // empty: /run/buildkit/ssh_agent.<n>
  uint32_t mode = 0600;
  uint32_t uid = 0;
  uint32_t gid = 0;
  bool optional = false;
};

struct CdiDevice {
  std::string name;
  bool optional = false;
};

struct ProxyEnv {
  std::string http_proxy;
  std::string https_proxy;
  std::string ftp_proxy;
  std::string no_proxy;
  std::string all_proxy;
};

// Everything about one Run(). Unset optionals keep the state's value; lists add to it.
struct RunOptions {
  std::vector<std::string> args;  // required
  std::vector<std::pair<std::string, std::string>> env;
  std::optional<std::string> cwd;  // relative: joined onto the state's working dir
  std::optional<std::string> user;
  std::optional<std::string> hostname;
  std::optional<pb::NetMode> network;
  std::optional<pb::SecurityMode> security;
  std::vector<HostIP> extra_hosts;
  std::vector<Ulimit> ulimits;
  std::optional<std::string> cgroup_parent;
  std::optional<std::vector<int32_t>> valid_exit_codes;
  std::vector<Mount> mounts;
  std::vector<SecretMount> secrets;
  std::vector<SshMount> ssh;
  std::vector<CdiDevice> cdi_devices;
  std::optional<ProxyEnv> proxy_env;
  bool readonly_rootfs = false;
  OpOptions op;  // op.platform: platform of the exec (default: the state's, then the marshal's)
};

// The result of State::Run(). Immutable; cheap to copy; thread-safe to share.
class ExecState {
 public:
  // The root filesystem after the run, with the metadata of the state Run() was called on.
  const State& Root() const { return root_; }

  // The content of the mount at `target` after the run (a fresh state, working dir "/"). A
  // readonly mount yields its source. Fails for mounts without an output (tmpfs, cache,
  // no_output) and for unknown targets.
  [[nodiscard]] absl::StatusOr<State> GetMount(std::string_view target) const;

 private:
  friend class State;
  struct MountOutput {
    std::string target;
    absl::Status error;                      // why the mount has no output
    std::optional<internal::Output> output;  // unset: scratch
  };

  ExecState(State root, std::vector<MountOutput> mounts)
      : root_(std::move(root)),
        mounts_(std::make_shared<const std::vector<MountOutput>>(std::move(mounts))) {}

  State root_;
  std::shared_ptr<const std::vector<MountOutput>> mounts_;
};

}  // namespace kiln::llb
