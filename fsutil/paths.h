#pragma once
// Slash-separated path helpers with the exact semantics of Go's `path` package (Clean, Dir,
// Base, Join) and fsutil's ComparePath, so that patterns, walk order and wire paths behave the
// way BuildKit's Go code does. Pure functions; thread-safe.

#include <initializer_list>
#include <string>
#include <string_view>

namespace kiln::fsutil {

// Go's path.Clean: the shortest equivalent path ("" → ".", "a//b/../c" → "a/c", "/.." → "/").
[[nodiscard]] std::string CleanPath(std::string_view path);

// Go's path.Dir: everything before the last '/', cleaned ("a/b" → "a", "a" → ".", "/a" → "/").
[[nodiscard]] std::string DirPath(std::string_view path);

// Go's path.Base: the last element, trailing slashes removed ("" → ".", "/" → "/").
[[nodiscard]] std::string BasePath(std::string_view path);

// Go's path.Join: non-empty elements joined by '/' and cleaned; "" when all are empty.
[[nodiscard]] std::string JoinPath(std::initializer_list<std::string_view> elems);

// fsutil's ComparePath: byte order in which '/' sorts before every other byte, so that "a/b"
// precedes "a.b". This is the order of a depth-first walk with per-directory sorted names.
// Returns <0, 0 or >0.
[[nodiscard]] int ComparePath(std::string_view a, std::string_view b);

// True if `path` equals `prefix` or lies below it ("a/b" is within "a"; "ab" is not).
// An empty prefix contains every path.
[[nodiscard]] bool PathWithin(std::string_view path, std::string_view prefix);

}  // namespace kiln::fsutil
