#include "daemon/ops/exec_op.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <memory>
#include <optional>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/ids.h"
#include "base/status.h"
#include "daemon/ops/internal/root_fs.h"
#include "daemon/session/secrets.h"
#include "daemon/session/ssh.h"
#include "daemon/snapshot/snapshotter.h"
#include "daemon/util/logging.h"

namespace kiln::ops {
namespace fs = std::filesystem;
namespace {

constexpr char kDefaultSshTarget[] = "/run/buildkit/ssh_agent.0";

// The host path of `selector` inside the tree at `root`, resolved with chroot semantics so
// that symlinks cannot lead a bind mount's source out of the tree.
absl::StatusOr<std::string> HostPathInRoot(const fs::path& root, const std::string& selector) {
  if (selector.empty() || selector == "/") return root.string();
  KILN_ASSIGN_OR_RETURN(internal::UniqueFd root_fd, internal::OpenRoot(root.string()));
  int err = 0;
  int fd = internal::OpenInRoot(root_fd.get(), selector, O_PATH, 0, &err);
  if (fd < 0) return internal::PathError(err, "mount source", selector);
  internal::UniqueFd f(fd);
  char buf[PATH_MAX + 1];
  ssize_t n = readlink(absl::StrCat("/proc/self/fd/", fd).c_str(), buf, PATH_MAX);
  if (n < 0) return ErrnoToStatus(errno, "readlink mount source");
  std::string path(buf, static_cast<size_t>(n));
  std::string prefix = root.string();
  if (path != prefix && path.rfind(prefix + "/", 0) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("mount source ", selector, " resolves outside its tree"));
  }
  return path;
}

// A private tmpfs for the secret files and SSH sockets of one RUN: memory only, never on
// the state root's disk. Unmounted and removed on destruction.
class RunTmpfs {
 public:
  static absl::StatusOr<std::unique_ptr<RunTmpfs>> Create(cache::Manager& cache) {
    KILN_ASSIGN_OR_RETURN(fs::path dir, cache.TempDir("run-"));
    if (mount("tmpfs", dir.c_str(), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
              "mode=0700,size=16m") != 0) {
      int err = errno;
      std::error_code ec;
      fs::remove(dir, ec);
      return ErrnoToStatus(err, "mount tmpfs for secrets");
    }
    return std::unique_ptr<RunTmpfs>(new RunTmpfs(std::move(dir)));
  }
  ~RunTmpfs() {
    if (umount2(dir_.c_str(), MNT_DETACH) != 0) {
      Logger("exec")->warn("unmount {}: {}", dir_.string(), std::strerror(errno));
      return;
    }
    std::error_code ec;
    fs::remove(dir_, ec);
  }
  const fs::path& dir() const { return dir_; }
  fs::path NewPath(const std::string& prefix) { return dir_ / absl::StrCat(prefix, next_++); }

 private:
  explicit RunTmpfs(fs::path dir) : dir_(std::move(dir)) {}
  fs::path dir_;
  int next_ = 0;
};

absl::Status WriteSecretFile(const fs::path& path, const std::string& data, uid_t uid, gid_t gid,
                             mode_t mode) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return ErrnoToStatus(errno, "create secret file");
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = write(fd, data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      close(fd);
      return ErrnoToStatus(err, "write secret file");
    }
    off += static_cast<size_t>(n);
  }
  if (fchown(fd, uid, gid) != 0 || fchmod(fd, mode & 07777) != 0) {
    int err = errno;
    close(fd);
    return ErrnoToStatus(err, "set secret file owner");
  }
  close(fd);
  return absl::OkStatus();
}

CacheSharing SharingOf(pb::CacheSharingOpt s) {
  switch (s) {
    case pb::PRIVATE:
      return CacheSharing::kPrivate;
    case pb::LOCKED:
      return CacheSharing::kLocked;
    default:
      return CacheSharing::kShared;
  }
}

// Copies the tree of `ref` (or its `selector` subtree) into the empty directory `dest`.
absl::Status FillFrom(cache::Manager& cache, const cache::ImmutableRef& ref,
                      const std::string& selector, const fs::path& dest) {
  if (selector.empty() || selector == "/") {
    for (const fs::path& layer : ref.LayerPaths()) {
      KILN_RETURN_IF_ERROR(snapshot::ApplyLayer(layer, dest));
    }
    return absl::OkStatus();
  }
  KILN_ASSIGN_OR_RETURN(fs::path tmp, cache.TempDir("cachefrom-"));
  absl::Status st = [&]() -> absl::Status {
    for (const fs::path& layer : ref.LayerPaths()) {
      KILN_RETURN_IF_ERROR(snapshot::ApplyLayer(layer, tmp));
    }
    KILN_ASSIGN_OR_RETURN(std::string sub, HostPathInRoot(tmp, selector));
    if (rename(sub.c_str(), dest.c_str()) != 0) {
      return ErrnoToStatus(errno, absl::StrCat("use ", selector, " as cache mount base"));
    }
    return absl::OkStatus();
  }();
  std::error_code ec;
  fs::remove_all(tmp, ec);
  return st;
}

}  // namespace

