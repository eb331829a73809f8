#include "llb/internal/gojson.h"

namespace kiln::llb::internal {

std::string GoJsonDump(const nlohmann::ordered_json& value) {
  const std::string compact =
      value.dump(-1, ' ', /*ensure_ascii=*/false, nlohmann::json::error_handler_t::replace);
  // These characters can only occur inside strings in `compact`, so replacing them everywhere is
  // the same as Go's per-string HTML escaping.
  std::string out;
  out.reserve(compact.size());
  for (size_t i = 0; i < compact.size(); ++i) {
    const char c = compact[i];
    if (c == '<') {
      out += "\\u003c";
    } else if (c == '>') {
      out += "\\u003e";
    } else if (c == '&') {
      out += "\\u0026";
    } else if (c == '\xe2' && i + 2 < compact.size() && compact[i + 1] == '\x80' &&
               (compact[i + 2] == '\xa8' || compact[i + 2] == '\xa9')) {
      out += compact[i + 2] == '\xa8' ? "\\u2028" : "\\u2029";
      i += 2;
    } else {
      out.push_back(c);
    }
  }
  return out;
}

}  // namespace kiln::llb::internal
