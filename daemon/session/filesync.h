#pragma once
// The daemon's file transfers over a session: pulling a client's local directory
// (FileSync.DiffCopy, the daemon receiving) and pushing an output to the client
// (FileSend.DiffCopy: fsutil packets for type=local, raw bytes for tarballs). Stateless
// functions; safe to call concurrently on one session.

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "base/context.h"
#include "daemon/session/session.h"
#include "fsutil/diffcopy.h"

namespace kiln::session {

inline constexpr char kFileSyncMethod[] = "/moby.filesync.v1.FileSync/DiffCopy";
inline constexpr char kFileSendMethod[] = "/moby.filesync.v1.FileSend/DiffCopy";

struct SyncRequest {
  std::string dir_name;  // the --local name
  std::vector<std::string> include_patterns;
  std::vector<std::string> exclude_patterns;
  std::vector<std::string> follow_paths;
};

// Receives the client's directory `request.dir_name` into `dest` (an existing tree is
// updated in place: only changed files move).
[[nodiscard]] absl::StatusOr<fsutil::ReceiveStats> SyncFromClient(
    const Context& ctx, const Session& session, const SyncRequest& request, const std::string& dest,
    const fsutil::ReceiveOptions& options);

// Sends the tree at `root` to the client as fsutil packets (an --output type=local).
// `metadata` travels as request headers (exporter metadata).
[[nodiscard]] absl::Status SendTreeToClient(
    const Context& ctx, const Session& session, const std::string& root,
    const std::multimap<std::string, std::string>& metadata);

// Streams bytes produced by `produce` to the client as raw chunks (an --output type=tar or an
// image tarball). `produce` calls `write` for each chunk and returns its own status.
using ByteWriter = std::function<absl::Status(std::string_view)>;
[[nodiscard]] absl::Status SendBytesToClient(
    const Context& ctx, const Session& session,
    const std::multimap<std::string, std::string>& metadata,
    const std::function<absl::Status(const ByteWriter& write)>& produce);

}  // namespace kiln::session
