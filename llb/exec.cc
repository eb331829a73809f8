#include "llb/exec.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "llb/internal/gopath.h"
#include "llb/internal/vertex.h"

namespace kiln::llb {
namespace {

// A mount as the exec op sees it, with its output slot decided up front.
struct MountSpec {
  Mount mount;
  std::optional<internal::Output> source;
  int64_t output = -1;  // output index, or -1 when the mount produces none
};

// Everything an exec op needs, resolved from the state and the RunOptions at Run() time.
struct ExecSpec {
  std::vector<std::string> args;
  std::vector<std::pair<std::string, std::string>> env;
  std::string cwd;
  std::string user;
  std::string hostname;
  std::string cgroup_parent;
  pb::NetMode network = pb::UNSET;
  pb::SecurityMode security = pb::SANDBOX;
  std::vector<HostIP> extra_hosts;
  std::vector<Ulimit> ulimits;
  std::optional<std::vector<int32_t>> valid_exit_codes;
  std::vector<MountSpec> mounts;  // sorted by target
  std::vector<SecretMount> secrets;
  std::vector<SshMount> ssh;
  std::vector<CdiDevice> cdi_devices;
  std::optional<ProxyEnv> proxy_env;
  OpOptions op;  // op.platform resolved: RunOptions, else the state's
};

void SetEnv(std::vector<std::pair<std::string, std::string>>& env, const std::string& key,
            const std::string& value) {
  std::erase_if(env, [&](const auto& kv) { return kv.first == key; });
  env.emplace_back(key, value);
}

bool HasEnv(const std::vector<std::pair<std::string, std::string>>& env, std::string_view key) {
  return std::any_of(env.begin(), env.end(), [&](const auto& kv) { return kv.first == key; });
}

// Fails for builder input BuildKit would reject when marshaling.
absl::Status CheckMount(const MountSpec& m) {
  if (m.mount.type == MountType::kCache && m.mount.cache_id.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("exec: cache mount ", m.mount.target, " needs a cache id"));
  }
  if (m.mount.type == MountType::kTmpfs && m.source.has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat("exec: tmpfs mount ", m.mount.target, " must use scratch"));
  }
  return absl::OkStatus();
}

// An exec op, fully resolved at Run() time. Immutable, so thread-safe to share.
class ExecVertex : public internal::Vertex {
 public:
  explicit ExecVertex(ExecSpec spec) : spec_(std::move(spec)) {}

  std::vector<internal::Output> Inputs() const override {
    std::vector<internal::Output> inputs;
    for (const MountSpec& m : spec_.mounts) {
      if (!m.source) continue;
      if (std::none_of(inputs.begin(), inputs.end(),
                       [&](const internal::Output& o) { return o.SameEdge(*m.source); })) {
        inputs.push_back(*m.source);
      }
    }
    return inputs;
  }

