#pragma once
// Typed Dockerfile instructions from a parse tree, as BuildKit's frontend/dockerfile/instructions
// does: each node becomes one command with its flags checked (unknown flags and bad values are
// errors naming the instruction and line), grouped into stages by FROM. Words are NOT expanded
// here: values keep their `$VAR`s, and dockerfile2llb expands them with each stage's ARG/ENV
// scope (BuildKit expands at dispatch time too). Pure functions on values; thread-compatible.

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "frontend/dockerfile/parser/parser.h"

namespace kiln::dockerfile::instructions {

using parser::Heredoc;

// What every command carries.
struct Location {
  int start_line = 0;
  int end_line = 0;
};
struct CommandBase {
  std::string name;      // lowercased keyword: "run"
  std::string original;  // source text (for history's created_by and error messages)
  Location location;
};

struct KeyValue {
  std::string key;
  std::string value;
};
// ARG NAME[=default]
struct KeyValueOptional {
  std::string key;
  std::optional<std::string> value;
  std::string comment;  // the comment above the ARG, if any
};

struct FromCommand : CommandBase {
  std::string base_name;   // unexpanded ("golang:${GO_VERSION}", "scratch", a stage name)
  std::string stage_name;  // after AS, lowercased; empty if none
  std::string platform;    // --platform, unexpanded; empty if none
  std::string comment;     // "# NAME description" above FROM ... AS NAME: the description
};
struct ArgCommand : CommandBase {
  std::vector<KeyValueOptional> args;  // ARG A=1 B
};
struct EnvCommand : CommandBase {
  std::vector<KeyValue> env;  // values unexpanded; the legacy `ENV a b c` form gives {a, "b c"}
};
struct LabelCommand : CommandBase {
  std::vector<KeyValue> labels;
};
struct MaintainerCommand : CommandBase {
  std::string maintainer;
};
// RUN, CMD, ENTRYPOINT share the command-line shape.
struct ShellDependantCmdLine {
  std::vector<std::string> cmd_line;  // exec form: the argv; shell form: one string
  std::vector<Heredoc> files;         // heredocs attached to the instruction
  bool prepend_shell = false;         // shell form: run under the stage's SHELL
};
struct RunCommand : CommandBase, ShellDependantCmdLine {
  std::vector<std::string> mounts;  // raw --mount values, unexpanded (see ParseMount)
  std::string network;              // --network: "", "default", "none", "host"
  std::string security;             // --security: "", "sandbox", "insecure"
};
struct CmdCommand : CommandBase, ShellDependantCmdLine {};
struct EntrypointCommand : CommandBase, ShellDependantCmdLine {};
// COPY and ADD.
struct CopyCommand : CommandBase {
  bool is_add = false;
  std::vector<std::string> sources;      // unexpanded; empty when the sources are heredocs
  std::vector<Heredoc> source_contents;  // COPY <<EOF /dest
  std::string dest;
  std::string from;                   // --from (COPY only)
  std::string chown;                  // --chown
  std::string chmod;                  // --chmod (octal or symbolic)
  bool link = false;                  // --link
  bool parents = false;               // --parents
  std::vector<std::string> excludes;  // --exclude (repeatable)
  std::string checksum;               // --checksum (ADD only)
  std::optional<bool> keep_git_dir;   // --keep-git-dir (ADD only)
  std::optional<bool> unpack;         // --unpack (ADD only)
};
struct WorkdirCommand : CommandBase {
  std::string path;
};
struct UserCommand : CommandBase {
  std::string user;
};
struct ExposeCommand : CommandBase {
  std::vector<std::string> ports;  // "80", "53/udp", "8000-8010"; unexpanded
};
struct VolumeCommand : CommandBase {
  std::vector<std::string> volumes;
};
struct ShellCommand : CommandBase {
  std::vector<std::string> shell;  // JSON form only
};
struct StopSignalCommand : CommandBase {
  std::string signal;
};
// HEALTHCHECK NONE | HEALTHCHECK [--interval=..] CMD ...
struct HealthcheckCommand : CommandBase {
  std::vector<std::string> test;  // {"NONE"}, {"CMD", argv...} or {"CMD-SHELL", "cmd"}
  int64_t interval_ns = 0;        // 0 = unset; durations parsed like Go's time.ParseDuration
  int64_t timeout_ns = 0;
  int64_t start_period_ns = 0;
  int64_t start_interval_ns = 0;
  int retries = 0;
};
struct OnbuildCommand : CommandBase {
  std::string expression;  // the trigger as written: "RUN echo hi"
};

using Command = std::variant<ArgCommand, EnvCommand, LabelCommand, MaintainerCommand, RunCommand,
                             CmdCommand, EntrypointCommand, CopyCommand, WorkdirCommand,
                             UserCommand, ExposeCommand, VolumeCommand, ShellCommand,
                             StopSignalCommand, HealthcheckCommand, OnbuildCommand>;

// FROM ... and the commands up to the next FROM.
struct Stage {
  FromCommand from;
  std::vector<Command> commands;
};

struct Dockerfile {
  std::vector<ArgCommand> meta_args;  // ARGs before the first FROM
  std::vector<Stage> stages;
  parser::Directives directives;
  std::vector<parser::Warning> warnings;  // parser warnings, plus instruction-level ones
};

// Parses and groups a whole Dockerfile. Errors name the line: "dockerfile parse error on line
// 4: unknown flag: --form" / "ENV names can not be blank" / "instructions other than ARG before
// FROM". Only ARG may precede the first FROM; a Dockerfile without FROM is an error.
[[nodiscard]] absl::StatusOr<Dockerfile> Parse(std::string_view dockerfile);

// The same for an already parsed tree (used for ONBUILD triggers: `Parse("RUN echo hi")`-like
// single instructions are parsed with ParseCommand).
[[nodiscard]] absl::StatusOr<Dockerfile> FromTree(const parser::Result& tree);
// One instruction node -> command (FROM is not allowed here).
[[nodiscard]] absl::StatusOr<Command> ParseCommand(const parser::Node& node);

// RUN --mount=... (BuildKit's runmount.go). `expand` is applied to each value before it is
// interpreted (so `target=$DIR` works); it may fail.
enum class MountType { kBind, kCache, kTmpfs, kSecret, kSsh };
enum class CacheSharing { kShared, kPrivate, kLocked };
struct Mount {
  MountType type = MountType::kBind;
  std::string from;       // bind/cache: a stage, image or named context; empty = build context
  std::string source;     // path in `from` (bind/cache), default "/"
  std::string target;     // required except for secret/ssh (they have defaults)
  bool read_only = true;  // bind: true unless rw; cache/tmpfs: false unless ro
  bool read_only_set = false;
  std::string cache_id;  // cache: id (default: target)
  CacheSharing sharing = CacheSharing::kShared;
  bool required = false;  // secret/ssh: required=true
  std::optional<uint32_t> mode, uid, gid;
  std::optional<int64_t> size_bytes;  // tmpfs size=
  std::string env;                    // secret: env=NAME
  std::string ssh_id;                 // ssh: id (default "default")
};
using Expander = std::function<absl::StatusOr<std::string>(std::string_view)>;
// Errors: INVALID_ARGUMENT naming the bad key or value ("unexpected key 'foo' in 'foo=bar'",
// "invalid mount type \"weird\"", "mount target is required").
[[nodiscard]] absl::StatusOr<Mount> ParseMount(std::string_view value, const Expander& expand);

// "1m30s", "500ms", "2h" (Go's time.ParseDuration grammar) -> nanoseconds.
[[nodiscard]] absl::StatusOr<int64_t> ParseDuration(std::string_view text);

}  // namespace kiln::dockerfile::instructions
