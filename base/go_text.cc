#include "base/go_text.h"

#include <algorithm>
#include <iterator>

namespace kiln::gotext {
namespace {

struct RuneRange {
  Rune lo;
  Rune hi;
};

#include "base/internal/unicode_tables.inc"

template <size_t N>
bool InTable(const RuneRange (&table)[N], Rune r) {
  if (r < 0) return false;
  const RuneRange* end = table + N;
  const RuneRange* it =
      std::upper_bound(table, end, r, [](Rune v, const RuneRange& rg) { return v < rg.lo; });
  if (it == table) return false;
  return r <= std::prev(it)->hi;
}

bool IsContinuation(unsigned char b) { return (b & 0xC0) == 0x80; }

void AppendHex(std::string* out, uint32_t v, int digits) {
  static constexpr char kLowerHex[] = "0123456789abcdef";
  for (int shift = (digits - 1) * 4; shift >= 0; shift -= 4) {
    out->push_back(kLowerHex[(v >> shift) & 0xF]);
  }
}

}  // namespace

DecodedRune DecodeRune(std::string_view s) {
  if (s.empty()) return {kRuneError, 0};
  const auto b0 = static_cast<unsigned char>(s[0]);
  if (b0 < 0x80) return {b0, 1};
  constexpr DecodedRune kError{kRuneError, 1};
  size_t need;
  Rune r;
  // The accepted range of the second byte, which rules out overlong forms, surrogates and values
  // above U+10FFFF (Go's acceptRanges).
  unsigned char lo = 0x80;
  unsigned char hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 2;
    r = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 3;
    r = b0 & 0x0F;
    if (b0 == 0xE0) lo = 0xA0;  // no overlong forms
    if (b0 == 0xED) hi = 0x9F;  // no surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 4;
    r = b0 & 0x07;
    if (b0 == 0xF0) lo = 0x90;  // no overlong forms
    if (b0 == 0xF4) hi = 0x8F;  // nothing above U+10FFFF
  } else {
    return kError;
  }
  // A truncated sequence is still an error of width 1: Go never reports a wider error.
  if (s.size() < need) return kError;
  const auto b1 = static_cast<unsigned char>(s[1]);
  if (b1 < lo || b1 > hi) return kError;
  r = (r << 6) | (b1 & 0x3F);
  for (size_t i = 2; i < need; ++i) {
    const auto b = static_cast<unsigned char>(s[i]);
    if (!IsContinuation(b)) return kError;
    r = (r << 6) | (b & 0x3F);
  }
  return {r, need};
}

void AppendRune(std::string* out, Rune r) {
  if (r < 0 || r > kMaxRune || (r >= 0xD800 && r <= 0xDFFF)) r = kRuneError;
  const auto u = static_cast<uint32_t>(r);
  if (u < 0x80) {
    out->push_back(static_cast<char>(u));
  } else if (u < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (u >> 6)));
    out->push_back(static_cast<char>(0x80 | (u & 0x3F)));
  } else if (u < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (u >> 12)));
    out->push_back(static_cast<char>(0x80 | ((u >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (u & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (u >> 18)));
    out->push_back(static_cast<char>(0x80 | ((u >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((u >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (u & 0x3F)));
  }
}

std::string RuneToString(Rune r) {
  std::string s;
  AppendRune(&s, r);
  return s;
}

bool IsLetter(Rune r) { return InTable(kLetter, r); }
bool IsDigit(Rune r) { return InTable(kDigit, r); }
bool IsSpace(Rune r) { return InTable(kSpace, r); }
bool IsPrint(Rune r) { return InTable(kPrint, r); }

std::string_view TrimLeftSpace(std::string_view s) {
  size_t pos = 0;
  while (pos < s.size()) {
    const DecodedRune d = DecodeRune(s.substr(pos));
    if (!IsSpace(d.rune)) break;
    pos += d.width;
  }
  return s.substr(pos);
}

std::string_view TrimRightSpace(std::string_view s) {
  size_t end = s.size();
  while (end > 0) {
    // The last rune starts at the nearest byte that is not a continuation byte, at most 3 bytes
    // back (utf8.DecodeLastRuneInString); anything else is an invalid byte, which is not space.
    size_t start = end - 1;
    while (start > 0 && end - start < 4 && IsContinuation(static_cast<unsigned char>(s[start]))) {
      --start;
    }
    const DecodedRune d = DecodeRune(s.substr(start, end - start));
    if (start + d.width != end || !IsSpace(d.rune)) break;
    end = start;
  }
  return s.substr(0, end);
}

std::string_view TrimSpace(std::string_view s) { return TrimRightSpace(TrimLeftSpace(s)); }

std::string Quote(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  out.push_back('"');
  size_t pos = 0;
  while (pos < s.size()) {
    const DecodedRune d = DecodeRune(s.substr(pos));
    if (!d.valid()) {
      out += "\\x";
      AppendHex(&out, static_cast<unsigned char>(s[pos]), 2);
      ++pos;
      continue;
    }
    pos += d.width;
    const Rune r = d.rune;
    if (r == '"' || r == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(r));
      continue;
    }
    if (IsPrint(r)) {
      AppendRune(&out, r);
      continue;
    }
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
          AppendHex(&out, static_cast<uint32_t>(r), 2);
        } else if (r < 0x10000) {
          out += "\\u";
          AppendHex(&out, static_cast<uint32_t>(r), 4);
        } else {
          out += "\\U";
          AppendHex(&out, static_cast<uint32_t>(r), 8);
        }
        break;
    }
  }
  out.push_back('"');
  return out;
}

}  // namespace kiln::gotext
