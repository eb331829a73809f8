#pragma once
// Go's string semantics, for the code that must treat text byte for byte the way BuildKit (a Go
// program) does: UTF-8 as unicode/utf8 decodes and encodes it (an invalid byte reads as U+FFFD of
// width 1), the rune classes of package unicode (Unicode 15.0.0, as in the Go that builds
// BuildKit v0.24), strings.TrimSpace and strconv.Quote (fmt's %q). One implementation for the
// Dockerfile parser and shell lexer, fsutil's patterns and the image JSON writer. Thread-safe.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace kiln::gotext {

// A Go rune: a code point. Negative values are never runes; callers may use them as sentinels.
using Rune = int32_t;
inline constexpr Rune kRuneError = 0xFFFD;  // utf8.RuneError
inline constexpr Rune kMaxRune = 0x10FFFF;  // unicode.MaxRune

struct DecodedRune {
  Rune rune = kRuneError;
  size_t width = 0;

  // False for the {U+FFFD, 1} that stands for an invalid byte (and the {U+FFFD, 0} of empty
  // input); a U+FFFD actually present in the text is 3 bytes wide.
  bool valid() const { return !(rune == kRuneError && width < 2); }
};

// utf8.DecodeRuneInString: the first rune of `s` and its width. An invalid or truncated sequence,
// an overlong form, a surrogate or a value above U+10FFFF yields {U+FFFD, 1}; empty `s` yields
// {U+FFFD, 0}.
DecodedRune DecodeRune(std::string_view s);

// utf8.AppendRune: appends `r` as UTF-8. A value that is not a valid rune (negative, surrogate,
// above U+10FFFF) is written as U+FFFD, like Go's string(r).
void AppendRune(std::string* out, Rune r);
std::string RuneToString(Rune r);  // Go's string(r)

bool IsLetter(Rune r);  // unicode.IsLetter
bool IsDigit(Rune r);   // unicode.IsDigit
bool IsSpace(Rune r);   // unicode.IsSpace
bool IsPrint(Rune r);   // strconv.IsPrint (the same set as unicode.IsPrint)

// strings.TrimSpace, strings.TrimLeftFunc(s, unicode.IsSpace) and TrimRightFunc: Unicode white
// space is removed; an invalid byte is not space and stops the trimming.
std::string_view TrimSpace(std::string_view s);
std::string_view TrimLeftSpace(std::string_view s);
std::string_view TrimRightSpace(std::string_view s);

// strconv.Quote (the %q verb for strings): double-quoted, `"` and `\` escaped, printable runes
// kept, others as \a \b \f \n \r \t \v \xNN \uNNNN or \UNNNNNNNN, invalid bytes as \xNN.
std::string Quote(std::string_view s);

}  // namespace kiln::gotext
