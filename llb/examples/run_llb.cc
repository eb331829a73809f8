// run-llb: writes an LLB Definition with RUN steps to stdout, built from a JSON spec (a file
// argument, or stdin), for driving kilnd's exec support from scripts and tests:
//
//   run-llb spec.json | kiln build --local rootfs=ROOTFS --output type=local,dest=OUT
//
//   {"base": "rootfs",                      local source copied in as the root filesystem
//    "image": "busybox",                    or an image as the root filesystem
//    "platform": "linux/arm64",             the image's platform (default: the host's)
//    "steps": [{"run": "echo hi > /x",      each step: sh -c RUN on the previous root
//               "args": ["/bin/true"],      (or exact argv instead of "run")
//               "env": {"A": "1"}, "cwd": "/w", "user": "nobody", "hostname": "h",
//               "network": "none|host", "security": "insecure", "valid_exit_codes": [0, 3],
//               "extra_hosts": {"db": "10.0.0.2"}, "ulimits": {"nofile": [100, 200]},
//               "mounts": [{"type": "bind|cache|tmpfs", "target": "/c", "id": "c",
//                           "sharing": "shared|private|locked", "readonly": true,
//                           "from": "rootfs|step:N", "selector": "/sub", "size": 1048576}],
//               "secrets": [{"id": "s", "target": "/run/secrets/s", "env": "S",
//                            "mode": 256, "uid": 0, "gid": 0, "optional": false}],
//               "ssh": [{"id": "default", "target": "/ssh.sock", "optional": false}],
//               "name": "custom progress name", "no_cache": false}],
//    "output": "root" | {"step": N, "mount": "/out"}}

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>

#include "llb/llb.h"

