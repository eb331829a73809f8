#include "frontend/dockerfile/convert/convert.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <utility>
#include <variant>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "base/status.h"
#include "frontend/dockerfile/convert/git_ref.h"
#include "frontend/dockerfile/instructions/instructions.h"
#include "frontend/dockerfile/parser/parser.h"
#include "frontend/dockerfile/shell/lex.h"
#include "llb/errdefs.h"

namespace kiln::dockerfile {
namespace {

namespace ins = instructions;
using json = nlohmann::ordered_json;

constexpr char kHistoryComment[] = "buildkit.dockerfile.v0";
constexpr char kDefaultPath[] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const std::vector<std::string>& DefaultShell() {
  static const auto* shell = new std::vector<std::string>{"/bin/sh", "-c"};
  return *shell;
}
// Build args every Dockerfile may use without declaring them; they reach RUN's environment
// but neither the image nor the history (BuildKit's allowed proxy args).
const std::set<std::string>& ProxyArgs() {
  static const auto* args = new std::set<std::string>{
      "HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY",
      "ftp_proxy",  "NO_PROXY",   "no_proxy",    "ALL_PROXY",   "all_proxy"};
  return *args;
}

absl::Status LineError(const ins::CommandBase& c, std::string_view message) {
  absl::Status st = absl::InvalidArgumentError(
      absl::StrCat("Dockerfile:", c.location.start_line, ": ", AV(message)));
  st.SetPayload(parser::kLinesPayload,
                absl::Cord(absl::StrCat(c.location.start_line, "-", c.location.end_line)));
  return st;
}
absl::Status LineError(const ins::CommandBase& c, const absl::Status& st) {
  return LineError(c, std::string_view(st.message().data(), st.message().size()));
}

// An ordered KEY=VALUE list with replace-in-place semantics (image Env, build args).
class KeyValues {
 public:
  void Set(const std::string& key, const std::string& value) {
    for (auto& [k, v] : items_) {
      if (k == key) {
        v = value;
        return;
      }
    }
    items_.emplace_back(key, value);
  }
  std::optional<std::string> Get(std::string_view key) const {
    for (const auto& [k, v] : items_) {
      if (k == key) return v;
    }
    return std::nullopt;
  }
  const std::vector<std::pair<std::string, std::string>>& items() const { return items_; }

 private:
  std::vector<std::pair<std::string, std::string>> items_;
};

std::string PlatformString(const llb::Platform& p) { return llb::FormatPlatform(p); }

// The predefined platform args (TARGETPLATFORM, BUILDOS, ...).
std::map<std::string, std::string> PlatformArgs(const llb::Platform& build,
                                                const llb::Platform& target) {
  return {{"BUILDPLATFORM", PlatformString(build)},   {"BUILDOS", build.os},
          {"BUILDARCH", build.architecture},          {"BUILDVARIANT", build.variant},
          {"TARGETPLATFORM", PlatformString(target)}, {"TARGETOS", target.os},
          {"TARGETARCH", target.architecture},        {"TARGETVARIANT", target.variant}};
}

}  // namespace

bool LooksLikeSecretName(std::string_view name_in) {
  const absl::string_view name = AV(name_in);
  static const std::set<std::string> kWords = {"apikey", "auth",     "credential", "credentials",
                                               "key",    "password", "pword",      "passwd",
                                               "secret", "token"};
  for (absl::string_view part : absl::StrSplit(name, '_')) {
    if (kWords.count(absl::AsciiStrToLower(part)) != 0) return true;
  }
  return false;
}

namespace {

std::string Quote(const std::string& s) { return json(s).dump(); }
// Go's %q of a []string: ["a" "b"].
std::string QuoteList(const std::vector<std::string>& v) {
  std::vector<std::string> q;
  for (const auto& s : v) q.push_back(Quote(s));
  return absl::StrCat("[", absl::StrJoin(q, " "), "]");
}

// Go's time.Duration.String(): "0s", "1.5s", "1m30s", "2h0m0s", "500ms".
std::string GoDuration(int64_t ns) {
  if (ns == 0) return "0s";
  const std::string sign = ns < 0 ? "-" : "";
  const uint64_t u = ns < 0 ? static_cast<uint64_t>(-ns) : static_cast<uint64_t>(ns);
  // v/unit with its fraction, trailing zeros dropped: frac(1500, 1000) = "1.5".
  auto frac = [](uint64_t v, uint64_t unit) {
    std::string f = std::to_string(v % unit);
    f = std::string(std::to_string(unit).size() - 1 - f.size(), '0') + f;
    while (!f.empty() && f.back() == '0') f.pop_back();
    return f.empty() ? std::to_string(v / unit) : absl::StrCat(v / unit, ".", f);
  };
  if (u < 1000) return absl::StrCat(sign, u, "ns");
  if (u < 1000000) return absl::StrCat(sign, frac(u, 1000), "\u00b5s");
  if (u < 1000000000) return absl::StrCat(sign, frac(u, 1000000), "ms");
  const uint64_t secs = u / 1000000000, rem = u % 1000000000;
  const std::string s_part = frac(secs % 60 * 1000000000 + rem, 1000000000) + "s";
  if (secs < 60) return sign + s_part;
  const uint64_t mins = secs / 60;
  if (mins < 60) return absl::StrCat(sign, mins, "m", s_part);
  return absl::StrCat(sign, mins / 60, "h", mins % 60, "m", s_part);
}

std::string CleanPath(const std::string& p) {
  std::string out = std::filesystem::path(p).lexically_normal().string();
  if (out.size() > 1 && out.back() == '/') out.pop_back();
  return out.empty() ? "/" : out;
}

// One stage being dispatched.
struct Stage {
  const ins::Stage* source = nullptr;
  size_t index = 0;
  std::string name;  // AS name, or empty
  llb::Platform platform;
  llb::State state;
  json image = json::object();  // the image config being built
  // Every ARG as declared, in order (repeats kept), with its value ("" when unset): BuildKit's
  // d.buildArgs, which RUN's history lists.
  std::vector<std::pair<std::string, std::string>> declared_args;
  std::vector<std::string> shell = DefaultShell();
  bool cmd_set = false;
  bool dispatched = false;
  bool dispatching = false;
  bool ignore_cache = false;
  size_t total_commands = 0;  // for "[stage 2/5]" prefixes
};

class Converter {
 public:
  Converter(const ins::Dockerfile& df, const ConvertOptions& o,
            std::shared_ptr<const llb::SourceMap> source_map)
      : df_(df), o_(o), source_map_(std::move(source_map)) {
    target_platform_ = o.target_platform.value_or(o.build_platform);
    lex_ = shell::Lex(df.directives.escape);
  }

