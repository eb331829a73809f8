#include "fsutil/walk.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>
#include <set>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status.h"
#include "fsutil/internal/fd.h"
#include "fsutil/internal/tree.h"
#include "fsutil/paths.h"
#include "fsutil/patterns.h"
#include "fsutil/stat.h"

namespace kiln::fsutil {
namespace {

using internal::UniqueFd;

bool IsMissing(int err) { return err == ENOENT || err == ENOTDIR || err == ELOOP || err == EXDEV; }

bool EscapesRoot(std::string_view p) { return p == ".." || p.substr(0, 3) == "../"; }

// fsutil's dedupePaths: drops paths below the previously kept one; nullopt if the root (".")
// is among them, which means "no filter". Expects sorted input to be fully effective.
std::optional<std::vector<std::string>> DedupePaths(const std::vector<std::string>& in) {
  std::vector<std::string> out;
  std::string last;
  for (const std::string& s : in) {
    if (s == ".") return std::nullopt;
    if (absl::StartsWith(s, absl::StrCat(last, "/"))) continue;
    out.push_back(s);
    last = s;
  }
  return out;
}

// fsutil's containsWildcards: an unescaped '*', '?' or '['.
bool ContainsWildcards(std::string_view name) {
  for (size_t i = 0; i < name.size(); ++i) {
    if (name[i] == '\\') {
      ++i;
    } else if (name[i] == '*' || name[i] == '?' || name[i] == '[') {
      return true;
    }
  }
  return false;
}

// Resolves followpaths below a root directory (fsutil's symlinkResolver).
class SymlinkResolver {
 public:
  explicit SymlinkResolver(int root_fd) : root_fd_(root_fd) {}

  absl::Status Append(std::string_view path) {
    std::string p = JoinPath({".", path});
    std::string current = ".";
    while (true) {
      const size_t slash = p.find('/');
      current = JoinPath({current, std::string_view(p).substr(0, slash)});
      KILN_ASSIGN_OR_RETURN(std::optional<std::vector<std::string>> targets,
                            ReadSymlink(current, /*allow_wildcard=*/true));
      p = slash == std::string::npos ? "" : p.substr(slash + 1);
      if ((p.empty() || targets.has_value()) && resolved_.count(current) != 0) {
        return absl::OkStatus();
      }
      if (targets.has_value()) {
        resolved_.insert(current);
        for (const std::string& target : *targets) {
          KILN_RETURN_IF_ERROR(Append(JoinPath({target, p})));
        }
        return absl::OkStatus();
      }
      if (p.empty()) {
        resolved_.insert(current);
        return absl::OkStatus();
      }
    }
  }

  const std::set<std::string>& resolved() const { return resolved_; }

