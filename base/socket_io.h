#pragma once
// Blocking socket writes that report a vanished peer as a failure instead of raising SIGPIPE.

#include <string_view>

namespace kiln {

// Writes all of `data` to the socket `fd` (retrying on EINTR and short writes). False when the
// peer is gone or the write fails.
bool SendAll(int fd, std::string_view data);

}  // namespace kiln