  absl::StatusOr<ConvertResult> Run() {
    KILN_RETURN_IF_ERROR(InitGlobalArgs());
    stages_.resize(df_.stages.size());
    for (size_t i = 0; i < df_.stages.size(); ++i) {
      stages_[i].source = &df_.stages[i];
      stages_[i].index = i;
      stages_[i].name = df_.stages[i].from.stage_name;
    }
    size_t target = df_.stages.size() - 1;
    if (!o_.target.empty()) {
      auto t = FindStage(absl::AsciiStrToLower(o_.target), df_.stages.size());
      if (!t) {
        return absl::InvalidArgumentError(
            absl::StrCat("target stage \"", o_.target, "\" could not be found"));
      }
      target = *t;
    }
    KILN_RETURN_IF_ERROR(Dispatch(target));
    Stage& s = stages_[target];
    for (const auto& [k, v] : o_.labels) s.image["config"]["Labels"][k] = v;
    ConvertResult r;
    r.state = s.state;
    r.image_config = s.image.dump();
    r.warnings = std::move(warnings_);
    r.syntax = df_.directives.syntax;
    return r;
  }

 private:
  // ---- scopes and expansion ---------------------------------------------------------------

  absl::Status InitGlobalArgs() {
    for (const auto& [k, v] : PlatformArgs(o_.build_platform, target_platform_)) {
      global_args_.Set(k, v);
    }
    for (const ins::ArgCommand& a : df_.meta_args) {
      for (const ins::KeyValueOptional& kv : a.args) {
        std::optional<std::string> value;
        if (auto it = o_.build_args.find(kv.key); it != o_.build_args.end()) {
          value = it->second;
        } else if (kv.value) {
          KILN_ASSIGN_OR_RETURN(value, ExpandWith(a, *kv.value, global_args_));
        }
        if (value) global_args_.Set(kv.key, *value);
        meta_arg_names_.insert(kv.key);
        WarnSecretName(a, "ARG", kv.key);
      }
    }
    return absl::OkStatus();
  }

  shell::Lookup LookupIn(const KeyValues& kv) const {
    return [&kv](std::string_view name) { return kv.Get(name); };
  }
  absl::StatusOr<std::string> ExpandWith(const ins::CommandBase& c, const std::string& word,
                                         const KeyValues& scope) {
    auto r = lex_.ProcessWord(word, LookupIn(scope));
    if (!r.ok()) return LineError(c, r.status());
    return r->result;
  }
  // A stage's expansion scope: its environment, which holds its ARG values too (ENV wins,
  // being set later).
  KeyValues Scope(const Stage& s) const {
    KeyValues kv;
    for (const auto& [k, v] : s.state.Env()) kv.Set(k, v);
    return kv;
  }
  absl::StatusOr<std::string> Expand(const Stage& s, const ins::CommandBase& c,
                                     const std::string& word) {
    KeyValues scope = Scope(s);
    return ExpandWith(c, word, scope);
  }
  absl::StatusOr<std::vector<std::string>> ExpandWords(const Stage& s, const ins::CommandBase& c,
                                                       const std::string& words) {
    KeyValues scope = Scope(s);
    auto r = lex_.ProcessWords(words, LookupIn(scope));
    if (!r.ok()) return LineError(c, r.status());
    return r->words;
  }

  void WarnSecretName(const ins::CommandBase& c, std::string_view kind, const std::string& name) {
    if (!LooksLikeSecretName(name)) return;
    warnings_.push_back(
        {.rule = "SecretsUsedInArgOrEnv",
         .message = absl::StrCat("Do not use ARG or ENV instructions for sensitive data (",
                                 AV(kind), " \"", name,
                                 "\"): its value is kept in the image's config or history; use "
                                 "RUN --mount=type=secret instead"),
         .line = c.location.start_line,
         .url = "https://docs.docker.com/go/dockerfile/rule/secrets-used-in-arg-or-env/",
         .description = "Sensitive data should not be used in the ARG or ENV commands"});
  }

  // ---- stages ------------------------------------------------------------------------------

  // The stage called `name` (or numbered) defined before `before`.
  std::optional<size_t> FindStage(const std::string& name, size_t before) const {
    for (size_t i = 0; i < before && i < stages_.size(); ++i) {
      if (!stages_[i].name.empty() && stages_[i].name == name) return i;
    }
    size_t n = 0;
    if (!name.empty() && absl::SimpleAtoi(name, &n) && n < before) return n;
    return std::nullopt;
  }

  // The state (and image config) for `ref` in FROM or --from: a stage, a named context, or an
  // image.
  struct Base {
    llb::State state;
    json image;  // empty object when none
    bool from_stage = false;
    size_t stage = 0;
  };
  absl::StatusOr<Base> BaseFor(const ins::CommandBase& c, const std::string& ref, size_t before,
                               const llb::Platform& platform) {
    const std::string lower = absl::AsciiStrToLower(ref);
    if (auto i = FindStage(lower, before)) {
      KILN_RETURN_IF_ERROR(Dispatch(*i));
      return Base{
          .state = stages_[*i].state, .image = stages_[*i].image, .from_stage = true, .stage = *i};
    }
    if (auto it = o_.named_contexts.find(ref); it != o_.named_contexts.end()) {
      Base b{.state = it->second.state, .image = json::object()};
      if (!it->second.image_config.empty()) {
        b.image = json::parse(it->second.image_config, nullptr, false);
        if (b.image.is_discarded()) b.image = json::object();
      }
      return b;
    }
    if (lower == "scratch") {
      json img = {{"architecture", platform.architecture}, {"os", platform.os}};
      if (!platform.variant.empty()) img["variant"] = platform.variant;
      img["config"] = {{"Env", {absl::StrCat("PATH=", kDefaultPath)}}};
      img["rootfs"] = {{"type", "layers"}, {"diff_ids", json::array()}};
      return Base{.state = llb::Scratch().WithPlatform(platform), .image = img};
    }
    auto normalized = llb::NormalizeImageRef(ref);
    if (!normalized.ok()) {
      return LineError(c, absl::StrCat("invalid image reference \"", ref,
                                       "\": ", normalized.status().message()));
    }
    if (!o_.resolve) {
      return LineError(c,
                       absl::StrCat("cannot resolve image ", *normalized, " without a registry"));
    }
    auto resolved = o_.resolve(*normalized, platform);
    if (!resolved.ok()) return LineError(c, resolved.status());
    json config = json::parse(resolved->config, nullptr, false);
    if (!config.is_object()) {
      return LineError(c, absl::StrCat("image ", *normalized, " has an invalid config"));
    }
    std::string pinned = *normalized;
    if (!resolved->digest.empty() && pinned.find('@') == std::string::npos) {
      pinned = absl::StrCat(pinned, "@", resolved->digest);
    }
    llb::ImageOptions io;
    io.op.platform = platform;
    io.op.source_locations = Locations(c);
    llb::State st = llb::Image(pinned, io);
    st = WithImageConfig(st, config);
    return Base{.state = st, .image = config};
  }

