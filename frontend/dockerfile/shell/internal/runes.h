#pragma once
// UTF-8 and rune classification with Go's exact semantics (unicode/utf8, unicode, strconv), which
// BuildKit's shell lexer inherits: invalid bytes decode as U+FFFD one byte at a time, letters and
// digits are Unicode's (15.0.0), and error messages quote words the way Go's %q does.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace kiln::dockerfile::shell::internal {

// A Go rune; kEof (-1) marks the end of input where a rune is expected.
using Rune = int32_t;
inline constexpr Rune kEof = -1;
inline constexpr Rune kRuneError = 0xFFFD;

struct Decoded {
  Rune rune;
  size_t width;
};

// Decodes the first rune of non-empty `s` like utf8.DecodeRuneInString: an invalid or truncated
// sequence, an overlong form or a surrogate yields {U+FFFD, 1}.
Decoded DecodeRune(std::string_view s);

// Appends `r` as UTF-8; a value that is not a valid rune (negative, surrogate, > U+10FFFF) is
// written as U+FFFD, like Go's string(rune).
void AppendRune(std::string* out, Rune r);
std::string RuneToString(Rune r);

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

bool IsLetter(Rune r);  // unicode.IsLetter
bool IsDigit(Rune r);   // unicode.IsDigit
bool IsSpace(Rune r);   // unicode.IsSpace
bool IsPrint(Rune r);   // strconv.IsPrint

// Go's strconv.Quote (the %q verb for strings): double-quoted, with `"` and `\` escaped,
// unprintable runes as \a \b \f \n \r \t \v \xNN \uNNNN \UNNNNNNNN and invalid bytes as \xNN.
std::string GoQuote(std::string_view s);

}  // namespace kiln::dockerfile::shell::internal
