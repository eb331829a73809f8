#pragma once
// Text helpers with Go's semantics, shared by the Dockerfile parser and instructions:
// UTF-8 decoding, unicode.IsSpace, strings.TrimSpace and strconv.Quote.

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace kiln::dockerfile::parser::internal {

// One decoded UTF-8 sequence. An invalid byte decodes as U+FFFD with width 1 (valid = false),
// like Go's utf8.DecodeRuneInString.
struct DecodedRune {
  char32_t rune = 0;
  size_t width = 0;
  bool valid = false;
};
DecodedRune DecodeRune(std::string_view s, size_t pos);

// Go's unicode.IsSpace.
bool IsSpaceRune(char32_t r);
// Go's unicode.IsSpace applied to one byte (as `unicode.IsSpace(rune(b))`), ASCII only here.
bool IsAsciiSpace(char c);

// strings.TrimSpace / bytes.TrimLeftFunc(unicode.IsSpace) / TrimRightFunc.
std::string_view TrimSpace(std::string_view s);
std::string_view TrimLeftSpace(std::string_view s);
std::string_view TrimRightSpace(std::string_view s);

// Go's strconv.Quote: a double-quoted string with Go escape sequences; printable Unicode is kept.
std::string GoQuote(std::string_view s);
// fmt's %q of a []string: ["a" "b"].
std::string GoQuoteSlice(const std::vector<std::string>& v);

// Splits on runs of [\t\v\f\r ] (BuildKit's reWhitespace), at most `n` parts (n < 0: all),
// like Go's regexp.Split.
std::vector<std::string> SplitWhitespace(std::string_view s, int n);

// ASCII lowercase/uppercase.
std::string ToLower(std::string_view s);
std::string ToUpper(std::string_view s);

// Go's path.Clean and path.Base.
std::string PathClean(std::string_view p);
std::string PathBase(std::string_view p);

}  // namespace kiln::dockerfile::parser::internal