  // Env, working dir and user of an image config onto a state (BuildKit's WithImageConfig).
  static llb::State WithImageConfig(llb::State st, const json& img) {
    const json* cfg =
        img.contains("config") && img["config"].is_object() ? &img["config"] : nullptr;
    if (cfg == nullptr) return st;
    if (auto env = cfg->find("Env"); env != cfg->end() && env->is_array()) {
      for (const auto& e : *env) {
        if (!e.is_string()) continue;
        std::string kv = e.get<std::string>();
        size_t eq = kv.find('=');
        st = st.AddEnv(kv.substr(0, eq), eq == std::string::npos ? "" : kv.substr(eq + 1));
      }
    }
    if (auto wd = cfg->find("WorkingDir");
        wd != cfg->end() && wd->is_string() && !wd->get<std::string>().empty()) {
      st = st.Dir(wd->get<std::string>());
    }
    if (auto u = cfg->find("User");
        u != cfg->end() && u->is_string() && !u->get<std::string>().empty()) {
      st = st.User(u->get<std::string>());
    }
    return st;
  }

  absl::Status Dispatch(size_t index) {
    Stage& s = stages_[index];
    if (s.dispatched) return absl::OkStatus();
    if (s.dispatching) {
      return LineError(s.source->from, "circular dependency detected on stage: " +
                                           (s.name.empty() ? std::to_string(index) : s.name));
    }
    s.dispatching = true;
    const ins::FromCommand& from = s.source->from;
    s.ignore_cache = o_.no_cache || (!s.name.empty() && o_.no_cache_stages.count(s.name) != 0);

    s.platform = target_platform_;
    if (!from.platform.empty()) {
      KILN_ASSIGN_OR_RETURN(std::string p, ExpandWith(from, from.platform, global_args_));
      auto parsed = llb::ParsePlatform(p);
      if (!parsed.ok()) return LineError(from, parsed.status());
      s.platform = *parsed;
    }
    KILN_ASSIGN_OR_RETURN(std::string base_name, ExpandWith(from, from.base_name, global_args_));
    if (base_name.empty())
      return LineError(from, "base name (" + from.base_name + ") should not be blank");
    KILN_ASSIGN_OR_RETURN(Base base, BaseFor(from, base_name, index, s.platform));
    s.state = base.state;
    s.image = base.image.is_object() ? base.image : json::object();
    if (!s.image.contains("config") || !s.image["config"].is_object()) {
      s.image["config"] = json::object();
    }
    s.image["architecture"] = s.platform.architecture;
    s.image["os"] = s.platform.os;
    if (!s.platform.variant.empty()) {
      s.image["variant"] = s.platform.variant;
    } else {
      s.image.erase("variant");
    }
    if (base.from_stage) {
      s.shell = stages_[base.stage].shell;
      s.cmd_set = stages_[base.stage].cmd_set;
    } else {
      s.state = s.state.WithPlatform(s.platform);
      if (auto sh = s.image["config"].find("Shell");
          sh != s.image["config"].end() && sh->is_array() && !sh->empty()) {
        s.shell = sh->get<std::vector<std::string>>();
      }
    }
    // Count for "[stage i/n]" names: FROM is step 1.
    s.total_commands = s.source->commands.size() + 1;

    // ONBUILD triggers of the base image run first, then are dropped from the config.
    std::vector<std::string> triggers;
    if (!base.from_stage) {
      if (auto ob = s.image["config"].find("OnBuild");
          ob != s.image["config"].end() && ob->is_array()) {
        for (const auto& t : *ob) {
          if (t.is_string()) triggers.push_back(t.get<std::string>());
        }
      }
    }
    s.image["config"].erase("OnBuild");
    for (const std::string& t : triggers) {
      auto tree = parser::Parse(t);
      if (!tree.ok() || tree->root.children.size() != 1) {
        return LineError(from,
                         absl::StrCat("invalid ONBUILD trigger \"", t, "\" in the base image"));
      }
      auto cmd = ins::ParseCommand(tree->root.children[0]);
      if (!cmd.ok()) return LineError(from, cmd.status());
      size_t step = 0;
      KILN_RETURN_IF_ERROR(DispatchCommand(s, *cmd, step));
    }

    size_t step = 1;
    for (const ins::Command& c : s.source->commands) {
      ++step;
      KILN_RETURN_IF_ERROR(DispatchCommand(s, c, step));
    }
    s.dispatching = false;
    s.dispatched = true;
    return absl::OkStatus();
  }

  // ---- history and progress names ----------------------------------------------------------

  void AddHistory(Stage& s, const std::string& created_by, bool with_layer) {
    json h = json::object();  // "created" is the exporter's: build time or SOURCE_DATE_EPOCH
    h["created_by"] = created_by;
    h["comment"] = kHistoryComment;
    if (!with_layer) h["empty_layer"] = true;
    if (!s.image.contains("history") || !s.image["history"].is_array()) {
      s.image["history"] = json::array();
    }
    s.image["history"].push_back(std::move(h));
  }

  std::string StepName(const Stage& s, size_t step, const std::string& text) const {
    std::string stage = s.name.empty() ? absl::StrCat("stage-", s.index) : s.name;
    if (step == 0) return absl::StrCat("[", stage, " ONBUILD] ", text);
    return absl::StrCat("[", stage, " ", step, "/", s.total_commands, "] ", text);
  }
  llb::OpOptions OpFor(const Stage& s, size_t step, const ins::CommandBase& c) const {
    llb::OpOptions op;
    std::string text(absl::StripAsciiWhitespace(c.original));
    op.custom_name = StepName(s, step, text);
    op.ignore_cache = s.ignore_cache;
    op.description["com.docker.dockerfile.v1.line"] = std::to_string(c.location.start_line);
    op.source_locations = Locations(c);
    return op;
  }
  // The command's lines in the Dockerfile, for Definition.source (errors point at them).
  std::vector<llb::SourceLocation> Locations(const ins::CommandBase& c) const {
    if (source_map_ == nullptr || c.location.start_line <= 0) return {};
    return {{.map = source_map_,
             .ranges = {llb::LineRange(c.location.start_line, c.location.end_line)}}};
  }

