#include "daemon/ops/internal/mode_set.h"

#include <sys/stat.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "base/status.h"

namespace kiln::ops::internal {
namespace {

constexpr uint16_t kSetUid = 04000;
constexpr uint16_t kSetGid = 02000;
constexpr uint16_t kSticky = 01000;
constexpr uint16_t kUserBits = 00700;
constexpr uint16_t kGroupBits = 00070;
constexpr uint16_t kOtherBits = 00007;
constexpr uint16_t kRead = 00444;
constexpr uint16_t kWrite = 00222;
constexpr uint16_t kExec = 00111;
// chmod(1)'s "standard bits": everything but the sticky bit.
constexpr uint16_t kStandard = kSetUid | kSetGid | kUserBits | kGroupBits | kOtherBits;
// The umask is 0, so every bit is allowed where no "who" was given.
constexpr uint16_t kMask = 0xFFFF;

constexpr uint8_t kClear = 1;
constexpr uint8_t kSet = 2;
constexpr uint8_t kGroupCopy = 4;
constexpr uint8_t kOtherCopy = 8;
constexpr uint8_t kUserCopy = 16;

absl::Status Syntax(std::string_view s, std::string_view why = "invalid syntax") {
  return absl::InvalidArgumentError(absl::StrCat("invalid mode \"", AV(s), "\": ", AV(why)));
}

}  // namespace

void ModeSet::Add(char op, uint16_t who, uint16_t oparg) {
  Cmd c{0, 0, 0};
  switch (op) {
    case '=':
      // "=" is "clear the class's bits, then add".
      cmds_.push_back(Cmd{'-', 0, who != 0 ? who : kStandard});
      op = '+';
      [[fallthrough]];
    case '+':
    case '-':
    case 'X':
      c.cmd = op;
      c.bits = static_cast<uint16_t>((who != 0 ? who : kMask) & oparg);
      break;
    default:  // 'u', 'g', 'o': copy that class's bits (oparg is the operator)
      c.cmd = op;
      if (who != 0) {
        if ((who & 0400) != 0) c.cmd2 |= kUserCopy;
        if ((who & 0040) != 0) c.cmd2 |= kGroupCopy;
        if ((who & 0004) != 0) c.cmd2 |= kOtherCopy;
        c.bits = 0xFFFF;
      } else {
        c.cmd2 = kUserCopy | kGroupCopy | kOtherCopy;
        c.bits = kMask;
      }
      if (oparg == '+') c.cmd2 |= kSet;
      if (oparg == '-') c.cmd2 |= kClear;
      if (oparg == '=') c.cmd2 |= kSet | kClear;
      break;
  }
  cmds_.push_back(c);
}

absl::StatusOr<ModeSet> ModeSet::Parse(std::string_view input) {
  ModeSet m;
  if (input.empty()) return Syntax(input);

  if (input[0] >= '0' && input[0] <= '9') {
    // Absolute octal mode (Go's strconv.ParseInt(s, 8, 16)).
    uint32_t v = 0;
    for (char ch : input) {
      if (ch < '0' || ch > '7') return Syntax(input);
      v = v * 8 + static_cast<uint32_t>(ch - '0');
      if (v > 0x7FFF) return Syntax(input, "value out of range");
    }
    if ((v & ~static_cast<uint32_t>(kStandard | kSticky)) != 0) return Syntax(input);
    m.Add('=', kStandard | kSticky, static_cast<uint16_t>(v));
    return m;
  }

  std::string_view s = input;
  bool equal_op_done = false;
  for (;;) {
    uint16_t who = 0;
    for (;;) {
      if (s.empty()) return Syntax(input);
      const char ch = s[0];
      if (ch == 'a') {
        who |= kStandard;
      } else if (ch == 'u') {
        who |= kSetUid | kUserBits;
      } else if (ch == 'g') {
        who |= kSetGid | kGroupBits;
      } else if (ch == 'o') {
        who |= kOtherBits;
      } else {
        break;
      }
      s.remove_prefix(1);
    }

    for (;;) {  // one operator and its permissions; "u+x-w" has two
      const char op = s[0];
      s.remove_prefix(1);
      if (op == '=') {
        equal_op_done = false;
      } else if (op != '+' && op != '-') {
        return Syntax(input);
      }
      who &= static_cast<uint16_t>(~kSticky);

      uint16_t perm = 0;
      uint16_t perm_x = 0;
      for (;; s.remove_prefix(1)) {
        const char b = s.empty() ? '\0' : s[0];
        bool done = false;
        switch (b) {
          case 'r':
            perm |= kRead;
            break;
          case 's':
            // Set-id bits are ignored when only "other" was named.
            if (who == 0 || (who & ~kOtherBits) != 0) perm |= kSetUid | kSetGid;
            break;
          case 't':
            if (who == 0 || (who & ~kOtherBits) != 0) {
              who |= kSticky;
              perm |= kSticky;
            }
            break;
          case 'w':
            perm |= kWrite;
            break;
          case 'X':
            if (op != '-') {
              perm_x = kExec;
            } else {
              perm |= kExec;
            }
            break;
          case 'x':
            perm |= kExec;
            break;
          case 'u':
          case 'g':
          case 'o':
            if (perm != 0) {
              m.Add(op, who, perm);
              perm = 0;
            }
            if (op == '=') equal_op_done = true;
            if (perm_x != 0) {
              m.Add('X', who, perm_x);
              perm_x = 0;
            }
            m.Add(b, who, static_cast<uint16_t>(op));
            break;
          default:
            if (perm != 0 || (op == '=' && !equal_op_done)) {
              if (op == '=') equal_op_done = true;
              m.Add(op, who, perm);
            }
            if (perm_x != 0) m.Add('X', who, perm_x);
            done = true;
            break;
        }
        if (done) break;
      }
      if (s.empty() || s[0] == ',') break;
    }
    if (s.empty()) break;
    s.remove_prefix(1);  // ','
  }
  return m;
}

mode_t ModeSet::Apply(mode_t st_mode) const {
  const auto omode = static_cast<uint16_t>(st_mode & 07777);
  uint16_t newmode = omode;
  auto common = [&newmode](const Cmd& c, uint16_t value) {
    if ((c.cmd2 & kClear) != 0) {
      const uint16_t clrval = (c.cmd2 & kSet) != 0 ? kOtherBits : value;
      if ((c.cmd2 & kUserCopy) != 0) newmode &= static_cast<uint16_t>(~((clrval << 6) & c.bits));
      if ((c.cmd2 & kGroupCopy) != 0) newmode &= static_cast<uint16_t>(~((clrval << 3) & c.bits));
      if ((c.cmd2 & kOtherCopy) != 0) newmode &= static_cast<uint16_t>(~(clrval & c.bits));
    }
    if ((c.cmd2 & kSet) != 0) {
      if ((c.cmd2 & kUserCopy) != 0) newmode |= static_cast<uint16_t>((value << 6) & c.bits);
      if ((c.cmd2 & kGroupCopy) != 0) newmode |= static_cast<uint16_t>((value << 3) & c.bits);
      if ((c.cmd2 & kOtherCopy) != 0) newmode |= static_cast<uint16_t>(value & c.bits);
    }
  };
  for (const Cmd& c : cmds_) {
    switch (c.cmd) {
      case 'u':
        common(c, static_cast<uint16_t>((newmode & kUserBits) >> 6));
        break;
      case 'g':
        common(c, static_cast<uint16_t>((newmode & kGroupBits) >> 3));
        break;
      case 'o':
        common(c, static_cast<uint16_t>(newmode & kOtherBits));
        break;
      case '+':
        newmode |= c.bits;
        break;
      case '-':
        newmode &= static_cast<uint16_t>(~c.bits);
        break;
      case 'X':
        if ((omode & kExec) != 0 || S_ISDIR(st_mode)) newmode |= c.bits;
        break;
      default:
        break;
    }
  }
  return static_cast<mode_t>(newmode & 07777);
}

}  // namespace kiln::ops::internal
