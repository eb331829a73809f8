#include "frontend/dockerfile/convert/subrequests.h"

#include <algorithm>
#include <optional>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "base/status.h"
#include "frontend/dockerfile/instructions/instructions.h"
#include "frontend/dockerfile/shell/lex.h"
#include "llb/errdefs.h"
#include "nlohmann/json.hpp"

namespace kiln::dockerfile {
namespace {

namespace ins = instructions;
using Json = nlohmann::ordered_json;

constexpr char kVersion[] = "1.0.0";

// json.MarshalIndent(v, "", "  "): Go escapes <, > and & (and U+2028/9) inside strings.
std::string GoJson(const Json& j) {
  return absl::StrReplaceAll(j.dump(2, ' ', false, Json::error_handler_t::replace),
                             {{"<", "\\u003c"},
                              {">", "\\u003e"},
                              {"&", "\\u0026"},
                              {"\u2028", "\\u2028"},
                              {"\u2029", "\\u2029"}});
}

// subrequests.Request / Named.
Json Named(std::string_view name, std::string_view description = "") {
  return Json{{"name", name}, {"description", description}};
}
Json Request(std::string_view name, std::string_view description, Json opts, Json metadata) {
  return Json{{"name", name},
              {"version", kVersion},
              {"type", "rpc"},
              {"description", description},
              {"opts", std::move(opts)},
              {"inputs", nullptr},
              {"metadata", std::move(metadata)},
              {"refs", nullptr}};
}

// pb.Location of one instruction (sourceIndex 0 and character 0 are omitted, as omitempty).
Json LocationJson(const ins::Location& l, int source_index = 0) {
  Json loc = Json::object();
  if (source_index != 0) loc["sourceIndex"] = source_index;
  Json start = Json::object(), end = Json::object();
  if (l.start_line != 0) start["line"] = l.start_line;
  if (l.end_line != 0) end["line"] = l.end_line;
  loc["ranges"] = Json::array({Json{{"start", start}, {"end", end}}});
  return loc;
}

std::string Base64(std::string_view data) { return absl::Base64Escape(AV(data)); }

SubrequestMetadata Metadata(const Json& j, std::string txt) {
  return {{"result.json", GoJson(j)}, {"result.txt", std::move(txt)}, {"version", kVersion}};
}

std::string Lower(std::string_view s) { return absl::AsciiStrToLower(AV(s)); }

}  // namespace

std::string TabWrite(std::string_view text, int padding) {
  std::vector<std::vector<std::string>> lines;
  for (absl::string_view line : absl::StrSplit(AV(text), '\n')) {
    lines.push_back(absl::StrSplit(line, '\t'));
  }
  // Column j's width: over each run of consecutive lines that have a tab-terminated cell j.
  std::vector<std::vector<size_t>> widths(lines.size());
  for (size_t i = 0; i < lines.size(); ++i) widths[i].assign(lines[i].size(), 0);
  auto runes = [](const std::string& s) {
    return static_cast<size_t>(
        std::count_if(s.begin(), s.end(), [](char c) { return (c & 0xC0) != 0x80; }));
  };
  size_t max_cells = 0;
  for (const auto& l : lines) max_cells = std::max(max_cells, l.size());
  for (size_t col = 0; col + 1 < max_cells; ++col) {
    size_t i = 0;
    while (i < lines.size()) {
      if (lines[i].size() <= col + 1) {
        ++i;
        continue;
      }
      size_t j = i, w = 0;
      for (; j < lines.size() && lines[j].size() > col + 1; ++j) {
        w = std::max(w, runes(lines[j][col]) + padding);
      }
      for (size_t k = i; k < j; ++k) widths[k][col] = w;
      i = j;
    }
  }
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i > 0) out += '\n';
    for (size_t c = 0; c < lines[i].size(); ++c) {
      out += lines[i][c];
      if (c + 1 < lines[i].size()) out.append(widths[i][c] - runes(lines[i][c]), ' ');
    }
  }
  return out;
}

SubrequestMetadata DescribeResult() {
  Json all = Json::array();
  all.push_back(Request(kRequestOutline, "List all parameters current build target supports",
                        Json::array({Named("target", "Target build stage")}),
                        Json::array({Named("result.json"), Named("result.txt")})));
  all.push_back(Request(kRequestTargets, "List all targets current build supports", Json::array(),
                        Json::array({Named("result.json"), Named("result.txt")})));
  all.push_back(Request(kRequestDescribe, "List available subrequest types", nullptr,
                        Json::array({Named("result.json"), Named("result.txt")})));
  std::string txt = "NAME\tVERSION\tDESCRIPTION\n";
  for (const Json& r : all) {
    std::string name = r["name"].get<std::string>();
    if (name.rfind("frontend.", 0) == 0) name = name.substr(9);
    absl::StrAppend(&txt, name, "\t", r["version"].get<std::string>(), "\t",
                    r["description"].get<std::string>(), "\n");
  }
  return Metadata(all, TabWrite(txt, 1));
}

