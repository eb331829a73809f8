#pragma once
// Lexical path helpers with the exact semantics of Go's "path" package, which BuildKit's LLB
// client uses to normalize every path it writes into an op (so our bytes match its bytes).

#include <string>
#include <string_view>

namespace kiln::llb::internal {

// Go's path.Clean: the shortest lexically equivalent path ("" becomes ".").
std::string CleanPath(std::string_view path);

// Go's path.Join of two elements: empty elements are skipped, the result is cleaned.
std::string JoinPath(std::string_view a, std::string_view b);
std::string JoinPath(std::string_view a, std::string_view b, std::string_view c);

// Go's path.IsAbs.
inline bool IsAbsPath(std::string_view path) { return !path.empty() && path.front() == '/'; }

// True when a ".." component of `path`, read relative to "/" (absolute or not), would climb above
// the root before cleaning clamps it, e.g. "/../etc" or "a/../../b".
bool EscapesRoot(std::string_view path);

}  // namespace kiln::llb::internal
