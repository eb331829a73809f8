#include "daemon/ops/internal/wildcards.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status.h"
#include "daemon/ops/internal/root_fs.h"
#include "fsutil/paths.h"
#include "fsutil/patterns.h"

namespace kiln::ops::internal {
namespace {

// State of one wildcard walk: what to match, where it started, how deep a match can be, and
// the matches so far (absolute logical paths, in walk order).
struct Walk {
  std::string pattern;  // what relative paths must match
  std::string base;     // the logical directory the walk starts at ("/src")
  size_t max_components;
  std::vector<std::string> matches;
};

std::string JoinRel(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : absl::StrCat(prefix, "/", name);
}

std::string Display(const Walk& w, const std::string& rel) {
  if (rel.empty()) return w.base;
  return w.base == "/" ? absl::StrCat("/", rel) : absl::StrCat(w.base, "/", rel);
}

absl::Status WalkDir(Walk& w, int dirfd, const std::string& rel, size_t depth) {
  std::vector<std::string> names;
  if (int e = ReadDirNames(dirfd, &names); e != 0) return PathError(e, "open", Display(w, rel));
  for (const std::string& name : names) {
    const std::string child = JoinRel(rel, name);
    struct stat st;
    if (int e = LstatAt(dirfd, name, &st); e != 0) return PathError(e, "lstat", Display(w, child));
    // Like Go's filepath.Walk callback, a malformed pattern simply never matches.
    absl::StatusOr<bool> m = fsutil::GlobMatch(w.pattern, child);
    if (m.ok() && *m) {
      w.matches.push_back(Display(w, child));
      continue;  // a matching directory is not descended into (filepath.SkipDir)
    }
    if (!S_ISDIR(st.st_mode) || depth + 1 >= w.max_components) continue;
    int err = 0;
    UniqueFd sub(OpenDirAt(dirfd, name, O_RDONLY, &err));
    if (!sub.valid()) return PathError(err, "open", Display(w, child));
    KILN_RETURN_IF_ERROR(WalkDir(w, sub.get(), child, depth + 1));
  }
  return absl::OkStatus();
}

}  // namespace

bool ContainsWildcards(std::string_view name) {
  for (size_t i = 0; i < name.size(); ++i) {
    const char ch = name[i];
    if (ch == '\\') {
      ++i;
    } else if (ch == '*' || ch == '?' || ch == '[') {
      return true;
    }
  }
  return false;
}

absl::StatusOr<std::vector<std::string>> ResolveWildcards(int root_fd, std::string_view pattern,
                                                          bool follow_links) {
  const std::string cleaned = fsutil::CleanPath(pattern);
  std::vector<std::string> before;
  std::vector<std::string> after;
  bool found = false;
  for (std::string_view rest = cleaned;;) {
    const size_t slash = rest.find('/');
    const std::string_view part = rest.substr(0, slash);
    if (!found && ContainsWildcards(part)) found = true;
    (found ? after : before).emplace_back(part.empty() ? std::string_view("/") : part);
    if (slash == std::string_view::npos) break;
    rest.remove_prefix(slash + 1);
  }
  std::string d1 = fsutil::CleanPath(absl::StrJoin(before, "/"));
  if (!found) return std::vector<std::string>{d1};

  Walk w;
  w.pattern = fsutil::CleanPath(absl::StrJoin(after, "/"));
  w.base = d1;
  // Only '/' (literal or escaped) and a character class can match a separator, so no path with
  // more components than this can match; the walk stops there instead of reading the whole tree.
  w.max_components = 1 + static_cast<size_t>(std::count(w.pattern.begin(), w.pattern.end(), '/')) +
                     static_cast<size_t>(std::count(w.pattern.begin(), w.pattern.end(), '['));

  Resolved r = ResolveRaw(root_fd, d1, follow_links);
  if (r.err != 0) return PathError(r.err, "lstat", d1);
  struct stat st;
  if (int e = LstatAt(r.loc.dir.get(), r.loc.name, &st); e != 0) return PathError(e, "lstat", d1);
  if (!S_ISDIR(st.st_mode)) return std::vector<std::string>{};
  int err = 0;
  UniqueFd dir(OpenDirAt(r.loc.dir.get(), r.loc.name, O_RDONLY, &err));
  if (!dir.valid()) return PathError(err, "open", d1);
  KILN_RETURN_IF_ERROR(WalkDir(w, dir.get(), "", 0));
  return std::move(w.matches);
}

}  // namespace kiln::ops::internal
