// kilnd: the kiln build daemon. Composition root: flags + config file → Options structs →
// cache, worker, services, server; then serve until SIGTERM/SIGINT.

#include <pthread.h>
#include <signal.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <thread>

#include "CLI/CLI.hpp"
#include "absl/strings/str_join.h"
#include "base/status.h"
#include "boost/asio/post.hpp"
#include "boost/asio/thread_pool.hpp"
#include "daemon/cache/manager.h"
#include "daemon/config/config.h"
#include "daemon/content/store.h"
#include "daemon/executor/executor.h"
#include "daemon/ops/cache_mounts.h"
#include "daemon/ops/worker.h"
#include "daemon/server/control_service.h"
#include "daemon/server/server.h"
#include "daemon/server/worker_info.h"
#include "daemon/session/manager.h"
#include "daemon/solver/solver.h"
#include "daemon/util/fs.h"
#include "daemon/util/logging.h"
#include "daemon/util/mounts.h"
#include "kiln_version.h"

namespace kiln {
namespace {

constexpr char kDefaultConfigPath[] = "/etc/kiln/kilnd.toml";

struct Flags {
  std::vector<std::string> addresses;
  std::string root;
  std::string config_path;
  std::string tlscert, tlskey, tlscacert;
  bool debug = false;
  bool insecure_tcp = false;
  std::string oci_binary;
  std::vector<std::string> entitlements;
};

// Finds `name` on PATH (or takes it as a path when it has a slash).
std::string LookPath(const std::string& name) {
  if (name.find('/') != std::string::npos) return access(name.c_str(), X_OK) == 0 ? name : "";
  const char* path = std::getenv("PATH");
  std::string_view rest = path ? path : "/usr/local/bin:/usr/bin:/bin";
  while (!rest.empty()) {
    size_t colon = rest.find(':');
    std::string dir(rest.substr(0, colon));
    std::string candidate = (dir.empty() ? "." : dir) + "/" + name;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
    if (colon == std::string_view::npos) break;
    rest.remove_prefix(colon + 1);
  }
  return "";
}

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "kilnd: %s\n", std::string(status.message()).c_str());
  return 1;
}

