#pragma once
// Text helpers with Go's semantics for the Dockerfile parser and instructions (UTF-8 decoding,
// unicode.IsSpace, strings.TrimSpace and strconv.Quote are in base/go_text.h).

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace kiln::dockerfile::parser::internal {

// Go's unicode.IsSpace applied to one byte (as `unicode.IsSpace(rune(b))`), ASCII only here.
bool IsAsciiSpace(char c);

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
