#pragma once
// File ops: chains of mkdir / mkfile / rm / symlink / copy applied to a state in one op, numbered
// exactly as BuildKit's client/llb/fileop.go numbers inputs and action outputs.
//
//   State out = base.File(Mkdir("/app", 0755, {.make_parents = true})
//                             .Mkfile("/app/hello", 0644, "hi\n")
//                             .Copy(Local("context"), "src", "/app/src"));
//
// Relative paths resolve against the working directory of the state the chain is applied to
// (copy sources: of the state copied from).

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "llb/state.h"

namespace kiln::llb {

namespace internal {
struct FileActionNode;
}  // namespace internal

// A user or group: by name (resolved in the target's /etc/passwd or /etc/group) when `name` is
// set, else by numeric id.
struct UserOpt {
  std::string name;
  uint32_t id = 0;
};

// Ownership for created files.
struct ChownOpt {
  std::optional<UserOpt> user;
  std::optional<UserOpt> group;
};

// "user[:group]" like BuildKit's WithUser: numbers and "root" become ids, anything else a name.
ChownOpt ParseChown(std::string_view user_group);

struct MkdirOptions {
  bool make_parents = false;
  std::optional<ChownOpt> chown;
  std::optional<int64_t> timestamp_ns;  // mtime, Unix nanoseconds
};

struct MkfileOptions {
  std::optional<ChownOpt> chown;
  std::optional<int64_t> timestamp_ns;
};

struct RmOptions {
  bool allow_not_found = false;
  bool allow_wildcard = false;
};

struct SymlinkOptions {
  std::optional<ChownOpt> chown;
  std::optional<int64_t> timestamp_ns;
};

// BuildKit's CopyInfo.
struct CopyOptions {
  bool follow_symlinks = false;
  bool copy_dir_contents_only = false;
  bool attempt_unpack = false;  // ADD-style archive extraction
  bool create_dest_path = false;
  bool allow_wildcard = false;
  bool allow_empty_wildcard = false;
  bool always_replace_existing_dest_paths = false;
  std::vector<std::string> include_patterns;
  std::vector<std::string> exclude_patterns;
  std::vector<std::string> required_paths;  // must exist below the source (COPY --parents)
  std::optional<ChownOpt> chown;
  std::optional<int32_t> mode;  // permission bits for copied files; unset keeps the source's
  std::string mode_str;         // symbolic mode such as "u+x"; wins over `mode`
  std::optional<int64_t> timestamp_ns;
};

class FileAction;

// What Copy() reads from: a state, or the result of another action chain applied to a state
// (FileAction::WithState). Immutable; cheap to copy.
class CopyInput {
 public:
  CopyInput(State state);  // NOLINT(google-explicit-constructor): a State is the common case

 private:
  friend class FileAction;
  CopyInput(std::shared_ptr<const internal::FileActionNode> chain) : chain_(std::move(chain)) {}

  std::optional<State> state_;
  std::shared_ptr<const internal::FileActionNode> chain_;
};

// An immutable chain of file actions; each method returns a longer chain that shares this one.
// Thread-safe to share. Apply it with State::File().
class FileAction {
 public:
  [[nodiscard]] FileAction Mkdir(std::string_view path, uint32_t mode,
                                 const MkdirOptions& options = {}) const;
  [[nodiscard]] FileAction Mkfile(std::string_view path, uint32_t mode, std::string data,
                                  const MkfileOptions& options = {}) const;
  [[nodiscard]] FileAction Rm(std::string_view path, const RmOptions& options = {}) const;
  // Creates a symlink at `newpath` pointing to `oldpath` (both written as given).
  [[nodiscard]] FileAction Symlink(std::string_view oldpath, std::string_view newpath,
                                   const SymlinkOptions& options = {}) const;
  // Copies `src` from `from` to `dest` in the state being built.
  [[nodiscard]] FileAction Copy(const CopyInput& from, std::string_view src, std::string_view dest,
                                const CopyOptions& options = {}) const;

  // This chain applied to `state`, for use as a Copy() source in another chain; its actions
  // become part of the same op.
  [[nodiscard]] CopyInput WithState(const State& state) const;

 private:
  friend class State;
  friend FileAction Mkdir(std::string_view, uint32_t, const MkdirOptions&);
  friend FileAction Mkfile(std::string_view, uint32_t, std::string, const MkfileOptions&);
  friend FileAction Rm(std::string_view, const RmOptions&);
  friend FileAction Symlink(std::string_view, std::string_view, const SymlinkOptions&);
  friend FileAction Copy(const CopyInput&, std::string_view, std::string_view, const CopyOptions&);

  explicit FileAction(std::shared_ptr<const internal::FileActionNode> last)
      : last_(std::move(last)) {}

  std::shared_ptr<const internal::FileActionNode> last_;
};

// First actions of a chain (see the FileAction methods).
FileAction Mkdir(std::string_view path, uint32_t mode, const MkdirOptions& options = {});
FileAction Mkfile(std::string_view path, uint32_t mode, std::string data,
                  const MkfileOptions& options = {});
FileAction Rm(std::string_view path, const RmOptions& options = {});
FileAction Symlink(std::string_view oldpath, std::string_view newpath,
                   const SymlinkOptions& options = {});
FileAction Copy(const CopyInput& from, std::string_view src, std::string_view dest,
                const CopyOptions& options = {});

}  // namespace kiln::llb
