#include "daemon/cache/filter.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace kiln::cache {

absl::StatusOr<Filter> Filter::Parse(const std::vector<std::string>& filters) {
  Filter out;
  for (const std::string& text : filters) {
    std::vector<Selector> all_of;
    for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
      part = absl::StripAsciiWhitespace(part);
      Selector sel;
      size_t pos = absl::string_view::npos;
      for (auto [token, op] : {std::pair{"==", Op::kEqual}, std::pair{"!=", Op::kNotEqual},
                               std::pair{"~=", Op::kMatches}}) {
        size_t p = part.find(token);
        if (p != absl::string_view::npos && p < pos) {
          pos = p;
          sel.op = op;
        }
      }
      if (pos == absl::string_view::npos) {
        sel.field = std::string(part);
      } else {
        sel.field = std::string(absl::StripAsciiWhitespace(part.substr(0, pos)));
        sel.value = std::string(absl::StripAsciiWhitespace(part.substr(pos + 2)));
        if (sel.value.size() >= 2 && sel.value.front() == '"' && sel.value.back() == '"') {
          sel.value = sel.value.substr(1, sel.value.size() - 2);
        }
      }
      if (sel.field.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat("invalid filter \"", text, "\": a selector has no field name"));
      }
      for (char c : sel.field) {
        if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.') {
          return absl::InvalidArgumentError(
              absl::StrCat("invalid filter \"", text, "\": bad field name \"", sel.field, "\""));
        }
      }
      if (sel.op == Op::kMatches) {
        try {
          sel.re.emplace(sel.value, std::regex::ECMAScript);
        } catch (const std::regex_error& e) {
          return absl::InvalidArgumentError(
              absl::StrCat("invalid filter \"", text, "\": bad regular expression: ", e.what()));
        }
      }
      all_of.push_back(std::move(sel));
    }
    if (!all_of.empty()) out.any_of_.push_back(std::move(all_of));
  }
  return out;
}

bool Filter::Match(const Adaptor& adaptor) const {
  if (any_of_.empty()) return true;
  for (const auto& all_of : any_of_) {
    bool ok = true;
    for (const Selector& sel : all_of) {
      std::optional<std::string> v = adaptor(sel.field);
      switch (sel.op) {
        case Op::kPresent:
          ok = v.has_value();
          break;
        case Op::kEqual:
          ok = v.has_value() && *v == sel.value;
          break;
        case Op::kNotEqual:
          ok = !v.has_value() || *v != sel.value;
          break;
        case Op::kMatches:
          ok = v.has_value() && std::regex_search(*v, *sel.re);
          break;
      }
      if (!ok) break;
    }
    if (ok) return true;
  }
  return false;
}

}  // namespace kiln::cache