absl::StatusOr<SubrequestMetadata> TargetsResult(std::string_view dockerfile) {
  auto df = ins::Parse(dockerfile);
  if (!df.ok()) return df.status();
  Json targets = Json::array();
  std::string txt = "TARGET\tDESCRIPTION\n";
  for (size_t i = 0; i < df->stages.size(); ++i) {
    const ins::FromCommand& from = df->stages[i].from;
    const bool is_default = i + 1 == df->stages.size();
    Json t = Json::object();
    if (!from.stage_name.empty()) t["name"] = from.stage_name;
    if (is_default) t["default"] = true;
    if (!from.comment.empty()) t["description"] = from.comment;
    if (!from.base_name.empty()) t["base"] = from.base_name;
    if (!from.platform.empty()) t["platform"] = from.platform;
    t["location"] = LocationJson(from.location);
    targets.push_back(std::move(t));

    std::string name = from.stage_name;
    if (name.empty() && is_default) {
      name = "(default)";
    } else if (is_default) {
      name += " (default)";
    }
    absl::StrAppend(&txt, name, "\t", from.comment, "\n");
  }
  Json list = {{"targets", std::move(targets)}, {"sources", Json::array({Base64(dockerfile)})}};
  return Metadata(list, TabWrite(txt, 1));
}

namespace {

// dockerfile2llb's outlineCapture for one stage.
struct ArgInfo {
  std::string key;
  std::string value;
  std::string comment;
  ins::Location location;
  std::set<std::string> deps;
};
struct MountInfo {
  bool required = false;
  ins::Location location;
};
struct Capture {
  std::map<std::string, ArgInfo> all_args;
  std::set<std::string> used_args;
  std::map<std::string, MountInfo> secrets;
  std::map<std::string, MountInfo> ssh;
};
struct StageState {
  Capture outline;
  std::optional<size_t> base;
  std::set<size_t> deps;
};

using Vars = std::vector<std::pair<std::string, std::string>>;
shell::Lookup LookupVars(const Vars& vars) {
  return [&vars](std::string_view name) -> std::optional<std::string> {
    for (auto it = vars.rbegin(); it != vars.rend(); ++it) {
      if (it->first == name) return it->second;
    }
    return std::nullopt;
  };
}

void MarkAllUsed(Capture& c, const std::set<std::string>& in, std::set<std::string>& visited) {
  for (const std::string& k : in) {
    if (!visited.insert(k).second) continue;
    if (auto it = c.all_args.find(k); it != c.all_args.end()) {
      const std::set<std::string> deps = it->second.deps;
      MarkAllUsed(c, deps, visited);
    }
    c.used_args.insert(k);
  }
}

struct OutlineEntry {
  Json json;
  int line = 0;
};

void CollectArgs(std::vector<StageState>& states, size_t i, std::set<std::string>& visited,
                 std::vector<OutlineEntry>& out) {
  Capture& c = states[i].outline;
  std::set<std::string> seen;
  const std::set<std::string> used = c.used_args;
  MarkAllUsed(c, used, seen);
  for (const std::string& k : c.used_args) {
    auto it = c.all_args.find(k);
    if (it == c.all_args.end() || visited.contains(k)) continue;
    const ArgInfo& a = it->second;
    Json j = {{"name", a.key}};
    if (!a.comment.empty()) j["description"] = a.comment;
    if (!a.value.empty()) j["value"] = a.value;
    j["location"] = LocationJson(a.location);
    out.push_back({std::move(j), a.location.start_line});
    visited.insert(k);
  }
  if (states[i].base) CollectArgs(states, *states[i].base, visited, out);
  for (size_t d : states[i].deps) CollectArgs(states, d, visited, out);
}

void CollectMounts(std::vector<StageState>& states, size_t i, bool ssh,
                   std::set<std::string>& visited, std::vector<OutlineEntry>& out) {
  const auto& mounts = ssh ? states[i].outline.ssh : states[i].outline.secrets;
  for (const auto& [id, m] : mounts) {
    if (!visited.insert(id).second) continue;
    Json j = {{"name", id}};
    if (m.required) j["required"] = true;
    j["location"] = LocationJson(m.location);
    out.push_back({std::move(j), m.location.start_line});
  }
  if (states[i].base) CollectMounts(states, *states[i].base, ssh, visited, out);
  for (size_t d : states[i].deps) CollectMounts(states, d, ssh, visited, out);
}

Json Sorted(std::vector<OutlineEntry> entries) {
  std::stable_sort(entries.begin(), entries.end(),
                   [](const OutlineEntry& a, const OutlineEntry& b) { return a.line < b.line; });
  Json out = Json::array();
  for (OutlineEntry& e : entries) out.push_back(std::move(e.json));
  return out;
}

std::string PlatformString(const llb::Platform& p) {
  std::string s = absl::StrCat(p.os, "/", p.architecture);
  if (!p.variant.empty()) absl::StrAppend(&s, "/", p.variant);
  return s;
}

}  // namespace

