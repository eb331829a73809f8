#pragma once
// Random identifiers in BuildKit's format (identity.NewID): 25 characters of [a-z0-9], about
// 129 bits. Used for build refs, session ids, worker ids and cache record ids. Thread-safe.

#include <string>

namespace kiln {

std::string NewRandomId();

}  // namespace kiln
