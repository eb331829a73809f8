#include "llb/state.h"

#include <algorithm>

#include "llb/internal/gopath.h"

namespace kiln::llb {

struct State::Meta {
  std::vector<std::pair<std::string, std::string>> env;
  std::string dir = "/";
  std::string user;
  std::string hostname;
  std::optional<Platform> platform;
  pb::NetMode network = pb::UNSET;
  pb::SecurityMode security = pb::SANDBOX;
  std::vector<HostIP> extra_hosts;
  std::vector<Ulimit> ulimits;
  std::string cgroup_parent;
};

const std::shared_ptr<const State::Meta>& State::DefaultMeta() {
  static const auto* meta = new std::shared_ptr<const Meta>(std::make_shared<Meta>());
  return *meta;
}

State::State() : meta_(DefaultMeta()) {}

State::State(std::optional<internal::Output> output, std::shared_ptr<const Meta> meta)
    : output_(std::move(output)), meta_(std::move(meta)) {}

template <typename Fn>
State State::WithMeta(Fn&& mutate) const {
  auto meta = std::make_shared<Meta>(*meta_);
  mutate(*meta);
  return State(output_, std::move(meta));
}

State State::FromOutput(internal::Output output) { return State().WithOutput(std::move(output)); }

State State::WithOutput(internal::Output output) const {
  // Like BuildKit's ensurePlatform: an output that carries a platform sets the state's.
  std::optional<Platform> platform = output.platform;
  State next(std::move(output), meta_);
  if (platform.has_value()) return next.WithPlatform(*platform);
  return next;
}

State State::AddEnv(std::string_view key, std::string_view value) const {
  return WithMeta([&](Meta& m) {
    std::erase_if(m.env, [&](const auto& kv) { return kv.first == key; });
    m.env.emplace_back(std::string(key), std::string(value));
  });
}

State State::Dir(std::string_view dir) const {
  return WithMeta([&](Meta& m) {
    if (internal::IsAbsPath(dir)) {
      m.dir = std::string(dir);
    } else {
      m.dir = internal::JoinPath(m.dir.empty() ? "/" : m.dir, dir);
    }
  });
}

State State::User(std::string_view user) const {
  return WithMeta([&](Meta& m) { m.user = std::string(user); });
}

State State::Hostname(std::string_view hostname) const {
  return WithMeta([&](Meta& m) { m.hostname = std::string(hostname); });
}

State State::WithPlatform(const Platform& platform) const {
  return WithMeta([&](Meta& m) { m.platform = NormalizePlatform(platform); });
}

State State::Network(pb::NetMode mode) const {
  return WithMeta([&](Meta& m) { m.network = mode; });
}

State State::Security(pb::SecurityMode mode) const {
  return WithMeta([&](Meta& m) { m.security = mode; });
}

State State::AddExtraHost(std::string_view host, std::string_view ip) const {
  return WithMeta([&](Meta& m) {
    m.extra_hosts.push_back(HostIP{std::string(host), std::string(ip)});
  });
}

State State::AddUlimit(std::string_view name, int64_t soft, int64_t hard) const {
  return WithMeta([&](Meta& m) { m.ulimits.push_back(Ulimit{std::string(name), soft, hard}); });
}

State State::WithCgroupParent(std::string_view cgroup_parent) const {
  return WithMeta([&](Meta& m) { m.cgroup_parent = std::string(cgroup_parent); });
}

const std::vector<std::pair<std::string, std::string>>& State::Env() const { return meta_->env; }

std::optional<std::string> State::GetEnv(std::string_view key) const {
  for (const auto& [k, v] : meta_->env) {
    if (k == key) return v;
  }
  return std::nullopt;
}

const std::string& State::GetDir() const { return meta_->dir; }
const std::string& State::GetUser() const { return meta_->user; }
const std::string& State::GetHostname() const { return meta_->hostname; }
const std::optional<Platform>& State::GetPlatform() const { return meta_->platform; }
pb::NetMode State::GetNetwork() const { return meta_->network; }
pb::SecurityMode State::GetSecurity() const { return meta_->security; }
const std::vector<HostIP>& State::ExtraHosts() const { return meta_->extra_hosts; }
const std::vector<Ulimit>& State::Ulimits() const { return meta_->ulimits; }
const std::string& State::CgroupParent() const { return meta_->cgroup_parent; }

}  // namespace kiln::llb
