#include "base/gopath.h"

namespace kiln {

std::string GoCleanPath(std::string_view path) {
  if (path.empty()) return ".";
  const bool rooted = path[0] == '/';
  const size_t n = path.size();
  std::string out;
  out.reserve(n);
  size_t r = 0;
  size_t dotdot = 0;  // index in `out` below which ".." cannot backtrack
  if (rooted) {
    out.push_back('/');
    r = 1;
    dotdot = 1;
  }
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
        out.append("..");
        dotdot = out.size();
      }
    } else {
      if ((rooted && out.size() != 1) || (!rooted && !out.empty())) out.push_back('/');
      for (; r < n && path[r] != '/'; ++r) out.push_back(path[r]);
    }
  }
  if (out.empty()) return ".";
  return out;
}

}  // namespace kiln
