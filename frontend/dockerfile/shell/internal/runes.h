#pragma once
// Rune-level reading with Go's semantics (base/go_text.h has the UTF-8 decoding, rune classes and
// quoting), as BuildKit's shell lexer inherits it from unicode/utf8 and text/scanner: invalid
// bytes read as U+FFFD one byte at a time.

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "base/go_text.h"

namespace kiln::dockerfile::shell::internal {

// A Go rune; kEof (-1) marks the end of input where a rune is expected.
using Rune = gotext::Rune;
inline constexpr Rune kEof = -1;

// `s` as runes (invalid bytes become U+FFFD) with the byte offset of each rune; offsets has one
// more entry, s.size().
struct RuneText {
  std::vector<Rune> runes;
  std::vector<size_t> offsets;
};
RuneText DecodeAll(std::string_view s);
// `s` re-encoded with every invalid byte replaced by U+FFFD (Go's string([]rune(s))).
std::string EncodeRunes(const std::vector<Rune>& runes);

// Reads runes like Go's text/scanner used through Peek/Next only: invalid bytes read as U+FFFD,
// a U+FEFF at the very start is skipped, kEof after the end.
class RuneScanner {
 public:
  explicit RuneScanner(std::string_view src) : src_(src) {}
  Rune Peek();
  Rune Next();

 private:
  Rune Read();

  static constexpr Rune kUnread = -2;

  std::string_view src_;
  size_t pos_ = 0;
  Rune ch_ = kUnread;
};

}  // namespace kiln::dockerfile::shell::internal