  // ---- instructions ------------------------------------------------------------------------

  absl::Status DispatchCommand(Stage& s, const ins::Command& c, size_t step) {
    return std::visit([&](const auto& cmd) -> absl::Status { return DispatchOne(s, cmd, step); },
                      c);
  }

  json& Config(Stage& s) { return s.image["config"]; }

  absl::Status DispatchOne(Stage& s, const ins::EnvCommand& c, size_t) {
    std::vector<std::string> parts;
    for (const ins::KeyValue& kv : c.env) {
      KILN_ASSIGN_OR_RETURN(std::string value, Expand(s, c, kv.value));
      s.state = s.state.AddEnv(kv.key, value);
      SetImageEnv(s, kv.key, value);
      parts.push_back(absl::StrCat(kv.key, "=", value));
      WarnSecretName(c, "ENV", kv.key);
    }
    AddHistory(s, absl::StrCat("ENV ", absl::StrJoin(parts, " ")), false);
    return absl::OkStatus();
  }
  void SetImageEnv(Stage& s, const std::string& key, const std::string& value) {
    json& env = Config(s)["Env"];
    if (!env.is_array()) env = json::array();
    const std::string entry = absl::StrCat(key, "=", value);
    for (auto& e : env) {
      if (e.is_string() && absl::StartsWith(e.get<std::string>(), key + "=")) {
        e = entry;
        return;
      }
    }
    env.push_back(entry);
  }

  // As BuildKit's dispatchArg: the value is the build arg, else the expanded default, else
  // the global ARG of the same name (or the predefined platform arg). Values join the state's
  // environment (so RUN sees them and child stages inherit them), never the image config.
  absl::Status DispatchOne(Stage& s, const ins::ArgCommand& c, size_t) {
    std::vector<std::string> parts;
    const auto platform_args = PlatformArgs(o_.build_platform, target_platform_);
    for (const ins::KeyValueOptional& kv : c.args) {
      WarnSecretName(c, "ARG", kv.key);
      std::optional<std::string> value;
      if (auto it = o_.build_args.find(kv.key); it != o_.build_args.end()) {
        value = it->second;
      } else if (auto p = platform_args.find(kv.key); p != platform_args.end() && !kv.value) {
        value = p->second;
      } else if (kv.value) {
        KILN_ASSIGN_OR_RETURN(value, Expand(s, c, *kv.value));
      } else if (meta_arg_names_.count(kv.key) != 0) {
        value = global_args_.Get(kv.key);
      }
      if (value) s.state = s.state.AddEnv(kv.key, *value);
      s.declared_args.emplace_back(kv.key, value.value_or(""));
      parts.push_back(value ? absl::StrCat(kv.key, "=", *value) : kv.key);
    }
    AddHistory(s, absl::StrCat("ARG ", absl::StrJoin(parts, " ")), false);
    return absl::OkStatus();
  }

  absl::Status DispatchOne(Stage& s, const ins::LabelCommand& c, size_t) {
    std::vector<std::string> parts;
    json& labels = Config(s)["Labels"];
    if (!labels.is_object()) labels = json::object();
    for (const ins::KeyValue& kv : c.labels) {
      KILN_ASSIGN_OR_RETURN(std::string key, Expand(s, c, kv.key));
      KILN_ASSIGN_OR_RETURN(std::string value, Expand(s, c, kv.value));
      labels[key] = value;
      parts.push_back(absl::StrCat(key, "=", value));
    }
    AddHistory(s, absl::StrCat("LABEL ", absl::StrJoin(parts, " ")), false);
    return absl::OkStatus();
  }

  absl::Status DispatchOne(Stage& s, const ins::MaintainerCommand& c, size_t) {
    s.image["author"] = c.maintainer;
    AddHistory(s, absl::StrCat("MAINTAINER ", c.maintainer), false);
    return absl::OkStatus();
  }

  absl::Status DispatchOne(Stage& s, const ins::WorkdirCommand& c, size_t step) {
    KILN_ASSIGN_OR_RETURN(std::string wd, Expand(s, c, c.path));
    if (wd.empty()) return LineError(c, "WORKDIR requires a path");
    s.state = s.state.Dir(wd);
    const std::string abs = s.state.GetDir();
    Config(s)["WorkingDir"] = abs;
    bool layer = false;
    if (abs != "/") {
      llb::MkdirOptions mo{.make_parents = true};
      if (!s.state.GetUser().empty()) mo.chown = llb::ParseChown(s.state.GetUser());
      s.state = s.state.File(llb::Mkdir(abs, 0755, mo), OpFor(s, step, c));
      layer = true;
    }
    AddHistory(s, absl::StrCat("WORKDIR ", abs), layer);
    return absl::OkStatus();
  }

  absl::Status DispatchOne(Stage& s, const ins::UserCommand& c, size_t) {
    KILN_ASSIGN_OR_RETURN(std::string user, Expand(s, c, c.user));
    s.state = s.state.User(user);
    Config(s)["User"] = user;
    AddHistory(s, absl::StrCat("USER ", user), false);
    return absl::OkStatus();
  }

  absl::Status DispatchOne(Stage& s, const ins::ExposeCommand& c, size_t) {
    json& ports = Config(s)["ExposedPorts"];
    if (!ports.is_object()) ports = json::object();
    std::vector<std::string> added;
    for (const std::string& raw : c.ports) {
      KILN_ASSIGN_OR_RETURN(std::vector<std::string> words, ExpandWords(s, c, raw));
      for (std::string p : words) {
        if (p.find('/') == std::string::npos) p += "/tcp";
        std::string proto = absl::AsciiStrToLower(p.substr(p.find('/') + 1));
        std::string port = p.substr(0, p.find('/'));
        if (proto != "tcp" && proto != "udp" && proto != "sctp") {
          return LineError(c, absl::StrCat("invalid proto: ", proto));
        }
        std::vector<std::string> range = absl::StrSplit(port, '-');
        int lo = 0, hi = 0;
        if (range.empty() || range.size() > 2 || !absl::SimpleAtoi(range[0], &lo) ||
            (range.size() == 2 && !absl::SimpleAtoi(range[1], &hi))) {
          return LineError(c, absl::StrCat("invalid containerPort: ", port));
        }
        if (range.size() == 1) hi = lo;
        for (int n = lo; n <= hi; ++n) {
          std::string key = absl::StrCat(n, "/", proto);
          ports[key] = json::object();
          added.push_back(key);
        }
      }
    }
    AddHistory(s, absl::StrCat("EXPOSE [", absl::StrJoin(added, " "), "]"), false);
    return absl::OkStatus();
  }

