#pragma once
// Symbolic and octal file modes as in chmod(1), for FileActionCopy.modeStr. BuildKit parses
// modeStr with tonistiigi/dchapes-mode (a port of BSD setmode(3)) with a umask of 0; ModeSet
// follows the same rules, including BSD's corner cases ("+t" without "u"/"g" sets only the
// sticky bit, "X" looks at the mode before any change, "=" without a "who" keeps the sticky bit).
//
//   KILN_ASSIGN_OR_RETURN(ModeSet set, ModeSet::Parse("u+x,g-w"));
//   mode_t perms = set.Apply(st.st_mode);  // the new 07777 bits
//
// Immutable after Parse; thread-safe.

#include <sys/types.h>

#include <cstdint>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace kiln::ops::internal {

class ModeSet {
 public:
  // Parses an octal ("0755", at most 07777) or symbolic ("u=rwx,go=rx", "a+X", "g=u-w") mode.
  // INVALID_ARGUMENT naming the string for anything else.
  [[nodiscard]] static absl::StatusOr<ModeSet> Parse(std::string_view s);

  // The permission bits (07777) that result from applying this set to an entry whose current
  // st_mode is `st_mode` (its file type decides what "X" does for directories).
  [[nodiscard]] mode_t Apply(mode_t st_mode) const;

 private:
  struct Cmd {
    char cmd;       // '+', '-', 'X', or 'u'/'g'/'o' for copying one class's bits
    uint8_t cmd2;   // for copies: which classes, and set and/or clear
    uint16_t bits;  // the bits the command may touch
  };
  void Add(char op, uint16_t who, uint16_t oparg);

  std::vector<Cmd> cmds_;
};

}  // namespace kiln::ops::internal
