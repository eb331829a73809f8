#include "frontend/dockerfile/parser/internal/text.h"

#include "base/go_text.h"

namespace kiln::dockerfile::parser::internal {
namespace {

bool IsReWhitespace(char c) { return c == '\t' || c == '\v' || c == '\f' || c == '\r' || c == ' '; }

}  // namespace

bool IsAsciiSpace(char c) {
  return c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r' || c == ' ';
}

std::string GoQuoteSlice(const std::vector<std::string>& v) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i) {
    if (i > 0) out.push_back(' ');
    out += gotext::Quote(v[i]);
  }
  out.push_back(']');
  return out;
}

std::vector<std::string> SplitWhitespace(std::string_view s, int n) {
  std::vector<std::string> out;
  if (n == 0) return out;
  if (s.empty()) {
    out.emplace_back();
    return out;
  }
  size_t beg = 0;
  size_t end = 0;
  size_t pos = 0;
  while (pos < s.size()) {
    if (!IsReWhitespace(s[pos])) {
      ++pos;
      continue;
    }
    size_t match_end = pos;
    while (match_end < s.size() && IsReWhitespace(s[match_end])) ++match_end;
    if (n > 0 && static_cast<int>(out.size()) == n - 1) break;
    end = pos;
    out.emplace_back(s.substr(beg, end - beg));
    beg = match_end;
    pos = match_end;
  }
  if (end != s.size()) out.emplace_back(s.substr(beg));
  return out;
}

std::string ToLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::string ToUpper(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return out;
}

std::string PathClean(std::string_view p) {
  if (p.empty()) return ".";
  const bool rooted = p[0] == '/';
  std::vector<std::string_view> parts;
  size_t i = 0;
  while (i < p.size()) {
    size_t j = p.find('/', i);
    if (j == std::string_view::npos) j = p.size();
    std::string_view elem = p.substr(i, j - i);
    i = j + 1;
    if (elem.empty() || elem == ".") continue;
    if (elem == "..") {
      if (!parts.empty() && parts.back() != "..") {
        parts.pop_back();
      } else if (!rooted) {
        parts.push_back(elem);
      }
      continue;
    }
    parts.push_back(elem);
  }
  std::string out = rooted ? "/" : "";
  for (size_t k = 0; k < parts.size(); ++k) {
    if (k > 0) out.push_back('/');
    out.append(parts[k]);
  }
  if (out.empty()) return ".";
  return out;
}

std::string PathBase(std::string_view p) {
  if (p.empty()) return ".";
  while (p.size() > 0 && p.back() == '/') p.remove_suffix(1);
  size_t slash = p.rfind('/');
  if (slash != std::string_view::npos) p = p.substr(slash + 1);
  if (p.empty()) return "/";
  return std::string(p);
}

}  // namespace kiln::dockerfile::parser::internal
