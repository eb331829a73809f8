#include "daemon/registry/auth.h"

#include <cctype>
#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "base/status.h"

namespace kiln::registry {
namespace {

bool IsTokenChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) ||
         std::string_view("!#$%&'*+-.^_`|~/").find(c) != std::string_view::npos;
}

class Scanner {
 public:
  explicit Scanner(std::string_view s) : s_(s) {}
  void SkipSpace() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t')) ++i_;
  }
  void SkipSpaceAndCommas() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == ',')) ++i_;
  }
  bool Done() const { return i_ >= s_.size(); }
  char Peek() const { return Done() ? '\0' : s_[i_]; }
  void Advance() { ++i_; }
  size_t pos() const { return i_; }
  void Reset(size_t pos) { i_ = pos; }
  std::string Token() {
    size_t start = i_;
    while (i_ < s_.size() && IsTokenChar(s_[i_])) ++i_;
    return std::string(s_.substr(start, i_ - start));
  }
  // A bare value or a quoted string with backslash escapes.
  std::optional<std::string> Value() {
    if (Peek() != '"') {  // a bare token; be lenient and take up to the next separator
      size_t start = i_;
      while (i_ < s_.size() && s_[i_] != ',' && s_[i_] != ' ' && s_[i_] != '\t') ++i_;
      return std::string(s_.substr(start, i_ - start));
    }
    Advance();
    std::string out;
    while (!Done()) {
      char c = s_[i_++];
      if (c == '\\' && !Done()) {
        out.push_back(s_[i_++]);
      } else if (c == '"') {
        return out;
      } else {
        out.push_back(c);
      }
    }
    return std::nullopt;  // unterminated
  }

 private:
  std::string_view s_;
  size_t i_ = 0;
};

}  // namespace

std::vector<Challenge> ParseWwwAuthenticate(std::string_view header) {
  std::vector<Challenge> out;
  Scanner sc(header);
  sc.SkipSpaceAndCommas();
  while (!sc.Done()) {
    std::string scheme = sc.Token();
    if (scheme.empty()) break;
    Challenge ch;
    ch.scheme = absl::AsciiStrToLower(scheme);
    for (;;) {
      sc.SkipSpaceAndCommas();
      size_t mark = sc.pos();
      std::string key = sc.Token();
      if (key.empty()) break;
      sc.SkipSpace();
      if (sc.Peek() != '=') {  // the scheme of the next challenge
        sc.Reset(mark);
        break;
      }
      sc.Advance();
      sc.SkipSpace();
      auto value = sc.Value();
      if (!value) {
        out.push_back(std::move(ch));
        return out;
      }
      ch.params[absl::AsciiStrToLower(key)] = std::move(*value);
    }
    out.push_back(std::move(ch));
    sc.SkipSpaceAndCommas();
  }
  return out;
}

std::string RepositoryScope(std::string_view path, bool push) {
  return absl::StrCat("repository:", AV(path), push ? ":pull,push" : ":pull");
}

}  // namespace kiln::registry