  absl::Status DispatchOne(Stage& s, const ins::VolumeCommand& c, size_t) {
    json& vols = Config(s)["Volumes"];
    if (!vols.is_object()) vols = json::object();
    std::vector<std::string> added;
    for (const std::string& raw : c.volumes) {
      KILN_ASSIGN_OR_RETURN(std::string v, Expand(s, c, raw));
      v = std::string(absl::StripAsciiWhitespace(v));
      if (v.empty()) return LineError(c, "VOLUME specified can not be an empty string");
      vols[v] = json::object();
      added.push_back(v);
    }
    AddHistory(s, absl::StrCat("VOLUME [", absl::StrJoin(added, " "), "]"), false);
    return absl::OkStatus();
  }

  std::vector<std::string> WithShell(const Stage& s, const ins::ShellDependantCmdLine& c) const {
    if (!c.prepend_shell) return c.cmd_line;
    std::vector<std::string> args = s.shell;
    args.push_back(absl::StrJoin(c.cmd_line, " "));
    return args;
  }

  absl::Status DispatchOne(Stage& s, const ins::CmdCommand& c, size_t) {
    std::vector<std::string> args = WithShell(s, c);
    Config(s)["Cmd"] = args;
    s.cmd_set = true;
    AddHistory(s, absl::StrCat("CMD ", QuoteList(args)), false);
    return absl::OkStatus();
  }

  absl::Status DispatchOne(Stage& s, const ins::EntrypointCommand& c, size_t) {
    std::vector<std::string> args = WithShell(s, c);
    Config(s)["Entrypoint"] = args;
    if (!s.cmd_set) Config(s)["Cmd"] = nullptr;
    AddHistory(s, absl::StrCat("ENTRYPOINT ", QuoteList(args)), false);
    return absl::OkStatus();
  }

  absl::Status DispatchOne(Stage& s, const ins::ShellCommand& c, size_t) {
    s.shell = c.shell;
    Config(s)["Shell"] = c.shell;
    AddHistory(s, absl::StrCat("SHELL [", absl::StrJoin(c.shell, " "), "]"), false);
    return absl::OkStatus();
  }

  absl::Status DispatchOne(Stage& s, const ins::StopSignalCommand& c, size_t) {
    KILN_ASSIGN_OR_RETURN(std::string sig, Expand(s, c, c.signal));
    Config(s)["StopSignal"] = sig;
    AddHistory(s, absl::StrCat("STOPSIGNAL ", sig), false);
    return absl::OkStatus();
  }

  absl::Status DispatchOne(Stage& s, const ins::HealthcheckCommand& c, size_t) {
    json hc = json::object();
    hc["Test"] = c.test;
    if (c.interval_ns) hc["Interval"] = c.interval_ns;
    if (c.timeout_ns) hc["Timeout"] = c.timeout_ns;
    if (c.start_period_ns) hc["StartPeriod"] = c.start_period_ns;
    if (c.start_interval_ns) hc["StartInterval"] = c.start_interval_ns;
    if (c.retries) hc["Retries"] = c.retries;
    Config(s)["Healthcheck"] = hc;
    // Go's %+v of the HealthcheckConfig struct.
    AddHistory(s,
               absl::StrCat(
                   "HEALTHCHECK {Test:[", absl::StrJoin(c.test, " "),
                   "] Interval:", GoDuration(c.interval_ns), " Timeout:", GoDuration(c.timeout_ns),
                   " StartPeriod:", GoDuration(c.start_period_ns),
                   " StartInterval:", GoDuration(c.start_interval_ns), " Retries:", c.retries, "}"),
               false);
    return absl::OkStatus();
  }

  absl::Status DispatchOne(Stage& s, const ins::OnbuildCommand& c, size_t) {
    json& ob = Config(s)["OnBuild"];
    if (!ob.is_array()) ob = json::array();
    ob.push_back(c.expression);  // BuildKit records no history entry for ONBUILD
    return absl::OkStatus();
  }

  // The build context as a local source, with .dockerignore's excludes.
  llb::State Context() const {
    llb::LocalOptions lo;
    lo.exclude_patterns = o_.excludes;
    lo.session_id = o_.session_id;
    lo.shared_key_hint = o_.shared_key_hint.empty() ? o_.context_name : o_.shared_key_hint;
    lo.op.custom_name = absl::StrCat("[internal] load build context");
    return llb::Local(o_.context_name, lo);
  }

  absl::StatusOr<llb::Mount> BindOrCacheMount(Stage& s, const ins::RunCommand& c,
                                              const ins::Mount& m) {
    llb::Mount out;
    out.target = m.target;
    if (!absl::StartsWith(out.target, "/")) {
      out.target = CleanPath(absl::StrCat(s.state.GetDir(), "/", out.target));
    }
    if (m.type == ins::MountType::kTmpfs) {
      out.type = llb::MountType::kTmpfs;
      out.tmpfs_size = m.size_bytes.value_or(0);
      return out;
    }
    llb::State source;
    bool have_source = false;
    if (!m.from.empty()) {
      KILN_ASSIGN_OR_RETURN(Base b, BaseFor(c, m.from, s.index, s.platform));
      source = b.state;
      have_source = true;
    } else if (m.type == ins::MountType::kBind) {
      source = Context();
      have_source = true;
    }
    if (m.type == ins::MountType::kBind) {
      out.type = llb::MountType::kBind;
      out.source = source;
      out.selector = m.source.empty() ? "/" : m.source;
      out.readonly = m.read_only;
      if (!out.readonly) out.no_output = true;
      return out;
    }
    out.type = llb::MountType::kCache;
    out.cache_id = m.cache_id.empty() ? m.target : m.cache_id;
    out.cache_sharing = m.sharing == ins::CacheSharing::kPrivate  ? pb::PRIVATE
                        : m.sharing == ins::CacheSharing::kLocked ? pb::LOCKED
                                                                  : pb::SHARED;
    out.readonly = m.read_only_set && m.read_only;
    if (have_source) {
      out.source = source;
      out.selector = m.source;
    } else if (m.uid || m.gid || m.mode) {
      // A fresh cache directory owned and moded as asked (BuildKit does the same).
      llb::MkdirOptions mo{.make_parents = true};
      llb::ChownOpt own;
      own.user = llb::UserOpt{.id = m.uid.value_or(0)};
      own.group = llb::UserOpt{.id = m.gid.value_or(0)};
      mo.chown = own;
      out.source = llb::Scratch().File(llb::Mkdir("/cache", m.mode.value_or(0755), mo));
      out.selector = "/cache";
    }
    return out;
  }

