#include "frontend/dockerfile/convert/convert.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/strings/str_replace.h"
#include "base/digest.h"
#include "llb/errdefs.h"
#include "llb/json.h"
#include "llb/llb.h"
#include "tests/testutil/status_matchers.h"

namespace kiln::dockerfile {
namespace {

using ::kiln::testing::IsOk;
using ::kiln::testing::StatusIs;
using ::testing::AllOf;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using json = nlohmann::json;

constexpr char kDigest[] =
    "sha256:1111111111111111111111111111111111111111111111111111111111111111";

// A resolver with canned configs; records what was asked.
struct FakeRegistry {
  std::map<std::string, std::string> configs;  // normalized ref -> config JSON
  std::vector<std::string> asked;
  ImageResolver Resolver() {
    return [this](const std::string& ref, const llb::Platform& p) -> absl::StatusOr<ResolvedImage> {
      asked.push_back(ref + " " + llb::FormatPlatform(p));
      auto it = configs.find(ref);
      if (it == configs.end()) return absl::NotFoundError(ref + ": not found");
      return ResolvedImage{.ref = ref, .digest = kDigest, .config = it->second};
    };
  }
};

std::string BusyboxConfig(const std::string& extra = "") {
  return R"({"architecture":"amd64","os":"linux","config":{"Env":["PATH=/usr/bin:/bin"],)"
         R"("Cmd":["sh"])" +
         extra +
         R"(},"rootfs":{"type":"layers","diff_ids":["sha256:aa"]},)"
         R"("history":[{"created_by":"busybox base"}]})";
}

class ConvertTest : public ::testing::Test {
 protected:
  void SetUp() override {
    registry_.configs["docker.io/library/busybox:latest"] = BusyboxConfig();
    options_.resolve = registry_.Resolver();
    options_.build_platform = {.os = "linux", .architecture = "amd64"};
  }
  // Converts and returns the LLB as dump-llb JSON lines; the result is in result_.
  std::string Convert(const std::string& dockerfile) {
    auto r = DockerfileToLlb(dockerfile, options_);
    EXPECT_THAT(r, IsOk());
    if (!r.ok()) return "";
    result_ = *r;
    llb::MarshalOptions mo;
    mo.platform = llb::Platform{.os = "linux", .architecture = "amd64"};
    mo.local_unique_id = "test";
    auto def = llb::Marshal(r->state, mo);
    EXPECT_THAT(def, IsOk());
    if (!def.ok()) return "";
    // dump-llb escapes <, > and & as Go does; undo that for readable expectations.
    return absl::StrReplaceAll(llb::DefinitionToJson(*def),
                               {{"\\u003c", "<"}, {"\\u003e", ">"}, {"\\u0026", "&"}});
  }
  json Image() const { return json::parse(result_.image_config); }
  std::vector<std::string> History() const {
    std::vector<std::string> out;
    const json image = Image();
    for (const auto& h : image["history"]) {
      out.push_back(h["created_by"].get<std::string>() +
                    (h.value("empty_layer", false) ? " (empty)" : ""));
    }
    return out;
  }

