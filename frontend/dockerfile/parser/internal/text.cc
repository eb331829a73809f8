#include "frontend/dockerfile/parser/internal/text.h"

#include <cstdint>

namespace kiln::dockerfile::parser::internal {
namespace {

constexpr char32_t kRuneError = 0xFFFD;

// Go's unicode.IsPrint, approximated: letters, marks, numbers, punctuation, symbols and the ASCII
// space are printable; controls, format characters, separators other than U+0020, surrogates and
// private-use characters are not. Unassigned code points count as printable.
bool IsPrintRune(char32_t r) {
  if (r < 0x20 || r == 0x7F) return false;
  if (r < 0x7F) return true;
  if (r >= 0x80 && r <= 0xA0) return false;  // C1 controls, NBSP
  if (r == 0xAD) return false;               // soft hyphen (Cf)
  if ((r >= 0x600 && r <= 0x605) || r == 0x61C || r == 0x6DD || r == 0x70F || r == 0x890 ||
      r == 0x891 || r == 0x8E2 || r == 0x180E)
    return false;
  if (r == 0x1680) return false;
  if (r >= 0x2000 && r <= 0x200F) return false;  // spaces, ZW*, marks
  if (r >= 0x2028 && r <= 0x202F) return false;  // separators, bidi, NNBSP
  if (r >= 0x205F && r <= 0x206F) return false;
  if (r == 0x3000) return false;
  if (r >= 0xD800 && r <= 0xDFFF) return false;
  if (r >= 0xE000 && r <= 0xF8FF) return false;  // private use
  if (r == 0xFEFF) return false;
  if (r >= 0xFFF9 && r <= 0xFFFB) return false;
  if (r == 0xFFFE || r == 0xFFFF) return false;
  if (r == 0x110BD || r == 0x110CD) return false;
  if (r >= 0x13430 && r <= 0x1343F) return false;
  if (r >= 0x1BCA0 && r <= 0x1BCA3) return false;
  if (r >= 0x1D173 && r <= 0x1D17A) return false;
  if (r == 0xE0001 || (r >= 0xE0020 && r <= 0xE007F)) return false;
  if (r >= 0xF0000) return false;  // supplementary private use
  return true;
}

void AppendHex(std::string* out, uint32_t v, int digits) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (int i = digits - 1; i >= 0; --i) out->push_back(kHex[(v >> (i * 4)) & 0xF]);
}

bool IsReWhitespace(char c) { return c == '\t' || c == '\v' || c == '\f' || c == '\r' || c == ' '; }

}  // namespace

DecodedRune DecodeRune(std::string_view s, size_t pos) {
  DecodedRune out;
  if (pos >= s.size()) return out;
  const auto b0 = static_cast<unsigned char>(s[pos]);
  out.rune = kRuneError;
  out.width = 1;
  if (b0 < 0x80) {
    out.rune = b0;
    out.valid = true;
    return out;
  }
  size_t need;
  char32_t r;
  char32_t min;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 1;
    r = b0 & 0x1F;
    min = 0x80;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 2;
    r = b0 & 0x0F;
    min = 0x800;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 3;
    r = b0 & 0x07;
    min = 0x10000;
  } else {
    return out;
  }
  if (pos + need >= s.size()) return out;
  for (size_t i = 1; i <= need; ++i) {
    const auto b = static_cast<unsigned char>(s[pos + i]);
    if ((b & 0xC0) != 0x80) return out;
    r = (r << 6) | (b & 0x3F);
  }
  if (r < min || r > 0x10FFFF || (r >= 0xD800 && r <= 0xDFFF)) return out;
  out.rune = r;
  out.width = need + 1;
  out.valid = true;
  return out;
}

bool IsSpaceRune(char32_t r) {
  switch (r) {
    case '\t':
    case '\n':
    case '\v':
    case '\f':
    case '\r':
    case ' ':
    case 0x85:
    case 0xA0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
    case 0x3000:
      return true;
    default:
      return r >= 0x2000 && r <= 0x200A;
  }
}

bool IsAsciiSpace(char c) {
  return c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r' || c == ' ';
}

std::string_view TrimLeftSpace(std::string_view s) {
  size_t pos = 0;
  while (pos < s.size()) {
    DecodedRune d = DecodeRune(s, pos);
    if (!d.valid || !IsSpaceRune(d.rune)) break;
    pos += d.width;
  }
  return s.substr(pos);
}

std::string_view TrimRightSpace(std::string_view s) {
  size_t end = s.size();
  while (end > 0) {
    // Find the start of the last rune.
    size_t start = end - 1;
    while (start > 0 && end - start < 4 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) {
      --start;
    }
    DecodedRune d = DecodeRune(s.substr(0, end), start);
    if (!d.valid || start + d.width != end) {
      // An invalid trailing byte is not a space.
      break;
    }
    if (!IsSpaceRune(d.rune)) break;
    end = start;
  }
  return s.substr(0, end);
}

std::string_view TrimSpace(std::string_view s) { return TrimRightSpace(TrimLeftSpace(s)); }

std::string GoQuote(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  out.push_back('"');
  size_t pos = 0;
  while (pos < s.size()) {
    DecodedRune d = DecodeRune(s, pos);
    if (!d.valid) {
      out += "\\x";
      AppendHex(&out, static_cast<unsigned char>(s[pos]), 2);
      pos += 1;
      continue;
    }
    const char32_t r = d.rune;
    if (r == '"' || r == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(r));
    } else if (IsPrintRune(r)) {
      out.append(s.substr(pos, d.width));
    } else {
      switch (r) {
        case '\a':
          out += "\\a";
          break;
        case '\b':
          out += "\\b";
          break;
        case '\f':
          out += "\\f";
          break;
        case '\n':
          out += "\\n";
          break;
        case '\r':
          out += "\\r";
          break;
        case '\t':
          out += "\\t";
          break;
        case '\v':
          out += "\\v";
          break;
        default:
          if (r < ' ' || r == 0x7F) {
            out += "\\x";
            AppendHex(&out, r, 2);
          } else if (r < 0x10000) {
            out += "\\u";
            AppendHex(&out, r, 4);
          } else {
            out += "\\U";
            AppendHex(&out, r, 8);
          }
      }
    }
    pos += d.width;
  }
  out.push_back('"');
  return out;
}

std::string GoQuoteSlice(const std::vector<std::string>& v) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i) {
    if (i > 0) out.push_back(' ');
    out += GoQuote(v[i]);
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
