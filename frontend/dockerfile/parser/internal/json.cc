#include "frontend/dockerfile/parser/internal/json.h"

#include "base/go_text.h"

namespace kiln::dockerfile::parser::internal {
namespace {

constexpr int kMaxDepth = 10000;
constexpr std::string_view kReplacement = "\xEF\xBF\xBD";

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

class Reader {
 public:
  explicit Reader(std::string_view s) : s_(s) {}

  std::optional<std::vector<JsonElement>> TopLevelArray() {
    SkipSpace();
    if (pos_ >= s_.size() || s_[pos_] != '[') return std::nullopt;
    std::vector<JsonElement> elements;
    if (!Array(0, &elements)) return std::nullopt;
    SkipSpace();
    if (pos_ != s_.size()) return std::nullopt;
    return elements;
  }

 private:
  void SkipSpace() {
    while (pos_ < s_.size() &&
           (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) {
      ++pos_;
    }
  }

  bool Consume(char c) {
    if (pos_ < s_.size() && s_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }

  // One value; a string is decoded into `str` when given.
  bool Value(int depth, std::string* str, bool* is_string) {
    SkipSpace();
    if (pos_ >= s_.size()) return false;
    if (is_string != nullptr) *is_string = false;
    switch (s_[pos_]) {
      case '"':
        if (is_string != nullptr) *is_string = true;
        return String(str);
      case '[':
        return Array(depth + 1, nullptr);
      case '{':
        return Object(depth + 1);
      case 't':
        return Literal("true");
      case 'f':
        return Literal("false");
      case 'n':
        return Literal("null");
      default:
        return Number();
    }
  }

  bool Literal(std::string_view lit) {
    if (s_.substr(pos_, lit.size()) != lit) return false;
    pos_ += lit.size();
    return true;
  }

  bool Digits() {
    size_t start = pos_;
    while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') ++pos_;
    return pos_ > start;
  }

  bool Number() {
    Consume('-');
    if (pos_ >= s_.size()) return false;
    if (s_[pos_] == '0') {
      ++pos_;
    } else if (s_[pos_] >= '1' && s_[pos_] <= '9') {
      Digits();
    } else {
      return false;
    }
    if (Consume('.') && !Digits()) return false;
    if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      ++pos_;
      if (!Consume('+')) Consume('-');
      if (!Digits()) return false;
    }
    return true;
  }

  bool Hex4(char32_t* out) {
    if (pos_ + 4 > s_.size()) return false;
    char32_t v = 0;
    for (size_t i = 0; i < 4; ++i) {
      int h = HexValue(s_[pos_ + i]);
      if (h < 0) return false;
      v = (v << 4) | static_cast<char32_t>(h);
    }
    pos_ += 4;
    *out = v;
    return true;
  }

  bool String(std::string* out) {
    ++pos_;  // opening quote
    std::string decoded;
    while (pos_ < s_.size()) {
      const auto c = static_cast<unsigned char>(s_[pos_]);
      if (c == '"') {
        ++pos_;
        if (out != nullptr) *out = std::move(decoded);
        return true;
      }
      if (c < 0x20) return false;
      if (c == '\\') {
        ++pos_;
        if (pos_ >= s_.size()) return false;
        const char e = s_[pos_++];
        switch (e) {
          case '"':
          case '\\':
          case '/':
            decoded.push_back(e);
            break;
          case 'b':
            decoded.push_back('\b');
            break;
          case 'f':
            decoded.push_back('\f');
            break;
          case 'n':
            decoded.push_back('\n');
            break;
          case 'r':
            decoded.push_back('\r');
            break;
          case 't':
            decoded.push_back('\t');
            break;
          case 'u': {
            char32_t r;
            if (!Hex4(&r)) return false;
            if (r >= 0xD800 && r < 0xE000) {
              // A high surrogate followed by an escaped low one forms a pair; anything else
              // is U+FFFD (and a following escape is read on its own).
              char32_t r2 = 0;
              const size_t save = pos_;
              if (r < 0xDC00 && s_.substr(pos_, 2) == "\\u") {
                pos_ += 2;
                if (Hex4(&r2) && r2 >= 0xDC00 && r2 < 0xE000) {
                  gotext::AppendRune(&decoded, 0x10000 + ((r - 0xD800) << 10) + (r2 - 0xDC00));
                  break;
                }
              }
              pos_ = save;
              decoded.append(kReplacement);
              break;
            }
            gotext::AppendRune(&decoded, r);
            break;
          }
          default:
            return false;
        }
        continue;
      }
      if (c < 0x80) {
        decoded.push_back(static_cast<char>(c));
        ++pos_;
        continue;
      }
      const gotext::DecodedRune d = gotext::DecodeRune(s_.substr(pos_));
      if (d.valid()) {
        decoded.append(s_.substr(pos_, d.width));
      } else {
        decoded.append(kReplacement);
      }
      pos_ += d.width;
    }
    return false;
  }

  bool Array(int depth, std::vector<JsonElement>* elements) {
    if (depth > kMaxDepth) return false;
    ++pos_;  // '['
    SkipSpace();
    if (Consume(']')) return true;
    for (;;) {
      JsonElement el;
      if (!Value(depth, elements != nullptr ? &el.value : nullptr, &el.is_string)) return false;
      if (elements != nullptr) elements->push_back(std::move(el));
      SkipSpace();
      if (Consume(',')) continue;
      return Consume(']');
    }
  }

  bool Object(int depth) {
    if (depth > kMaxDepth) return false;
    ++pos_;  // '{'
    SkipSpace();
    if (Consume('}')) return true;
    for (;;) {
      SkipSpace();
      if (pos_ >= s_.size() || s_[pos_] != '"' || !String(nullptr)) return false;
      SkipSpace();
      if (!Consume(':')) return false;
      if (!Value(depth, nullptr, nullptr)) return false;
      SkipSpace();
      if (Consume(',')) continue;
      return Consume('}');
    }
  }

  std::string_view s_;
  size_t pos_ = 0;
};

}  // namespace

std::optional<std::vector<JsonElement>> DecodeJsonArray(std::string_view text) {
  return Reader(text).TopLevelArray();
}

}  // namespace kiln::dockerfile::parser::internal
