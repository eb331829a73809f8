#include "fsutil/paths.h"

#include "base/gopath.h"

#include <algorithm>

namespace kiln::fsutil {

std::string CleanPath(std::string_view path) { return GoCleanPath(path); }

std::string DirPath(std::string_view path) {
  size_t i = path.rfind('/');
  std::string_view dir = i == std::string_view::npos ? std::string_view() : path.substr(0, i + 1);
  return CleanPath(dir);
}

std::string BasePath(std::string_view path) {
  if (path.empty()) return ".";
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  size_t i = path.rfind('/');
  if (i != std::string_view::npos) path.remove_prefix(i + 1);
  if (path.empty()) return "/";
  return std::string(path);
}

std::string JoinPath(std::initializer_list<std::string_view> elems) {
  std::string joined;
  bool any = false;
  for (std::string_view e : elems) {
    if (e.empty()) continue;
    if (any) joined.push_back('/');
    joined.append(e);
    any = true;
  }
  if (!any) return "";
  return CleanPath(joined);
}

int ComparePath(std::string_view a, std::string_view b) {
  const size_t n = std::min(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    const auto ca = static_cast<unsigned char>(a[i]);
    const auto cb = static_cast<unsigned char>(b[i]);
    if (ca == cb) continue;
    if ((cb != '/' && ca < cb) || ca == '/') return -1;
    return 1;
  }
  if (a.size() == b.size()) return 0;
  return a.size() < b.size() ? -1 : 1;
}

bool PathWithin(std::string_view path, std::string_view prefix) {
  if (prefix.empty()) return true;
  if (path.size() < prefix.size() || path.substr(0, prefix.size()) != prefix) return false;
  return path.size() == prefix.size() || path[prefix.size()] == '/';
}

}  // namespace kiln::fsutil
