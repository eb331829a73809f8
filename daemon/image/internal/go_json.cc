#include "daemon/image/internal/go_json.h"

#include <cstdio>
#include <string_view>

#include "base/go_text.h"

namespace kiln::image::internal {
namespace {

void AppendString(std::string_view s, std::string& out) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      switch (c) {
        case '"':
          out += "\\\"";
          break;
        case '\\':
          out += "\\\\";
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
        case '\b':
          out += "\\b";
          break;
        case '\f':
          out += "\\f";
          break;
        default:
          if (c < 0x20 || c == '<' || c == '>' || c == '&') {
            out += "\\u00";
            out += kHex[c >> 4];
            out += kHex[c & 0xf];
          } else {
            out += static_cast<char>(c);
          }
      }
      ++i;
      continue;
    }
    const gotext::DecodedRune d = gotext::DecodeRune(s.substr(i));
    if (!d.valid()) {
      out += "\\ufffd";
    } else if (d.rune == 0x2028) {
      out += "\\u2028";
    } else if (d.rune == 0x2029) {
      out += "\\u2029";
    } else {
      out.append(s.substr(i, d.width));
    }
    i += d.width;
  }
  out += '"';
}

void Append(const nlohmann::ordered_json& v, std::string& out) {
  switch (v.type()) {
    case nlohmann::ordered_json::value_t::object: {
      out += '{';
      bool first = true;
      for (auto it = v.begin(); it != v.end(); ++it) {
        if (!first) out += ',';
        first = false;
        AppendString(it.key(), out);
        out += ':';
        Append(it.value(), out);
      }
      out += '}';
      return;
    }
    case nlohmann::ordered_json::value_t::array: {
      out += '[';
      bool first = true;
      for (const auto& e : v) {
        if (!first) out += ',';
        first = false;
        Append(e, out);
      }
      out += ']';
      return;
    }
    case nlohmann::ordered_json::value_t::string:
      AppendString(v.get_ref<const std::string&>(), out);
      return;
    default:
      out += v.dump();  // numbers, booleans, null
  }
}

}  // namespace

std::string GoJson(const nlohmann::ordered_json& value) {
  std::string out;
  Append(value, out);
  return out;
}

}  // namespace kiln::image::internal