int Run(const Flags& flags, const CLI::App& app) {
  // Config file first, flags on top.
  config::Config cfg;
  std::vector<std::string> warnings;
  std::string config_path = flags.config_path;
  bool explicit_config = app.count("--config") > 0;
  if (!explicit_config && std::filesystem::exists(kDefaultConfigPath)) {
    config_path = kDefaultConfigPath;
  }
  if (!config_path.empty()) {
    auto loaded = config::LoadConfigFile(config_path);
    if (!loaded.ok()) return Fail(loaded.status());
    cfg = std::move(loaded->config);
    warnings = std::move(loaded->warnings);
  }
  if (app.count("--root")) cfg.root = flags.root;
  if (app.count("--addr")) cfg.addresses = flags.addresses;
  if (cfg.addresses.empty()) cfg.addresses = {config::kDefaultAddress};
  if (app.count("--debug")) cfg.debug = flags.debug;
  if (app.count("--tlscert")) cfg.tls.cert = flags.tlscert;
  if (app.count("--tlskey")) cfg.tls.key = flags.tlskey;
  if (app.count("--tlscacert")) cfg.tls.ca = flags.tlscacert;
  if (app.count("--oci-worker-binary")) cfg.oci_binary = flags.oci_binary;
  if (cfg.oci_binary.empty()) cfg.oci_binary = "crun";
  if (app.count("--allow-insecure-entitlement")) {
    for (const std::string& e : flags.entitlements) {
      if (e != "security.insecure" && e != "network.host") {
        return Fail(absl::InvalidArgumentError(absl::StrCat(
            "--allow-insecure-entitlement ", e, ": want security.insecure or network.host")));
      }
      cfg.insecure_entitlements.push_back(e);
    }
  }

  InitLogging(cfg.debug);
  auto log = Logger("kilnd");
  for (const std::string& w : warnings) log->warn("{}", w);
  if (!config_path.empty()) log->info("config loaded from {}", config_path);
  log->debug("effective config: root={} addresses=[{}] oci-worker-binary={} registries={}",
             cfg.root, absl::StrJoin(cfg.addresses, ", "), cfg.oci_binary, cfg.registries.size());

  namespace fs = std::filesystem;
  fs::path root = fs::absolute(cfg.root).lexically_normal();
  if (auto st = util::EnsureDir(root, 0700); !st.ok()) return Fail(Annotate(st, "state root"));
  auto lock = util::FileLock::TryAcquire(root / "kilnd.lock");
  if (!lock.ok()) {
    if (absl::IsFailedPrecondition(lock.status())) {
      return Fail(absl::FailedPreconditionError(
          absl::StrCat("another kilnd is already using the state root ", root.string(), ": ",
                       lock.status().message(), "; stop it or pass a different --root")));
    }
    return Fail(lock.status());
  }
  for (const char* dir :
       {"content/blobs/sha256", "content/ingest", "snapshots", "cache-mounts", "tmp"}) {
    if (auto st = util::EnsureDir(root / dir, 0700); !st.ok()) return Fail(st);
  }
  // The executor first: it kills containers a crashed daemon left running (their runtime
  // state is under tmp/executor) and cleans up its own directory.
  std::string runtime = LookPath(cfg.oci_binary);
  std::unique_ptr<executor::Executor> exec;
  if (runtime.empty()) {
    log->warn("OCI runtime '{}' not found on PATH: RUN steps will fail until it is installed",
              cfg.oci_binary);
  } else {
    auto created =
        executor::Executor::Create({.runtime = runtime, .state_dir = root / "tmp" / "executor"});
    if (!created.ok()) return Fail(Annotate(created.status(), "OCI runtime " + runtime));
    exec = *std::move(created);
  }
  // The rest of tmp/ is work in progress abandoned by a previous run, possibly still mounted
  // (read-only views, secret tmpfs) if that run crashed.
  {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(root / "tmp", ec)) {
      if (entry.path().filename() == "executor") continue;
      if (auto st = util::UnmountAll(entry.path().string()); !st.ok()) return Fail(st);
      fs::remove_all(entry.path(), ec);
      if (ec)
        return Fail(absl::InternalError("remove " + entry.path().string() + ": " + ec.message()));
    }
  }

  auto cache = cache::Manager::Open({.root = root});
  if (!cache.ok()) return Fail(Annotate(cache.status(), "open build cache"));

  ops::CacheMounts cache_mounts(root / "cache-mounts");
  auto blobs = content::Store::Open(root / "content");
  if (!blobs.ok()) return Fail(Annotate(blobs.status(), "content store"));

  server::WorkerInfo worker;
  auto worker_id = server::LoadOrCreateWorkerId(root);
  if (!worker_id.ok()) return Fail(Annotate(worker_id.status(), "worker id"));
  worker.id = *worker_id;
  worker.labels = server::WorkerLabels(cfg.oci_binary);
  worker.platforms = server::DetectPlatforms();
  struct statvfs vfs;
  int64_t fs_total =
      ::statvfs(root.c_str(), &vfs) == 0 ? static_cast<int64_t>(vfs.f_blocks) * vfs.f_frsize : 0;
  worker.gc_policy = cache::DefaultGcPolicy(cfg.gc_keep_storage.AsBytes(fs_total), fs_total);

  boost::asio::thread_pool pool(std::max(4u, 2 * std::thread::hardware_concurrency()));
  session::Manager sessions({});
  server::ProgressRegistry progress;
  ops::CacheStore cache_store(**cache);
  solver::Solver solver(
      {.post = [&pool](std::function<void()> fn) { boost::asio::post(pool, std::move(fn)); },
       .cache = &cache_store,
       .on_exec =
           [](const solver::Vertex& v, const std::string& key) {
             Logger("solver")->debug("run \"{}\" key={}", v.name, key);
           }});
  server::WorkerBase base{.worker = {.cache = cache->get(),
                                     .sessions = &sessions,
                                     .executor = exec.get(),
                                     .cache_mounts = &cache_mounts,
                                     .content = blobs->get()},
                          .allowed_entitlements = cfg.insecure_entitlements,
                          .registry_hosts = cfg.registries};
  server::GatewayService gateway({.base = &base, .solver = &solver, .worker = &worker});
  server::ControlService control({.base = &base,
                                  .pool = &pool,
                                  .progress = &progress,
                                  .solver = &solver,
                                  .gateway = &gateway,
                                  .worker = worker});
  server::UnimplementedService fallback;
  auto srv = server::Server::Start({.addresses = cfg.addresses,
                                    .tls = {cfg.tls.cert, cfg.tls.key, cfg.tls.ca},
                                    .insecure_tcp = flags.insecure_tcp,
                                    .services = {&control, &gateway},
                                    .fallback = &fallback});
  if (!srv.ok()) return Fail(srv.status());
  log->info("kilnd {} (BuildKit API {}) root={} worker={} listening on {}", kVersion,
            server::KilnBuildkitVersion().version(), root.string(), worker.id,
            absl::StrJoin((*srv)->listening(), ", "));

  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  int sig = 0;
  sigwait(&set, &sig);
  log->info("received {}, shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  sessions.Shutdown();  // builds waiting on their clients fail now
  (*srv)->Shutdown(5000);
  if (!control.WaitIdle(std::chrono::seconds(10))) {
    log->warn("builds still running after 10s; exiting anyway");
    std::_Exit(1);
  }
  pool.join();
  log->info("stopped");
  return 0;
}

}  // namespace
}  // namespace kiln

int main(int argc, char** argv) {
  // Block the shutdown signals before any thread starts so that only sigwait sees them.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);

  CLI::App app{"kilnd: a container image build daemon that speaks BuildKit's API", "kilnd"};
  kiln::Flags flags;
  app.add_option("--addr", flags.addresses,
                 "listening address (repeatable): unix:///PATH, tcp://HOST:PORT or fd://[N] "
                 "(default unix:///run/kiln/kilnd.sock)");
  app.add_option("--root", flags.root, "state directory (default /var/lib/kiln)");
  app.add_option("--config", flags.config_path,
                 "buildkitd.toml-style config file (default /etc/kiln/kilnd.toml if present)")
      ->check(CLI::ExistingFile);
  app.add_option("--tlscert", flags.tlscert, "server certificate for TCP listeners (PEM)");
  app.add_option("--tlskey", flags.tlskey, "server key for TCP listeners (PEM)");
  app.add_option("--tlscacert", flags.tlscacert, "CA that must sign client certificates (PEM)");
  app.add_flag("--insecure-tcp", flags.insecure_tcp,
               "allow TCP listeners without TLS (anyone who reaches the port can build)");
  app.add_flag("--debug", flags.debug, "debug logging");
  app.add_option("--oci-worker-binary", flags.oci_binary,
                 "OCI runtime for RUN steps: crun (default) or runc, or a path");
  app.add_option("--allow-insecure-entitlement", flags.entitlements,
                 "entitlement builds may ask for (repeatable): security.insecure, network.host");
  app.set_version_flag("--version", std::string("kilnd ") + kiln::kVersion + " " + kiln::kRevision);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return kiln::Run(flags, app);
}