  absl::Status DispatchOne(Stage& s, const ins::RunCommand& c, size_t step) {
    llb::RunOptions ro;
    std::vector<std::string> args;
    if (!c.files.empty() && c.prepend_shell) {
      std::string cmd = absl::StrJoin(c.cmd_line, " ");
      std::string trimmed(absl::StripAsciiWhitespace(cmd));
      const parser::Heredoc& first = c.files.front();
      const bool sole =
          c.files.size() == 1 &&
          (trimmed == "<<" + first.name || trimmed == "<<-" + first.name ||
           trimmed == "<<'" + first.name + "'" || trimmed == "<<\"" + first.name + "\"");
      if (sole && absl::StartsWith(first.content, "#!")) {
        // A script with its own interpreter: mounted read-only and executed.
        const std::string dir = "/dev/pipes/";
        llb::Mount script;
        script.target = dir;
        script.type = llb::MountType::kBind;
        script.readonly = true;
        script.source = llb::Scratch().File(llb::Mkfile("/" + first.name, 0755, first.content));
        ro.mounts.push_back(std::move(script));
        args = {dir + first.name};
      } else if (sole) {
        args = s.shell;
        args.push_back(first.content);
      } else {
        // The shell understands here-documents itself: give it the whole text.
        std::string script = cmd;
        for (const parser::Heredoc& h : c.files) {
          absl::StrAppend(&script, "\n", h.content, h.name);
        }
        args = s.shell;
        args.push_back(script);
      }
    } else {
      args = WithShell(s, c);
    }
    if (args.empty()) return LineError(c, "RUN needs a command");
    ro.args = args;

    // ARG values are in the state's environment already (see the ARG dispatch).
    llb::ProxyEnv proxy;
    bool have_proxy = false;
    for (const auto& [k, v] : o_.build_args) {
      if (ProxyArgs().count(k) == 0) continue;
      std::string lower = absl::AsciiStrToLower(k);
      if (lower == "http_proxy") proxy.http_proxy = v;
      if (lower == "https_proxy") proxy.https_proxy = v;
      if (lower == "ftp_proxy") proxy.ftp_proxy = v;
      if (lower == "no_proxy") proxy.no_proxy = v;
      if (lower == "all_proxy") proxy.all_proxy = v;
      have_proxy = true;
    }
    if (have_proxy) ro.proxy_env = proxy;

    if (c.network == "none")
      ro.network = pb::NONE;
    else if (c.network == "host")
      ro.network = pb::HOST;
    else if (!c.network.empty() && c.network != "default") {
      return LineError(c, absl::StrCat("unsupported network mode \"", c.network, "\""));
    }
    if (c.security == "insecure")
      ro.security = pb::INSECURE;
    else if (!c.security.empty() && c.security != "sandbox") {
      return LineError(c, absl::StrCat("unsupported security mode \"", c.security, "\""));
    }

    KeyValues scope = Scope(s);
    ins::Expander expand = [this, &scope](std::string_view v) -> absl::StatusOr<std::string> {
      auto r = lex_.ProcessWord(v, LookupIn(scope));
      if (!r.ok()) return r.status();
      return r->result;
    };
    int ssh_index = 0;
    for (const std::string& raw : c.mounts) {
      auto m = ins::ParseMount(raw, expand);
      if (!m.ok()) return LineError(c, m.status());
      switch (m->type) {
        case ins::MountType::kSecret: {
          llb::SecretMount sm;
          sm.id = m->cache_id;
          if (!m->env.empty()) sm.env = m->env;
          if (!m->target.empty()) sm.target = m->target;
          if (!sm.env && !sm.target) sm.target = "/run/secrets/" + sm.id;
          sm.mode = m->mode.value_or(0400);
          sm.uid = m->uid.value_or(0);
          sm.gid = m->gid.value_or(0);
          sm.optional = !m->required;
          ro.secrets.push_back(std::move(sm));
          break;
        }
        case ins::MountType::kSsh: {
          llb::SshMount sm;
          sm.id = m->ssh_id.empty() ? "default" : m->ssh_id;
          sm.target =
              m->target.empty() ? absl::StrCat("/run/buildkit/ssh_agent.", ssh_index) : m->target;
          ++ssh_index;
          sm.mode = m->mode.value_or(0600);
          sm.uid = m->uid.value_or(0);
          sm.gid = m->gid.value_or(0);
          sm.optional = !m->required;
          ro.ssh.push_back(std::move(sm));
          break;
        }
        default: {
          KILN_ASSIGN_OR_RETURN(llb::Mount lm, BindOrCacheMount(s, c, *m));
          ro.mounts.push_back(std::move(lm));
        }
      }
    }
    ro.op = OpFor(s, step, c);
    s.state = s.state.Run(ro).Root();

    // History: "RUN |N A=1 B=2 /bin/sh -c cmd # buildkit", like BuildKit's runCommandString.
    std::vector<std::string> hist;
    for (const auto& [name, value] : s.declared_args) {
      hist.push_back(absl::StrCat(name, "=", s.state.GetEnv(name).value_or(value)));
    }
    if (!hist.empty()) hist.insert(hist.begin(), absl::StrCat("|", hist.size()));
    for (const auto& a : args) hist.push_back(a);
    AddHistory(s, absl::StrCat("RUN ", absl::StrJoin(hist, " "), " # buildkit"), true);
    return absl::OkStatus();
  }

  static bool IsUrl(const std::string& s) {
    return absl::StartsWith(s, "http://") || absl::StartsWith(s, "https://");
  }

