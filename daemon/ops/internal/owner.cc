#include "daemon/ops/internal/owner.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/status.h"

namespace kiln::ops::internal {
namespace {

// passwd and group files bigger than this are refused rather than read into memory.
constexpr size_t kMaxAccountFile = 16u << 20;

std::string_view TrimSpace(std::string_view s) {
  auto space = [](char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
  };
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  return s;
}

std::vector<std::string_view> SplitColons(std::string_view line) {
  std::vector<std::string_view> parts;
  for (;;) {
    size_t i = line.find(':');
    parts.push_back(line.substr(0, i));
    if (i == std::string_view::npos) break;
    line.remove_prefix(i + 1);
  }
  return parts;
}

// Go's strconv.Atoi with the error ignored (moby/sys/user treats bad numbers as 0).
int64_t AtoiOrZero(std::string_view s) {
  if (s.empty()) return 0;
  bool neg = false;
  if (s[0] == '+' || s[0] == '-') {
    neg = s[0] == '-';
    s.remove_prefix(1);
    if (s.empty()) return 0;
  }
  int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return 0;
    v = v * 10 + (c - '0');
    if (v > (int64_t{1} << 40)) return 0;  // out of range for an id: Go's Atoi fails too
  }
  return neg ? -v : v;
}

template <typename Fn>
void ForEachLine(std::string_view contents, Fn fn) {
  while (!contents.empty()) {
    size_t nl = contents.find('\n');
    std::string_view line = contents.substr(0, nl);
    contents.remove_prefix(nl == std::string_view::npos ? contents.size() : nl + 1);
    if (fn(TrimSpace(line))) return;
  }
}

// Reads `rel` inside the root at `root_path` (following symlinks within it). nullopt when the
// file or a parent does not exist, as BuildKit treats ENOENT and ENOTDIR as "no entry".
absl::StatusOr<std::optional<std::string>> ReadAccountFile(const std::string& root_path,
                                                           const char* rel) {
  KILN_ASSIGN_OR_RETURN(UniqueFd root, OpenRoot(root_path));
  int err = 0;
  UniqueFd fd(OpenInRoot(root.get(), rel, O_RDONLY | O_NONBLOCK | O_NOCTTY, 0, &err));
  if (!fd.valid()) {
    if (err == ENOENT || err == ENOTDIR) return std::optional<std::string>();
    return PathError(err, "open", absl::StrCat("/", rel));
  }
  struct stat st;
  if (fstat(fd.get(), &st) != 0) return PathError(errno, "stat", absl::StrCat("/", rel));
  if (!S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat("/", rel, " is not a regular file"));
  }
  if (static_cast<uint64_t>(st.st_size) > kMaxAccountFile) {
    return absl::FailedPreconditionError(absl::StrCat("/", rel, " is too large"));
  }
  std::string data;
  char buf[65536];
  for (;;) {
    ssize_t n = read(fd.get(), buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      return PathError(errno, "read", absl::StrCat("/", rel));
    }
    if (n == 0) break;
    data.append(buf, static_cast<size_t>(n));
    if (data.size() > kMaxAccountFile) {
      return absl::FailedPreconditionError(absl::StrCat("/", rel, " is too large"));
    }
  }
  return std::optional<std::string>(std::move(data));
}

}  // namespace

std::optional<Owner> FindPasswdEntry(std::string_view contents, std::string_view name) {
  std::optional<Owner> out;
  ForEachLine(contents, [&](std::string_view line) {
    if (line.empty()) return false;
    std::vector<std::string_view> f = SplitColons(line);
    if (f[0] != name) return false;
    Owner o;
    o.uid = static_cast<uid_t>(f.size() > 2 ? AtoiOrZero(f[2]) : 0);
    o.gid = static_cast<gid_t>(f.size() > 3 ? AtoiOrZero(f[3]) : 0);
    out = o;
    return true;
  });
  return out;
}

std::optional<gid_t> FindGroupEntry(std::string_view contents, std::string_view name) {
  std::optional<gid_t> out;
  ForEachLine(contents, [&](std::string_view line) {
    if (line.empty() || line[0] == '#') return false;
    std::vector<std::string_view> f = SplitColons(line);
    if (f[0] != name) return false;
    out = static_cast<gid_t>(f.size() > 2 ? AtoiOrZero(f[2]) : 0);
    return true;
  });
  return out;
}

absl::StatusOr<std::optional<Owner>> ResolveOwner(bool has_owner, const pb::ChownOpt& chopt,
                                                  const std::string& user_root,
                                                  const std::string& group_root) {
  if (!has_owner) return std::optional<Owner>();
  Owner out;
  if (chopt.has_user()) {
    const pb::UserOpt& u = chopt.user();
    if (u.has_byname()) {
      KILN_ASSIGN_OR_RETURN(std::optional<std::string> passwd,
                            ReadAccountFile(user_root, "etc/passwd"));
      if (passwd) {
        if (std::optional<Owner> found = FindPasswdEntry(*passwd, u.byname().name())) {
          out = *found;
        }
      }
    } else if (u.user_case() == pb::UserOpt::kByID) {
      out.uid = u.byid();
      out.gid = u.byid();
    }
  }
  if (chopt.has_group()) {
    const pb::UserOpt& g = chopt.group();
    if (g.has_byname()) {
      KILN_ASSIGN_OR_RETURN(std::optional<std::string> group,
                            ReadAccountFile(group_root, "etc/group"));
      if (group) {
        if (std::optional<gid_t> gid = FindGroupEntry(*group, g.byname().name())) {
          out.gid = *gid;
        }
      }
    } else if (g.user_case() == pb::UserOpt::kByID) {
      out.gid = g.byid();
    }
  }
  return std::optional<Owner>(out);
}

}  // namespace kiln::ops::internal