  FakeRegistry registry_;
  ConvertOptions options_;
  ConvertResult result_;
};

TEST_F(ConvertTest, RunOnAnImagePinsItsDigestAndRecordsHistory) {
  std::string llb = Convert("FROM busybox\nRUN echo hi to x\n");
  EXPECT_THAT(registry_.asked, ElementsAre("docker.io/library/busybox:latest linux/amd64"));
  EXPECT_THAT(llb,
              HasSubstr(std::string("docker-image://docker.io/library/busybox:latest@") + kDigest));
  EXPECT_THAT(llb, HasSubstr(R"("args":["/bin/sh","-c","echo hi to x"])"));
  EXPECT_THAT(llb, HasSubstr(R"("env":["PATH=/usr/bin:/bin"])"));
  EXPECT_THAT(llb, HasSubstr("[stage-0 2/2] RUN echo hi to x"));
  EXPECT_THAT(History(), ElementsAre("busybox base", "RUN /bin/sh -c echo hi to x # buildkit"));
  json img = Image();
  EXPECT_EQ(img["config"]["Cmd"], json({"sh"}));
  EXPECT_EQ(img["architecture"], "amd64");
  EXPECT_EQ(img["history"][1]["comment"], "buildkit.dockerfile.v0");
}

TEST_F(ConvertTest, ImageConfigInstructions) {
  Convert(R"(FROM busybox
ENV APP=/app PORT=8080
WORKDIR $APP
USER 1000:1000
LABEL org.example.name="demo app" version=1
EXPOSE $PORT 53/udp
VOLUME ["/data"]
STOPSIGNAL SIGTERM
SHELL ["/bin/sh", "-eu", "-c"]
ENTRYPOINT ["/app/run"]
CMD run --verbose
HEALTHCHECK --interval=30s --retries=3 CMD wget -q localhost
ONBUILD RUN echo child
MAINTAINER someone
)");
  json c = Image()["config"];
  EXPECT_EQ(c["Env"], json({"PATH=/usr/bin:/bin", "APP=/app", "PORT=8080"}));
  EXPECT_EQ(c["WorkingDir"], "/app");
  EXPECT_EQ(c["User"], "1000:1000");
  EXPECT_EQ(c["Labels"], json({{"org.example.name", "demo app"}, {"version", "1"}}));
  EXPECT_EQ(c["ExposedPorts"], json({{"8080/tcp", json::object()}, {"53/udp", json::object()}}));
  EXPECT_EQ(c["Volumes"], json({{"/data", json::object()}}));
  EXPECT_EQ(c["StopSignal"], "SIGTERM");
  EXPECT_EQ(c["Shell"], json({"/bin/sh", "-eu", "-c"}));
  EXPECT_EQ(c["Entrypoint"], json({"/app/run"}));
  EXPECT_EQ(c["Cmd"], json({"/bin/sh", "-eu", "-c", "run --verbose"}));
  EXPECT_EQ(c["Healthcheck"]["Test"], json({"CMD-SHELL", "wget -q localhost"}));
  EXPECT_EQ(c["Healthcheck"]["Interval"], 30000000000LL);
  EXPECT_EQ(c["Healthcheck"]["Retries"], 3);
  EXPECT_EQ(c["OnBuild"], json({"RUN echo child"}));
  EXPECT_EQ(Image()["author"], "someone");
  auto h = History();
  ASSERT_GE(h.size(), 4u);
  EXPECT_EQ(h[1], "ENV APP=/app PORT=8080 (empty)");
  EXPECT_EQ(h[2], "WORKDIR /app");  // WORKDIR makes the directory: a layer
  EXPECT_EQ(h[3], "USER 1000:1000 (empty)");
  EXPECT_THAT(h, ::testing::Contains("EXPOSE [8080/tcp 53/udp] (empty)"));
  EXPECT_THAT(h, ::testing::Contains("VOLUME [/data] (empty)"));
  EXPECT_THAT(h, ::testing::Contains("SHELL [/bin/sh -eu -c] (empty)"));
  EXPECT_THAT(h, ::testing::Contains(R"(CMD ["/bin/sh" "-eu" "-c" "run --verbose"] (empty))"));
  EXPECT_THAT(h, ::testing::Contains("HEALTHCHECK {Test:[CMD-SHELL wget -q localhost] "
                                     "Interval:30s Timeout:0s StartPeriod:0s StartInterval:0s "
                                     "Retries:3} (empty)"));
  for (const std::string& e : h) EXPECT_THAT(e, Not(HasSubstr("ONBUILD")));
}

TEST_F(ConvertTest, ArgsJoinTheEnvironmentOfChildStagesButNotTheImage) {
  std::string llb = Convert(R"(FROM busybox AS base
ARG FLAVOR=plain
FROM base
RUN echo $FLAVOR
)");
  EXPECT_THAT(llb, HasSubstr("FLAVOR=plain"));
  EXPECT_THAT(Image()["config"]["Env"].dump(), Not(HasSubstr("FLAVOR")));
}

TEST_F(ConvertTest, EntrypointClearsTheBaseImagesCmd) {
  Convert("FROM busybox\nENTRYPOINT [\"/bin/echo\"]\n");
  EXPECT_TRUE(Image()["config"]["Cmd"].is_null());
}

TEST_F(ConvertTest, MultiStageBuildsOnlyWhatTheTargetNeeds) {
  registry_.configs["docker.io/library/golang:1.23"] = BusyboxConfig();
  registry_.configs["docker.io/library/unused:1"] = BusyboxConfig();
  const std::string df = R"(FROM golang:1.23 AS builder
RUN echo build-out
FROM unused:1 AS other
RUN echo never
FROM busybox
COPY --from=builder /out /app/out
)";
  std::string llb = Convert(df);
  EXPECT_THAT(registry_.asked,
              ::testing::UnorderedElementsAre("docker.io/library/golang:1.23 linux/amd64",
                                              "docker.io/library/busybox:latest linux/amd64"));
  EXPECT_THAT(llb, HasSubstr("echo build-out"));
  EXPECT_THAT(llb, Not(HasSubstr("never")));
  EXPECT_THAT(llb, HasSubstr(R"("src":"/out","dest":"/app/out")"));
  // BuildKit's COPY history names sources and destination, not --from.
  EXPECT_THAT(History().back(), "COPY /out /app/out # buildkit");

