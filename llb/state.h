#pragma once
// Immutable LLB states: one output of an op (or scratch) plus the per-state metadata BuildKit
// keeps in its llb.State values (env, working dir, user, hostname, platform, network, security,
// extra hosts, ulimits, cgroup parent), which a later Run() uses.
//
//   State ctx = Local("context");
//   State out = Scratch().File(Copy(ctx, "/", "/app")).File(Mkdir("/app/out", 0755));
//   absl::StatusOr<pb::Definition> def = Marshal(out);

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "llb/internal/output.h"
#include "llb/platform.h"
#include "proto/pb/ops.pb.h"

namespace kiln::llb {

class ExecState;
class FileAction;
struct RunOptions;

// Progress grouping for a vertex (pb.ProgressGroup).
struct ProgressGroup {
  std::string id;
  std::string name;
  bool weak = false;
};

// A source file ops were made from (BuildKit's llb.SourceMap), e.g. a Dockerfile: errors of those
// ops point into it. Shared by pointer; each distinct map is one Definition.source.infos entry.
struct SourceMap {
  std::string filename;
  std::string language;  // "Dockerfile"
  std::string data;
};

// Where in a SourceMap an op comes from (BuildKit's llb.Location): 1-based line ranges.
struct SourceLocation {
  std::shared_ptr<const SourceMap> map;
  std::vector<pb::Range> ranges;
};

// Per-op constraints and metadata: BuildKit's ConstraintsOpt values (WithCustomName, IgnoreCache,
// WithExportCache, Platform, Require, ProgressGroup). Metadata is not part of the op digest.
struct OpOptions {
  std::string custom_name;  // description["llb.customname"], shown in progress
  std::map<std::string, std::string> description;
  bool ignore_cache = false;
  std::optional<bool> export_cache;
  std::optional<Platform> platform;
  std::vector<std::string> worker_constraints;
  std::optional<ProgressGroup> progress_group;
  // Definition.source entries for this op (BuildKit's llb.Location).
  std::vector<SourceLocation> source_locations;
};

// An extra /etc/hosts entry for Run(); `ip` in canonical text form.
struct HostIP {
  std::string host;
  std::string ip;
};

// An RLIMIT_* for Run(), named as BuildKit names them ("nofile", "nproc", ...).
struct Ulimit {
  std::string name;
  int64_t soft = 0;
  int64_t hard = 0;
};

// An immutable value: copying shares the op graph and the metadata, and every "setter" returns a
// new State. Safe to share across threads. A default-constructed State is scratch (the empty
// filesystem) with working directory "/".
class State {
 public:
  State();

  // True for scratch: no op produces this state.
  bool IsScratch() const { return !output_.has_value(); }

  // Sets (or moves to the end, replacing) an environment variable.
  [[nodiscard]] State AddEnv(std::string_view key, std::string_view value) const;
  // Working directory; a relative `dir` is joined onto the current one.
  [[nodiscard]] State Dir(std::string_view dir) const;
  [[nodiscard]] State User(std::string_view user) const;
  [[nodiscard]] State Hostname(std::string_view hostname) const;
  // The platform later ops (Run) default to; normalized.
  [[nodiscard]] State WithPlatform(const Platform& platform) const;
  [[nodiscard]] State Network(pb::NetMode mode) const;
  [[nodiscard]] State Security(pb::SecurityMode mode) const;
  [[nodiscard]] State AddExtraHost(std::string_view host, std::string_view ip) const;
  [[nodiscard]] State AddUlimit(std::string_view name, int64_t soft, int64_t hard) const;
  [[nodiscard]] State WithCgroupParent(std::string_view cgroup_parent) const;

  // Environment in the order Run() passes it ("KEY", "value" pairs).
  const std::vector<std::pair<std::string, std::string>>& Env() const;
  std::optional<std::string> GetEnv(std::string_view key) const;
  const std::string& GetDir() const;
  const std::string& GetUser() const;
  const std::string& GetHostname() const;
  const std::optional<Platform>& GetPlatform() const;
  pb::NetMode GetNetwork() const;
  pb::SecurityMode GetSecurity() const;
  const std::vector<HostIP>& ExtraHosts() const;
  const std::vector<Ulimit>& Ulimits() const;
  const std::string& CgroupParent() const;

  // Applies a chain of file actions (see fileop.h) on top of this state.
  [[nodiscard]] State File(const FileAction& action, const OpOptions& options = {}) const;
  // Runs a process with this state as its root filesystem (see exec.h).
  [[nodiscard]] ExecState Run(const RunOptions& options) const;

  // For llb's op builders: a fresh state on `output` (working directory "/", platform of the
  // output), and this state's metadata on another output (BuildKit's NewState / WithOutput).
  static State FromOutput(internal::Output output);
  [[nodiscard]] State WithOutput(internal::Output output) const;
  const std::optional<internal::Output>& output() const { return output_; }

 private:
  struct Meta;
  static const std::shared_ptr<const Meta>& DefaultMeta();

  State(std::optional<internal::Output> output, std::shared_ptr<const Meta> meta);
  template <typename Fn>
  State WithMeta(Fn&& mutate) const;

  std::optional<internal::Output> output_;
  std::shared_ptr<const Meta> meta_;
};

// The empty filesystem.
inline State Scratch() { return State(); }

// Overlays `inputs` in order (later ones win). Scratch inputs are dropped; no inputs left gives
// scratch, a single one gives that input unchanged (as BuildKit does). Metadata of the first
// non-scratch input carries over.
State Merge(const std::vector<State>& inputs, const OpOptions& options = {});

// The changes that turn `lower` into `upper`. Diff(scratch, x) is x; Diff(scratch, scratch) is
// scratch. Metadata of `lower` carries over.
State Diff(const State& lower, const State& upper, const OpOptions& options = {});

}  // namespace kiln::llb