  absl::Status Marshal(internal::MarshalContext& ctx, pb::Op* op,
                       pb::OpMetadata* metadata) const override {
    if (spec_.args.empty()) return absl::InvalidArgumentError("exec: arguments are required");
    if (spec_.cwd.empty()) return absl::InvalidArgumentError("exec: working directory is required");
    for (const MountSpec& m : spec_.mounts) KILN_RETURN_IF_ERROR(CheckMount(m));
    std::set<std::string> caps{"exec.meta.base"};

    std::vector<std::pair<std::string, std::string>> env = spec_.env;
    if (!spec_.ssh.empty() && !HasEnv(env, "SSH_AUTH_SOCK")) {
      env.emplace_back("SSH_AUTH_SOCK", spec_.ssh.front().target);
    }
    if (const auto& daemon_caps = ctx.options().caps; daemon_caps.has_value()) {
      if (daemon_caps->contains("exec.meta.setsdefaultpath")) {
        caps.insert("exec.meta.setsdefaultpath");
      } else if (ctx.default_platform().os != "windows" && !HasEnv(env, "PATH")) {
        env.emplace_back("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
      }
    }

    pb::ExecOp* exec = op->mutable_exec();
    pb::Meta* meta = exec->mutable_meta();
    for (const std::string& arg : spec_.args) meta->add_args(arg);
    for (const auto& [k, v] : env) meta->add_env(absl::StrCat(k, "=", v));
    meta->set_cwd(spec_.cwd);
    meta->set_user(spec_.user);
    meta->set_hostname(spec_.hostname);
    meta->set_cgroupparent(spec_.cgroup_parent);
    meta->set_removemountstubsrecursive(true);
    if (spec_.valid_exit_codes.has_value()) {
      for (int32_t code : *spec_.valid_exit_codes) meta->add_validexitcodes(code);
      caps.insert("exec.validexitcode");
    }
    for (const HostIP& h : spec_.extra_hosts) {
      pb::HostIP* host = meta->add_extrahosts();
      host->set_host(h.host);
      host->set_ip(h.ip);
    }
    if (!spec_.ulimits.empty()) caps.insert("exec.meta.ulimit");
    for (const Ulimit& u : spec_.ulimits) {
      pb::Ulimit* ulimit = meta->add_ulimit();
      ulimit->set_name(u.name);
      ulimit->set_soft(u.soft);
      ulimit->set_hard(u.hard);
    }
    exec->set_network(spec_.network);
    exec->set_security(spec_.security);
    if (spec_.network != pb::UNSET) caps.insert("exec.meta.network");
    if (spec_.security != pb::SANDBOX) caps.insert("exec.meta.security");
    if (spec_.proxy_env.has_value()) {
      pb::ProxyEnv* proxy = meta->mutable_proxy_env();
      proxy->set_http_proxy(spec_.proxy_env->http_proxy);
      proxy->set_https_proxy(spec_.proxy_env->https_proxy);
      proxy->set_ftp_proxy(spec_.proxy_env->ftp_proxy);
      proxy->set_no_proxy(spec_.proxy_env->no_proxy);
      proxy->set_all_proxy(spec_.proxy_env->all_proxy);
      caps.insert("exec.meta.proxyenv");
    }

    for (const MountSpec& m : spec_.mounts) {
      if (!m.mount.selector.empty()) caps.insert("exec.mount.selector");
      if (m.mount.type == MountType::kCache) {
        caps.insert("exec.mount.cache");
        caps.insert("exec.mount.cache.sharing");
      } else if (m.mount.type == MountType::kTmpfs) {
        caps.insert("exec.mount.tmpfs");
        if (m.mount.tmpfs_size > 0) caps.insert("exec.mount.tmpfs.size");
      } else if (m.source.has_value()) {
        caps.insert("exec.mount.bind");
      }
      if (m.mount.content_cache != pb::DEFAULT) caps.insert("exec.mount.cache.content");
    }
    if (!spec_.secrets.empty()) {
      caps.insert("exec.mount.secret");
      for (const SecretMount& s : spec_.secrets) {
        if (s.env.has_value()) caps.insert("exec.secretenv");
      }
    }
    if (!spec_.ssh.empty()) caps.insert("exec.mount.ssh");
    if (!spec_.cdi_devices.empty()) caps.insert("exec.meta.cdi");
    for (const CdiDevice& d : spec_.cdi_devices) {
      pb::CDIDevice* device = exec->add_cdidevices();
      device->set_name(d.name);
      device->set_optional(d.optional);
    }

    ctx.ApplyConstraints(spec_.op, caps, op, metadata);

    for (const MountSpec& m : spec_.mounts) {
      int64_t input = -1;
      if (m.source.has_value()) {
        KILN_ASSIGN_OR_RETURN(pb::Input in, ctx.ToInput(*m.source));
        for (int i = 0; i < op->inputs_size() && input < 0; ++i) {
          if (op->inputs(i).digest() == in.digest() && op->inputs(i).index() == in.index()) {
            input = i;
          }
        }
        if (input < 0) {
          input = op->inputs_size();
          *op->add_inputs() = std::move(in);
        }
      }
      pb::Mount* mount = exec->add_mounts();
      mount->set_input(input);
      mount->set_dest(m.mount.target);
      mount->set_readonly(m.mount.readonly);
      mount->set_output(m.output);
      mount->set_selector(m.mount.selector);
      if (m.mount.type == MountType::kCache) {
        mount->set_mounttype(pb::CACHE);
        mount->mutable_cacheopt()->set_id(m.mount.cache_id);
        mount->mutable_cacheopt()->set_sharing(m.mount.cache_sharing);
      }
      mount->set_contentcache(m.mount.content_cache);
      if (m.mount.type == MountType::kTmpfs) {
        mount->set_mounttype(pb::TMPFS);
        mount->mutable_tmpfsopt()->set_size(m.mount.tmpfs_size);
      }
    }
    for (const SecretMount& s : spec_.secrets) {
      if (s.env.has_value()) {
        pb::SecretEnv* secret_env = exec->add_secretenv();
        secret_env->set_id(s.id);
        secret_env->set_name(*s.env);
        secret_env->set_optional(s.optional);
      }
      if (s.target.has_value()) {
        pb::Mount* mount = exec->add_mounts();
        mount->set_input(-1);
        mount->set_dest(*s.target);
        mount->set_mounttype(pb::SECRET);
        pb::SecretOpt* opt = mount->mutable_secretopt();
        opt->set_id(s.id);
        opt->set_uid(s.uid);
        opt->set_gid(s.gid);
        opt->set_optional(s.optional);
        opt->set_mode(s.mode);
      }
    }
    for (const SshMount& s : spec_.ssh) {
      pb::Mount* mount = exec->add_mounts();
      mount->set_input(-1);
      mount->set_dest(s.target);
      mount->set_mounttype(pb::SSH);
      pb::SSHOpt* opt = mount->mutable_sshopt();
      opt->set_id(s.id);
      opt->set_uid(s.uid);
      opt->set_gid(s.gid);
      opt->set_mode(s.mode);
      opt->set_optional(s.optional);
    }
    return absl::OkStatus();
  }

 private:
  const ExecSpec spec_;
};

}  // namespace

