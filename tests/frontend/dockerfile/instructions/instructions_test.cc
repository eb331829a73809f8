// Typed instructions from small Dockerfiles: fields, flags, stage grouping, errors.

#include "frontend/dockerfile/instructions/instructions.h"

#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "tests/frontend/dockerfile/testutil.h"
#include "tests/testutil/status_matchers.h"

namespace kiln::dockerfile::instructions {
namespace {

using ::kiln::testing::IsOk;
using ::kiln::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

Dockerfile MustParse(std::string_view text) { return testutil::ValueOrFail(Parse(text)); }

// The single command of a one-stage Dockerfile "FROM scratch\n<line>".
template <typename T>
T One(std::string_view line) {
  Dockerfile df = MustParse(std::string("FROM scratch\n") + std::string(line));
  EXPECT_THAT(df.stages, SizeIs(1));
  if (df.stages.empty() || df.stages[0].commands.size() != 1) {
    ADD_FAILURE() << "expected one command";
    return T{};
  }
  const T* cmd = std::get_if<T>(&df.stages[0].commands[0]);
  if (cmd == nullptr) {
    ADD_FAILURE() << "unexpected command type";
    return T{};
  }
  return *cmd;
}

absl::Status ErrorOf(std::string_view text) { return Parse(text).status(); }

auto ParseError(int line, std::string_view message) {
  return StatusIs(
      absl::StatusCode::kInvalidArgument,
      absl::StrCat("dockerfile parse error on line ", line, ": ", std::string(message)));
}

template <typename M>
auto ParseErrorThat(int line, M matcher) {
  return StatusIs(absl::StatusCode::kInvalidArgument,
                  ::testing::AllOf(::testing::StartsWith(
                                       absl::StrCat("dockerfile parse error on line ", line, ": ")),
                                   matcher));
}

// ---- stages ----------------------------------------------------------------------------------

TEST(StagesTest, GroupsByFromWithMetaArgs) {
  Dockerfile df = MustParse(
      "# syntax=docker/dockerfile:1\n"
      "# the go version\n"
      "ARG GO=1.22\n"
      "ARG BASE\n"
      "FROM --platform=$BUILDPLATFORM golang:${GO} AS Build\n"
      "ARG GO\n"
      "RUN go build\n"
      "FROM scratch\n"
      "COPY --from=build /out /\n");
  ASSERT_THAT(df.meta_args, SizeIs(2));
  EXPECT_EQ(df.meta_args[0].args.at(0).key, "GO");
  EXPECT_EQ(df.meta_args[0].args.at(0).value.value_or(""), "1.22");
  EXPECT_FALSE(df.meta_args[1].args.at(0).value.has_value());
  ASSERT_THAT(df.stages, SizeIs(2));
  const FromCommand& from = df.stages[0].from;
  EXPECT_EQ(from.name, "from");
  EXPECT_EQ(from.base_name, "golang:${GO}");
  EXPECT_EQ(from.stage_name, "build");
  EXPECT_EQ(from.platform, "$BUILDPLATFORM");
  EXPECT_EQ(from.location.start_line, 5);
  EXPECT_EQ(from.original, "FROM --platform=$BUILDPLATFORM golang:${GO} AS Build");
  EXPECT_THAT(df.stages[0].commands, SizeIs(2));
  EXPECT_TRUE(std::holds_alternative<ArgCommand>(df.stages[0].commands[0]));
  EXPECT_EQ(df.stages[1].from.stage_name, "");
  EXPECT_THAT(df.stages[1].commands, SizeIs(1));
  EXPECT_EQ(df.directives.syntax.value_or(""), "docker/dockerfile:1");
  // Stage name casing is reported like BuildKit's linter.
  ASSERT_THAT(df.warnings, SizeIs(1));
  EXPECT_EQ(df.warnings[0].rule, "StageNameCasing");
  EXPECT_EQ(df.warnings[0].short_message, "Stage name 'Build' should be lowercase");
  EXPECT_EQ(df.warnings[0].line, 5);
}

TEST(StagesTest, OnlyArgBeforeFrom) {
  EXPECT_THAT(ErrorOf("ARG A\nENV B=1\nFROM x\n"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("line 2: no build stage in current context")));
  EXPECT_THAT(ErrorOf("ARG A\nENV B=1\nFROM x\n"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("instructions other than ARG before FROM")));
}

TEST(StagesTest, NoFromIsAnError) {
  EXPECT_THAT(ErrorOf("ARG A=1\n"), StatusIs(absl::StatusCode::kInvalidArgument,
                                             "dockerfile contains no stages to build"));
  EXPECT_THAT(ErrorOf(""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("file with no instructions")));
}

TEST(StagesTest, FromErrors) {
  EXPECT_THAT(ErrorOf("FROM\n"), ParseError(1, "FROM requires either one or three arguments"));
  EXPECT_THAT(ErrorOf("FROM a b\n"), ParseError(1, "FROM requires either one or three arguments"));
  EXPECT_THAT(ErrorOf("FROM a AS 1st\n"),
              ParseError(1,
                         "invalid name for build stage: \"1st\", name can't start with a "
                         "number or contain symbols"));
  EXPECT_THAT(ErrorOf("FROM a AS b$c\n"), ParseErrorThat(1, HasSubstr("invalid name")));
  EXPECT_THAT(ErrorOf("FROM a AS b:c\n"), ParseErrorThat(1, HasSubstr("invalid name")));
  EXPECT_THAT(ErrorOf("FROM --platfrom=x a\n"),
              ParseError(1, "unknown flag: --platfrom (did you mean platform?)"));
  Dockerfile df = MustParse("from a as my-stage_1.x\n");
  EXPECT_EQ(df.stages.at(0).from.stage_name, "my-stage_1.x");
  EXPECT_THAT(df.warnings, IsEmpty());
}

TEST(StagesTest, FromAsCasingWarning) {
  Dockerfile df = MustParse("FROM a as b\n");
  ASSERT_THAT(df.warnings, SizeIs(1));
  EXPECT_EQ(df.warnings[0].rule, "FromAsCasing");
  EXPECT_EQ(df.warnings[0].short_message, "'as' and 'FROM' keywords' casing do not match");
  EXPECT_THAT(MustParse("From a as b\n").warnings, IsEmpty());
}

TEST(StagesTest, UnknownInstructionReportedInLineOrder) {
  // A bad flag on line 2 comes before the unknown instruction on line 3, as in BuildKit.
  EXPECT_THAT(ErrorOf("FROM a\nCOPY --form=x a b\nFORM b\n"),
              ParseError(2, "unknown flag: --form (did you mean from?)"));
  EXPECT_THAT(ErrorOf("FROM a\nRUN x\nFORM b\n"),
              ParseError(3, "unknown instruction: FORM (did you mean FROM?)"));
}

TEST(StagesTest, ParserWarningsAreKept) {
  Dockerfile df = MustParse("FROM a\nRUN a \\\n\n b\n");
  ASSERT_THAT(df.warnings, SizeIs(1));
  EXPECT_EQ(df.warnings[0].rule, "NoEmptyContinuation");
}

TEST(StagesTest, FromTreeOfParsedResult) {
  auto tree = parser::Parse("FROM a\nRUN b\n");
  ASSERT_THAT(tree, IsOk());
  auto df = FromTree(*tree);
  ASSERT_THAT(df, IsOk());
  EXPECT_THAT(df->stages.at(0).commands, SizeIs(1));
}

// ---- simple commands -------------------------------------------------------------------------

TEST(CommandsTest, EnvAndLabel) {
  auto env = One<EnvCommand>("ENV A=1 B=\"two words\" C=${X:-y}");
  EXPECT_EQ(env.name, "env");
  ASSERT_THAT(env.env, SizeIs(3));
  EXPECT_EQ(env.env[0].key, "A");
  EXPECT_EQ(env.env[0].value, "1");
  EXPECT_EQ(env.env[1].value, "\"two words\"");  // unexpanded, quotes kept
  EXPECT_EQ(env.env[2].value, "${X:-y}");
  auto legacy = One<EnvCommand>("ENV PATH /usr/bin:$PATH  extra");
  ASSERT_THAT(legacy.env, SizeIs(1));
  EXPECT_EQ(legacy.env[0].key, "PATH");
  EXPECT_EQ(legacy.env[0].value, "/usr/bin:$PATH  extra");
  auto label = One<LabelCommand>("LABEL a=b \"c d\"=e");
  ASSERT_THAT(label.labels, SizeIs(2));
  EXPECT_EQ(label.labels[1].key, "\"c d\"");
  EXPECT_EQ(label.labels[1].value, "e");
}

TEST(CommandsTest, EnvErrors) {
  EXPECT_THAT(ErrorOf("FROM a\nENV\n"), ParseError(2, "ENV requires at least one argument"));
  EXPECT_THAT(ErrorOf("FROM a\nENV =x\n"), ParseError(2, "ENV names can not be blank"));
  EXPECT_THAT(ErrorOf("FROM a\nLABEL =x\n"), ParseError(2, "LABEL names can not be blank"));
  EXPECT_THAT(ErrorOf("FROM a\nENV --x=1 A=b\n"), ParseError(2, "unknown flag: --x"));
  EXPECT_THAT(ErrorOf("FROM a\nLABEL\n"), ParseError(2, "LABEL requires at least one argument"));
}

TEST(CommandsTest, Arg) {
  Dockerfile df = MustParse(
      "FROM a\n"
      "# VERSION the version to build\n"
      "# unrelated\n"
      "ARG VERSION=1.0 NAME \"Q\"=\"x y\"\n");
  const auto& arg = std::get<ArgCommand>(df.stages[0].commands.at(0));
  ASSERT_THAT(arg.args, SizeIs(3));
  EXPECT_EQ(arg.args[0].key, "VERSION");
  EXPECT_EQ(arg.args[0].value.value_or(""), "1.0");
  EXPECT_EQ(arg.args[0].comment, "the version to build");
  EXPECT_EQ(arg.args[1].key, "NAME");
  EXPECT_FALSE(arg.args[1].value.has_value());
  EXPECT_EQ(arg.args[1].comment, "");
  EXPECT_EQ(arg.args[2].key, "\"Q\"");
  EXPECT_EQ(arg.args[2].value.value_or(""), "\"x y\"");
  EXPECT_THAT(ErrorOf("FROM a\nARG\n"), ParseError(2, "ARG requires at least one argument"));
  EXPECT_THAT(ErrorOf("FROM a\nARG =1\n"), ParseError(2, "ARG names can not be blank"));
}

TEST(CommandsTest, MaintainerWorkdirUserStopsignal) {
  auto m = One<MaintainerCommand>("MAINTAINER Jane <j@x>");
  EXPECT_EQ(m.maintainer, "Jane <j@x>");
  EXPECT_EQ(One<WorkdirCommand>("WORKDIR /a b").path, "/a b");
  EXPECT_EQ(One<UserCommand>("USER 1000:1000").user, "1000:1000");
  EXPECT_EQ(One<StopSignalCommand>("STOPSIGNAL SIGTERM").signal, "SIGTERM");
  EXPECT_THAT(ErrorOf("FROM a\nWORKDIR\n"), ParseError(2, "WORKDIR requires exactly one argument"));
  EXPECT_THAT(ErrorOf("FROM a\nUSER\n"), ParseError(2, "USER requires exactly one argument"));
  EXPECT_THAT(ErrorOf("FROM a\nSTOPSIGNAL\n"),
              ParseError(2, "STOPSIGNAL requires exactly one argument"));
  EXPECT_THAT(ErrorOf("FROM a\nMAINTAINER\n"),
              ParseError(2, "MAINTAINER requires exactly one argument"));
  EXPECT_THAT(ErrorOf("FROM a\nWORKDIR --x /a\n"), ParseError(2, "unknown flag: --x"));
  Dockerfile df = MustParse("FROM a\nMAINTAINER me\n");
  ASSERT_THAT(df.warnings, SizeIs(1));
  EXPECT_EQ(df.warnings[0].rule, "MaintainerDeprecated");
  EXPECT_EQ(df.warnings[0].line, 2);
}

TEST(CommandsTest, ExposeIsSorted) {
  auto e = One<ExposeCommand>("EXPOSE 8080 443/tcp 53/udp $PORT");
  EXPECT_THAT(e.ports, ElementsAre("$PORT", "443/tcp", "53/udp", "8080"));
  EXPECT_THAT(ErrorOf("FROM a\nEXPOSE\n"), ParseError(2, "EXPOSE requires at least one argument"));
}

TEST(CommandsTest, Volume) {
  EXPECT_THAT(One<VolumeCommand>("VOLUME /a /b").volumes, ElementsAre("/a", "/b"));
  EXPECT_THAT(One<VolumeCommand>("VOLUME [\"/c d\", \" /e \"]").volumes, ElementsAre("/c d", "/e"));
  EXPECT_THAT(ErrorOf("FROM a\nVOLUME\n"), ParseError(2, "VOLUME requires at least one argument"));
  EXPECT_THAT(ErrorOf("FROM a\nVOLUME [\"\"]\n"),
              ParseError(2, "VOLUME specified can not be an empty string"));
}

TEST(CommandsTest, Shell) {
  EXPECT_THAT(One<ShellCommand>("SHELL [\"pwsh\", \"-c\"]").shell, ElementsAre("pwsh", "-c"));
  EXPECT_THAT(ErrorOf("FROM a\nSHELL /bin/sh -c\n"),
              ParseError(2, "SHELL requires the arguments to be in JSON form"));
  EXPECT_THAT(ErrorOf("FROM a\nSHELL []\n"), ParseError(2, "SHELL requires at least one argument"));
}

TEST(CommandsTest, CmdEntrypointForms) {
  auto shell = One<CmdCommand>("CMD echo $HOME  &&  ls");
  EXPECT_THAT(shell.cmd_line, ElementsAre("echo $HOME  &&  ls"));
  EXPECT_TRUE(shell.prepend_shell);
  auto exec = One<EntrypointCommand>("ENTRYPOINT [\"/bin/app\", \"--flag\"]");
  EXPECT_THAT(exec.cmd_line, ElementsAre("/bin/app", "--flag"));
  EXPECT_FALSE(exec.prepend_shell);
  auto empty = One<CmdCommand>("CMD []");
  EXPECT_THAT(empty.cmd_line, IsEmpty());
  EXPECT_FALSE(empty.prepend_shell);
  EXPECT_THAT(ErrorOf("FROM a\nCMD --x y\n"), ParseError(2, "unknown flag: --x"));
}

// ---- RUN -------------------------------------------------------------------------------------

TEST(RunTest, FlagsAndForms) {
  auto run = One<RunCommand>(
      "RUN --mount=type=cache,target=/root/.cache --mount=type=secret,id=tok "
      "--network=none --security=insecure make all");
  EXPECT_THAT(run.mounts, ElementsAre("type=cache,target=/root/.cache", "type=secret,id=tok"));
  EXPECT_EQ(run.network, "none");
  EXPECT_EQ(run.security, "insecure");
  EXPECT_THAT(run.cmd_line, ElementsAre("make all"));
  EXPECT_TRUE(run.prepend_shell);
  EXPECT_EQ(run.original,
            "RUN --mount=type=cache,target=/root/.cache --mount=type=secret,id=tok "
            "--network=none --security=insecure make all");
  auto plain = One<RunCommand>("RUN [\"echo\", \"hi\"]");
  EXPECT_EQ(plain.network, "");
  EXPECT_EQ(plain.security, "");
  EXPECT_THAT(plain.mounts, IsEmpty());
  EXPECT_THAT(plain.cmd_line, ElementsAre("echo", "hi"));
  EXPECT_FALSE(plain.prepend_shell);
}

TEST(RunTest, FlagErrors) {
  EXPECT_THAT(ErrorOf("FROM a\n\nRUN --mnt=type=bind x\n"),
              ParseError(3, "unknown flag: --mnt (did you mean mount?)"));
  EXPECT_THAT(ErrorOf("FROM a\nRUN --network=bridge x\n"),
              ParseError(2, "invalid network mode \"bridge\""));
  EXPECT_THAT(ErrorOf("FROM a\nRUN --security=none x\n"),
              ParseError(2, "security \"none\" is not valid"));
  EXPECT_THAT(ErrorOf("FROM a\nRUN --network=none --network=host x\n"),
              ParseError(2, "duplicate flag specified: --network"));
  EXPECT_THAT(ErrorOf("FROM a\nRUN --network x\n"),
              ParseError(2, "missing a value on flag: --network"));
  EXPECT_THAT(ErrorOf("FROM a\nRUN --mount x\n"),
              ParseError(2, "missing a value on flag: --mount"));
  EXPECT_THAT(ErrorOf("FROM a\nRUN --mount=type=bind,from=$X,target=/a x\n"),
              ParseError(2,
                         "'from' doesn't support variable expansion, define alias stage "
                         "instead"));
  EXPECT_THAT(ErrorOf("FROM a\nRUN --mount='type=bind,target=\"a\"b' x\n"),
              ParseErrorThat(2, HasSubstr("failed to parse csv mounts")));
}

TEST(RunTest, Heredocs) {
  auto run = One<RunCommand>("RUN <<EOF bash\necho $A\nEOF\n");
  ASSERT_THAT(run.files, SizeIs(1));
  EXPECT_EQ(run.files[0].name, "EOF");
  EXPECT_EQ(run.files[0].content, "echo $A\n");
  EXPECT_THAT(run.cmd_line, ElementsAre("<<EOF bash"));
  EXPECT_EQ(run.location.start_line, 2);
  EXPECT_EQ(run.location.end_line, 4);
}

// ---- COPY / ADD ------------------------------------------------------------------------------

TEST(CopyTest, Fields) {
  auto c = One<CopyCommand>(
      "COPY --from=build --chown=app:app --chmod=0755 --link --parents --exclude=*.md "
      "--exclude=tmp a b/ /dst/");
  EXPECT_FALSE(c.is_add);
  EXPECT_EQ(c.name, "copy");
  EXPECT_THAT(c.sources, ElementsAre("a", "b/"));
  EXPECT_EQ(c.dest, "/dst/");
  EXPECT_EQ(c.from, "build");
  EXPECT_EQ(c.chown, "app:app");
  EXPECT_EQ(c.chmod, "0755");
  EXPECT_TRUE(c.link);
  EXPECT_TRUE(c.parents);
  EXPECT_THAT(c.excludes, ElementsAre("*.md", "tmp"));
  auto json = One<CopyCommand>("COPY [\"a b\", \"/c d/\"]");
  EXPECT_THAT(json.sources, ElementsAre("a b"));
  EXPECT_EQ(json.dest, "/c d/");
  auto nolink = One<CopyCommand>("COPY --link=false a /b");
  EXPECT_FALSE(nolink.link);
}

TEST(CopyTest, Errors) {
  EXPECT_THAT(ErrorOf("FROM a\nCOPY onlyone\n"),
              ParseError(2,
                         "COPY requires at least two arguments, but only one was provided. "
                         "Destination could not be determined"));
  EXPECT_THAT(ErrorOf("FROM a\nCOPY --checksum=sha256:x a b\n"),
              ParseError(2, "unknown flag: --checksum"));
  EXPECT_THAT(ErrorOf("FROM a\nCOPY --link=yes a b\n"),
              ParseError(2, "expecting boolean value for flag --link, not: yes"));
  EXPECT_THAT(ErrorOf("FROM a\nCOPY --link= a b\n"),
              ParseError(2, "missing a value on flag: --link"));
  EXPECT_THAT(ErrorOf("FROM a\nCOPY --from a b\n"),
              ParseError(2, "missing a value on flag: --from"));
  EXPECT_THAT(ErrorOf("FROM a\nCOPY --from=x --from=y a b\n"),
              ParseError(2, "duplicate flag specified: --from"));
  EXPECT_THAT(ErrorOf("FROM a\nCOPY a <<EOF\nx\nEOF\n"),
              ParseError(2, "COPY cannot accept a heredoc as a destination"));
}

TEST(CopyTest, HeredocSources) {
  auto c =
      One<CopyCommand>("COPY <<one.txt <<-'two' keep /dst/\nhello $X\none.txt\n\tworld\ntwo\n");
  EXPECT_THAT(c.sources, ElementsAre("keep"));
  ASSERT_THAT(c.source_contents, SizeIs(2));
  EXPECT_EQ(c.source_contents[0].name, "one.txt");
  EXPECT_EQ(c.source_contents[0].content, "hello $X\n");
  EXPECT_TRUE(c.source_contents[0].expand);
  EXPECT_EQ(c.source_contents[1].name, "two");
  EXPECT_EQ(c.source_contents[1].content, "world\n");
  EXPECT_FALSE(c.source_contents[1].expand);
  EXPECT_TRUE(c.source_contents[1].chomp);
  EXPECT_EQ(c.dest, "/dst/");
  auto only = One<CopyCommand>("COPY <<EOF /f\nx\nEOF\n");
  EXPECT_THAT(only.sources, IsEmpty());
  EXPECT_THAT(only.source_contents, SizeIs(1));
}

TEST(AddTest, Fields) {
  auto a = One<CopyCommand>(
      "ADD --chown=1 --chmod=644 --link --checksum=sha256:abc --keep-git-dir --unpack=false "
      "--exclude=x https://example.com/a.tgz /dst");
  EXPECT_TRUE(a.is_add);
  EXPECT_EQ(a.name, "add");
  EXPECT_EQ(a.chown, "1");
  EXPECT_EQ(a.chmod, "644");
  EXPECT_TRUE(a.link);
  EXPECT_EQ(a.checksum, "sha256:abc");
  EXPECT_EQ(a.keep_git_dir, std::optional<bool>(true));
  ASSERT_TRUE(a.unpack.has_value());
  EXPECT_FALSE(*a.unpack);
  EXPECT_THAT(a.excludes, ElementsAre("x"));
  EXPECT_THAT(a.sources, ElementsAre("https://example.com/a.tgz"));
  auto plain = One<CopyCommand>("ADD a b");
  EXPECT_FALSE(plain.unpack.has_value());
  EXPECT_FALSE(plain.keep_git_dir.has_value());
  EXPECT_TRUE(One<CopyCommand>("ADD --unpack a b").unpack.value_or(false));
  EXPECT_THAT(ErrorOf("FROM a\nADD --from=x a b\n"), ParseError(2, "unknown flag: --from"));
  EXPECT_THAT(ErrorOf("FROM a\nADD a\n"),
              ParseErrorThat(2, HasSubstr("ADD requires at least two")));
}

// ---- HEALTHCHECK -----------------------------------------------------------------------------

TEST(HealthcheckTest, Forms) {
  auto none = One<HealthcheckCommand>("HEALTHCHECK none");
  EXPECT_THAT(none.test, ElementsAre("NONE"));
  auto shell = One<HealthcheckCommand>(
      "HEALTHCHECK --interval=30s --timeout=1m30s --start-period=1.5s --start-interval=500ms "
      "--retries=3 CMD curl -f http://localhost/ || exit 1");
  EXPECT_THAT(shell.test, ElementsAre("CMD-SHELL", "curl -f http://localhost/ || exit 1"));
  EXPECT_EQ(shell.interval_ns, 30'000'000'000);
  EXPECT_EQ(shell.timeout_ns, 90'000'000'000);
  EXPECT_EQ(shell.start_period_ns, 1'500'000'000);
  EXPECT_EQ(shell.start_interval_ns, 500'000'000);
  EXPECT_EQ(shell.retries, 3);
  auto exec = One<HealthcheckCommand>("HEALTHCHECK cmd [\"/bin/check\", \"-q\"]");
  EXPECT_THAT(exec.test, ElementsAre("CMD", "/bin/check", "-q"));
  EXPECT_EQ(exec.interval_ns, 0);
  auto zero = One<HealthcheckCommand>("HEALTHCHECK --interval=0s --retries=0 CMD true");
  EXPECT_EQ(zero.interval_ns, 0);
  EXPECT_EQ(zero.retries, 0);
}

TEST(HealthcheckTest, Errors) {
  EXPECT_THAT(ErrorOf("FROM a\nHEALTHCHECK\n"),
              ParseError(2, "HEALTHCHECK requires at least one argument"));
  EXPECT_THAT(ErrorOf("FROM a\nHEALTHCHECK NONE x\n"),
              ParseError(2, "HEALTHCHECK NONE takes no arguments"));
  EXPECT_THAT(ErrorOf("FROM a\nHEALTHCHECK CMD\n"),
              ParseError(2, "Missing command after HEALTHCHECK CMD"));
  EXPECT_THAT(ErrorOf("FROM a\nHEALTHCHECK CONNECT x\n"),
              ParseError(2, "Unknown type \"CONNECT\" in HEALTHCHECK (try CMD)"));
  EXPECT_THAT(ErrorOf("FROM a\nHEALTHCHECK --interval=5 CMD x\n"),
              ParseError(2, "time: missing unit in duration \"5\""));
  EXPECT_THAT(ErrorOf("FROM a\nHEALTHCHECK --timeout=10us CMD x\n"),
              ParseError(2, "Interval \"timeout\" cannot be less than 1ms"));
  EXPECT_THAT(ErrorOf("FROM a\nHEALTHCHECK --retries=-1 CMD x\n"),
              ParseError(2, "--retries cannot be negative (-1)"));
  EXPECT_THAT(ErrorOf("FROM a\nHEALTHCHECK --retries=x CMD x\n"),
              ParseError(2, "strconv.ParseInt: parsing \"x\": invalid syntax"));
  EXPECT_THAT(ErrorOf("FROM a\nHEALTHCHECK --retries=9999999999 CMD x\n"),
              ParseErrorThat(2, HasSubstr("value out of range")));
  EXPECT_THAT(ErrorOf("FROM a\nHEALTHCHECK --intervl=1s CMD x\n"),
              ParseError(2, "unknown flag: --intervl (did you mean interval?)"));
}

// ---- ONBUILD ---------------------------------------------------------------------------------

TEST(OnbuildTest, Expression) {
  EXPECT_EQ(One<OnbuildCommand>("ONBUILD RUN echo hi").expression, "RUN echo hi");
  EXPECT_EQ(One<OnbuildCommand>("onbuild   COPY --from=x a b").expression, "COPY --from=x a b");
  EXPECT_EQ(One<OnbuildCommand>("ONBUILD RUN <<EOF\necho hi\nEOF\n").expression,
            "RUN <<EOF\necho hi\nEOF");
}

TEST(OnbuildTest, ForbiddenTriggers) {
  EXPECT_THAT(ErrorOf("FROM a\nONBUILD ONBUILD RUN x\n"),
              ParseError(2, "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"));
  EXPECT_THAT(ErrorOf("FROM a\nONBUILD FROM b\n"),
              ParseError(2, "FROM isn't allowed as an ONBUILD trigger"));
  EXPECT_THAT(ErrorOf("FROM a\nONBUILD maintainer me\n"),
              ParseError(2, "MAINTAINER isn't allowed as an ONBUILD trigger"));
  EXPECT_THAT(ErrorOf("FROM a\nONBUILD\n"),
              ParseError(2, "ONBUILD requires at least one argument"));
}

TEST(OnbuildTest, TriggerReparsesWithParseCommand) {
  auto expr = One<OnbuildCommand>("ONBUILD RUN --network=none make").expression;
  auto tree = parser::Parse(expr);
  ASSERT_THAT(tree, IsOk());
  auto cmd = ParseCommand(tree->root.children.at(0));
  ASSERT_THAT(cmd, IsOk());
  const auto* run = std::get_if<RunCommand>(&*cmd);
  ASSERT_NE(run, nullptr);
  EXPECT_EQ(run->network, "none");
  EXPECT_THAT(run->cmd_line, ElementsAre("make"));
}

TEST(ParseCommandTest, RejectsFromAndReportsLine) {
  auto tree = parser::Parse("FROM a\nCOPY --bad a b\n");
  ASSERT_THAT(tree, IsOk());
  EXPECT_THAT(ParseCommand(tree->root.children[0]),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("FROM")));
  EXPECT_THAT(ParseCommand(tree->root.children[1]), ParseError(2, "unknown flag: --bad"));
}

}  // namespace
}  // namespace kiln::dockerfile::instructions