size_t ExecOp::NumOutputs(const pb::ExecOp& op) {
  int64_t max = -1;
  for (const auto& m : op.mounts()) max = std::max(max, m.output());
  return static_cast<size_t>(max + 1);
}

std::string ExecOp::DisplayName(const pb::ExecOp& op) {
  return absl::StrJoin(op.meta().args(), " ");
}

absl::StatusOr<solver::CacheMap> ExecOp::GetCacheMap(const Context&) {
  if (op_.security() == pb::INSECURE && !worker_.allow_insecure) {
    return absl::PermissionDeniedError(
        "security.insecure is not allowed: start kilnd with --allow-insecure-entitlement "
        "security.insecure and ask for it with --allow security.insecure");
  }
  if (op_.network() == pb::HOST && !worker_.allow_network_host) {
    return absl::PermissionDeniedError(
        "network.host is not allowed: start kilnd with --allow-insecure-entitlement "
        "network.host and ask for it with --allow network.host");
  }
  // Inputs that are only mounted read-only contribute the content of the mounted paths;
  // anything mounted writable (or as the root, or as a cache base) contributes its key.
  std::map<size_t, std::vector<std::string>> selectors;
  std::set<size_t> by_key;
  for (const auto& m : op_.mounts()) {
    if (m.input() < 0 || static_cast<size_t>(m.input()) >= num_inputs_) continue;
    auto i = static_cast<size_t>(m.input());
    if (m.mounttype() == pb::BIND && m.readonly() && m.dest() != "/") {
      selectors[i].push_back(m.selector().empty() ? "/" : m.selector());
    } else {
      by_key.insert(i);
    }
  }
  solver::CacheMap cm;
  cm.digest = digest_;
  cm.deps.resize(num_inputs_);
  for (auto& [i, sel] : selectors) {
    if (by_key.contains(i)) continue;
    cache::Manager* cache = worker_.cache;
    cm.deps[i].content_digest = [cache, sel](const Context& ctx, const solver::ResultPtr& r) {
      return ContentChecksum(ctx, *cache, r, sel);
    };
  }
  return cm;
}

