#include "base/status.h"

#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"

namespace kiln {

absl::Status Annotate(const absl::Status& status, std::string_view context) {
  if (status.ok()) return status;
  absl::Status out(status.code(), absl::StrCat(absl::string_view(context.data(), context.size()),
                                               ": ", status.message()));
  status.ForEachPayload(
      [&out](absl::string_view url, const absl::Cord& payload) { out.SetPayload(url, payload); });
  return out;
}

absl::Status ErrnoToStatus(int err, std::string_view what) {
  return absl::ErrnoToStatus(err, absl::string_view(what.data(), what.size()));
}

}  // namespace kiln
