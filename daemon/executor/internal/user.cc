#include "daemon/executor/internal/user.h"

#include <cstdint>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "base/status.h"

namespace kiln::executor::internal {
namespace {

constexpr int64_t kMaxId = 2147483647;  // moby/sys/user's maxID (1<<31 - 1)

// Go's strconv.Atoi for the values that matter here: optional sign, decimal digits.
std::optional<int64_t> ParseInt(std::string_view s) {
  bool negative = false;
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) {
    negative = s[0] == '-';
    s.remove_prefix(1);
  }
  if (s.empty() || s.size() > 18) return std::nullopt;
  int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  return negative ? -v : v;
}

// A field that fails to parse reads as 0, as in moby/sys/user's parseLine.
int64_t IdField(std::string_view s) { return ParseInt(s).value_or(0); }

struct PasswdEntry {
  std::string name;
  int64_t uid = 0;
  int64_t gid = 0;
};

struct GroupEntry {
  std::string name;
  int64_t gid = 0;
  std::vector<std::string> members;
};

std::vector<std::string_view> Lines(std::string_view data) {
  std::vector<std::string_view> out;
  for (absl::string_view line : absl::StrSplit(AV(data), '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    out.push_back(SV(line));
  }
  return out;
}

std::vector<PasswdEntry> ParsePasswd(std::string_view data) {
  std::vector<PasswdEntry> out;
  for (std::string_view line : Lines(data)) {
    std::vector<absl::string_view> f = absl::StrSplit(AV(line), ':');
    PasswdEntry e;
    e.name = std::string(SV(f[0]));
    if (f.size() > 2) e.uid = IdField(SV(f[2]));
    if (f.size() > 3) e.gid = IdField(SV(f[3]));
    out.push_back(std::move(e));
  }
  return out;
}

std::vector<GroupEntry> ParseGroup(std::string_view data) {
  std::vector<GroupEntry> out;
  for (std::string_view line : Lines(data)) {
    std::vector<absl::string_view> f = absl::StrSplit(AV(line), ':');
    GroupEntry e;
    e.name = std::string(SV(f[0]));
    if (f.size() > 2) e.gid = IdField(SV(f[2]));
    if (f.size() > 3 && !f[3].empty()) {
      for (absl::string_view m : absl::StrSplit(f[3], ',')) e.members.emplace_back(SV(m));
    }
    out.push_back(std::move(e));
  }
  return out;
}

absl::Status RangeError() {
  return absl::InvalidArgumentError("uids and gids must be in range 0-2147483647");
}

}  // namespace

absl::StatusOr<ExecUser> ResolveUser(std::string_view spec,
                                     const std::optional<std::string>& passwd,
                                     const std::optional<std::string>& group) {
  if (spec.empty()) return ExecUser{};  // root, like BuildKit's fast path for ""
  std::string_view user_arg = spec;
  std::string_view group_arg;
  if (const size_t colon = spec.find(':'); colon != std::string_view::npos) {
    user_arg = spec.substr(0, colon);
    group_arg = spec.substr(colon + 1);
  }
  const std::optional<int64_t> uid_arg = ParseInt(user_arg);
  const std::optional<int64_t> gid_arg = ParseInt(group_arg);

  int64_t uid = 0;
  int64_t gid = 0;
  std::string matched_name;
  const std::vector<PasswdEntry> users = passwd ? ParsePasswd(*passwd) : std::vector<PasswdEntry>{};
  const PasswdEntry* match = nullptr;
  for (const PasswdEntry& u : users) {
    const bool hit = user_arg.empty() ? u.uid == 0
                     : uid_arg        ? u.uid == *uid_arg
                                      : u.name == user_arg;
    if (hit) {  // first match wins
      match = &u;
      break;
    }
  }
  if (match != nullptr) {
    matched_name = match->name;
    uid = match->uid;
    gid = match->gid;
  } else if (!user_arg.empty()) {
    // Only a numeric user may be missing from passwd.
    if (!uid_arg) {
      return absl::NotFoundError(absl::StrCat("unable to find user ", AV(user_arg),
                                              ": no matching entries in passwd file"));
    }
    uid = *uid_arg;
    if (uid < 0 || uid > kMaxId) return RangeError();
  }

  ExecUser out;
  if (!group_arg.empty() || !matched_name.empty()) {
    const std::vector<GroupEntry> groups = group ? ParseGroup(*group) : std::vector<GroupEntry>{};
    if (!group_arg.empty()) {
      const GroupEntry* g = nullptr;
      for (const GroupEntry& e : groups) {
        if (gid_arg ? e.gid == *gid_arg : e.name == group_arg) {
          g = &e;
          break;
        }
      }
      if (g != nullptr) {
        gid = g->gid;
      } else {
        if (!gid_arg) {
          return absl::NotFoundError(absl::StrCat("unable to find group ", AV(group_arg),
                                                  ": no matching entries in group file"));
        }
        gid = *gid_arg;
        if (gid < 0 || gid > kMaxId) return RangeError();
      }
    } else {
      // Supplementary groups only in the implicit form: every group listing the user.
      for (const GroupEntry& e : groups) {
        for (const std::string& m : e.members) {
          if (m == matched_name && e.gid >= 0 && e.gid <= kMaxId) {
            out.additional_gids.push_back(static_cast<uint32_t>(e.gid));
            break;
          }
        }
      }
    }
  }
  if (uid < 0 || uid > kMaxId || gid < 0 || gid > kMaxId) return RangeError();
  out.uid = static_cast<uint32_t>(uid);
  out.gid = static_cast<uint32_t>(gid);
  return out;
}

}  // namespace kiln::executor::internal