absl::StatusOr<SubrequestMetadata> OutlineResult(std::string_view dockerfile,
                                                 const ConvertOptions& options) {
  auto parsed = ins::Parse(dockerfile);
  if (!parsed.ok()) return parsed.status();
  const ins::Dockerfile& df = *parsed;
  if (df.stages.empty()) return absl::InvalidArgumentError("the Dockerfile has no FROM");
  const shell::Lex lex(df.directives.escape);

  // The target stage.
  size_t target = df.stages.size() - 1;
  if (!options.target.empty()) {
    const std::string want = Lower(options.target);
    bool found = false;
    for (size_t i = 0; i < df.stages.size(); ++i) {
      if (df.stages[i].from.stage_name == want) {
        target = i;
        found = true;
        break;
      }
    }
    if (!found) {
      return absl::InvalidArgumentError(
          absl::StrCat("target stage \"", options.target, "\" could not be found"));
    }
  }

  // defaultArgs: the platform args, then the meta ARGs (buildMetaArgs).
  const llb::Platform tp = options.target_platform.value_or(options.build_platform);
  const llb::Platform& bp = options.build_platform;
  Vars global = {
      {"TARGETPLATFORM", PlatformString(tp)},
      {"TARGETOS", tp.os},
      {"TARGETARCH", tp.architecture},
      {"TARGETVARIANT", tp.variant},
      {"BUILDPLATFORM", PlatformString(bp)},
      {"BUILDOS", bp.os},
      {"BUILDARCH", bp.architecture},
      {"BUILDVARIANT", bp.variant},
      {"TARGETSTAGE", df.stages[target].from.stage_name},
  };
  Capture meta;
  for (const ins::ArgCommand& cmd : df.meta_args) {
    for (const ins::KeyValueOptional& kv : cmd.args) {
      ArgInfo info{.key = kv.key, .comment = kv.comment, .location = cmd.location};
      std::optional<std::string> value;
      if (auto b = options.build_args.find(kv.key); b != options.build_args.end()) {
        value = b->second;
      } else if (kv.value) {
        auto r = lex.ProcessWord(*kv.value, LookupVars(global));
        if (!r.ok()) return r.status();
        value = r->result;
        info.deps = r->matched;
        if (info.deps.erase(kv.key) > 0) {
          if (auto old = meta.all_args.find(kv.key); old != meta.all_args.end()) {
            info.deps.insert(old->second.deps.begin(), old->second.deps.end());
          }
        }
      }
      if (value) {
        global.emplace_back(kv.key, *value);
        info.value = *value;
      }
      meta.all_args[kv.key] = std::move(info);
    }
  }
  std::set<std::string> meta_names;
  for (const auto& [k, v] : meta.all_args) meta_names.insert(k);

  std::vector<StageState> states(df.stages.size());
  std::map<std::string, size_t> by_name;
  auto stage_ref = [&](const std::string& name, size_t before) -> std::optional<size_t> {
    if (auto it = by_name.find(Lower(name)); it != by_name.end()) return it->second;
    size_t index = 0;
    if (absl::SimpleAtoi(name, &index) && index < before) return index;
    return std::nullopt;
  };
  for (size_t i = 0; i < df.stages.size(); ++i) {
    const ins::Stage& st = df.stages[i];
    StageState& ds = states[i];
    std::set<std::string> used;
    std::string base = st.from.base_name;
    if (auto r = lex.ProcessWord(st.from.base_name, LookupVars(global)); r.ok()) {
      base = r->result;
      used = r->matched;
    }
    if (!st.from.platform.empty()) {
      if (auto r = lex.ProcessWord(st.from.platform, LookupVars(global)); r.ok()) {
        used.insert(r->matched.begin(), r->matched.end());
      }
    }
    ds.outline = meta;
    if (auto it = by_name.find(Lower(base)); it != by_name.end()) {
      ds.base = it->second;
      ds.outline = states[it->second].outline;
    }
    if (!st.from.stage_name.empty()) by_name[st.from.stage_name] = i;
    ds.outline.used_args.insert(used.begin(), used.end());

    // dispatch: ARGs, the secrets and ssh of RUN mounts, and the stages used by COPY --from and
    // RUN --mount from=.
    Vars env;
    for (const ins::Command& command : st.commands) {
      if (const auto* arg = std::get_if<ins::ArgCommand>(&command)) {
        for (const ins::KeyValueOptional& kv : arg->args) {
          std::optional<std::string> value = kv.value;
          bool skip_info = false;
          auto b = options.build_args.find(kv.key);
          if (!value && b == options.build_args.end()) {
            if (auto g = LookupVars(global)(kv.key); g && meta_names.contains(kv.key)) {
              value = *g;
              skip_info = true;
            }
          }
          if (b != options.build_args.end()) {
            value = b->second;
          } else if (kv.value) {
            auto r = lex.ProcessWord(*kv.value, LookupVars(env));
            if (!r.ok()) return r.status();
            value = r->result;
          }
          ArgInfo info{.key = kv.key, .comment = kv.comment, .location = arg->location};
          if (value) {
            env.emplace_back(kv.key, *value);
            info.value = *value;
          }
          if (!skip_info) ds.outline.all_args[kv.key] = std::move(info);
          ds.outline.used_args.insert(kv.key);
        }
      } else if (const auto* run = std::get_if<ins::RunCommand>(&command)) {
        for (const std::string& raw : run->mounts) {
          auto m = ins::ParseMount(raw, [&](std::string_view v) -> absl::StatusOr<std::string> {
            auto r = lex.ProcessWord(v, LookupVars(env));
            if (!r.ok()) return r.status();
            return r->result;
          });
          if (!m.ok()) continue;  // the build reports it
          if (m->type == ins::MountType::kSecret) {
            ds.outline.secrets.emplace(m->cache_id, MountInfo{m->required, run->location});
          } else if (m->type == ins::MountType::kSsh) {
            ds.outline.ssh.emplace(m->ssh_id, MountInfo{m->required, run->location});
          } else if (!m->from.empty()) {
            if (auto d = stage_ref(m->from, i)) ds.deps.insert(*d);
          }
        }
      } else if (const auto* copy = std::get_if<ins::CopyCommand>(&command)) {
        if (!copy->from.empty()) {
          std::string from = copy->from;
          if (auto r = lex.ProcessWord(from, LookupVars(env)); r.ok()) from = r->result;
          if (auto d = stage_ref(from, i)) ds.deps.insert(*d);
        }
      }
    }
  }

  std::set<std::string> visited;
  std::vector<OutlineEntry> args, secrets, ssh;
  CollectArgs(states, target, visited, args);
  visited.clear();
  CollectMounts(states, target, false, visited, secrets);
  visited.clear();
  CollectMounts(states, target, true, visited, ssh);

  const ins::FromCommand& from = df.stages[target].from;
  Json o = Json::object();
  if (!from.stage_name.empty()) o["name"] = from.stage_name;
  if (!from.comment.empty()) o["description"] = from.comment;
  Json args_json = Sorted(std::move(args));
  Json secrets_json = Sorted(std::move(secrets));
  Json ssh_json = Sorted(std::move(ssh));
  if (!args_json.empty()) o["args"] = args_json;
  if (!secrets_json.empty()) o["secrets"] = secrets_json;
  if (!ssh_json.empty()) o["ssh"] = ssh_json;
  o["sources"] = Json::array({Base64(dockerfile)});

  // outline.PrintOutline
  std::string txt;
  if (!from.stage_name.empty() || !from.comment.empty()) {
    std::string t =
        absl::StrCat("TARGET:\t", from.stage_name.empty() ? "(default)" : from.stage_name, "\n");
    if (!from.comment.empty()) absl::StrAppend(&t, "DESCRIPTION:\t", from.comment, "\n");
    absl::StrAppend(&txt, TabWrite(t, 1), "\n");
  }
  auto table = [&](const Json& rows, std::string header, auto row) {
    if (rows.empty()) return;
    for (const Json& r : rows) absl::StrAppend(&header, row(r), "\n");
    absl::StrAppend(&txt, TabWrite(header, 3), "\n");
  };
  auto str = [](const Json& r, const char* key) {
    return r.contains(key) ? r[key].get<std::string>() : std::string();
  };
  table(args_json, "BUILD ARG\tVALUE\tDESCRIPTION\n", [&](const Json& r) {
    return absl::StrCat(str(r, "name"), "\t", str(r, "value"), "\t", str(r, "description"));
  });
  auto required = [&](const Json& r) {
    return absl::StrCat(str(r, "name"), "\t", r.contains("required") ? "true" : "");
  };
  table(secrets_json, "SECRET\tREQUIRED\n", required);
  table(ssh_json, "SSH\tREQUIRED\n", required);
  return Metadata(o, std::move(txt));
}

