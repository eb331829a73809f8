#pragma once
// LLB FileOp actions (mkdir, mkfile, rm, symlink, copy) executed on real directory trees, with
// the semantics of BuildKit v0.24's file backend (solver/llbsolver/file) and fsutil's copy.
//
// Each root is the absolute host path of a filesystem tree (the merged view of a snapshot,
// mounted by the caller). Every path an action names — and every path inside a tree being
// copied or an archive being unpacked — is resolved inside its root as if chrooted there: ".."
// stops at the root, absolute symlinks are relative to it, and no symlink can lead out of it.
// Resolution uses openat2(2) with RESOLVE_IN_ROOT and all changes are *at() calls relative to
// the descriptors it returns; a kernel without openat2 gets UNIMPLEMENTED, never a weaker path.
//
// Errors name the action and its path ("mkfile /etc/foo: parent directory /etc does not exist")
// and use BuildKit's wording where it has one. Functions are thread-safe as long as concurrent
// calls do not modify the same trees.
//
//   pb::FileActionMkDir mkdir;
//   mkdir.set_path("/app/data");
//   mkdir.set_mode(0755);
//   mkdir.set_makeparents(true);
//   mkdir.set_timestamp(-1);
//   KILN_RETURN_IF_ERROR(ops::Mkdir(rootfs, mkdir));

#include <string>

#include "absl/status/status.h"
#include "base/context.h"
#include "proto/pb/ops.pb.h"

namespace kiln::ops {

// Where the user and group names of an action's ChownOpt are looked up: the /etc/passwd and
// /etc/group of these roots (BuildKit resolves them in the input named by NamedUserOpt.input).
// An empty path means the action's destination root, which is what Dockerfile COPY/ADD use.
struct OwnerRoots {
  std::string user_root;
  std::string group_root;
};

// FileActionMkDir: creates `path` with `mode & 0777` (exactly; the umask does not apply).
// makeParents creates missing parents with the same mode, owner and timestamp, and accepts an
// existing directory; without it the parent must exist, and an existing entry is left as it is.
// Owner and timestamp (unix nanoseconds; -1 = unset) apply only to directories it creates.
[[nodiscard]] absl::Status Mkdir(const std::string& root, const pb::FileActionMkDir& a,
                                 const OwnerRoots& owner_roots = {});

// FileActionMkFile: writes `data` to `path` (a symlink there is followed within the root). A new
// file gets `mode & 0777`; an existing regular file is truncated and keeps its mode. Owner and
// timestamp are applied either way. Anything but a regular file in the way is an error.
[[nodiscard]] absl::Status Mkfile(const std::string& root, const pb::FileActionMkFile& a,
                                  const OwnerRoots& owner_roots = {});

// FileActionRm: removes `path` recursively, never following its last component. allowNotFound
// tolerates a missing path; allowWildcard removes every match of the pattern (none is fine).
// The root itself cannot be removed.
[[nodiscard]] absl::Status Rm(const std::string& root, const pb::FileActionRm& a);

// FileActionSymlink: creates the symlink `newpath` whose target is `oldpath`, stored verbatim.
[[nodiscard]] absl::Status Symlink(const std::string& root, const pb::FileActionSymlink& a,
                                   const OwnerRoots& owner_roots = {});

// FileActionCopy from `src_root` to `dest_root` ("cp -a" semantics of fsutil's copy.Copy):
// followSymlink, dirCopyContents, attemptUnpackDockerCompatibility (local tar archives, plain or
// gzip/bzip2/xz/zstd, are extracted instead), createDestPath, allowWildcard,
// allowEmptyWildcard, include/exclude patterns, owner, mode (-1 = keep) or modeStr, timestamp
// (-1 = keep the source's), alwaysReplaceExistingDestPaths, hardlinks within one copy, device
// nodes, FIFOs and xattrs (best effort). Stops with CANCELLED when `ctx` is cancelled.
[[nodiscard]] absl::Status Copy(const Context& ctx, const std::string& src_root,
                                const std::string& dest_root, const pb::FileActionCopy& a,
                                const OwnerRoots& owner_roots = {});

}  // namespace kiln::ops
