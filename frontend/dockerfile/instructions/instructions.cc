#include "frontend/dockerfile/instructions/instructions.h"

#include <algorithm>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/go_text.h"
#include "base/status.h"
#include "frontend/dockerfile/instructions/internal/mount_csv.h"
#include "frontend/dockerfile/parser/internal/heredoc.h"
#include "frontend/dockerfile/parser/internal/parse.h"
#include "frontend/dockerfile/parser/internal/text.h"

namespace kiln::dockerfile::instructions {
namespace {

using ::kiln::AV;
using ::kiln::SV;
using ::kiln::gotext::TrimSpace;
using parser::Node;
using parser::internal::LineError;
using parser::internal::SuggestOption;
using parser::internal::ToLower;
using parser::internal::ToUpper;

absl::Status Error(std::string message) { return absl::InvalidArgumentError(message); }

// ---------------------------------------------------------------------------------------------
// BuildKit's BFlags: the flags an instruction accepts, checked against what was written.

enum class FlagType { kBool, kString, kStrings };

struct Flag {
  std::string name;
  FlagType type = FlagType::kString;
  std::string value;
  std::vector<std::string> values;
  bool used = false;
};

class BFlags {
 public:
  explicit BFlags(const std::vector<std::string>& args) : args_(args) {}

  Flag* AddBool(std::string name, bool def) {
    Flag* f = Add(std::move(name), FlagType::kBool);
    f->value = def ? "true" : "false";
    return f;
  }
  Flag* AddString(std::string name, std::string def = "") {
    Flag* f = Add(std::move(name), FlagType::kString);
    f->value = std::move(def);
    return f;
  }
  Flag* AddStrings(std::string name) { return Add(std::move(name), FlagType::kStrings); }

  absl::Status Parse() {
    for (const std::string& a : args_) {
      if (a == "--") return absl::OkStatus();
      if (a.rfind("--", 0) != 0) return Error(absl::StrCat("arg should start with -- : ", a));
      const size_t eq = a.find('=');
      const bool has_value = eq != std::string::npos;
      const std::string flag_name = a.substr(0, eq);
      const std::string value = has_value ? a.substr(eq + 1) : "";
      const std::string arg = flag_name.substr(2);
      Flag* flag = Find(arg);
      if (flag == nullptr) {
        std::vector<std::string> names;
        for (const Flag& f : flags_) names.push_back(f.name);
        std::string msg = absl::StrCat("unknown flag: ", flag_name);
        std::string match = SuggestOption(arg, names, true);
        if (!match.empty()) absl::StrAppend(&msg, " (did you mean ", match, "?)");
        return Error(msg);
      }
      if (flag->used && flag->type != FlagType::kStrings) {
        return Error(absl::StrCat("duplicate flag specified: ", flag_name));
      }
      flag->used = true;
      switch (flag->type) {
        case FlagType::kBool: {
          if (has_value && value.empty()) {
            return Error(absl::StrCat("missing a value on flag: ", flag_name));
          }
          const std::string lower = ToLower(value);
          if (lower == "true" || lower.empty()) {
            flag->value = "true";
          } else if (lower == "false") {
            flag->value = "false";
          } else {
            return Error(
                absl::StrCat("expecting boolean value for flag ", flag_name, ", not: ", value));
          }
          break;
        }
        case FlagType::kString:
          if (!has_value) return Error(absl::StrCat("missing a value on flag: ", flag_name));
          flag->value = value;
          break;
        case FlagType::kStrings:
          if (!has_value) return Error(absl::StrCat("missing a value on flag: ", flag_name));
          flag->values.push_back(value);
          break;
      }
    }
    return absl::OkStatus();
  }

 private:
  Flag* Add(std::string name, FlagType type) {
    Flag& f = flags_.emplace_back();
    f.name = std::move(name);
    f.type = type;
    return &f;
  }
  Flag* Find(std::string_view name) {
    for (Flag& f : flags_) {
      if (f.name == name) return &f;
    }
    return nullptr;
  }