  registry_.asked.clear();
  options_.target = "other";
  llb = Convert(df);
  EXPECT_THAT(registry_.asked, ElementsAre("docker.io/library/unused:1 linux/amd64"));
  EXPECT_THAT(llb, HasSubstr("never"));

  options_.target = "nosuch";
  EXPECT_THAT(DockerfileToLlb(df, options_),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("nosuch")));
}

TEST_F(ConvertTest, StageAsBaseAndScratch) {
  std::string llb = Convert(R"(FROM scratch AS files
COPY a.txt /a.txt
FROM files
ENV X=1
)");
  EXPECT_TRUE(registry_.asked.empty());
  EXPECT_THAT(llb, HasSubstr("local://context"));
  EXPECT_THAT(
      Image()["config"]["Env"],
      ::testing::Contains("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"));
}

TEST_F(ConvertTest, ArgsScopeAndBuildArgs) {
  registry_.configs["docker.io/library/busybox:1.36"] = BusyboxConfig();
  options_.build_args["VERSION"] = "1.36";
  options_.build_args["MODE"] = "release";
  std::string llb = Convert(R"(ARG VERSION=latest
ARG UNUSED=1
FROM busybox:${VERSION}
ARG VERSION
ARG MODE=debug
ARG DEFAULTED=x-$MODE
RUN echo $VERSION $MODE $DEFAULTED
)");
  EXPECT_THAT(registry_.asked, ElementsAre("docker.io/library/busybox:1.36 linux/amd64"));
  // Build args reach RUN's environment, not the image's.
  EXPECT_THAT(llb, HasSubstr("VERSION=1.36"));
  EXPECT_THAT(llb, HasSubstr("MODE=release"));
  EXPECT_THAT(llb, HasSubstr("DEFAULTED=x-release"));
  EXPECT_THAT(Image()["config"]["Env"].dump(), Not(HasSubstr("MODE")));
  auto h = History();
  EXPECT_EQ(h.back(),
            "RUN |3 VERSION=1.36 MODE=release DEFAULTED=x-release /bin/sh -c echo $VERSION $MODE "
            "$DEFAULTED # buildkit");
  // ARG entries show the value in effect, a build arg included (as BuildKit's do).
  EXPECT_EQ(h[h.size() - 2], "ARG DEFAULTED=x-release (empty)");
  EXPECT_EQ(h[h.size() - 3], "ARG MODE=release (empty)");
}

