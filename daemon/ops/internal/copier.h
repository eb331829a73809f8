#pragma once
// The recursive copy behind FileActionCopy: fsutil's copy.Copy copier ("cp -a" semantics) on
// descriptors. The source tree is walked without ever following a symlink (symlinks are copied
// as symlinks); the destination is written with *at() calls relative to directories this copy
// opened or created, so neither tree can redirect a write or a read outside its root.
//
// Behaviour matched to fsutil v0.24's copier: include/exclude patterns with delayed creation
// of parent directories, owner override or source owner, numeric or symbolic mode override,
// timestamp override or source times, alwaysReplaceExistingDestPaths, hardlinks preserved
// within one copy, devices/FIFOs recreated (sockets as empty files), xattrs best effort.
// One Copier serves one source; not thread-safe.

#include <sys/stat.h>

#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "base/context.h"
#include "daemon/ops/internal/mode_set.h"
#include "daemon/ops/internal/root_fs.h"
#include "fsutil/patterns.h"

namespace kiln::ops::internal {

// What a copy applies to every entry it writes.
struct CopyOptions {
  std::optional<Owner> owner;                       // nullopt: keep the source's uid/gid
  std::optional<struct timespec> time;              // nullopt: keep the source's atime/mtime
  std::optional<int> mode;                          // numeric override (its 07777 bits)
  std::optional<ModeSet> mode_set;                  // symbolic override; wins over `mode`
  bool always_replace = false;                      // replace a destination of another type
  const fsutil::PatternMatcher* include = nullptr;  // null: include everything
  const fsutil::PatternMatcher* exclude = nullptr;  // null: exclude nothing
};

class Copier {
 public:
  // `ctx` and `opts` must outlive the Copier.
  Copier(const Context& ctx, const CopyOptions& opts) : ctx_(ctx), opts_(opts) {}

  // Copies the source entry `src` (not followed if it is a symlink) to `target_name` in the
  // directory `target_dir` (an empty name: `target_dir` itself, which must then be a
  // directory). The target's parent exists. Display strings name both sides in errors.
  [[nodiscard]] absl::Status Run(const Location& src, const std::string& src_display,
                                 int target_dir, const std::string& target_name,
                                 const std::string& dst_display);

 private:
  // A destination directory as known during the walk.
  enum class DestState { kMissing, kDir, kNotDir };
  // One directory level of the walk (fsutil's parentDirs, plus the descriptors we hold).
  struct Frame {
    UniqueFd src_fd;  // the source directory, open for reading
    struct stat src_st;
    std::string src_display;
    std::string name;  // this directory's name in the previous frame's destination
    UniqueFd dst_fd;   // O_PATH descriptor when dst_state is kDir
    DestState dst_state = DestState::kMissing;
    std::string dst_display;
    std::string dst_rel;  // path below frames_[0]'s directory, for hardlinks
    bool copied = false;
  };
  struct Names {
    std::string src_display;
    std::string dst_display;
    std::string dst_rel;
  };

  absl::Status CopyEntry(int src_dir, const std::string& src_name, const std::string& components,
                         const std::string& name, bool overwrite_metadata,
                         const fsutil::MatchInfo& parent_include,
                         const fsutil::MatchInfo& parent_exclude, const Names& names);
  absl::StatusOr<bool> CopyDirectory(int src_dir, const std::string& src_name,
                                     const std::string& components, const std::string& name,
                                     const struct stat& st, bool overwrite_metadata, bool include,
                                     const fsutil::MatchInfo& include_info,
                                     const fsutil::MatchInfo& exclude_info, const Names& names);
  absl::StatusOr<bool> CopyDirectoryOnly(int parent_fd, const std::string& name,
                                         const struct stat& st, bool overwrite_metadata,
                                         const std::string& display);
  absl::Status CreateParentDirs(bool overwrite_metadata);
  absl::Status RemoveTargetIfNeeded(const std::string& name, const struct stat& src,
                                    const std::optional<struct stat>& target,
                                    const std::string& display);
  absl::Status EnsureEmptyFileTarget(const std::string& name, const std::string& display);
  absl::Status CopyRegular(int src_dir, const std::string& src_name, const struct stat& st,
                           const std::string& name, const Names& names);
  absl::Status CopyFileInfo(const struct stat& st, int dir, const std::string& name,
                            const std::string& display);
  absl::Status CopyFileTimestamp(const struct stat& st, int dir, const std::string& name,
                                 const std::string& display);
  void OpenDest(Frame& f);
  // The destination directory of the innermost frame (the parent of the entry at hand).
  int DestDir() const { return frames_.back().dst_fd.get(); }

  const Context& ctx_;
  const CopyOptions& opts_;
  std::vector<Frame> frames_;
  // First destination path of each multiply-linked source inode: later links point to it.
  std::map<std::pair<dev_t, ino_t>, std::string> inodes_;
  // Destination directories of this copy; meeting one in the source means copying a directory
  // into itself, which would never end.
  std::set<std::pair<dev_t, ino_t>> dest_dirs_;
};

}  // namespace kiln::ops::internal