  // The source op of `ADD <git ref>`: --keep-git-dir and --checksum must agree with the URL's
  // own options when both are given.
  absl::StatusOr<llb::State> GitSource(const Stage& s, size_t step, const ins::CopyCommand& c,
                                       const GitRef& ref) {
    llb::GitOptions go;
    go.ref = ref.ref;
    go.subdir = ref.subdir;
    if (c.keep_git_dir && ref.keep_git_dir && *c.keep_git_dir != *ref.keep_git_dir) {
      return LineError(c, "inconsistent keep-git-dir configuration");
    }
    go.keep_git_dir = ref.keep_git_dir.value_or(c.keep_git_dir.value_or(false));
    if (!c.checksum.empty() && !ref.checksum.empty() && c.checksum != ref.checksum) {
      return LineError(
          c, absl::StrCat("checksum mismatch \"", c.checksum, "\" != \"", ref.checksum, "\""));
    }
    go.checksum = ref.checksum.empty() ? c.checksum : ref.checksum;
    go.skip_submodules = ref.submodules.has_value() && !*ref.submodules;
    go.mtime = ref.mtime;
    go.op = OpFor(s, step, c);
    go.op.description.clear();
    return llb::Git(ref.remote, go);
  }

  absl::Status DispatchOne(Stage& s, const ins::CopyCommand& c, size_t step) {
    const char* name = c.is_add ? "ADD" : "COPY";
    KILN_ASSIGN_OR_RETURN(std::string dest, Expand(s, c, c.dest));
    std::vector<std::string> sources;
    for (const std::string& raw : c.sources) {
      KILN_ASSIGN_OR_RETURN(std::string src, Expand(s, c, raw));
      sources.push_back(src);
    }
    const size_t count = sources.size() + c.source_contents.size();
    const bool dest_is_dir = absl::EndsWith(dest, "/") || count > 1;
    std::string dest_abs = dest;
    if (!absl::StartsWith(dest_abs, "/")) dest_abs = absl::StrCat(s.state.GetDir(), "/", dest);
    if (dest_is_dir && !absl::EndsWith(dest_abs, "/")) dest_abs += "/";
    if (count > 1 && !absl::EndsWith(dest, "/")) {
      return LineError(c, absl::StrCat("When using ", name,
                                       " with more than one source file, the destination must be "
                                       "a directory and end with a /"));
    }

    if (!c.checksum.empty()) {
      if (sources.size() != 1) {
        return LineError(c, "checksum can't be specified for multiple sources");
      }
      absl::StatusOr<std::optional<GitRef>> git = ParseGitRef(sources[0]);
      if (!IsUrl(sources[0]) && !(git.ok() && git->has_value())) {
        return LineError(c, "checksum requires HTTP(S) or Git sources");
      }
    }
    llb::CopyOptions co;
    co.follow_symlinks = true;
    co.copy_dir_contents_only = true;
    co.create_dest_path = true;
    co.allow_wildcard = true;
    co.allow_empty_wildcard = true;
    co.exclude_patterns = {};
    for (const std::string& e : c.excludes) {
      KILN_ASSIGN_OR_RETURN(std::string ex, Expand(s, c, e));
      co.exclude_patterns.push_back(ex);
    }
    if (!c.chown.empty()) {
      KILN_ASSIGN_OR_RETURN(std::string chown, Expand(s, c, c.chown));
      co.chown = llb::ParseChown(chown);
    }
    if (!c.chmod.empty()) {
      KILN_ASSIGN_OR_RETURN(std::string chmod, Expand(s, c, c.chmod));
      uint32_t mode = 0;
      bool octal = !chmod.empty() && chmod.find_first_not_of("01234567") == std::string::npos;
      if (octal) {
        mode = static_cast<uint32_t>(std::stoul(chmod, nullptr, 8));
        if (mode > 07777) return LineError(c, absl::StrCat("invalid chmod parameter: ", chmod));
        co.mode = static_cast<int32_t>(mode);
      } else {
        co.mode_str = chmod;
      }
    }

    llb::State src_state;
    if (!c.from.empty()) {
      KILN_ASSIGN_OR_RETURN(std::string from, Expand(s, c, c.from));
      KILN_ASSIGN_OR_RETURN(Base b, BaseFor(c, from, s.index, s.platform));
      src_state = b.state;
    } else {
      src_state = Context();
    }

    std::optional<llb::FileAction> action;
    auto add = [&](const llb::CopyInput& in, const std::string& src, const llb::CopyOptions& o) {
      action = action ? action->Copy(in, src, dest_abs, o) : llb::Copy(in, src, dest_abs, o);
    };
    // BuildKit copies repositories and downloads with only the mode, ownership and excludes.
    llb::CopyOptions remote_copy;
    remote_copy.mode = co.mode;
    remote_copy.mode_str = co.mode_str;
    remote_copy.chown = co.chown;
    remote_copy.exclude_patterns = co.exclude_patterns;
    remote_copy.create_dest_path = true;
    for (const std::string& src : sources) {
      absl::StatusOr<std::optional<GitRef>> git = ParseGitRef(src);
      if (!git.ok()) return LineError(c, std::string(git.status().message()));
      if (git->has_value()) {
        if (!c.is_add) return LineError(c, "source can't be a git ref for COPY");
        KILN_ASSIGN_OR_RETURN(llb::State repo, GitSource(s, step, c, **git));
        add(repo, "/", remote_copy);
        continue;
      }
      if (IsUrl(src)) {
        if (!c.is_add) return LineError(c, "source can't be a URL for COPY");
        llb::HttpOptions ho;
        ho.checksum = c.checksum;
        std::string file = src.substr(src.rfind('/') + 1);
        file = file.substr(0, file.find_first_of("?#"));
        if (file.empty()) file = "__unnamed__";
        ho.filename = file;
        ho.op = OpFor(s, step, c);
        ho.op.description.clear();
        // Remote archives are not extracted unless --unpack asks for it.
        llb::CopyOptions uo = remote_copy;
        uo.attempt_unpack = c.unpack.value_or(false);
        add(llb::Http(src, ho), file, uo);
        continue;
      }
      llb::CopyOptions lo = co;
      lo.attempt_unpack = c.is_add && c.unpack.value_or(true);
      if (c.parents) {
        // --parents keeps the source's path below the context (or below a "/./" pivot), as
        // BuildKit does: copy from the pivot with the rest as an include pattern.
        std::string base = "/", pattern = src;
        if (size_t pivot = src.find("/./"); pivot != std::string::npos) {
          base = src.substr(0, pivot);
          pattern = src.substr(pivot + 3);
        }
        pattern = CleanPath("/" + pattern).substr(1);
        base = CleanPath("/" + base);
        lo.include_patterns = {pattern};
        if (pattern.find_first_of("*?[") == std::string::npos &&
            base.find_first_of("*?[") == std::string::npos) {
          lo.required_paths = {CleanPath(base + "/" + pattern)};
        }
        add(src_state, base, lo);
        continue;
      }
      add(src_state, src, lo);
    }
    for (const parser::Heredoc& h : c.source_contents) {
      std::string content = h.content;
      if (h.expand) {
        KILN_ASSIGN_OR_RETURN(content, Expand(s, c, content));
      }
      llb::State file = llb::Scratch().File(llb::Mkfile("/" + h.name, 0644, content));
      llb::CopyOptions ho = co;
      ho.allow_wildcard = false;
      add(file, "/" + h.name, ho);
    }
    if (!action) return LineError(c, absl::StrCat(name, " needs a source"));
    llb::OpOptions op = OpFor(s, step, c);
    if (c.link) {
      llb::State layer = llb::Scratch().File(*action, op);
      s.state = llb::Merge({s.state, layer}, {.custom_name = op.custom_name});
    } else {
      s.state = s.state.File(*action, op);
    }
    // BuildKit's commit message: flags that change the result, sources, destination.
    std::string msg = name;
    if (c.parents) absl::StrAppend(&msg, " --parents");
    if (!c.chown.empty()) absl::StrAppend(&msg, " --chown=", c.chown);
    if (!c.chmod.empty()) absl::StrAppend(&msg, " --chmod=", c.chmod);
    for (const std::string& src : sources) absl::StrAppend(&msg, " ", src);
    for (const parser::Heredoc& h : c.source_contents) absl::StrAppend(&msg, " <<", h.name);
    AddHistory(s, absl::StrCat(msg, " ", dest, " # buildkit"), true);
    return absl::OkStatus();
  }