 private:
  // The symlink targets `p` stands for: nullopt if `p` is not a symlink (or a glob matching no
  // symlink); absolute targets are rooted at the walk root.
  absl::StatusOr<std::optional<std::vector<std::string>>> ReadSymlink(const std::string& p,
                                                                      bool allow_wildcard) {
    const std::string base = BasePath(p);
    if (allow_wildcard && ContainsWildcards(base)) {
      const std::string dir = DirPath(p);
      if (EscapesRoot(dir)) return std::nullopt;
      int err = 0;
      const int fd = internal::OpenBeneathRaw(root_fd_, dir == "." ? "" : dir,
                                              O_RDONLY | O_DIRECTORY, 0, &err);
      if (fd < 0) {
        if (IsMissing(err)) return std::nullopt;
        return Annotate(ErrnoToStatus(err, dir), "readdir");
      }
      UniqueFd dirfd(fd);
      KILN_ASSIGN_OR_RETURN(std::vector<internal::DirName> names,
                            internal::ReadDirSorted(dirfd.get()));
      std::optional<std::vector<std::string>> out;
      for (const internal::DirName& entry : names) {
        absl::StatusOr<bool> match = GlobMatch(base, entry.name);
        if (!match.ok() || !*match) continue;
        KILN_ASSIGN_OR_RETURN(std::optional<std::vector<std::string>> res,
                              ReadSymlink(JoinPath({dir, entry.name}), false));
        if (res.has_value() && !res->empty()) {
          if (!out.has_value()) out.emplace();
          out->insert(out->end(), res->begin(), res->end());
        }
      }
      return out;
    }

    if (p == "." || p == "/" || EscapesRoot(p)) return std::nullopt;
    const std::string dir = DirPath(p);
    int err = 0;
    const int fd =
        internal::OpenBeneathRaw(root_fd_, dir == "." ? "" : dir, O_PATH | O_DIRECTORY, 0, &err);
    if (fd < 0) {
      if (IsMissing(err)) return std::nullopt;
      return ErrnoToStatus(err, p);
    }
    UniqueFd dirfd(fd);
    struct stat st;
    if (fstatat(dirfd.get(), base.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (IsMissing(errno)) return std::nullopt;
      return ErrnoToStatus(errno, p);
    }
    if (!S_ISLNK(st.st_mode)) return std::nullopt;
    KILN_ASSIGN_OR_RETURN(std::string target, internal::ReadLinkAt(dirfd.get(), base));
    const std::string link = CleanPath(target);
    if (absl::StartsWith(link, "/")) return std::vector<std::string>{link};
    return std::vector<std::string>{JoinPath({"/", JoinPath({DirPath(p), link})})};
  }

  int root_fd_;
  std::set<std::string> resolved_;  // ordered bytewise, like sort.Strings
};

absl::StatusOr<std::optional<std::vector<std::string>>> FollowLinksAt(
    int root_fd, const std::vector<std::string>& paths) {
  SymlinkResolver resolver(root_fd);
  for (const std::string& p : paths) KILN_RETURN_IF_ERROR(resolver.Append(p));
  std::vector<std::string> sorted(resolver.resolved().begin(), resolver.resolved().end());
  return DedupePaths(sorted);
}

bool HasPatternChars(std::string_view s) {
  return s.find_first_of("*[]?^\\") != std::string_view::npos;
}

// Whether some pattern of the requested kind (exceptions or not), without its trailing glob,
// lies below the directory `dir`: then the directory must be walked even though it does not
// match itself.
bool SomePatternBelow(const PatternMatcher& pm, bool exclusions, const std::string& dir) {
  const std::string dir_slash = absl::StrCat(dir, "/");
  for (const Pattern& pattern : pm.Patterns()) {
    if (pattern.Exclusion() != exclusions) continue;
    if (absl::StartsWith(absl::StrCat(PatternWithoutTrailingGlob(pattern), "/"), dir_slash)) {
      return true;
    }
  }
  return false;
}

// A directory on the current path of the walk, with its pattern results for its children.
struct VisitedDir {
  std::string path_with_sep;
  MatchInfo include_info;
  MatchInfo exclude_info;
  bool called_fn = false;
  // Where to find the directory when it has to be reported after all (see TreeIterator).
  size_t parent_index = 0;
  std::string name;
  std::string path;
};

}  // namespace

absl::StatusOr<std::optional<std::vector<std::string>>> FollowLinks(
    const std::string& root, const std::vector<std::string>& paths) {
  KILN_ASSIGN_OR_RETURN(UniqueFd root_fd, internal::OpenDirectory(root));
  return FollowLinksAt(root_fd.get(), paths);
}

absl::Status Walk(const std::string& root, const WalkOptions& options, const WalkFn& fn) {
  KILN_ASSIGN_OR_RETURN(UniqueFd root_fd, internal::OpenDirectory(root));

  std::vector<std::string> includes = options.include_patterns;
  if (!options.follow_paths.empty()) {
    KILN_ASSIGN_OR_RETURN(std::optional<std::vector<std::string>> targets,
                          FollowLinksAt(root_fd.get(), options.follow_paths));
    if (targets.has_value()) {
      includes.insert(includes.end(), targets->begin(), targets->end());
      includes = DedupePaths(includes).value_or(std::vector<std::string>{});
    }
  }

  std::optional<PatternMatcher> include_pm;
  std::optional<PatternMatcher> exclude_pm;
  bool only_prefix_includes = true;
  bool only_prefix_exclude_exceptions = true;
  if (!includes.empty()) {
    absl::StatusOr<PatternMatcher> pm = PatternMatcher::Create(includes);
    if (!pm.ok()) {
      return Annotate(pm.status(), absl::StrCat("invalid includepatterns: [",
                                                absl::StrJoin(includes, " "), "]"));
    }
    include_pm = *std::move(pm);
    for (const Pattern& p : include_pm->Patterns()) {
      if (!p.Exclusion() && HasPatternChars(PatternWithoutTrailingGlob(p))) {
        only_prefix_includes = false;
        break;
      }
    }
  }
  if (!options.exclude_patterns.empty()) {
    absl::StatusOr<PatternMatcher> pm = PatternMatcher::Create(options.exclude_patterns);
    if (!pm.ok()) {
      return Annotate(pm.status(), absl::StrCat("invalid excludepatterns: [",
                                                absl::StrJoin(options.exclude_patterns, " "), "]"));
    }
    exclude_pm = *std::move(pm);
    for (const Pattern& p : exclude_pm->Patterns()) {
      if (p.Exclusion() && HasPatternChars(PatternWithoutTrailingGlob(p))) {
        only_prefix_exclude_exceptions = false;
        break;
      }
    }
  }
  const bool filtering = include_pm.has_value() || exclude_pm.has_value();
  const StatOptions stat_options{.xattrs = options.xattrs};

  internal::TreeIterator it(root_fd.get());
  std::vector<VisitedDir> parents;
  while (true) {
    KILN_ASSIGN_OR_RETURN(bool more, it.Next());
    if (!more) break;
    const std::string& path = it.path();
    const bool is_dir = it.is_dir();

    VisitedDir dir;
    if (filtering) {
      while (!parents.empty() && !absl::StartsWith(path, parents.back().path_with_sep)) {
        parents.pop_back();
      }
      if (is_dir) dir.path_with_sep = absl::StrCat(path, "/");
    }

    bool skip = false;
    if (include_pm.has_value()) {
      const MatchInfo no_info;
      const MatchInfo& parent_info = parents.empty() ? no_info : parents.back().include_info;
      MatchInfo info;
      absl::StatusOr<bool> m = include_pm->MatchesUsingParentResults(path, parent_info, &info);
      if (!m.ok()) return Annotate(m.status(), "failed to match includepatterns");
      if (is_dir) dir.include_info = std::move(info);
      if (!*m) {
        // Nothing below a non-matching directory can match unless some include pattern
        // names a path inside it.
        if (is_dir && only_prefix_includes && !SomePatternBelow(*include_pm, false, path)) {
          it.SkipDir();
          continue;
        }
        skip = true;
      }
    }
    if (exclude_pm.has_value()) {
      const MatchInfo no_info;
      const MatchInfo& parent_info = parents.empty() ? no_info : parents.back().exclude_info;
      MatchInfo info;
      absl::StatusOr<bool> m = exclude_pm->MatchesUsingParentResults(path, parent_info, &info);
      if (!m.ok()) return Annotate(m.status(), "failed to match excludepatterns");
      if (is_dir) dir.exclude_info = std::move(info);
      if (*m) {
        // An excluded directory can be skipped whole unless an exception may re-include
        // something inside it.
        if (is_dir && only_prefix_exclude_exceptions &&
            (!exclude_pm->Exclusions() || !SomePatternBelow(*exclude_pm, true, path))) {
          it.SkipDir();
          continue;
        }
        skip = true;
      }
    }

    if (!it.dir_error().ok()) {
      if (skip && absl::IsPermissionDenied(it.dir_error())) continue;
      return it.dir_error();
    }

    if (skip) {
      if (is_dir) {
        // Reported later, before its first reported descendant, if there is one.
        dir.parent_index = it.depth() - 1;
        dir.name = it.name();
        dir.path = path;
        parents.push_back(std::move(dir));
      }
      continue;
    }

    absl::StatusOr<::fsutil::types::Stat> st = it.Stat(stat_options);
    if (absl::IsNotFound(st.status())) continue;  // vanished while walking
    if (!st.ok()) return st.status();
    for (VisitedDir& parent : parents) {
      if (parent.called_fn) continue;
      absl::StatusOr<::fsutil::types::Stat> parent_st =
          it.StatInDir(parent.parent_index, parent.name, parent.path, stat_options);
      if (!parent_st.ok()) return parent_st.status();
      parent.called_fn = true;
      KILN_RETURN_IF_ERROR(fn(*parent_st));
    }
    KILN_RETURN_IF_ERROR(fn(*st));
    if (filtering && is_dir) {
      dir.called_fn = true;
      parents.push_back(std::move(dir));
    }
  }
  return absl::OkStatus();
}

}  // namespace kiln::fsutil