  std::vector<std::string> args_;
  std::deque<Flag> flags_;
};

// ---------------------------------------------------------------------------------------------

struct Request {
  std::string command;  // the keyword as written ("RUN", "run")
  std::vector<std::string> args;
  const Node* node;
  BFlags flags;
};

void NodeArgs(const Node& node, std::vector<std::string>* out) {
  for (const Node& n : node.next) out->push_back(n.value);
  // ONBUILD: the trigger keyword and its arguments.
  for (const Node& child : node.children) {
    out->push_back(child.value);
    NodeArgs(child, out);
  }
}

std::string Keyword(const Node& node) {
  std::vector<std::string> parts = parser::internal::SplitWhitespace(TrimSpace(node.original), 2);
  if (parts.empty() || parts[0].empty()) return node.value;
  return parts[0];
}

template <typename T>
T WithBase(const Request& req) {
  T cmd{};
  cmd.name = ToLower(req.node->value);
  cmd.original = std::string(TrimSpace(req.node->original));
  cmd.location.start_line = req.node->start_line;
  cmd.location.end_line = req.node->end_line;
  return cmd;
}

absl::Status AtLeastOneArgument(std::string_view command) {
  return Error(absl::StrCat(AV(command), " requires at least one argument"));
}
absl::Status ExactlyOneArgument(std::string_view command) {
  return Error(absl::StrCat(AV(command), " requires exactly one argument"));
}

// handleJSONArgs
std::vector<std::string> JsonArgs(const std::vector<std::string>& args, bool json) {
  if (args.empty()) return {};
  if (json) return args;
  return {absl::StrJoin(args, " ")};
}

std::string DocComment(const std::vector<std::string>& comments, std::string_view name) {
  if (name.empty()) return "";
  const std::string prefix = absl::StrCat(AV(name), " ");
  for (const std::string& line : comments) {
    if (line.rfind(prefix, 0) == 0) return line.substr(prefix.size());
  }
  return "";
}

absl::StatusOr<std::vector<KeyValue>> ParseKvps(const std::vector<std::string>& args,
                                                std::string_view cmd_name) {
  if (args.empty()) return AtLeastOneArgument(cmd_name);
  if (args.size() % 3 != 0) {
    return Error(absl::StrCat("Bad input to ", AV(cmd_name), ", too many arguments"));
  }
  std::vector<KeyValue> out;
  for (size_t j = 0; j < args.size(); j += 3) {
    if (args[j].empty()) return Error(absl::StrCat(AV(cmd_name), " names can not be blank"));
    out.push_back(KeyValue{args[j], args[j + 1]});
  }
  return out;
}

bool IsValidStageName(std::string_view name) {
  if (name.empty() || !(name[0] >= 'a' && name[0] <= 'z')) return false;
  for (char c : name) {
    const bool ok =
        (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
    if (!ok) return false;
  }
  return true;
}

absl::StatusOr<FromCommand> ParseFrom(Request& req) {
  std::string stage_name;
  const auto& args = req.args;
  if (args.size() == 3 && ToLower(args[1]) == "as") {
    stage_name = ToLower(args[2]);
    if (!IsValidStageName(stage_name)) {
      return Error(absl::StrCat("invalid name for build stage: ", gotext::Quote(args[2]),
                                ", name can't start with a number or contain symbols"));
    }
  } else if (args.size() != 1) {
    return Error("FROM requires either one or three arguments");
  }
  Flag* platform = req.flags.AddString("platform");
  KILN_RETURN_IF_ERROR(req.flags.Parse());
  FromCommand cmd = WithBase<FromCommand>(req);
  cmd.base_name = args[0];
  cmd.stage_name = stage_name;
  cmd.comment = DocComment(req.node->prev_comment, stage_name);
  cmd.platform = platform->value;
  return cmd;
}

absl::StatusOr<Command> ParseEnvOrLabel(Request& req, bool env) {
  KILN_RETURN_IF_ERROR(req.flags.Parse());
  KILN_ASSIGN_OR_RETURN(std::vector<KeyValue> kvs, ParseKvps(req.args, env ? "ENV" : "LABEL"));
  if (env) {
    EnvCommand cmd = WithBase<EnvCommand>(req);
    cmd.env = std::move(kvs);
    return cmd;
  }
  LabelCommand cmd = WithBase<LabelCommand>(req);
  cmd.labels = std::move(kvs);
  return cmd;
}

absl::StatusOr<Command> ParseMaintainer(Request& req) {
  if (req.args.size() != 1) return ExactlyOneArgument("MAINTAINER");
  KILN_RETURN_IF_ERROR(req.flags.Parse());
  MaintainerCommand cmd = WithBase<MaintainerCommand>(req);
  cmd.maintainer = req.args[0];
  return cmd;
}

std::optional<parser::Heredoc> MustParseHeredoc(std::string_view src) {
  auto h = parser::internal::ParseHeredoc(src);
  if (!h.ok()) return std::nullopt;
  return *h;
}

absl::Status ParseSourcesAndDest(const Request& req, std::string_view command, CopyCommand* cmd) {
  const std::string& dest = req.args.back();
  if (MustParseHeredoc(dest).has_value()) {
    return Error(absl::StrCat(AV(command), " cannot accept a heredoc as a destination"));
  }
  std::map<std::string, const parser::Heredoc*> lookup;
  for (const parser::Heredoc& h : req.node->heredocs) lookup[h.name] = &h;
  for (size_t i = 0; i + 1 < req.args.size(); ++i) {
    const std::string& src = req.args[i];
    if (auto h = MustParseHeredoc(src); h.has_value()) {
      auto it = lookup.find(h->name);
      std::string content = it == lookup.end() ? "" : it->second->content;
      if (h->chomp) content = parser::internal::ChompHeredocContent(content);
      h->content = std::move(content);
      cmd->source_contents.push_back(std::move(*h));
    } else {
      cmd->sources.push_back(src);
    }
  }
  cmd->dest = dest;
  return absl::OkStatus();
}

absl::StatusOr<Command> ParseAdd(Request& req) {
  if (req.args.size() < 2) {
    return Error(
        "ADD requires at least two arguments, but only one was provided. Destination could not "
        "be determined");
  }
  Flag* chown = req.flags.AddString("chown");
  Flag* chmod = req.flags.AddString("chmod");
  Flag* link = req.flags.AddBool("link", false);
  Flag* keep_git_dir = req.flags.AddBool("keep-git-dir", false);
  Flag* checksum = req.flags.AddString("checksum");
  Flag* unpack = req.flags.AddBool("unpack", false);
  Flag* excludes = req.flags.AddStrings("exclude");
  KILN_RETURN_IF_ERROR(req.flags.Parse());
  CopyCommand cmd = WithBase<CopyCommand>(req);
  cmd.is_add = true;
  KILN_RETURN_IF_ERROR(ParseSourcesAndDest(req, "ADD", &cmd));
  cmd.chown = chown->value;
  cmd.chmod = chmod->value;
  cmd.link = link->value == "true";
  if (keep_git_dir->used) cmd.keep_git_dir = keep_git_dir->value == "true";
  cmd.checksum = checksum->value;
  if (unpack->used) cmd.unpack = unpack->value == "true";
  cmd.excludes = excludes->values;
  return cmd;
}

absl::StatusOr<Command> ParseCopy(Request& req) {
  if (req.args.size() < 2) {
    return Error(
        "COPY requires at least two arguments, but only one was provided. Destination could not "
        "be determined");
  }
  Flag* chown = req.flags.AddString("chown");
  Flag* from = req.flags.AddString("from");
  Flag* chmod = req.flags.AddString("chmod");
  Flag* link = req.flags.AddBool("link", false);
  Flag* excludes = req.flags.AddStrings("exclude");
  Flag* parents = req.flags.AddBool("parents", false);
  KILN_RETURN_IF_ERROR(req.flags.Parse());
  CopyCommand cmd = WithBase<CopyCommand>(req);
  KILN_RETURN_IF_ERROR(ParseSourcesAndDest(req, "COPY", &cmd));
  cmd.from = from->value;
  cmd.chown = chown->value;
  cmd.chmod = chmod->value;
  cmd.link = link->value == "true";
  cmd.parents = parents->value == "true";
  cmd.excludes = excludes->values;
  return cmd;
}

// (?i)^\s*ONBUILD\s* removed from the source.
std::string StripOnbuild(std::string_view original) {
  auto is_space = [](char c) {
    return c == '\t' || c == '\n' || c == '\f' || c == '\r' || c == ' ';
  };
  size_t i = 0;
  while (i < original.size() && is_space(original[i])) ++i;
  if (ToUpper(original.substr(i, 7)) != "ONBUILD") return std::string(original);
  i += 7;
  while (i < original.size() && is_space(original[i])) ++i;
  return std::string(original.substr(i));
}

absl::StatusOr<Command> ParseOnbuild(Request& req) {
  if (req.args.empty()) return AtLeastOneArgument("ONBUILD");
  KILN_RETURN_IF_ERROR(req.flags.Parse());
  const std::string trigger = ToUpper(TrimSpace(req.args[0]));
  if (trigger == "ONBUILD") {
    return Error("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed");
  }
  if (trigger == "MAINTAINER" || trigger == "FROM") {
    return Error(absl::StrCat(trigger, " isn't allowed as an ONBUILD trigger"));
  }
  std::string expression = StripOnbuild(req.node->original);
  for (const parser::Heredoc& h : req.node->heredocs) {
    absl::StrAppend(&expression, "\n", h.content, h.name);
  }
  OnbuildCommand cmd = WithBase<OnbuildCommand>(req);
  cmd.expression = std::move(expression);
  return cmd;
}

absl::StatusOr<Command> ParseWorkdir(Request& req) {
  if (req.args.size() != 1) return ExactlyOneArgument("WORKDIR");
  KILN_RETURN_IF_ERROR(req.flags.Parse());
  WorkdirCommand cmd = WithBase<WorkdirCommand>(req);
  cmd.path = req.args[0];
  return cmd;
}

template <typename T>
void FillCmdLine(const Request& req, T* cmd) {
  cmd->cmd_line = JsonArgs(req.args, req.node->json);
  cmd->files = req.node->heredocs;
  cmd->prepend_shell = !req.node->json;
}

// The checks BuildKit makes on --mount values at parse time, before any expansion.
absl::Status CheckMountUnexpanded(std::string_view value) {
  auto fields = internal::CsvFields(value);
  if (!fields.ok()) {
    return Error(absl::StrCat("failed to parse csv mounts: ", fields.status().message()));
  }
  for (const std::string& field : *fields) {
    const size_t eq = field.find('=');
    if (eq == std::string::npos) continue;
    if (ToLower(std::string_view(field).substr(0, eq)) != "from") continue;
    const std::string value_part = field.substr(eq + 1);
    const size_t idx = value_part.find('$');
    if (idx != std::string::npos && idx != value_part.size() - 1) {
      return Error("'from' doesn't support variable expansion, define alias stage instead");
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Command> ParseRun(Request& req) {
  Flag* mount = req.flags.AddStrings("mount");
  Flag* network = req.flags.AddString("network", "default");
  Flag* security = req.flags.AddString("security", "sandbox");
  KILN_RETURN_IF_ERROR(req.flags.Parse());
  RunCommand cmd = WithBase<RunCommand>(req);
  FillCmdLine(req, &cmd);
  for (const std::string& m : mount->values) KILN_RETURN_IF_ERROR(CheckMountUnexpanded(m));
  cmd.mounts = mount->values;
  const std::string& net = network->value;
  if (net != "default" && net != "none" && net != "host") {
    return Error(absl::StrCat("invalid network mode ", gotext::Quote(net)));
  }
  if (network->used) cmd.network = net;
  const std::string& sec = security->value;
  if (sec != "sandbox" && sec != "insecure") {
    return Error(absl::StrCat("security ", gotext::Quote(sec), " is not valid"));
  }
  if (security->used) cmd.security = sec;
  return cmd;
}

absl::StatusOr<Command> ParseCmd(Request& req) {
  KILN_RETURN_IF_ERROR(req.flags.Parse());
  CmdCommand cmd = WithBase<CmdCommand>(req);
  FillCmdLine(req, &cmd);
  return cmd;
}

absl::StatusOr<Command> ParseEntrypoint(Request& req) {
  KILN_RETURN_IF_ERROR(req.flags.Parse());
  EntrypointCommand cmd = WithBase<EntrypointCommand>(req);
  FillCmdLine(req, &cmd);
  return cmd;
}

absl::StatusOr<int64_t> ParseOptInterval(const Flag& f) {
  if (f.value.empty()) return 0;
  auto d = ParseDuration(f.value);
  if (!d.ok()) return Error(std::string(SV(d.status().message())));
  if (*d == 0) return 0;
  if (*d < 1000 * 1000) {
    return Error(absl::StrCat("Interval ", gotext::Quote(f.name), " cannot be less than 1ms"));
  }
  return *d;
}

// strconv.ParseInt(s, 10, 32).
absl::StatusOr<int64_t> ParseInt32(const std::string& s) {
  const std::string prefix = absl::StrCat("strconv.ParseInt: parsing ", gotext::Quote(s), ": ");
  size_t i = 0;
  bool neg = false;
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) {
    neg = s[0] == '-';
    i = 1;
  }
  if (i == s.size()) return Error(prefix + "invalid syntax");
  int64_t v = 0;
  bool overflow = false;
  for (; i < s.size(); ++i) {
    if (s[i] < '0' || s[i] > '9') return Error(prefix + "invalid syntax");
    if (!overflow) {
      v = v * 10 + (s[i] - '0');
      if (v > (int64_t{1} << 31)) overflow = true;
    }
  }
  if (neg) v = -v;
  if (overflow || v > INT32_MAX || v < INT32_MIN) return Error(prefix + "value out of range");
  return v;
}

absl::StatusOr<Command> ParseHealthcheck(Request& req) {
  if (req.args.empty()) return AtLeastOneArgument("HEALTHCHECK");
  HealthcheckCommand cmd = WithBase<HealthcheckCommand>(req);
  const std::string typ = ToUpper(req.args[0]);
  std::vector<std::string> args(req.args.begin() + 1, req.args.end());
  if (typ == "NONE") {
    if (!args.empty()) return Error("HEALTHCHECK NONE takes no arguments");
    cmd.test = {typ};
    return cmd;
  }
  Flag* interval = req.flags.AddString("interval");
  Flag* timeout = req.flags.AddString("timeout");
  Flag* start_period = req.flags.AddString("start-period");
  Flag* start_interval = req.flags.AddString("start-interval");
  Flag* retries = req.flags.AddString("retries");
  KILN_RETURN_IF_ERROR(req.flags.Parse());
  if (typ != "CMD") {
    return Error(absl::StrCat("Unknown type ", gotext::Quote(typ), " in HEALTHCHECK (try CMD)"));
  }
  std::vector<std::string> cmd_slice = JsonArgs(args, req.node->json);
  if (cmd_slice.empty()) return Error("Missing command after HEALTHCHECK CMD");
  cmd.test.push_back(req.node->json ? "CMD" : "CMD-SHELL");
  cmd.test.insert(cmd.test.end(), cmd_slice.begin(), cmd_slice.end());
  KILN_ASSIGN_OR_RETURN(cmd.interval_ns, ParseOptInterval(*interval));
  KILN_ASSIGN_OR_RETURN(cmd.timeout_ns, ParseOptInterval(*timeout));
  KILN_ASSIGN_OR_RETURN(cmd.start_period_ns, ParseOptInterval(*start_period));
  KILN_ASSIGN_OR_RETURN(cmd.start_interval_ns, ParseOptInterval(*start_interval));
  if (!retries->value.empty()) {
    KILN_ASSIGN_OR_RETURN(int64_t r, ParseInt32(retries->value));
    if (r < 0) return Error(absl::StrCat("--retries cannot be negative (", r, ")"));
    cmd.retries = static_cast<int>(r);
  }
  return cmd;
}

absl::StatusOr<Command> ParseExpose(Request& req) {
  if (req.args.empty()) return AtLeastOneArgument("EXPOSE");
  KILN_RETURN_IF_ERROR(req.flags.Parse());
  ExposeCommand cmd = WithBase<ExposeCommand>(req);
  cmd.ports = req.args;
  std::sort(cmd.ports.begin(), cmd.ports.end());
  return cmd;
}

absl::StatusOr<Command> ParseUser(Request& req) {
  if (req.args.size() != 1) return ExactlyOneArgument("USER");
  KILN_RETURN_IF_ERROR(req.flags.Parse());
  UserCommand cmd = WithBase<UserCommand>(req);
  cmd.user = req.args[0];
  return cmd;
}

absl::StatusOr<Command> ParseVolume(Request& req) {
  if (req.args.empty()) return AtLeastOneArgument("VOLUME");
  KILN_RETURN_IF_ERROR(req.flags.Parse());
  VolumeCommand cmd = WithBase<VolumeCommand>(req);
  for (const std::string& v : req.args) {
    std::string_view t = TrimSpace(v);
    if (t.empty()) return Error("VOLUME specified can not be an empty string");
    cmd.volumes.emplace_back(t);
  }
  return cmd;
}

absl::StatusOr<Command> ParseStopSignal(Request& req) {
  if (req.args.size() != 1) return ExactlyOneArgument("STOPSIGNAL");
  StopSignalCommand cmd = WithBase<StopSignalCommand>(req);
  cmd.signal = req.args[0];
  return cmd;
}

absl::StatusOr<Command> ParseArg(Request& req) {
  if (req.args.empty()) return AtLeastOneArgument("ARG");
  ArgCommand cmd = WithBase<ArgCommand>(req);
  for (const std::string& arg : req.args) {
    KeyValueOptional kv;
    const size_t eq = arg.find('=');
    if (eq != std::string::npos) {
      if (eq == 0) return Error("ARG names can not be blank");
      kv.key = arg.substr(0, eq);
      kv.value = arg.substr(eq + 1);
    } else {
      kv.key = arg;
    }
    kv.comment = DocComment(req.node->prev_comment, kv.key);
    cmd.args.push_back(std::move(kv));
  }
  return cmd;
}

absl::StatusOr<Command> ParseShell(Request& req) {
  KILN_RETURN_IF_ERROR(req.flags.Parse());
  std::vector<std::string> shell = JsonArgs(req.args, req.node->json);
  if (shell.empty()) return AtLeastOneArgument("SHELL");
  if (!req.node->json) return Error("SHELL requires the arguments to be in JSON form");
  ShellCommand cmd = WithBase<ShellCommand>(req);
  cmd.shell = std::move(shell);
  return cmd;
}

constexpr std::string_view kLintUrlBase = "https://docs.docker.com/go/dockerfile/rule/";

void Lint(std::vector<parser::Warning>* warnings, const Node& node, std::string rule,
          std::string url_slug, std::string message, std::string description) {
  if (warnings == nullptr) return;
  parser::Warning w;
  w.short_message = std::move(message);
  w.detail = std::move(description);
  w.line = node.start_line;
  w.rule = std::move(rule);
  w.url = absl::StrCat(AV(kLintUrlBase), url_slug, "/");
  warnings->push_back(std::move(w));
}

// The linter rules BuildKit runs while parsing instructions.
void LintInstruction(const Request& req, std::vector<parser::Warning>* warnings) {
  const std::string lower = ToLower(req.node->value);
  if (lower == "maintainer") {
    Lint(warnings, *req.node, "MaintainerDeprecated", "maintainer-deprecated",
         "Maintainer instruction is deprecated in favor of using label",
         "The MAINTAINER instruction is deprecated, use a label instead to define an image "
         "author");
  } else if (lower == "from") {
    const auto& args = req.args;
    if (args.size() == 3 && args[2] != ToLower(args[2])) {
      Lint(warnings, *req.node, "StageNameCasing", "stage-name-casing",
           absl::StrCat("Stage name '", args[2], "' should be lowercase"),
           "Stage names should be lowercase");
    }
    if (args.size() >= 3) {
      const std::string& c = req.command;
      const bool from_lower = c == ToLower(c);
      const bool from_upper = c == ToUpper(c);
      bool mismatch = false;
      if (from_lower) {
        mismatch = args[1] != ToLower(args[1]);
      } else if (from_upper) {
        mismatch = args[1] != ToUpper(args[1]);
      }
      if (mismatch) {
        Lint(warnings, *req.node, "FromAsCasing", "from-as-casing",
             absl::StrCat("'", args[1], "' and '", c, "' keywords' casing do not match"),
             "The 'as' keyword should match the case of the 'from' keyword");
      }
    }
  }
}

using Instruction = std::variant<FromCommand, Command>;

absl::StatusOr<Instruction> ParseInstruction(const Node& node,
                                             std::vector<parser::Warning>* warnings) {
  Request req{Keyword(node), {}, &node, BFlags(node.flags)};
  NodeArgs(node, &req.args);
  LintInstruction(req, warnings);
  const std::string cmd = ToLower(node.value);
  absl::StatusOr<Command> out;
  if (cmd == "from") {
    KILN_ASSIGN_OR_RETURN(FromCommand from, ParseFrom(req));
    return Instruction(std::move(from));
  }
  if (cmd == "env" || cmd == "label") {
    out = ParseEnvOrLabel(req, cmd == "env");
  } else if (cmd == "maintainer") {
    out = ParseMaintainer(req);
  } else if (cmd == "add") {
    out = ParseAdd(req);
  } else if (cmd == "copy") {
    out = ParseCopy(req);
  } else if (cmd == "onbuild") {
    out = ParseOnbuild(req);
  } else if (cmd == "workdir") {
    out = ParseWorkdir(req);
  } else if (cmd == "run") {
    out = ParseRun(req);
  } else if (cmd == "cmd") {
    out = ParseCmd(req);
  } else if (cmd == "healthcheck") {
    out = ParseHealthcheck(req);
  } else if (cmd == "entrypoint") {
    out = ParseEntrypoint(req);
  } else if (cmd == "expose") {
    out = ParseExpose(req);
  } else if (cmd == "user") {
    out = ParseUser(req);
  } else if (cmd == "volume") {
    out = ParseVolume(req);
  } else if (cmd == "stopsignal") {
    out = ParseStopSignal(req);
  } else if (cmd == "arg") {
    out = ParseArg(req);
  } else if (cmd == "shell") {
    out = ParseShell(req);
  } else {
    return Error(parser::internal::UnknownInstructionMessage(req.command));
  }
  if (!out.ok()) return out.status();
  return Instruction(std::move(*out));
}

absl::Status AtLine(const Node& node, const absl::Status& status) {
  return LineError(node.start_line, SV(status.message()));
}

}  // namespace

absl::StatusOr<Command> ParseCommand(const parser::Node& node) {
  auto inst = ParseInstruction(node, nullptr);
  if (!inst.ok()) return AtLine(node, inst.status());
  if (std::holds_alternative<FromCommand>(*inst)) {
    return LineError(node.start_line, "FROM is not a command type");
  }
  return std::get<Command>(std::move(*inst));
}

absl::StatusOr<Dockerfile> FromTree(const parser::Result& tree) {
  Dockerfile df;
  df.directives = tree.directives;
  df.warnings = tree.warnings;
  for (const Node& node : tree.root.children) {
    auto inst = ParseInstruction(node, &df.warnings);
    if (!inst.ok()) return AtLine(node, inst.status());
    if (auto* from = std::get_if<FromCommand>(&*inst)) {
      Stage stage;
      stage.from = std::move(*from);
      df.stages.push_back(std::move(stage));
      continue;
    }
    Command& cmd = std::get<Command>(*inst);
    if (df.stages.empty()) {
      if (auto* arg = std::get_if<ArgCommand>(&cmd)) {
        df.meta_args.push_back(std::move(*arg));
        continue;
      }
      return LineError(node.start_line,
                       "no build stage in current context: instructions other than ARG before "
                       "FROM");
    }
    df.stages.back().commands.push_back(std::move(cmd));
  }
  if (df.stages.empty()) {
    return absl::InvalidArgumentError("dockerfile contains no stages to build");
  }
  return df;
}

absl::StatusOr<Dockerfile> Parse(std::string_view dockerfile) {
  KILN_ASSIGN_OR_RETURN(
      parser::Result tree,
      parser::internal::ParseWithOptions(
          dockerfile, parser::internal::ParseOptions{.allow_unknown_instructions = true}));
  return FromTree(tree);
}

}  // namespace kiln::dockerfile::instructions
