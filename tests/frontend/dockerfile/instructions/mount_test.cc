// ParseMount: RUN --mount values of every type, options, defaults and errors.

#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/status/status.h"
#include "frontend/dockerfile/instructions/instructions.h"
#include "tests/testutil/status_matchers.h"

namespace kiln::dockerfile::instructions {
namespace {

using ::kiln::testing::IsOk;
using ::kiln::testing::StatusIs;
using ::testing::HasSubstr;

absl::StatusOr<std::string> Identity(std::string_view s) { return std::string(s); }

Mount MustMount(std::string_view value) {
  auto m = ParseMount(value, Identity);
  EXPECT_THAT(m, IsOk()) << value;
  if (!m.ok()) return Mount{};
  return *m;
}

auto Invalid(std::string_view message) {
  return StatusIs(absl::StatusCode::kInvalidArgument, std::string(message));
}

TEST(MountTest, BindDefaults) {
  Mount m = MustMount("target=/src");
  EXPECT_EQ(m.type, MountType::kBind);
  EXPECT_EQ(m.target, "/src");
  EXPECT_EQ(m.source, "/");
  EXPECT_EQ(m.from, "");
  EXPECT_TRUE(m.read_only);
  EXPECT_FALSE(m.read_only_set);
  EXPECT_FALSE(m.mode.has_value());
}

TEST(MountTest, BindOptionsAndAliases) {
  Mount m = MustMount("type=bind,source=/a,target=/b,from=builder,rw");
  EXPECT_EQ(m.source, "/a");
  EXPECT_EQ(m.target, "/b");
  EXPECT_EQ(m.from, "builder");
  EXPECT_FALSE(m.read_only);
  EXPECT_TRUE(m.read_only_set);
  EXPECT_EQ(MustMount("src=x,dst=/y").source, "x");
  EXPECT_EQ(MustMount("src=x,dst=/y").target, "/y");
  EXPECT_EQ(MustMount("destination=/z").target, "/z");
  EXPECT_FALSE(MustMount("target=/a,readwrite=true").read_only);
  EXPECT_FALSE(MustMount("target=/a,ro=false").read_only);
  EXPECT_TRUE(MustMount("target=/a,readonly=1").read_only);
  EXPECT_TRUE(MustMount("target=/a,rw=F").read_only);
  EXPECT_TRUE(MustMount("target=/a,readwrite,ro").read_only);
  Mount upper = MustMount("TYPE=Cache,Target=/x");
  EXPECT_EQ(upper.type, MountType::kCache);
  EXPECT_EQ(upper.target, "/x");
}

TEST(MountTest, Cache) {
  Mount m = MustMount("type=cache,target=/root/.cache/");
  EXPECT_EQ(m.type, MountType::kCache);
  EXPECT_EQ(m.cache_id, "/root/.cache");
  EXPECT_FALSE(m.read_only);
  EXPECT_FALSE(m.read_only_set);
  EXPECT_EQ(m.sharing, CacheSharing::kShared);
  EXPECT_EQ(m.source, "/");
  Mount full = MustMount(
      "type=cache,id=go-mod,target=/go/pkg/mod,sharing=locked,mode=0755,uid=1000,gid=2000,"
      "from=base,source=/cache,ro");
  EXPECT_EQ(full.cache_id, "go-mod");
  EXPECT_EQ(full.sharing, CacheSharing::kLocked);
  EXPECT_EQ(full.mode.value_or(0), 0755u);
  EXPECT_EQ(full.uid.value_or(0), 1000u);
  EXPECT_EQ(full.gid.value_or(0), 2000u);
  EXPECT_EQ(full.from, "base");
  EXPECT_EQ(full.source, "/cache");
  EXPECT_TRUE(full.read_only);
  EXPECT_EQ(MustMount("type=cache,target=/a,sharing=PRIVATE").sharing, CacheSharing::kPrivate);
}

TEST(MountTest, Tmpfs) {
  Mount m = MustMount("type=tmpfs,target=/tmp,size=64m");
  EXPECT_EQ(m.type, MountType::kTmpfs);
  EXPECT_EQ(m.size_bytes.value_or(0), 64 * 1024 * 1024);
  EXPECT_FALSE(m.read_only);
  EXPECT_EQ(MustMount("type=tmpfs,target=/t,size=4096").size_bytes.value_or(0), 4096);
  EXPECT_EQ(MustMount("type=tmpfs,target=/t,size=1.5k").size_bytes.value_or(0), 1536);
  EXPECT_EQ(MustMount("type=tmpfs,target=/t,size=2GiB").size_bytes.value_or(0),
            int64_t{2} * 1024 * 1024 * 1024);
  EXPECT_EQ(MustMount("type=tmpfs,target=/t,size=10 MB").size_bytes.value_or(0), 10 * 1024 * 1024);
  EXPECT_EQ(MustMount("type=tmpfs,target=/t,size=7b").size_bytes.value_or(0), 7);
  EXPECT_FALSE(MustMount("type=tmpfs,target=/t").size_bytes.has_value());
}

TEST(MountTest, SecretDefaults) {
  Mount m = MustMount("type=secret,id=token");
  EXPECT_EQ(m.type, MountType::kSecret);
  EXPECT_EQ(m.cache_id, "token");
  EXPECT_EQ(m.target, "/run/secrets/token");
  EXPECT_TRUE(m.read_only);
  EXPECT_FALSE(m.required);
  Mount by_target = MustMount("type=secret,target=/etc/ssl/key.pem,required");
  EXPECT_EQ(by_target.cache_id, "key.pem");
  EXPECT_EQ(by_target.target, "/etc/ssl/key.pem");
  EXPECT_TRUE(by_target.required);
  Mount by_source = MustMount("type=secret,src=aws");
  EXPECT_EQ(by_source.cache_id, "aws");
  EXPECT_EQ(by_source.target, "/run/secrets/aws");
  EXPECT_EQ(MustMount("type=secret,id=a/b").target, "/run/secrets/b");
  Mount env = MustMount("type=secret,id=tok,env=TOKEN");
  EXPECT_EQ(env.env, "TOKEN");
  EXPECT_EQ(env.target, "");
  Mount env_file = MustMount("type=secret,id=tok,env=TOKEN,target=/t,required=false,mode=0400");
  EXPECT_EQ(env_file.target, "/t");
  EXPECT_FALSE(env_file.required);
  EXPECT_EQ(env_file.mode.value_or(0), 0400u);
}

TEST(MountTest, SshDefaults) {
  Mount m = MustMount("type=ssh");
  EXPECT_EQ(m.type, MountType::kSsh);
  EXPECT_EQ(m.ssh_id, "default");
  EXPECT_EQ(m.target, "");  // LLB picks /run/buildkit/ssh_agent.N
  EXPECT_TRUE(m.read_only);
  Mount full = MustMount("type=ssh,id=github,target=/ssh.sock,required=true,mode=0600,uid=1");
  EXPECT_EQ(full.ssh_id, "github");
  EXPECT_EQ(full.target, "/ssh.sock");
  EXPECT_TRUE(full.required);
  EXPECT_EQ(full.mode.value_or(0), 0600u);
}

TEST(MountTest, CsvQuoting) {
  EXPECT_EQ(MustMount("type=bind,\"target=/a,b\"").target, "/a,b");
  EXPECT_EQ(MustMount("\"target=/a\"\"b\"").target, "/a\"b");
  EXPECT_THAT(ParseMount("target=/a\"b", Identity),
              Invalid("failed to parse csv mounts: parse error on line 1, column 10: bare \" "
                      "in non-quoted-field"));
  EXPECT_THAT(ParseMount("\"target=/a", Identity),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("extraneous or missing \" in quoted-field")));
  EXPECT_THAT(ParseMount("\"target=/a\"x", Identity),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("quoted-field")));
  EXPECT_THAT(ParseMount("", Identity), Invalid("failed to parse csv mounts: EOF"));
}

