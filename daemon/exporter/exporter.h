#pragma once
// Exporters that hand a build's result to the client through its session: `local` (the tree
// into a client directory, as fsutil packets) and `tar` (a tarball of the tree, streamed as
// bytes). Image exporters arrive with image support.

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "base/context.h"
#include "daemon/cache/manager.h"
#include "daemon/session/session.h"

namespace kiln::exporter {

struct ExportRequest {
  std::string type;                          // "local" or "tar"
  std::map<std::string, std::string> attrs;  // exporter attributes (dest is client-side)
  int id = 0;                                // index among the request's exporters
};

// Exports `result` (null = the empty tree). Returns the exporter's response entries.
[[nodiscard]] absl::StatusOr<std::map<std::string, std::string>> Export(
    const Context& ctx, cache::Manager& cache, const session::Session& session,
    const cache::ImmutableRef* result, const ExportRequest& request);

// Writes the tree at `root` as a tar stream (PAX format, sorted, uid/gid numeric), calling
// `write` for each chunk. Used by the tar exporter and its tests.
[[nodiscard]] absl::Status WriteTar(const std::string& root,
                                    const std::function<absl::Status(std::string_view)>& write);

}  // namespace kiln::exporter
