#include "llb/internal/gopath.h"

namespace kiln::llb::internal {

std::string CleanPath(std::string_view path) {
  if (path.empty()) return ".";
  const bool rooted = path.front() == '/';
  std::string out;
  out.reserve(path.size());
  if (rooted) out.push_back('/');
  // Length of `out` below which ".." may not backtrack.
  size_t dotdot = out.size();
  size_t r = 0;
  const size_t n = path.size();
  while (r < n) {
    if (path[r] == '/') {
      ++r;
    } else if (path[r] == '.' && (r + 1 == n || path[r + 1] == '/')) {
      ++r;
    } else if (path[r] == '.' && path[r + 1] == '.' && (r + 2 == n || path[r + 2] == '/')) {
      r += 2;
      if (out.size() > dotdot) {
        size_t w = out.size() - 1;
        while (w > dotdot && out[w] != '/') --w;
        out.resize(w);
      } else if (!rooted) {
        if (!out.empty()) out.push_back('/');
        out += "..";
        dotdot = out.size();
      }
    } else {
      if ((rooted && out.size() != 1) || (!rooted && !out.empty())) out.push_back('/');
      while (r < n && path[r] != '/') out.push_back(path[r++]);
    }
  }
  if (out.empty()) return ".";
  return out;
}

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