TEST_F(ConvertTest, PlatformArgsArePredefined) {
  options_.target_platform = llb::Platform{.os = "linux", .architecture = "arm64"};
  registry_.configs["docker.io/library/busybox:latest"] = BusyboxConfig();
  std::string llb = Convert(R"(FROM --platform=$BUILDPLATFORM busybox AS build
ARG TARGETARCH
ARG BUILDPLATFORM
RUN echo $TARGETARCH on $BUILDPLATFORM
)");
  EXPECT_THAT(registry_.asked, ElementsAre("docker.io/library/busybox:latest linux/amd64"));
  EXPECT_THAT(llb, HasSubstr("TARGETARCH=arm64"));
  EXPECT_THAT(llb, HasSubstr("BUILDPLATFORM=linux/amd64"));
}

TEST_F(ConvertTest, SecretLookingArgsAndEnvWarn) {
  Convert("FROM busybox\nARG API_TOKEN\nENV DB_PASSWORD=x\nARG MONKEY=1\nENV KEYBOARD=y\n");
  ASSERT_EQ(result_.warnings.size(), 2u);
  EXPECT_EQ(result_.warnings[0].rule, "SecretsUsedInArgOrEnv");
  EXPECT_EQ(result_.warnings[0].line, 2);
  EXPECT_THAT(result_.warnings[0].message,
              AllOf(HasSubstr("API_TOKEN"), HasSubstr("--mount=type=secret")));
  EXPECT_THAT(result_.warnings[1].message, HasSubstr("DB_PASSWORD"));
}

TEST_F(ConvertTest, RunMountsOfEveryKind) {
  std::string llb = Convert(R"(FROM busybox AS deps
RUN echo deps > /deps
FROM busybox
ARG CACHE=/root/.cache
RUN --mount=type=secret,id=npmrc,target=/root/.npmrc \
    --mount=type=secret,id=token,env=TOKEN \
    --mount=type=cache,target=$CACHE,sharing=locked \
    --mount=type=bind,from=deps,source=/deps,target=/mnt/deps \
    --mount=type=tmpfs,target=/scratch,size=1m \
    --mount=type=ssh \
    --network=none \
    cat /mnt/deps
)");
  EXPECT_THAT(llb, HasSubstr(R"("dest":"/root/.npmrc","mountType":1,"secretOpt":{"ID":"npmrc")"));
  EXPECT_THAT(llb, HasSubstr(R"("secretenv":[{"ID":"token","name":"TOKEN","optional":true}])"));
  EXPECT_THAT(
      llb,
      HasSubstr(
          R"("dest":"/root/.cache","output":-1,"mountType":3,"cacheOpt":{"ID":"/root/.cache","sharing":2})"));
  EXPECT_THAT(llb,
              HasSubstr(R"("selector":"/deps","dest":"/mnt/deps","output":-1,"readonly":true)"));
  EXPECT_THAT(
      llb, HasSubstr(R"("dest":"/scratch","output":-1,"mountType":4,"TmpfsOpt":{"size":1048576})"));
  EXPECT_THAT(llb, HasSubstr(R"("mountType":2,"SSHOpt":{"ID":"default")"));
  EXPECT_THAT(llb, HasSubstr(R"("network":2)"));
  // Secrets are never in history or image config.
  EXPECT_THAT(result_.image_config, Not(HasSubstr("npmrc")));
}

