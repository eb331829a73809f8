#include "fsutil/internal/validator.h"

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/status.h"
#include "fsutil/paths.h"
#include "fsutil/stat.h"

namespace kiln::fsutil::internal {
namespace {

std::string Quote(std::string_view s) { return absl::StrCat("\"", absl::CHexEscape(AV(s)), "\""); }

}  // namespace

absl::Status ValidateWirePath(std::string_view path, std::string_view what) {
  auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(absl::StrFormat("%s %s: %s", AV(what), Quote(path), AV(why)));
  };
  if (path.empty()) return bad("empty path");
  if (path.find('\0') != std::string_view::npos) return bad("NUL in path");
  if (path != CleanPath(path)) return bad("unclean path");
  if (path[0] == '/') return bad("absolute path");
  if (path == ".") return bad("path names the destination itself");
  if (path == ".." || path.substr(0, 3) == "../") return bad("path escapes the destination");
  return absl::OkStatus();
}

StatValidator::StatValidator() { parents_.push_back(Parent{}); }

absl::Status StatValidator::Check(const ::fsutil::types::Stat& stat) {
  const std::string& p = stat.path();
  KILN_RETURN_IF_ERROR(ValidateWirePath(p, "stat"));
  if (stat.linkname().find('\0') != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("stat ", Quote(p), ": NUL in linkname"));
  }

  // Order (fsutil's Validator): find the deepest open directory at or before p's directory;
  // p must be inside it and sort after its previous entry.
  std::string dir = DirPath(p);
  if (dir == ".") dir.clear();
  const std::string base = BasePath(p);
  size_t i = parents_.size();
  while (i > 0 && ComparePath(parents_[i - 1].dir, dir) > 0) --i;
  if (i == 0) {
    return absl::InvalidArgumentError(absl::StrCat("changes out of order: ", Quote(p)));
  }
  --i;
  parents_.resize(i + 1);
  if (dir != parents_.back().dir || !(parents_[i].last < base)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("changes out of order: %s %s", Quote(p),
                        Quote(JoinPath({parents_[i].dir, parents_[i].last}))));
  }
  parents_[i].last = base;
  if (IsDir(stat)) parents_.push_back(Parent{p, ""});

  // Hard links (fsutil's Hardlinks): the source must be an earlier plain entry.
  if (!IsDir(stat) && !IsSymlink(stat)) {
    if (!stat.linkname().empty()) {
      if (linkable_.count(stat.linkname()) == 0) {
        return absl::InvalidArgumentError(absl::StrFormat("invalid link %s to unknown path: %s",
                                                          Quote(p), Quote(stat.linkname())));
      }
    } else {
      linkable_.insert(p);
    }
  }
  return absl::OkStatus();
}

}  // namespace kiln::fsutil::internal