namespace {

using json = nlohmann::json;
using namespace kiln::llb;

[[noreturn]] void Die(const std::string& msg) {
  std::fprintf(stderr, "run-llb: %s\n", msg.c_str());
  std::exit(1);
}

pb::CacheSharingOpt Sharing(const std::string& s) {
  if (s.empty() || s == "shared") return pb::SHARED;
  if (s == "private") return pb::PRIVATE;
  if (s == "locked") return pb::LOCKED;
  Die("unknown cache sharing \"" + s + "\"");
}

int Run(const json& spec) {
  const std::string base_name = spec.value("base", "rootfs");
  // "image": an image reference as the base instead of a local directory.
  ImageOptions image_options;
  if (spec.contains("platform")) {
    auto platform = ParsePlatform(spec["platform"].get<std::string>());
    if (!platform.ok()) Die(std::string(platform.status().message()));
    image_options.op.platform = *platform;
  }
  State base =
      spec.contains("image")
          ? Image(spec["image"].get<std::string>(), image_options)
          : Scratch().File(Copy(Local(base_name), "/", "/",
                                {.copy_dir_contents_only = true, .create_dest_path = true}),
                           {.custom_name = "copy " + base_name});
  std::vector<ExecState> steps;
  State cur = base;
  auto state_named = [&](const std::string& name) -> State {
    if (name == "rootfs" || name == base_name) return base;
    if (name.rfind("step:", 0) == 0) {
      size_t i = std::stoul(name.substr(5));
      if (i >= steps.size()) Die("no step " + name);
      return steps[i].Root();
    }
    if (name == "scratch") return Scratch();
    Die("unknown state \"" + name + "\"");
  };
  for (const json& s : spec.at("steps")) {
    RunOptions o;
    if (s.contains("args")) {
      o.args = s["args"].get<std::vector<std::string>>();
    } else {
      o.args = {"/bin/sh", "-c", s.at("run").get<std::string>()};
    }
    const json env_obj = s.value("env", json::object());
    for (auto& [k, v] : env_obj.items()) {
      o.env.emplace_back(k, v.get<std::string>());
    }
    if (s.contains("cwd")) o.cwd = s["cwd"].get<std::string>();
    if (s.contains("user")) o.user = s["user"].get<std::string>();
    if (s.contains("hostname")) o.hostname = s["hostname"].get<std::string>();
    if (s.contains("network")) o.network = s["network"] == "none" ? pb::NONE : pb::HOST;
    if (s.value("security", "") == "insecure") o.security = pb::INSECURE;
    if (s.contains("valid_exit_codes")) {
      o.valid_exit_codes = s["valid_exit_codes"].get<std::vector<int32_t>>();
    }
    const json extra_hosts_obj = s.value("extra_hosts", json::object());
    for (auto& [k, v] : extra_hosts_obj.items()) {
      o.extra_hosts.push_back({k, v.get<std::string>()});
    }
    const json ulimits_obj = s.value("ulimits", json::object());
    for (auto& [k, v] : ulimits_obj.items()) {
      o.ulimits.push_back({k, v.at(0).get<int64_t>(), v.at(1).get<int64_t>()});
    }
    for (const json& m : s.value("mounts", json::array())) {
      Mount mount;
      mount.target = m.at("target");
      std::string type = m.value("type", "bind");
      mount.type = type == "cache"   ? MountType::kCache
                   : type == "tmpfs" ? MountType::kTmpfs
                                     : MountType::kBind;
      if (type != "bind" && type != "cache" && type != "tmpfs") Die("unknown mount type " + type);
      mount.source = state_named(m.value("from", "scratch"));
      mount.selector = m.value("selector", "");
      mount.readonly = m.value("readonly", false);
      mount.cache_id = m.value("id", "");
      mount.cache_sharing = Sharing(m.value("sharing", ""));
      mount.tmpfs_size = m.value("size", int64_t{0});
      o.mounts.push_back(std::move(mount));
    }
    for (const json& m : s.value("secrets", json::array())) {
      SecretMount sm;
      sm.id = m.at("id");
      if (m.contains("target")) sm.target = m["target"].get<std::string>();
      if (m.contains("env")) sm.env = m["env"].get<std::string>();
      // Like the Dockerfile frontend: a secret with neither is a file in /run/secrets.
      if (!sm.target && !sm.env) sm.target = "/run/secrets/" + sm.id;
      sm.mode = m.value("mode", 0400u);
      sm.uid = m.value("uid", 0u);
      sm.gid = m.value("gid", 0u);
      sm.optional = m.value("optional", false);
      o.secrets.push_back(std::move(sm));
    }
    for (const json& m : s.value("ssh", json::array())) {
      SshMount sm;
      sm.id = m.value("id", "");
      sm.target = m.value("target", "");
      sm.mode = m.value("mode", 0600u);
      sm.uid = m.value("uid", 0u);
      sm.gid = m.value("gid", 0u);
      sm.optional = m.value("optional", false);
      o.ssh.push_back(std::move(sm));
    }
    o.op.custom_name = s.value("name", "");
    o.op.ignore_cache = s.value("no_cache", false);
    ExecState e = cur.Run(o);
    steps.push_back(e);
    cur = e.Root();
  }
  State out = cur;
  if (spec.contains("output") && spec["output"].is_object()) {
    size_t i = spec["output"].at("step");
    if (i >= steps.size()) Die("output names a missing step");
    auto m = steps[i].GetMount(spec["output"].at("mount").get<std::string>());
    if (!m.ok()) Die(std::string(m.status().message()));
    out = *m;
  }
  absl::StatusOr<pb::Definition> def = Marshal(out);
  if (!def.ok()) Die(std::string(def.status().message()));
  const std::string bytes = SerializeDefinition(*def);
  size_t written = 0;
  while (written < bytes.size()) {
    const ssize_t n = ::write(STDOUT_FILENO, bytes.data() + written, bytes.size() - written);
    if (n < 0) Die("write: " + std::string(std::strerror(errno)));
    written += static_cast<size_t>(n);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string text;
  if (argc > 1) {
    std::ifstream in(argv[1]);
    if (!in) Die(std::string("cannot read ") + argv[1]);
    text.assign(std::istreambuf_iterator<char>(in), {});
  } else {
    text.assign(std::istreambuf_iterator<char>(std::cin), {});
  }
  try {
    return Run(json::parse(text));
  } catch (const json::exception& e) {
    Die(std::string("bad spec: ") + e.what());
  }
}