SubrequestMetadata LintResult(std::string_view dockerfile, std::string_view filename,
                              const absl::StatusOr<ConvertResult>& converted) {
  std::vector<Warning> warnings;
  if (converted.ok()) {
    warnings = converted->warnings;
  } else if (auto df = ins::Parse(dockerfile); df.ok()) {
    for (const parser::Warning& w : df->warnings) {
      warnings.push_back({.rule = w.rule,
                          .message = w.short_message,
                          .line = w.line,
                          .url = w.url,
                          .description = w.detail});
    }
  }
  Json source = {{"filename", filename}, {"data", Base64(dockerfile)}, {"language", "Dockerfile"}};
  Json ws = Json::array();
  for (const Warning& w : warnings) {
    Json j = {{"ruleName", w.rule}};
    if (!w.description.empty()) j["description"] = w.description;
    if (!w.url.empty()) j["url"] = w.url;
    if (!w.message.empty()) j["detail"] = w.message;
    Json loc = Json::object();  // sourceIndex 0 and an empty range list are omitted
    if (w.line > 0) {
      loc["ranges"] =
          Json::array({Json{{"start", {{"line", w.line}}}, {"end", {{"line", w.line}}}}});
    }
    j["location"] = std::move(loc);
    ws.push_back(std::move(j));
  }
  // A nil slice when there are none, as LintResults.Warnings.
  Json results = {{"warnings", ws.empty() ? Json(nullptr) : ws},
                  {"sources", Json::array({source})}};
  if (!converted.ok()) {
    Json loc = Json::object();
    std::vector<llb::ErrorSource> sources = llb::SourcesOf(converted.status());
    if (!sources.empty() && !sources.front().ranges.empty()) {
      Json ranges = Json::array();
      for (const pb::Range& r : sources.front().ranges) {
        Json start = Json::object(), end = Json::object();
        if (r.start().line() != 0) start["line"] = r.start().line();
        if (r.start().character() != 0) start["character"] = r.start().character();
        if (r.end().line() != 0) end["line"] = r.end().line();
        if (r.end().character() != 0) end["character"] = r.end().character();
        ranges.push_back(Json{{"start", start}, {"end", end}});
      }
      loc["ranges"] = std::move(ranges);
    }
    results["buildError"] = {{"message", std::string(converted.status().message())},
                             {"location", std::move(loc)}};
  }

  // lint.PrintLintViolations (sorted by line) for result.txt.
  std::vector<const Warning*> sorted;
  for (const Warning& w : warnings) sorted.push_back(&w);
  std::stable_sort(sorted.begin(), sorted.end(), [](const Warning* a, const Warning* b) {
    if ((a->line == 0) != (b->line == 0)) return a->line == 0;
    if (a->line == 0) return a->rule < b->rule;
    return a->line < b->line;
  });
  std::string txt;
  for (const Warning* w : sorted) {
    absl::StrAppend(&txt, "\nWARNING: ", w->rule);
    if (!w->url.empty()) absl::StrAppend(&txt, " - ", w->url);
    absl::StrAppend(&txt, "\n", w->message, "\n");
    if (w->line > 0) {
      llb::ErrorSource src;
      src.info.set_filename(std::string(filename));
      src.info.set_data(std::string(dockerfile));
      src.info.set_language("Dockerfile");
      src.ranges.push_back(llb::LineRange(w->line, w->line));
      absl::StrAppend(&txt, llb::FormatSource(src));
    }
  }

  SubrequestMetadata out = Metadata(results, std::move(txt));
  out["result.statuscode"] = warnings.empty() && converted.ok() ? "0" : "1";
  return out;
}

absl::Status UnsupportedSubrequestError(std::string_view name) {
  absl::Status st = absl::UnknownError(absl::StrCat("unsupported request ", AV(name)));
  st.SetPayload(kSubrequestPayload, absl::Cord(AV(name)));
  return st;
}

std::string SubrequestDetailJson(std::string_view name) { return Json{{"name", name}}.dump(); }

}  // namespace kiln::dockerfile