ExecState State::Run(const RunOptions& o) const {
  ExecSpec spec;
  spec.args = o.args;
  spec.env = Env();
  for (const auto& [k, v] : o.env) SetEnv(spec.env, k, v);
  spec.cwd = GetDir();
  if (o.cwd.has_value()) {
    spec.cwd = internal::IsAbsPath(*o.cwd)
                   ? *o.cwd
                   : internal::JoinPath(spec.cwd.empty() ? "/" : spec.cwd, *o.cwd);
  }
  spec.user = o.user.value_or(GetUser());
  spec.hostname = o.hostname.value_or(GetHostname());
  spec.cgroup_parent = o.cgroup_parent.value_or(CgroupParent());
  spec.network = o.network.value_or(GetNetwork());
  spec.security = o.security.value_or(GetSecurity());
  spec.extra_hosts = ExtraHosts();
  spec.extra_hosts.insert(spec.extra_hosts.end(), o.extra_hosts.begin(), o.extra_hosts.end());
  spec.ulimits = Ulimits();
  spec.ulimits.insert(spec.ulimits.end(), o.ulimits.begin(), o.ulimits.end());
  spec.valid_exit_codes = o.valid_exit_codes;
  spec.secrets = o.secrets;
  spec.ssh = o.ssh;
  for (size_t i = 0; i < spec.ssh.size(); ++i) {
    if (spec.ssh[i].target.empty())
      spec.ssh[i].target = absl::StrCat("/run/buildkit/ssh_agent.", i);
  }
  spec.cdi_devices = o.cdi_devices;
  spec.proxy_env = o.proxy_env;
  spec.op = o.op;
  if (!spec.op.platform.has_value()) spec.op.platform = GetPlatform();

  Mount root_mount{.target = "/", .source = *this, .readonly = o.readonly_rootfs};
  spec.mounts.push_back(MountSpec{root_mount, output_});
  for (const Mount& m : o.mounts) spec.mounts.push_back(MountSpec{m, m.source.output()});
  std::stable_sort(
      spec.mounts.begin(), spec.mounts.end(),
      [](const MountSpec& a, const MountSpec& b) { return a.mount.target < b.mount.target; });
  int64_t next_output = 0;
  for (MountSpec& m : spec.mounts) {
    if (!m.mount.no_output && !m.mount.readonly && m.mount.type == MountType::kBind) {
      m.output = next_output++;
    }
  }

  // Mount outputs carry the exec's own platform (not the state's), as in BuildKit.
  const std::optional<Platform> out_platform = o.op.platform;
  std::vector<MountSpec> mounts = spec.mounts;
  auto vertex = std::make_shared<ExecVertex>(std::move(spec));

  std::vector<ExecState::MountOutput> outputs;
  std::optional<internal::Output> root_output;
  for (const MountSpec& m : mounts) {
    ExecState::MountOutput out{m.mount.target, absl::OkStatus(), std::nullopt};
    if (m.output >= 0) {
      out.output = internal::Output{vertex, m.output, out_platform};
    } else if (m.mount.readonly) {
      out.output = m.source;
    } else {
      out.error = absl::FailedPreconditionError(
          absl::StrCat("mount ", m.mount.target, " has no output (tmpfs, cache or no_output)"));
    }
    if (m.mount.target == "/" && !root_output.has_value()) root_output = out.output;
    outputs.push_back(std::move(out));
  }
  State root = root_output ? WithOutput(*root_output) : State(std::nullopt, meta_);
  return ExecState(std::move(root), std::move(outputs));
}

absl::StatusOr<State> ExecState::GetMount(std::string_view target) const {
  for (const MountOutput& m : *mounts_) {
    if (m.target != target) continue;
    if (!m.error.ok()) return m.error;
    return m.output ? State::FromOutput(*m.output) : Scratch();
  }
  return absl::NotFoundError(absl::StrCat("exec has no mount at ", AV(target)));
}

}  // namespace kiln::llb