TEST(MountTest, Expander) {
  auto expand = [](std::string_view s) -> absl::StatusOr<std::string> {
    if (s == "$T") return std::string("cache");
    if (s == "$DIR") return std::string("/var/cache");
    if (s == "$BAD") return absl::InvalidArgumentError("BAD: is not allowed to be unset");
    return std::string(s);
  };
  auto m = ParseMount("type=$T,target=$DIR,id=x", expand);
  ASSERT_THAT(m, IsOk());
  EXPECT_EQ(m->type, MountType::kCache);
  EXPECT_EQ(m->target, "/var/cache");
  EXPECT_THAT(ParseMount("target=$BAD", expand), Invalid("BAD: is not allowed to be unset"));
  // An empty expander leaves values as written.
  auto raw = ParseMount("target=$DIR", Expander());
  ASSERT_THAT(raw, IsOk());
  EXPECT_EQ(raw->target, "$DIR");
}

TEST(MountTest, Errors) {
  EXPECT_THAT(ParseMount("type=weird,target=/a", Identity),
              Invalid("unsupported mount type \"weird\""));
  EXPECT_THAT(ParseMount("type=bnd,target=/a", Identity),
              Invalid("unsupported mount type \"bnd\" (did you mean bind?)"));
  EXPECT_THAT(ParseMount("target=/a,foo=bar", Identity),
              Invalid("unexpected key 'foo' in 'foo=bar' (did you mean from?)"));
  EXPECT_THAT(ParseMount("target=/a,bogus=1", Identity),
              Invalid("unexpected key 'bogus' in 'bogus=1'"));
  EXPECT_THAT(ParseMount("tagret=/a", Identity),
              Invalid("unexpected key 'tagret' in 'tagret=/a' (did you mean target?)"));
  EXPECT_THAT(ParseMount("target", Identity),
              Invalid("invalid field 'target' must be a key=value pair"));
  EXPECT_THAT(ParseMount("type=cache,target=/a,sharing=other", Identity),
              Invalid("unsupported sharing value \"other\""));
  EXPECT_THAT(ParseMount("type=bind", Identity), Invalid("mount target is required"));
  EXPECT_THAT(ParseMount("type=cache,id=x", Identity), Invalid("mount target is required"));
  EXPECT_THAT(ParseMount("type=tmpfs", Identity), Invalid("mount target is required"));
  EXPECT_THAT(ParseMount("target=/a,size=1m", Identity),
              Invalid("unexpected key 'size' for mount type 'bind'"));
  EXPECT_THAT(ParseMount("type=tmpfs,target=/a,size=64q", Identity),
              Invalid("invalid value for size: 64q"));
  EXPECT_THAT(ParseMount("type=tmpfs,target=/a,size=-1", Identity),
              Invalid("invalid value for size: -1"));
  EXPECT_THAT(ParseMount("target=/a,required", Identity),
              Invalid("unexpected key 'required' for mount type 'bind'"));
  EXPECT_THAT(ParseMount("required,type=secret,id=x", Identity),
              Invalid("unexpected key 'required' for mount type 'bind'"));
  EXPECT_THAT(ParseMount("type=cache,target=/a,required=true", Identity),
              Invalid("unexpected key 'required' for mount type 'cache'"));
  EXPECT_THAT(ParseMount("type=secret,id=a,required=maybe", Identity),
              Invalid("invalid value for required: maybe"));
  EXPECT_THAT(ParseMount("target=/a,ro=maybe", Identity), Invalid("invalid value for ro: maybe"));
  EXPECT_THAT(ParseMount("target=/a,rw=2", Identity), Invalid("invalid value for rw: 2"));
  EXPECT_THAT(ParseMount("target=/a,mode=0755", Identity),
              Invalid("mode not allowed for \"bind\" type mounts"));
  EXPECT_THAT(ParseMount("type=tmpfs,target=/a,uid=1", Identity),
              Invalid("uid not allowed for \"tmpfs\" type mounts"));
  EXPECT_THAT(ParseMount("target=/a,gid=1", Identity),
              Invalid("gid not allowed for \"bind\" type mounts"));
  EXPECT_THAT(ParseMount("type=cache,target=/a,mode=0789", Identity),
              Invalid("invalid value 0789 for mode"));
  EXPECT_THAT(ParseMount("type=cache,target=/a,uid=-1", Identity),
              Invalid("invalid value -1 for uid"));
  EXPECT_THAT(ParseMount("type=cache,target=/a,gid=4294967296", Identity),
              Invalid("invalid value 4294967296 for gid"));
  EXPECT_THAT(ParseMount("type=secret", Identity),
              Invalid("invalid secret mount. one of source, target required"));
  EXPECT_THAT(ParseMount("type=secret,id=a,src=b", Identity),
              Invalid("both source and id can't be set"));
  EXPECT_THAT(ParseMount("type=secret,id=a,from=x", Identity),
              Invalid("secret mount should not have a from"));
  EXPECT_THAT(ParseMount("type=secret,id=a,sharing=locked", Identity),
              Invalid("secret mount should not define sharing"));
  EXPECT_THAT(ParseMount("target=/a,sharing=shared", Identity),
              Invalid("invalid cache sharing set for bind mount"));
  EXPECT_THAT(ParseMount("type=ssh,source=/x", Identity), Invalid("ssh does not support source"));
}

}  // namespace
}  // namespace kiln::dockerfile::instructions
