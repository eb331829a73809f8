#include "llb/errdefs.h"

#include <algorithm>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"

namespace kiln::llb {
namespace {
using json = nlohmann::ordered_json;

// Go's encoding/json of a *pb.Position with omitempty fields.
json PositionJson(const pb::Position& p) {
  json out = json::object();
  if (p.line() != 0) out["line"] = p.line();
  if (p.character() != 0) out["character"] = p.character();
  return out;
}

json SourceObject(const ErrorSource& s) {
  json out = json::object();
  json info = json::object();
  if (!s.info.filename().empty()) info["filename"] = s.info.filename();
  if (!s.info.data().empty()) info["data"] = absl::Base64Escape(s.info.data());
  if (!s.info.language().empty()) info["language"] = s.info.language();
  out["info"] = std::move(info);
  if (!s.ranges.empty()) {
    json ranges = json::array();
    for (const pb::Range& r : s.ranges) {
      json range = json::object();
      if (r.has_start()) range["start"] = PositionJson(r.start());
      if (r.has_end()) range["end"] = PositionJson(r.end());
      ranges.push_back(std::move(range));
    }
    out["ranges"] = std::move(ranges);
  }
  return out;
}

int32_t IntField(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number_integer() ? it->get<int32_t>() : 0;
}

absl::StatusOr<ErrorSource> SourceFromObject(const json& j) {
  if (!j.is_object()) return absl::InvalidArgumentError("errdefs.Source: not a JSON object");
  ErrorSource s;
  if (auto info = j.find("info"); info != j.end() && info->is_object()) {
    if (auto f = info->find("filename"); f != info->end() && f->is_string()) {
      s.info.set_filename(f->get<std::string>());
    }
    if (auto l = info->find("language"); l != info->end() && l->is_string()) {
      s.info.set_language(l->get<std::string>());
    }
    if (auto d = info->find("data"); d != info->end() && d->is_string()) {
      std::string data;
      if (!absl::Base64Unescape(d->get<std::string>(), &data)) {
        return absl::InvalidArgumentError("errdefs.Source: info.data is not base64");
      }
      s.info.set_data(std::move(data));
    }
  }
  if (auto ranges = j.find("ranges"); ranges != j.end() && ranges->is_array()) {
    for (const json& r : *ranges) {
      pb::Range range;
      for (const char* which : {"start", "end"}) {
        auto p = r.find(which);
        if (p == r.end() || !p->is_object()) continue;
        pb::Position* pos =
            std::string_view(which) == "start" ? range.mutable_start() : range.mutable_end();
        pos->set_line(IntField(*p, "line"));
        pos->set_character(IntField(*p, "character"));
      }
      s.ranges.push_back(std::move(range));
    }
  }
  return s;
}

}  // namespace

pb::Range LineRange(int start_line, int end_line) {
  pb::Range r;
  r.mutable_start()->set_line(start_line);
  r.mutable_end()->set_line(end_line);
  return r;
}

std::string SourceDetailJson(const ErrorSource& source) { return SourceObject(source).dump(); }

std::string VertexDetailJson(std::string_view digest) {
  json out = json::object();
  if (!digest.empty()) out["digest"] = std::string(digest);
  return out.dump();
}

absl::StatusOr<ErrorSource> ParseSourceDetail(std::string_view text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InvalidArgumentError("errdefs.Source: invalid JSON");
  return SourceFromObject(j);
}

absl::StatusOr<std::string> ParseVertexDetail(std::string_view text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return absl::InvalidArgumentError("errdefs.Vertex: not a JSON object");
  auto d = j.find("digest");
  if (d == j.end() || !d->is_string()) {
    return absl::InvalidArgumentError("errdefs.Vertex: no digest");
  }
  return d->get<std::string>();
}

absl::Status WithSource(absl::Status st, const ErrorSource& source) {
  if (st.ok()) return st;
  json all = json::array();
  if (auto existing = st.GetPayload(kSourcesPayload)) {
    json parsed = json::parse(std::string(*existing), nullptr, false);
    if (parsed.is_array()) all = std::move(parsed);
  }
  all.push_back(SourceObject(source));
  st.SetPayload(kSourcesPayload, absl::Cord(all.dump()));
  return st;
}

std::vector<ErrorSource> SourcesOf(const absl::Status& st) {
  std::vector<ErrorSource> out;
  auto payload = st.GetPayload(kSourcesPayload);
  if (!payload) return out;
  json all = json::parse(std::string(*payload), nullptr, false);
  if (!all.is_array()) return out;
  for (const json& j : all) {
    auto s = SourceFromObject(j);
    if (s.ok()) out.push_back(*std::move(s));
  }
  return out;
}

absl::Status WithDefinitionSource(absl::Status st, const pb::Definition& definition,
                                  std::string_view digest) {
  if (st.ok() || !definition.has_source()) return st;
  const pb::Source& src = definition.source();
  auto it = src.locations().find(std::string(digest));
  if (it == src.locations().end()) return st;
  for (const pb::Location& loc : it->second.locations()) {
    if (loc.sourceindex() < 0 || loc.sourceindex() >= src.infos_size()) continue;
    ErrorSource s;
    s.info = src.infos(loc.sourceindex());
    s.info.clear_definition();
    s.ranges.assign(loc.ranges().begin(), loc.ranges().end());
    st = WithSource(std::move(st), s);
  }
  return st;
}

std::string FormatSource(const ErrorSource& source) {
  // BuildKit's (*errdefs.Source).Print, line for line.
  std::vector<std::string> lines = absl::StrSplit(source.info.data(), '\n');
  if (source.ranges.empty()) return "";
  int start = 0, end = 0;
  bool first = true;
  for (const pb::Range& r : source.ranges) {
    int e = std::max(r.end().line(), r.start().line());
    if (first || r.start().line() < start) start = r.start().line();
    if (e > end) end = e;
    first = false;
  }
  const int n = static_cast<int>(lines.size());
  if (start > n || start < 1) return "";
  end = std::min(end, n);
  int pad = end == start ? 4 : 2;
  int prepad_start = start;
  for (int p = 0; p < pad;) {
    if (start > 1) {
      --start;
      ++p;
    }
    if (end != n) {
      ++end;
      ++p;
    }
    ++p;
  }
  auto in_range = [&](int l) {
    for (const pb::Range& r : source.ranges) {
      int e = std::max(r.end().line(), r.start().line());
      if (r.start().line() <= l && e >= l) return true;
    }
    return false;
  };
  std::string out =
      absl::StrCat(source.info.filename(), ":", prepad_start, "\n--------------------\n");
  for (int i = start; i <= end; ++i) {
    absl::StrAppendFormat(&out, " %3d | %s %s\n", i, in_range(i) ? ">>>" : "   ", lines[i - 1]);
  }
  out += "--------------------\n";
  return out;
}

}  // namespace kiln::llb