  const ins::Dockerfile& df_;
  const ConvertOptions& o_;
  std::shared_ptr<const llb::SourceMap> source_map_;  // the Dockerfile, for op locations
  llb::Platform target_platform_;
  shell::Lex lex_;
  KeyValues global_args_;
  std::set<std::string> meta_arg_names_;
  std::vector<Stage> stages_;
  std::vector<Warning> warnings_;
};

}  // namespace

namespace {
absl::Status WithDockerfileSource(absl::Status st, const llb::SourceMap& map) {
  auto lines = st.GetPayload(parser::kLinesPayload);
  if (!lines) return st;
  std::pair<std::string, std::string> range = absl::StrSplit(std::string(*lines), '-');
  int start = 0, end = 0;
  if (!absl::SimpleAtoi(range.first, &start) || start <= 0) return st;
  if (!absl::SimpleAtoi(range.second, &end) || end < start) end = start;
  st.ErasePayload(parser::kLinesPayload);
  llb::ErrorSource source;
  source.info.set_filename(map.filename);
  source.info.set_language(map.language);
  source.info.set_data(map.data);
  source.ranges.push_back(llb::LineRange(start, end));
  return llb::WithSource(std::move(st), source);
}
}  // namespace

absl::StatusOr<ConvertResult> DockerfileToLlb(std::string_view dockerfile,
                                              const ConvertOptions& options) {
  auto source_map = std::make_shared<llb::SourceMap>(llb::SourceMap{
      .filename = options.filename, .language = "Dockerfile", .data = std::string(dockerfile)});
  auto parsed_df = ins::Parse(dockerfile);
  if (!parsed_df.ok()) return WithDockerfileSource(parsed_df.status(), *source_map);
  ins::Dockerfile& df = *parsed_df;
  if (df.stages.empty()) return absl::InvalidArgumentError("the Dockerfile has no FROM");
  Converter conv(df, options, source_map);
  auto converted = conv.Run();
  if (!converted.ok()) return WithDockerfileSource(converted.status(), *source_map);
  ConvertResult r = *std::move(converted);
  std::vector<Warning> parsed;
  for (const parser::Warning& w : df.warnings) {
    parsed.push_back({.rule = w.rule,
                      .message = w.short_message,
                      .line = w.line,
                      .url = w.url,
                      .description = w.detail});
  }
  r.warnings.insert(r.warnings.begin(), parsed.begin(), parsed.end());
  return r;
}

std::optional<std::string> SyntaxDirective(std::string_view dockerfile) {
  // Directives are comment lines at the very top; the first other line ends them.
  for (absl::string_view line : absl::StrSplit(AV(dockerfile), '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (line.empty()) continue;
    if (!absl::ConsumePrefix(&line, "#")) break;
    line = absl::StripLeadingAsciiWhitespace(line);
    size_t eq = line.find('=');
    if (eq == absl::string_view::npos) break;
    std::string key = absl::AsciiStrToLower(absl::StripAsciiWhitespace(line.substr(0, eq)));
    if (key.find(' ') != std::string::npos) break;
    if (key == "syntax") return std::string(absl::StripAsciiWhitespace(line.substr(eq + 1)));
  }
  return std::nullopt;
}

bool IsBuiltinSyntax(std::string_view syntax) {
  absl::string_view s = AV(syntax);
  absl::ConsumePrefix(&s, "docker.io/");
  if (!absl::ConsumePrefix(&s, "docker/dockerfile")) return false;
  if (absl::ConsumePrefix(&s, "-upstream")) {
  }
  return s.empty() || s.front() == ':' || s.front() == '@';
}

std::vector<std::string> ParseDockerignore(std::string_view text) {
  std::vector<std::string> out;
  for (absl::string_view raw : absl::StrSplit(AV(text), '\n')) {
    absl::string_view line = absl::StripAsciiWhitespace(raw);
    if (line.empty() || line.front() == '#') continue;
    bool invert = absl::ConsumePrefix(&line, "!");
    line = absl::StripAsciiWhitespace(line);
    std::string pattern(line);
    if (!pattern.empty()) {
      pattern = std::filesystem::path(pattern).lexically_normal().string();
      if (pattern.size() > 1 && pattern.back() == '/') pattern.pop_back();
      while (absl::StartsWith(pattern, "/")) pattern.erase(0, 1);
      if (pattern.empty()) pattern = ".";
    }
    out.push_back(invert ? "!" + pattern : pattern);
  }
  return out;
}

}  // namespace kiln::dockerfile
