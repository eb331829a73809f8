#include "llb/internal/gopath.h"

#include "base/gopath.h"

namespace kiln::llb::internal {

std::string CleanPath(std::string_view path) { return GoCleanPath(path); }

std::string JoinPath(std::string_view a, std::string_view b) {
  if (a.empty() && b.empty()) return "";
  if (a.empty()) return CleanPath(b);
  if (b.empty()) return CleanPath(a);
  std::string joined(a);
  joined.push_back('/');
  joined.append(b);
  return CleanPath(joined);
}

std::string JoinPath(std::string_view a, std::string_view b, std::string_view c) {
  std::string joined;
  for (std::string_view part : {a, b, c}) {
    if (part.empty()) continue;
    if (!joined.empty()) joined.push_back('/');
    joined.append(part);
  }
  if (joined.empty()) return "";
  return CleanPath(joined);
}

bool EscapesRoot(std::string_view path) {
  int depth = 0;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    std::string_view part = path.substr(start, end - start);
    if (part == "..") {
      if (depth == 0) return true;
      --depth;
    } else if (!part.empty() && part != ".") {
      ++depth;
    }
    start = end + 1;
  }
  return false;
}

}  // namespace kiln::llb::internal
