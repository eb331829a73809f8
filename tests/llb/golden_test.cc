// Golden checks against BuildKit v0.24.0's Go client: each graph below was also built with
// client/llb (same options, platform linux/amd64, LocalUniqueID "kiln-golden") and its
// `buildctl debug dump-llb` output saved in testdata/<name>.jsonl. Matching digests means
// byte-identical ops; matching JSON means identical metadata (caps, descriptions) too.

#include <fstream>
#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "base/digest.h"
#include "llb/json.h"
#include "llb/llb.h"
#include "tests/testutil/status_matchers.h"

namespace kiln::llb {
namespace {

using ::kiln::testing::IsOk;

std::string ReadTestdata(const std::string& name) {
  std::ifstream in(std::string(KILN_LLB_TESTDATA) + "/" + name + ".jsonl");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> GoldenDigests(const std::string& jsonl) {
  std::vector<std::string> digests;
  std::istringstream lines(jsonl);
  for (std::string line; std::getline(lines, line);) {
    digests.push_back(nlohmann::json::parse(line).at("Digest").get<std::string>());
  }
  return digests;
}

std::vector<std::string> Digests(const pb::Definition& def) {
  std::vector<std::string> digests;
  for (const std::string& op : def.def()) digests.push_back(Sha256Digest(op));
  return digests;
}

// dump-llb drops symlink actions from its JSON ("Action":{}); we show them.
std::string HideSymlinkActions(std::string json) {
  const std::string marker = R"("Action":{"symlink":)";
  for (size_t pos = json.find(marker); pos != std::string::npos; pos = json.find(marker, pos)) {
    size_t end = pos + std::string(R"("Action":)").size();
    int depth = 0;
    do {
      if (json[end] == '{') ++depth;
      if (json[end] == '}') --depth;
      ++end;
    } while (depth > 0 && end < json.size());
    json.replace(pos, end - pos, R"("Action":{})");
    ++pos;
  }
  return json;
}

MarshalOptions GoldenOptions() {
  MarshalOptions options;
  options.platform = Platform{.os = "linux", .architecture = "amd64"};
  options.local_unique_id = "kiln-golden";
  return options;
}

// Marshals `state` and compares digests (op bytes) and the dump-llb JSON with the golden.
void ExpectGolden(const std::string& name, const State& state,
                  MarshalOptions options = GoldenOptions()) {
  SCOPED_TRACE(name);
  absl::StatusOr<pb::Definition> def = Marshal(state, options);
  ASSERT_THAT(def, IsOk());
  const std::string golden = ReadTestdata(name);
  ASSERT_FALSE(golden.empty()) << "missing testdata/" << name << ".jsonl";
  EXPECT_THAT(Digests(*def), ::testing::ElementsAreArray(GoldenDigests(golden)));
  EXPECT_EQ(HideSymlinkActions(DefinitionToJson(*def)), golden);
}

TEST(GoldenTest, ScratchMkdir) {
  ExpectGolden("scratch_mkdir", Scratch().File(Mkdir("/foo", 0755)));
}

TEST(GoldenTest, HelloGraph) {
  State result = Scratch()
                     .File(Copy(Local("context"), "/", "/",
                                {.copy_dir_contents_only = true,
                                 .create_dest_path = true,
                                 .allow_wildcard = true,
                                 .allow_empty_wildcard = true}))
                     .File(Mkfile("/hello.txt", 0644, "hello from kiln\n")
                               .Mkdir("/out", 0755, {.make_parents = true}),
                           {.custom_name = "write hello"});
  ExpectGolden("hello", result);
}

TEST(GoldenTest, LocalAttributes) {
  ExpectGolden("local_opts", Local("src", {.include_patterns = {"*.go", "a<b>&c"},
                                           .exclude_patterns = {"vendor", "**/*_test.go"},
                                           .follow_paths = {"go.mod"},
                                           .shared_key_hint = "src-hint",
                                           .session_id = "sess123"}));
}

TEST(GoldenTest, MultiActionFileOp) {
  const int64_t ts = 1700000000000000005;
  State base = Image("busybox").Dir("/work");
  State other = Local("other").Dir("/sub");
  CopyInput side = Mkdir("gen", 0700).Mkfile("gen/f", 0600, "x").WithState(Scratch().Dir("/tmp"));
  FileAction fa =
      Mkdir("a/b", 0755,
            {.make_parents = true, .chown = ParseChown("1000:1000"), .timestamp_ns = ts})
          .Mkfile("a/b/c.txt", 0640, "data", {.chown = ParseChown("app:staff")})
          .Copy(other, "file.txt", "dest/",
                {.follow_symlinks = true,
                 .create_dest_path = true,
                 .include_patterns = {"*.txt"},
                 .exclude_patterns = {"skip"},
                 .chown = ChownOpt{.user = UserOpt{.name = "root"}},
                 .mode = 0755,
                 .timestamp_ns = ts})
          .Copy(side, "gen", "/from-side/.", {.attempt_unpack = true, .mode_str = "u+x"})
          .Rm("old/*", {.allow_not_found = true, .allow_wildcard = true})
          .Symlink("../target", "link", {.timestamp_ns = ts});
  ExpectGolden("multi_file", base.File(fa));
}

TEST(GoldenTest, MergeAndDiff) {
  State a = Scratch().File(Mkfile("/a", 0644, "a"));
  State b = Scratch().File(Mkfile("/b", 0644, "b"));
  State img = Image("alpine:3.20");
  State m = Merge({img, Scratch(), Diff(img, img.File(Mkdir("/x", 0755))), a, b, a});
  ExpectGolden("merge_diff", Diff(m, Scratch()));
}

TEST(GoldenTest, ImageReferences) {
  ExpectGolden("image_plain", Image("busybox"));
  ExpectGolden("image_ns_tag", Image("foo/bar:1.0"));
  ExpectGolden("image_localhost", Image("localhost:5000/x"));
  ExpectGolden(
      "image_digest",
      Image("ghcr.io/a/b@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"));
  ExpectGolden("image_arm64",
               Image("docker.io/library/alpine:latest",
                     {.resolve_mode = ResolveMode::kForcePull,
                      .op = {.custom_name = "arm image",
                             .platform = Platform{.os = "linux", .architecture = "arm64"}}}));
}

TEST(GoldenTest, ExecWithEveryMountKind) {
  State busy = Image("busybox").AddEnv("A", "1").AddEnv("B", "2").Dir("/src");
  State cache_seed = Scratch().File(Mkdir("/seed", 0755));
  ExecState es = busy.Run({
      .args = {"sh", "-c", "echo hi > /out/x"},
      .env = {{"A", "3"}},
      .cwd = "build",
      .user = "nobody",
      .hostname = "builder",
      .network = pb::NONE,
      .security = pb::INSECURE,
      .extra_hosts = {{"db", "10.0.0.2"}},
      .mounts =
          {{.target = "/src", .source = Local("context"), .selector = "/app", .readonly = true},
           {.target = "/out"},
           {.target = "/cache",
            .source = cache_seed,
            .type = MountType::kCache,
            .cache_id = "gocache",
            .cache_sharing = pb::LOCKED},
           {.target = "/tmp", .type = MountType::kTmpfs, .tmpfs_size = 1 << 20},
           {.target = "/data", .source = busy, .selector = "/etc"}},
      .secrets = {{.id = "npm",
                   .target = "/run/secrets/npm",
                   .mode = 0440,
                   .uid = 1,
                   .gid = 2,
                   .optional = true},
                  {.id = "tok", .env = "TOKEN"}},
      .ssh = {{.id = "default"}},
      .op = {.custom_name = "RUN build"},
  });
  absl::StatusOr<State> out = es.GetMount("/out");
  absl::StatusOr<State> data = es.GetMount("/data");
  ASSERT_THAT(out, IsOk());
  ASSERT_THAT(data, IsOk());
  State final = Scratch()
                    .File(Copy(*out, "/x", "/x"))
                    .File(Copy(es.Root(), "/etc/passwd", "/passwd"))
                    .File(Copy(*data, "/", "/data"));
  ExpectGolden("exec", final);
}

TEST(GoldenTest, ExecDefaultPathFollowsDaemonCaps) {
  auto simple = [] { return Image("busybox").Run({.args = {"true"}}).Root(); };
  ExpectGolden("exec_simple", simple());
  MarshalOptions with_cap = GoldenOptions();
  with_cap.caps = std::set<std::string>{"exec.meta.base", "exec.meta.setsdefaultpath"};
  ExpectGolden("exec_caps_all", simple(), with_cap);
  MarshalOptions without_cap = GoldenOptions();
  without_cap.caps = std::set<std::string>{};
  ExpectGolden("exec_caps_none", simple(), without_cap);
}

TEST(GoldenTest, ExecReadonlyRootMountOutput) {
  ExecState es = Image("busybox").Run({
      .args = {"ls"},
      .mounts = {{.target = "/w"}},
      .readonly_rootfs = true,
      .op = {.platform = Platform{.os = "linux", .architecture = "arm64"}},
  });
  absl::StatusOr<State> w = es.GetMount("/w");
  ASSERT_THAT(w, IsOk());
  ExpectGolden("exec_readonly_root", *w);
}

TEST(GoldenTest, HttpSource) {
  ExpectGolden("http",
               Http("https://example.com/a.tgz",
                    {.checksum = "sha256:"
                                 "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881",
                     .filename = "a.tgz",
                     .perm = 0600}));
}

TEST(GoldenTest, GitSources) {
  ExpectGolden("git_https",
               Git("https://github.com/moby/buildkit.git", {.ref = "v0.10.1", .subdir = "docs"}));
  ExpectGolden("git_opts",
               Git("git://example.com/repo.git",
                   {.keep_git_dir = true, .checksum = "0123abcd", .skip_submodules = true}));
  ExpectGolden("git_ssh", Git("git@example.com:org/repo.git",
                              {.ref = "main", .known_ssh_hosts = "example.com ssh-ed25519 AAAA"}));
  // No scheme: https.
  ExpectGolden("git_bare", Git("github.com/moby/buildkit"));
}

}  // namespace
}  // namespace kiln::llb