absl::StatusOr<std::vector<solver::ResultPtr>> ExecOp::Exec(
    const Context& ctx, const std::vector<solver::ResultPtr>& inputs) {
  if (worker_.executor == nullptr) {
    return absl::FailedPreconditionError(
        "this kilnd cannot run commands: no OCI runtime (install crun or runc, or pass "
        "--oci-worker-binary)");
  }
  cache::Manager& cache = *worker_.cache;
  const pb::Meta& pm = op_.meta();
  if (pm.args_size() == 0) return absl::InvalidArgumentError("exec op without arguments");

  auto input_ref = [&](int64_t index) -> const cache::ImmutableRef* {
    if (index < 0 || static_cast<size_t>(index) >= inputs.size()) return nullptr;
    return AsRef(inputs[static_cast<size_t>(index)]).ref();
  };

  executor::Meta meta;
  meta.args.assign(pm.args().begin(), pm.args().end());
  meta.env.assign(pm.env().begin(), pm.env().end());
  meta.cwd = pm.cwd().empty() ? "/" : pm.cwd();
  meta.user = pm.user();
  meta.hostname = pm.hostname();
  for (const auto& h : pm.extrahosts()) meta.extra_hosts.emplace_back(h.host(), h.ip());
  for (const auto& u : pm.ulimit()) {
    meta.ulimits.push_back(
        {u.name(), static_cast<uint64_t>(u.soft()), static_cast<uint64_t>(u.hard())});
  }
  meta.net = op_.network() == pb::NONE ? executor::NetMode::kNone : executor::NetMode::kHost;
  meta.security = op_.security() == pb::INSECURE ? executor::SecurityMode::kInsecure
                                                 : executor::SecurityMode::kSandbox;
  meta.remove_mount_stubs_recursive = pm.removemountstubsrecursive();

  // Everything below is released in reverse order on every path out.
  std::unique_ptr<RunTmpfs> tmpfs;
  std::vector<std::unique_ptr<session::SshAgentProxy>> agents;
  std::vector<snapshot::MountPtr> views;
  std::vector<CacheMountLease> leases;
  std::map<int64_t, cache::MutableRef> outputs;   // output index → its writable layer
  std::vector<cache::MutableRef> scratch_layers;  // writable, but without an output
  std::optional<cache::MutableRef> root;
  std::shared_ptr<session::Session> session;

  auto get_session = [&]() -> absl::StatusOr<std::shared_ptr<session::Session>> {
    if (!session) {
      KILN_ASSIGN_OR_RETURN(
          session, worker_.sessions->Get(ctx, worker_.session_id, std::chrono::milliseconds(5000)));
    }
    return session;
  };
  auto get_tmpfs = [&]() -> absl::StatusOr<RunTmpfs*> {
    if (tmpfs) return tmpfs.get();
    KILN_ASSIGN_OR_RETURN(tmpfs, RunTmpfs::Create(cache));
    return tmpfs.get();
  };

  // Mounts in destination order, so that a parent is mounted before what is inside it.
  std::vector<const pb::Mount*> order;
  for (const auto& m : op_.mounts()) order.push_back(&m);
  std::stable_sort(order.begin(), order.end(),
                   [](const pb::Mount* a, const pb::Mount* b) { return a->dest() < b->dest(); });

  std::vector<executor::Mount> mounts;
  for (const pb::Mount* mp : order) {
    const pb::Mount& m = *mp;
    if (m.dest() == "/") {
      if (m.mounttype() != pb::BIND) {
        return absl::InvalidArgumentError("the root mount must be a bind of an input");
      }
      KILN_ASSIGN_OR_RETURN(cache::MutableRef layer, cache.New(input_ref(m.input())));
      root = std::move(layer);
      continue;
    }
    // Secrets and agents have default places; everything else needs an absolute target.
    bool defaulted = m.dest().empty() && (m.mounttype() == pb::SECRET || m.mounttype() == pb::SSH);
    if (!defaulted && (m.dest().empty() || m.dest()[0] != '/')) {
      return absl::InvalidArgumentError(
          absl::StrCat("mount destination must be absolute: \"", m.dest(), "\""));
    }
    switch (m.mounttype()) {
      case pb::BIND: {
        std::string source;
        if (!m.readonly() || m.output() >= 0) {
          KILN_ASSIGN_OR_RETURN(cache::MutableRef layer, cache.New(input_ref(m.input())));
          KILN_ASSIGN_OR_RETURN(source, HostPathInRoot(layer.root(), m.selector()));
          if (m.output() >= 0) {
            outputs[m.output()] = std::move(layer);
          } else {
            scratch_layers.push_back(std::move(layer));
          }
        } else if (const cache::ImmutableRef* ref = input_ref(m.input())) {
          KILN_ASSIGN_OR_RETURN(snapshot::MountPtr view, ref->Mount());
          KILN_ASSIGN_OR_RETURN(source, HostPathInRoot(view->root(), m.selector()));
          views.push_back(std::move(view));
        } else {
          // A read-only scratch mount: an empty directory.
          KILN_ASSIGN_OR_RETURN(cache::MutableRef layer, cache.New(nullptr));
          source = layer.root().string();
          scratch_layers.push_back(std::move(layer));
        }
        mounts.push_back({m.dest(), "bind", source, {"rbind", m.readonly() ? "ro" : "rw"}});
        break;
      }
      case pb::CACHE: {
        if (worker_.cache_mounts == nullptr) {
          return absl::FailedPreconditionError("cache mounts are not available in this kilnd");
        }
        const cache::ImmutableRef* base = input_ref(m.input());
        std::string key = m.cacheopt().id();
        if (key.empty()) key = m.dest();
        if (base != nullptr) absl::StrAppend(&key, "\nfrom ", base->id(), " ", m.selector());
        CacheMounts::InitFn init;
        if (base != nullptr) {
          init = [&cache, base, &m](const fs::path& dir) {
            return FillFrom(cache, *base, m.selector(), dir);
          };
        }
        KILN_ASSIGN_OR_RETURN(
            CacheMountLease lease,
            worker_.cache_mounts->Acquire(ctx, key, SharingOf(m.cacheopt().sharing()), init));
        mounts.push_back(
            {m.dest(), "bind", lease.dir().string(), {"rbind", m.readonly() ? "ro" : "rw"}});
        leases.push_back(std::move(lease));
        break;
      }
      case pb::TMPFS: {
        std::vector<std::string> opts = {"nosuid", "nodev", "mode=1777"};
        if (m.tmpfsopt().size() > 0) opts.push_back(absl::StrCat("size=", m.tmpfsopt().size()));
        mounts.push_back({m.dest(), "tmpfs", "tmpfs", std::move(opts)});
        break;
      }
      case pb::SECRET: {
        const auto& so = m.secretopt();
        KILN_ASSIGN_OR_RETURN(auto s, get_session());
        absl::StatusOr<std::string> value = session::GetSecret(ctx, *s, so.id());
        if (absl::IsNotFound(value.status()) && so.optional()) break;
        if (!value.ok()) return value.status();
        KILN_ASSIGN_OR_RETURN(RunTmpfs * t, get_tmpfs());
        fs::path file = t->NewPath("secret-");
        KILN_RETURN_IF_ERROR(
            WriteSecretFile(file, *value, so.uid(), so.gid(), so.mode() == 0 ? 0400 : so.mode()));
        std::string dest = m.dest().empty() ? absl::StrCat("/run/secrets/", so.id()) : m.dest();
        mounts.push_back({dest, "bind", file.string(), {"rbind", "ro"}});
        break;
      }
      case pb::SSH: {
        const auto& so = m.sshopt();
        KILN_ASSIGN_OR_RETURN(auto s, get_session());
        KILN_ASSIGN_OR_RETURN(RunTmpfs * t, get_tmpfs());
        fs::path dir = t->NewPath("ssh-");
        if (mkdir(dir.c_str(), 0711) != 0) return ErrnoToStatus(errno, "mkdir ssh socket dir");
        auto agent = session::SshAgentProxy::Start(
            ctx, s,
            {.id = so.id().empty() ? session::kDefaultSshId : so.id(),
             .dir = dir.string(),
             .uid = so.uid(),
             .gid = so.gid(),
             .mode = static_cast<mode_t>(so.mode() == 0 ? 0600 : so.mode())});
        if (absl::IsNotFound(agent.status()) && so.optional()) break;
        if (!agent.ok()) return agent.status();
        mounts.push_back({m.dest().empty() ? kDefaultSshTarget : m.dest(),
                          "bind",
                          (*agent)->socket_path(),
                          {"rbind"}});
        agents.push_back(*std::move(agent));
        break;
      }
      default:
        return absl::InvalidArgumentError(
            absl::StrCat("unknown mount type ", static_cast<int>(m.mounttype())));
    }
  }
  if (!root) return absl::InvalidArgumentError("exec op without a root mount");

  for (const auto& se : op_.secretenv()) {
    KILN_ASSIGN_OR_RETURN(auto s, get_session());
    absl::StatusOr<std::string> value = session::GetSecret(ctx, *s, se.id());
    if (absl::IsNotFound(value.status()) && se.optional()) continue;
    if (!value.ok()) return value.status();
    meta.secret_env.push_back(absl::StrCat(se.name(), "=", *value));
  }

  size_t logged = 0;
  bool clipped = false;
  auto output = [&](int fd, std::string_view data) {
    if (clipped) return;
    if (logged + data.size() > kMaxLogBytes) {
      data = data.substr(0, kMaxLogBytes - logged);
      clipped = true;
    }
    logged += data.size();
    if (!data.empty()) ReportLog(fd, data);
    if (clipped) ReportLog(2, "\n[output clipped, log limit 2MiB reached]\n");
  };
  absl::Status run = worker_.executor->Run(ctx, NewRandomId(), root->root(), meta, mounts, output);
  if (!run.ok()) {
    auto code = executor::ExitCodeOf(run);
    bool valid = code && std::find(pm.validexitcodes().begin(), pm.validexitcodes().end(), *code) !=
                             pm.validexitcodes().end();
    if (!valid) return run;
  }
  agents.clear();  // no one connects after the process ended

  std::vector<solver::ResultPtr> results(NumOutputs(op_));
  for (const pb::Mount& m : op_.mounts()) {
    if (m.output() < 0) continue;
    std::optional<cache::MutableRef> layer;
    if (m.dest() == "/") {
      layer = std::move(*root);
      root.reset();
    } else if (auto it = outputs.find(m.output()); it != outputs.end()) {
      layer = std::move(it->second);
      outputs.erase(it);
    }
    if (!layer) continue;
    KILN_ASSIGN_OR_RETURN(cache::ImmutableRef ref,
                          layer->Commit(absl::StrCat("exec ", DisplayName(op_))));
    results[static_cast<size_t>(m.output())] = std::make_shared<RefResult>(std::move(ref));
  }
  for (auto& r : results) {
    if (!r) r = std::make_shared<RefResult>(std::nullopt);
  }
  return results;
}

}  // namespace kiln::ops