TEST_F(ConvertTest, CopyAndAddOptions) {
  options_.excludes = {"*.log", "!keep.log"};
  std::string llb = Convert(R"(FROM busybox
WORKDIR /srv
COPY --chown=1000:1000 --chmod=0640 a.txt b.txt ./
COPY --chmod=u+x --exclude=*.tmp bin/ /usr/local/bin/
ADD app.tar.gz /opt/
ADD --checksum=sha256:abcd https://example.com/tool.tgz /tools/
COPY --link c.txt /c.txt
ENV WHO=world
COPY <<EOF /etc/motd
hello $WHO
EOF
COPY <<'EOF' /etc/raw
keep $WHO
EOF
)");
  EXPECT_THAT(llb, HasSubstr(R"("local.excludepatterns":"[\"*.log\",\"!keep.log\"]")"));
  EXPECT_THAT(llb, HasSubstr(R"("src":"/a.txt","dest":"/srv/")"));
  EXPECT_THAT(llb, HasSubstr(R"("mode":416)"));  // 0640
  EXPECT_THAT(llb, HasSubstr(R"("modeStr":"u+x")"));
  EXPECT_THAT(llb, HasSubstr(R"("exclude_patterns":["*.tmp"])"));
  EXPECT_THAT(llb, HasSubstr(R"("attemptUnpackDockerCompatibility":true)"));
  EXPECT_THAT(llb, HasSubstr(R"("identifier":"https://example.com/tool.tgz")"));
  EXPECT_THAT(llb, HasSubstr(R"("http.checksum":"sha256:abcd")"));
  EXPECT_THAT(llb, HasSubstr(R"("merge")"));
  EXPECT_THAT(llb,
              HasSubstr(R"("data":"aGVsbG8gd29ybGQK")"));  // "hello world\n": unquoted ones expand
  EXPECT_THAT(llb, HasSubstr(R"("data":"a2VlcCAkV0hPCg==")"));  // "keep $WHO\n"
}

TEST_F(ConvertTest, AddOfGitRepositories) {
  std::string llb = Convert(R"(FROM busybox
ADD https://github.com/moby/buildkit.git#v0.10.1:docs /docs
ADD --keep-git-dir --checksum=0123abcd git@example.com:org/repo.git /repo
ADD https://example.com/r.git?tag=v1&submodules=false&subdir=sub /tagged
)");
  EXPECT_THAT(llb, HasSubstr(R"("identifier":"git://github.com/moby/buildkit.git#v0.10.1:docs")"));
  EXPECT_THAT(llb, HasSubstr(R"("git.fullurl":"https://github.com/moby/buildkit.git")"));
  EXPECT_THAT(llb, HasSubstr(R"("identifier":"git://example.com/org/repo.git")"));
  EXPECT_THAT(llb, HasSubstr(R"("git.keepgitdir":"true")"));
  EXPECT_THAT(llb, HasSubstr(R"("git.checksum":"0123abcd")"));
  EXPECT_THAT(llb, HasSubstr(R"("git.mountsshsock":"default")"));
  EXPECT_THAT(llb, HasSubstr(R"("identifier":"git://example.com/r.git#refs/tags/v1:sub")"));
  EXPECT_THAT(llb, HasSubstr(R"("git.skipsubmodules":"true")"));
  EXPECT_THAT(llb, HasSubstr(R"("src":"/","dest":"/docs")"));
  // The source vertex carries the step's name, as BuildKit's.
  EXPECT_THAT(
      llb,
      HasSubstr(
          R"("llb.customname":"[stage-0 2/4] ADD https://github.com/moby/buildkit.git#v0.10.1:docs /docs")"));
  EXPECT_THAT(History(),
              Contains("ADD https://github.com/moby/buildkit.git#v0.10.1:docs /docs # buildkit"));
}

TEST_F(ConvertTest, GitAndUrlSourceErrors) {
  auto error = [&](const std::string& df) {
    auto r = DockerfileToLlb(df, options_);
    return r.ok() ? std::string("ok") : std::string(r.status().message());
  };
  EXPECT_THAT(error("FROM busybox\nCOPY https://example.com/r.git /x\n"),
              HasSubstr("source can't be a git ref for COPY"));
  EXPECT_THAT(error("FROM busybox\nCOPY https://example.com/f.txt /x\n"),
              HasSubstr("source can't be a URL for COPY"));
  EXPECT_THAT(
      error("FROM busybox\nADD --keep-git-dir=false https://example.com/r.git?keep-git-dir=1 /x\n"),
      HasSubstr("inconsistent keep-git-dir configuration"));
  EXPECT_THAT(error("FROM busybox\nADD --checksum=aa https://example.com/r.git?checksum=bb /x\n"),
              HasSubstr("checksum mismatch \"aa\" != \"bb\""));
  EXPECT_THAT(error("FROM busybox\nADD --checksum=sha256:aa a.txt /x\n"),
              HasSubstr("checksum requires HTTP(S) or Git sources"));
  EXPECT_THAT(error("FROM busybox\nADD --checksum=sha256:aa https://e.com/a https://e.com/b /x/\n"),
              HasSubstr("checksum can't be specified for multiple sources"));
  EXPECT_THAT(error("FROM busybox\nADD https://example.com/r.git?frob=1 /x\n"),
              HasSubstr("unexpected query \"frob\""));
}

TEST_F(ConvertTest, CopyParentsKeepsSourcePaths) {
  std::string llb = Convert(R"(FROM busybox
COPY --parents src/a/b.txt lib/*.so /dst/
COPY --parents ./app/./cfg/x.conf /etc/
)");
  EXPECT_THAT(llb, HasSubstr(R"("src":"/","dest":"/dst/")"));
  EXPECT_THAT(llb, HasSubstr(R"("include_patterns":["src/a/b.txt"])"));
  EXPECT_THAT(llb, HasSubstr(R"("required_paths":["/src/a/b.txt"])"));
  EXPECT_THAT(llb, HasSubstr(R"("include_patterns":["lib/*.so"])"));
  EXPECT_THAT(llb, HasSubstr(R"("src":"/app","dest":"/etc/")"));
  EXPECT_THAT(llb, HasSubstr(R"("include_patterns":["cfg/x.conf"])"));
  EXPECT_EQ(History().back(), "COPY --parents ./app/./cfg/x.conf /etc/ # buildkit");
}

TEST_F(ConvertTest, OnbuildTriggersOfTheBaseRunFirst) {
  registry_.configs["docker.io/library/parent:1"] =
      BusyboxConfig(R"(,"OnBuild":["RUN echo from-trigger"])");
  std::string llb = Convert("FROM parent:1\nRUN echo mine\n");
  size_t trigger = llb.find("echo from-trigger");
  size_t mine = llb.find("echo mine");
  ASSERT_NE(trigger, std::string::npos);
  ASSERT_NE(mine, std::string::npos);
  EXPECT_LT(trigger, mine);
  EXPECT_FALSE(Image()["config"].contains("OnBuild"));
}

TEST_F(ConvertTest, HeredocRun) {
  std::string llb = Convert("FROM busybox\nRUN <<EOF\necho one\necho two\nEOF\n");
  EXPECT_THAT(llb, HasSubstr(R"("args":["/bin/sh","-c","echo one\necho two\n"])"));
  llb = Convert("FROM busybox\nRUN cat <<EOF > /f\nline\nEOF\n");
  EXPECT_THAT(llb, HasSubstr(R"("args":["/bin/sh","-c","cat <<EOF > /f\nline\nEOF"])"));
}

TEST_F(ConvertTest, ErrorsNameTheLine) {
  EXPECT_THAT(DockerfileToLlb("FROM busybox\nRUN --mount=type=weird,target=/x true\n", options_),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("2")));
  EXPECT_THAT(DockerfileToLlb("FROM nosuch/image\n", options_),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("nosuch/image")));
  EXPECT_THAT(DockerfileToLlb("FROM busybox\nCOPY a b c\n", options_),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("end with a /")));
}

TEST_F(ConvertTest, OpsPointAtTheirDockerfileLines) {
  options_.filename = "app.Dockerfile";
  const std::string dockerfile = "FROM busybox\nWORKDIR /src\nRUN make && \\\n    make install\n";
  auto r = DockerfileToLlb(dockerfile, options_);
  ASSERT_THAT(r, IsOk());
  auto def = llb::Marshal(r->state, {.platform = options_.build_platform});
  ASSERT_THAT(def, IsOk());
  ASSERT_EQ(def->source().infos_size(), 1);
  EXPECT_EQ(def->source().infos(0).filename(), "app.Dockerfile");
  EXPECT_EQ(def->source().infos(0).language(), "Dockerfile");
  EXPECT_EQ(def->source().infos(0).data(), dockerfile);
  // Each op's lines, by the op's kind: the image (FROM, line 1), the exec (lines 3-4).
  std::map<std::string, std::pair<int, int>> lines_by_kind;
  for (const std::string& bytes : def->def()) {
    pb::Op op;
    ASSERT_TRUE(op.ParseFromString(bytes));
    auto it = def->source().locations().find(Sha256Digest(bytes));
    if (it == def->source().locations().end()) continue;
    const pb::Range& range = it->second.locations(0).ranges(0);
    std::string kind = op.has_exec() ? "exec" : op.has_source() ? "source" : "other";
    lines_by_kind[kind] = {range.start().line(), range.end().line()};
  }
  EXPECT_EQ(lines_by_kind["source"], std::make_pair(1, 1));
  EXPECT_EQ(lines_by_kind["exec"], std::make_pair(3, 4));
}

TEST_F(ConvertTest, ErrorsCarryTheirDockerfileLines) {
  auto lines = [&](const std::string& dockerfile) -> std::string {
    auto r = DockerfileToLlb(dockerfile, options_);
    EXPECT_FALSE(r.ok());
    std::vector<llb::ErrorSource> sources = llb::SourcesOf(r.status());
    if (sources.size() != 1)
      return absl::StrCat(sources.size(), " sources: ", r.status().message());
    EXPECT_EQ(sources[0].info.data(), dockerfile);
    EXPECT_EQ(sources[0].info.filename(), "Dockerfile");
    const pb::Range& range = sources[0].ranges.at(0);
    return absl::StrCat(range.start().line(), "-", range.end().line());
  };
  EXPECT_EQ(lines("FROM busybox\nRUN true\nFORM x\n"), "3-3");  // parse error
  EXPECT_EQ(lines("FROM busybox\nRUN --mount=type=weird,target=/x \\\n  true\n"), "2-3");
  EXPECT_EQ(lines("FROM busybox\nCOPY --from=missing:1 a b\nFROM nosuch/image\n"), "3-3");
  EXPECT_EQ(lines("FROM busybox\nCOPY a b c\n"), "2-2");
  // Not tied to a line: no source.
  options_.target = "nope";
  auto r = DockerfileToLlb("FROM busybox\n", options_);
  EXPECT_FALSE(r.ok());
  EXPECT_TRUE(llb::SourcesOf(r.status()).empty());
}

TEST(SyntaxTest, DirectiveAndBuiltinNames) {
  EXPECT_EQ(SyntaxDirective("# syntax=docker/dockerfile:1\nFROM x\n"), "docker/dockerfile:1");
  EXPECT_EQ(SyntaxDirective("#escape=`\n# Syntax = docker/dockerfile:1.7\nFROM x\n"),
            "docker/dockerfile:1.7");
  EXPECT_EQ(SyntaxDirective("FROM x\n# syntax=docker/dockerfile:1\n"), std::nullopt);
  EXPECT_EQ(SyntaxDirective("# a comment\n# syntax=docker/dockerfile:1\n"), std::nullopt);
  EXPECT_TRUE(IsBuiltinSyntax("docker/dockerfile:1"));
  EXPECT_TRUE(IsBuiltinSyntax("docker.io/docker/dockerfile:1.7-labs"));
  EXPECT_TRUE(IsBuiltinSyntax("docker/dockerfile"));
  EXPECT_TRUE(IsBuiltinSyntax("docker/dockerfile@sha256:abc"));
  EXPECT_FALSE(IsBuiltinSyntax("docker/dockerfile-extra:1"));
  EXPECT_FALSE(IsBuiltinSyntax("example.com/my/frontend:1"));
}

TEST(DockerignoreTest, PatternsAreCleaned) {
  EXPECT_THAT(
      ParseDockerignore("# comment\n\n  node_modules/  \n/build\n!build/keep\n*.log\n./a/../b\n"),
      ElementsAre("node_modules", "build", "!build/keep", "*.log", "b"));
}

}  // namespace
}  // namespace kiln::dockerfile
