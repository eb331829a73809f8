#pragma once
// The fsutil DiffCopy protocol used by BuildKit's FileSync (local sources: client → daemon) and
// FileSend (type=local outputs: daemon → client). Both ends of a transfer:
//
//   sender                                   receiver
//   STAT×n (walk order; ids = index), STAT{} →
//                                          ← REQ id (regular files it lacks)
//   DATA id chunk… DATA id {} (per file;     →
//     files may interleave)
//                                          ← FIN (everything written)
//   FIN                                      →   then the sender closes the stream
//   ERR "message" from either side aborts the transfer.
//
// The receiver keeps what the destination already holds: it compares each STAT with the entry
// on disk (size, mtime, mode, uid/gid, device numbers, link target — fsutil's metadata diff),
// requests only files that differ, removes entries the sender no longer has, and sets
// modes, owners and times, directories' times last. Everything from the wire is untrusted:
// paths are validated and every write happens through directory descriptors opened beneath
// the destination without following symlinks, so a sender cannot touch anything outside it.

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "proto/fsutil/types/stat.pb.h"
#include "proto/fsutil/types/wire.pb.h"

namespace kiln::fsutil {

// A bidirectional stream of packets, e.g. a gRPC DiffCopy stream or an in-memory pipe.
// Send and Recv block. The transfer functions call Send from several threads, serialized by
// them, and Recv from one thread, concurrently with Send: implementations must allow one Send
// and one Recv at the same time (as gRPC's synchronous streams do).
class PacketStream {
 public:
  virtual ~PacketStream() = default;
  virtual absl::Status Send(const ::fsutil::types::Packet& packet) = 0;
  // OUT_OF_RANGE at the clean end of the stream (the peer finished sending).
  virtual absl::Status Recv(::fsutil::types::Packet* packet) = 0;
  // Called after a local failure, once any final ERR packet has been passed to Send: blocked
  // and later Send/Recv calls must then return promptly with an error (gRPC: TryCancel).
  // Also the way for a caller to abort a transfer from outside. Default: nothing.
  virtual void Cancel() {}
};

// Progress: cumulative wire bytes of the packets sent (Send) or received (Receive); `last` is
// true on the final call, as fsutil's ProgressCb. Send may call it from several threads, one at
// a time.
using ProgressFn = std::function<void(int64_t bytes, bool last)>;

struct SendOptions {
  // Filters, with the meaning of WalkOptions (BuildKit's include-patterns, exclude-patterns and
  // followpaths session headers).
  std::vector<std::string> include_patterns;
  std::vector<std::string> exclude_patterns;
  std::vector<std::string> follow_paths;
  ProgressFn progress;
  // Files read and sent in parallel (fsutil uses 4). At least 1.
  int parallel_files = 4;
};

// Sends the tree at `root` as fsutil.Send does, serving the receiver's requests until it says
// FIN. Walk failures are reported to the peer with an ERR packet. Returns when the transfer is
// complete; the caller then closes its side of the stream. Thread-safe with respect to other
// transfers; blocks the calling thread (which reads the stream) and uses helper threads.
[[nodiscard]] absl::Status Send(PacketStream& stream, const std::string& root,
                                const SendOptions& options);

enum class ChangeKind { kAdd, kModify, kDelete };

struct ReceiveOptions {
  // fsutil's Merge: treat the destination as empty for comparison — request every file and
  // keep entries the sender does not list (used for type=local outputs). Off: sync (the local
  // source behaviour).
  bool merge = false;
  // Called with each incoming entry before it is compared or written; may rewrite the stat
  // (e.g. map uid/gid) or return false to leave the entry out (as if the sender had not sent
  // it; a left-out directory leaves out its contents). Also consulted, with an empty stat,
  // before deleting a path the sender no longer has: false keeps it.
  std::function<bool(std::string_view path, ::fsutil::types::Stat* stat)> filter;
  // Called after each entry is added, changed or deleted on disk.
  std::function<void(ChangeKind kind, std::string_view path)> notify;
  ProgressFn progress;
  // If non-empty, a ContentIndex file (see index.h) for the destination, kept outside it:
  // loaded at the start, rebuilt at the end — digests of written files come from the data as
  // it arrived, unchanged files keep their recorded digest — and saved atomically.
  std::string index_path;
  // Walk the destination at the end and check it holds exactly what was sent (paths, types,
  // modes, owners, times, link targets). Costs one lstat per entry.
  bool verify = true;
};

struct ReceiveStats {
  uint64_t entries = 0;          // STAT packets received
  uint64_t files_requested = 0;  // REQ packets sent (files whose data was transferred)
  uint64_t bytes_received = 0;   // file data bytes written
  uint64_t entries_deleted = 0;  // paths removed because the sender no longer has them
  uint64_t files_hashed = 0;     // files read back from disk to build the index
};

// Receives a tree into the existing directory `dest` as fsutil.Receive does. Returns what the
// transfer cost. On failure an ERR packet is sent to the peer and the stream is cancelled;
// `dest` may then hold part of the new tree (never anything outside `dest`). Blocks the calling
// thread (which reads the stream) and uses one helper thread to write it.
[[nodiscard]] absl::StatusOr<ReceiveStats> Receive(PacketStream& stream, const std::string& dest,
                                                   const ReceiveOptions& options);

}  // namespace kiln::fsutil
