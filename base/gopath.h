#pragma once
// Go's path.Clean, which BuildKit uses to normalize every path it writes or reads. One
// implementation for llb/ (to match BuildKit's bytes) and fsutil/ (to match its file sync).

#include <string>
#include <string_view>

namespace kiln {

// The shortest lexically equivalent path ("" becomes ".", "a/../.." becomes "..").
std::string GoCleanPath(std::string_view path);

}  // namespace kiln
