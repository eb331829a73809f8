#include "daemon/image/layer.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/digest.h"
#include "base/status.h"
#include "daemon/image/internal/beneath.h"
#include "daemon/image/internal/codec.h"
#include "daemon/image/media_types.h"

namespace kiln::image {
namespace fs = std::filesystem;
using internal::UniqueFd;

namespace {

constexpr char kWhiteoutPrefix[] = ".wh.";
constexpr char kWhiteoutMetaPrefix[] = ".wh..wh.";
constexpr char kOpaqueWhiteout[] = ".wh..wh..opq";
constexpr char kOpaqueXattr[] = "trusted.overlay.opaque";
constexpr char kOverlayXattrPrefix[] = "trusted.overlay.";
constexpr size_t kChunk = 1 << 20;

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && s.substr(0, prefix.size()) == prefix;
}

absl::Status PathErr(int err, std::string_view op, std::string_view path) {
  return ErrnoToStatus(err, absl::StrCat(AV(op), " ", AV(path)));
}

std::string ArchiveError(struct archive* a) {
  const char* msg = archive_error_string(a);
  return msg != nullptr ? msg : "unknown archive error";
}

// ---- Unpack ---------------------------------------------------------------------------------

// Layer media types, with the compression each names (nullopt: any).
absl::Status CheckLayerMediaType(std::string_view media_type) {
  static constexpr const char* kKnown[] = {kOciLayer,
                                           kOciLayerGzip,
                                           kOciLayerZstd,
                                           kOciLayerNondistributable,
                                           kOciLayerNondistributableGzip,
                                           kOciLayerNondistributableZstd,
                                           kDockerLayerGzip,
                                           kDockerLayerForeignGzip,
                                           kDockerLayer};
  if (media_type.empty()) return absl::OkStatus();
  for (const char* known : kKnown) {
    if (media_type == known) return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unsupported layer media type \"", AV(media_type), "\""));
}

// Reads a blob, hashing it as it is, decompressing it and hashing the tar stream; libarchive
// pulls the tar stream through Next(). Not thread-safe.
class BlobReader {
 public:
  BlobReader(const Context& ctx, UniqueFd fd, std::string shown)
      : ctx_(ctx),
        fd_(std::move(fd)),
        shown_(std::move(shown)),
        in_(kChunk, '\0'),
        out_(kChunk, '\0') {}

  // Reads the head of the blob and picks the decoder from its magic bytes.
  absl::Status Start() {
    while (pending_.size() < 8 && !eof_) KILN_RETURN_IF_ERROR(Fill(/*append=*/true));
    KILN_ASSIGN_OR_RETURN(compression_, internal::DetectCompression(pending_));
    KILN_ASSIGN_OR_RETURN(decoder_, internal::NewDecoder(compression_));
    return absl::OkStatus();
  }

  // The next piece of the tar stream; empty at its end.
  absl::StatusOr<std::string_view> Next() {
    for (;;) {
      KILN_RETURN_IF_ERROR(ctx_.Check("unpack layer"));
      const size_t before = pending_.size();
      KILN_ASSIGN_OR_RETURN(size_t n, decoder_->Decode(pending_, out_.data(), out_.size()));
      if (n > 0) {
        diff_hash_.Update(std::string_view(out_.data(), n));
        uncompressed_size_ += static_cast<int64_t>(n);
        return std::string_view(out_.data(), n);
      }
      if (pending_.empty()) {
        if (eof_) {
          KILN_RETURN_IF_ERROR(decoder_->Finish());
          return std::string_view();
        }
        KILN_RETURN_IF_ERROR(Fill(/*append=*/false));
      } else if (pending_.size() == before) {
        return absl::DataLossError(absl::StrCat(shown_, ": decompressor made no progress"));
      }
    }
  }

  // Reads what libarchive left (padding after the end-of-archive blocks) so that the digests
  // cover the whole blob.
  absl::Status Drain() {
    for (;;) {
      KILN_ASSIGN_OR_RETURN(std::string_view piece, Next());
      if (piece.empty()) return absl::OkStatus();
    }
  }

  Compression compression() const { return compression_; }
  int64_t size() const { return size_; }
  int64_t uncompressed_size() const { return uncompressed_size_; }
  std::string Digest() { return "sha256:" + blob_hash_.HexDigest(); }
  std::string DiffId() { return "sha256:" + diff_hash_.HexDigest(); }

  absl::Status status;  // the error behind a failed libarchive read

 private:
  absl::Status Fill(bool append) {
    size_t keep = append ? pending_.size() : 0;
    if (keep > 0 && pending_.data() != in_.data()) {
      std::memmove(in_.data(), pending_.data(), keep);
    }
    ssize_t n;
    do {
      n = ::read(fd_.get(), in_.data() + keep, in_.size() - keep);
    } while (n < 0 && errno == EINTR);
    if (n < 0) return PathErr(errno, "read", shown_);
    if (n == 0) eof_ = true;
    blob_hash_.Update(std::string_view(in_.data() + keep, static_cast<size_t>(n)));
    size_ += n;
    pending_ = std::string_view(in_.data(), keep + static_cast<size_t>(n));
    return absl::OkStatus();
  }

  const Context& ctx_;
  UniqueFd fd_;
  const std::string shown_;
  std::string in_;
  std::string out_;
  std::string_view pending_;  // read but not yet decompressed, inside in_
  bool eof_ = false;
  Compression compression_ = Compression::kUncompressed;
  std::unique_ptr<internal::Decoder> decoder_;
  Sha256 blob_hash_;
  Sha256 diff_hash_;
  int64_t size_ = 0;
  int64_t uncompressed_size_ = 0;
};

la_ssize_t ReadCallback(struct archive* a, void* client, const void** buf) {
  auto* r = static_cast<BlobReader*>(client);
  absl::StatusOr<std::string_view> piece = r->Next();
  if (!piece.ok()) {
    r->status = piece.status();
    archive_set_error(a, EIO, "%s", std::string(piece.status().message()).c_str());
    return -1;
  }
  *buf = piece->data();
  return static_cast<la_ssize_t>(piece->size());
}

const char* EntryString(const char* utf8, const char* raw) { return utf8 != nullptr ? utf8 : raw; }

// The components of an archive path: relative, no "..", "." and empty parts dropped. An empty
// result is the layer root.
absl::StatusOr<std::vector<std::string>> SplitEntryPath(std::string_view name, const char* what) {
  if (name.empty()) return absl::InvalidArgumentError(absl::StrCat(what, " with an empty name"));
  if (name.front() == '/') {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " \"", AV(name), "\" is an absolute path"));
  }
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= name.size()) {
    size_t end = name.find('/', start);
    if (end == std::string_view::npos) end = name.size();
    std::string_view comp = name.substr(start, end - start);
    start = end + 1;
    if (comp.empty() || comp == ".") continue;
    if (comp == "..") {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " \"", AV(name), "\" leaves the layer (\"..\")"));
    }
    out.emplace_back(comp);
  }
  return out;
}

std::string JoinPath(const std::vector<std::string>& comps, size_t n) {
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    if (i > 0) out += '/';
    out += comps[i];
  }
  return out;
}

// Writes the entries of one layer tar below the root directory. Borrows its arguments; one per
// UnpackLayer call; not thread-safe.
class Unpacker {
 public:
  Unpacker(const Context& ctx, int root, fs::path dest) : ctx_(ctx), root_(root), dest_(dest) {}

  absl::Status Entry(struct archive* a, struct archive_entry* e);
  absl::Status FinishDirs();

 private:
  struct DirTimes {
    std::vector<std::string> comps;
    struct timespec times[2];
  };

  // The parent directory of comps (all but the last), created (0755, root-owned) when missing.
  absl::StatusOr<int> Parent(const std::vector<std::string>& comps, const std::string& shown);
  absl::Status OpenError(int err, const std::string& rel, const std::string& shown);
  absl::StatusOr<UniqueFd> OpenDir(const std::string& rel, int flags, const std::string& shown);
  // Removes what is at `rel` (`name` in `dir`) unless both it and the new entry are
  // directories (they merge: *merge is set).
  absl::Status ReplaceExisting(int dir, const std::string& name, const std::string& rel,
                               bool is_dir, bool* merge, const std::string& shown);
  absl::Status Whiteout(struct archive_entry* e, const std::vector<std::string>& comps,
                        const std::string& shown);
  absl::Status WriteData(struct archive* a, struct archive_entry* e, int fd,
                         const std::string& shown);
  absl::Status SetXattrs(struct archive_entry* e, int fd, const std::string& path,
                         const std::string& shown);
  static void EntryTimes(struct archive_entry* e, struct timespec times[2]);

  const Context& ctx_;
  const int root_;
  const fs::path dest_;
  std::string cached_rel_;  // the directory cached_fd_ refers to
  UniqueFd cached_fd_;
  std::vector<DirTimes> dirs_;
};

absl::Status Unpacker::OpenError(int err, const std::string& rel, const std::string& shown) {
  if (err == ELOOP || err == EXDEV) {
    return absl::InvalidArgumentError(absl::StrCat(
        "layer entry \"", shown, "\" would be written through a symlink (\"", rel, "\")"));
  }
  if (err == ENOTDIR) {
    return absl::InvalidArgumentError(
        absl::StrCat("layer entry \"", shown, "\": \"", rel, "\" is not a directory"));
  }
  return PathErr(err, "open", (dest_ / rel).string());
}

absl::StatusOr<UniqueFd> Unpacker::OpenDir(const std::string& rel, int flags,
                                           const std::string& shown) {
  const int fd = internal::OpenDirBeneath(root_, rel, flags);
  if (fd < 0) return OpenError(-fd, rel, shown);
  return UniqueFd(fd);
}

absl::StatusOr<int> Unpacker::Parent(const std::vector<std::string>& comps,
                                     const std::string& shown) {
  const std::string rel = JoinPath(comps, comps.size() - 1);
  if (cached_fd_.valid() && cached_rel_ == rel) return cached_fd_.get();
  cached_fd_.Reset();
  int fd = internal::OpenDirBeneath(root_, rel, O_PATH);
  if (fd == -ENOENT) {
    // Implied directories: tar allows entries without entries for their parents.
    KILN_ASSIGN_OR_RETURN(UniqueFd cur, OpenDir("", O_PATH, shown));
    for (size_t i = 0; i + 1 < comps.size(); ++i) {
      if (mkdirat(cur.get(), comps[i].c_str(), 0755) != 0 && errno != EEXIST) {
        return PathErr(errno, "mkdir", (dest_ / JoinPath(comps, i + 1)).string());
      }
      const int next = internal::OpenDirBeneath(cur.get(), comps[i], O_PATH);
      if (next < 0) return OpenError(-next, JoinPath(comps, i + 1), shown);
      cur = UniqueFd(next);
    }
    fd = cur.Release();
  } else if (fd < 0) {
    return OpenError(-fd, rel, shown);
  }
  cached_rel_ = rel;
  cached_fd_ = UniqueFd(fd);
  return fd;
}

absl::Status Unpacker::ReplaceExisting(int dir, const std::string& name, const std::string& rel,
                                       bool is_dir, bool* merge, const std::string& shown) {
  *merge = false;
  struct stat st;
  if (fstatat(dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return PathErr(errno, "stat", shown);
  }
  if (is_dir && S_ISDIR(st.st_mode)) {
    *merge = true;
    return absl::OkStatus();
  }
  // A later entry replaces an earlier one of the same name (tar semantics).
  if (int err = internal::RemoveAllAt(dir, name); err != 0 && err != ENOENT) {
    return PathErr(err, "remove", shown);
  }
  if (S_ISDIR(st.st_mode) && (cached_rel_ == rel || StartsWith(cached_rel_, rel + "/"))) {
    cached_fd_.Reset();  // it was inside
  }
  return absl::OkStatus();
}

void Unpacker::EntryTimes(struct archive_entry* e, struct timespec times[2]) {
  times[1] = archive_entry_mtime_is_set(e)
                 ? timespec{archive_entry_mtime(e), archive_entry_mtime_nsec(e)}
                 : timespec{0, 0};
  times[0] = archive_entry_atime_is_set(e)
                 ? timespec{archive_entry_atime(e), archive_entry_atime_nsec(e)}
                 : times[1];
}

absl::Status Unpacker::SetXattrs(struct archive_entry* e, int fd, const std::string& path,
                                 const std::string& shown) {
  archive_entry_xattr_reset(e);
  const char* key = nullptr;
  const void* value = nullptr;
  size_t size = 0;
  while (archive_entry_xattr_next(e, &key, &value, &size) == ARCHIVE_OK) {
    // overlayfs reads trusted.overlay.* (opaque, redirect, metacopy) from the layer: only the
    // whiteout entries may produce them.
    if (key == nullptr || StartsWith(key, kOverlayXattrPrefix)) continue;
    const int rc =
        fd >= 0 ? fsetxattr(fd, key, value, size, 0) : lsetxattr(path.c_str(), key, value, size, 0);
    // Like containerd: not every filesystem takes every namespace.
    if (rc != 0 && errno != ENOTSUP && errno != EPERM) {
      return ErrnoToStatus(errno, absl::StrCat("setxattr ", key, " on ", shown));
    }
  }
  return absl::OkStatus();
}

absl::Status Unpacker::WriteData(struct archive* a, struct archive_entry* e, int fd,
                                 const std::string& shown) {
  int64_t end = 0;
  for (;;) {
    const void* buf = nullptr;
    size_t size = 0;
    la_int64_t offset = 0;
    const int rc = archive_read_data_block(a, &buf, &size, &offset);
    if (rc == ARCHIVE_EOF) break;
    if (rc != ARCHIVE_OK && rc != ARCHIVE_WARN) {
      return absl::DataLossError(absl::StrCat("read ", shown, ": ", ArchiveError(a)));
    }
    const char* p = static_cast<const char*>(buf);
    size_t left = size;
    off_t at = offset;
    while (left > 0) {
      const ssize_t n = pwrite(fd, p, left, at);
      if (n < 0) {
        if (errno == EINTR) continue;
        return PathErr(errno, "write", shown);
      }
      p += n;
      left -= static_cast<size_t>(n);
      at += n;
    }
    end = std::max<int64_t>(end, offset + static_cast<int64_t>(size));
  }
  if (archive_entry_size_is_set(e) && archive_entry_size(e) > end) {  // a sparse file's hole
    if (ftruncate(fd, archive_entry_size(e)) != 0) return PathErr(errno, "truncate", shown);
  }
  return absl::OkStatus();
}

absl::Status Unpacker::Whiteout(struct archive_entry* e, const std::vector<std::string>& comps,
                                const std::string& shown) {
  const std::string& base = comps.back();
  if (base == kOpaqueWhiteout) {
    KILN_ASSIGN_OR_RETURN(int parent, Parent(comps, shown));
    (void)parent;  // created if missing
    KILN_ASSIGN_OR_RETURN(UniqueFd dir,
                          OpenDir(JoinPath(comps, comps.size() - 1), O_RDONLY, shown));
    if (fsetxattr(dir.get(), kOpaqueXattr, "y", 1, 0) != 0) {
      return ErrnoToStatus(errno, absl::StrCat("mark ", shown, " opaque (", kOpaqueXattr, ")"));
    }
    return absl::OkStatus();
  }
  if (StartsWith(base, kWhiteoutMetaPrefix)) return absl::OkStatus();  // aufs metadata
  const std::string name = base.substr(std::strlen(kWhiteoutPrefix));
  if (name.empty() || name == "." || name == "..") {
    return absl::InvalidArgumentError(absl::StrCat("invalid whiteout \"", shown, "\""));
  }
  KILN_ASSIGN_OR_RETURN(int parent, Parent(comps, shown));
  bool merge = false;
  const std::string rel = JoinPath(comps, comps.size() - 1);
  KILN_RETURN_IF_ERROR(ReplaceExisting(parent, name, rel.empty() ? name : rel + "/" + name,
                                       /*is_dir=*/false, &merge, shown));
  const mode_t perm = archive_entry_perm(e) & 07777;
  if (mknodat(parent, name.c_str(), S_IFCHR | perm, makedev(0, 0)) != 0) {
    return PathErr(errno, "mknod (whiteout)", shown);
  }
  if (fchownat(parent, name.c_str(), static_cast<uid_t>(archive_entry_uid(e)),
               static_cast<gid_t>(archive_entry_gid(e)), AT_SYMLINK_NOFOLLOW) != 0) {
    return PathErr(errno, "chown", shown);
  }
  if (fchmodat(parent, name.c_str(), perm, 0) != 0) return PathErr(errno, "chmod", shown);
  struct timespec times[2];
  EntryTimes(e, times);
  if (utimensat(parent, name.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0) {
    return PathErr(errno, "chtimes", shown);
  }
  return absl::OkStatus();
}

absl::Status Unpacker::Entry(struct archive* a, struct archive_entry* e) {
  const char* raw = EntryString(archive_entry_pathname_utf8(e), archive_entry_pathname(e));
  if (raw == nullptr) return absl::DataLossError("layer entry without a name");
  const std::string shown = raw;
  KILN_ASSIGN_OR_RETURN(std::vector<std::string> comps, SplitEntryPath(raw, "layer entry"));
  const char* hardlink = EntryString(archive_entry_hardlink_utf8(e), archive_entry_hardlink(e));
  const mode_t type = archive_entry_filetype(e);
  const mode_t perm = archive_entry_perm(e) & 07777;
  const auto uid = static_cast<uid_t>(archive_entry_uid(e));
  const auto gid = static_cast<gid_t>(archive_entry_gid(e));
  struct timespec times[2];
  EntryTimes(e, times);

  if (comps.empty()) {
    // The layer root ("./"): it exists; take the entry's metadata.
    if (hardlink != nullptr || type != AE_IFDIR) {
      return absl::InvalidArgumentError(
          absl::StrCat("layer entry \"", shown, "\" would replace the layer root"));
    }
    KILN_ASSIGN_OR_RETURN(UniqueFd dir, OpenDir("", O_RDONLY, shown));
    if (fchown(dir.get(), uid, gid) != 0) return PathErr(errno, "chown", shown);
    if (fchmod(dir.get(), perm) != 0) return PathErr(errno, "chmod", shown);
    KILN_RETURN_IF_ERROR(SetXattrs(e, dir.get(), "", shown));
    dirs_.push_back(DirTimes{comps, {times[0], times[1]}});
    return absl::OkStatus();
  }
  // aufs metadata (.wh..wh.plnk, .wh..wh.aufs) at the root, skipped as moby does.
  if (comps.size() > 1 && StartsWith(comps[0], kWhiteoutMetaPrefix)) return absl::OkStatus();
  if (StartsWith(comps.back(), kWhiteoutPrefix)) return Whiteout(e, comps, shown);

  KILN_ASSIGN_OR_RETURN(int parent, Parent(comps, shown));
  const std::string& name = comps.back();
  const bool is_dir = hardlink == nullptr && type == AE_IFDIR;
  bool merge = false;
  KILN_RETURN_IF_ERROR(
      ReplaceExisting(parent, name, JoinPath(comps, comps.size()), is_dir, &merge, shown));
  const std::string full = (dest_ / JoinPath(comps, comps.size())).string();

  if (hardlink != nullptr) {
    KILN_ASSIGN_OR_RETURN(std::vector<std::string> target,
                          SplitEntryPath(hardlink, "hardlink target"));
    if (target.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("hardlink ", shown, " to the layer root"));
    }
    KILN_ASSIGN_OR_RETURN(UniqueFd tdir,
                          OpenDir(JoinPath(target, target.size() - 1), O_PATH, shown));
    if (linkat(tdir.get(), target.back().c_str(), parent, name.c_str(), 0) != 0) {
      const int err = errno;
      if (err == ENOENT) {
        return absl::InvalidArgumentError(
            absl::StrCat("hardlink ", shown, " -> ", hardlink, ": the target is not in the layer"));
      }
      return ErrnoToStatus(err, absl::StrCat("link ", shown, " -> ", hardlink));
    }
    return absl::OkStatus();  // shares the target's inode and metadata
  }

  switch (type) {
    case AE_IFREG: {
      UniqueFd fd(
          openat(parent, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
      if (!fd.valid()) return PathErr(errno, "create", shown);
      KILN_RETURN_IF_ERROR(WriteData(a, e, fd.get(), shown));
      // chown before chmod and xattrs: it clears set-id bits and security.capability.
      if (fchown(fd.get(), uid, gid) != 0) return PathErr(errno, "chown", shown);
      if (fchmod(fd.get(), perm) != 0) return PathErr(errno, "chmod", shown);
      KILN_RETURN_IF_ERROR(SetXattrs(e, fd.get(), full, shown));
      if (futimens(fd.get(), times) != 0) return PathErr(errno, "chtimes", shown);
      return absl::OkStatus();
    }
    case AE_IFDIR: {
      if (!merge && mkdirat(parent, name.c_str(), 0700) != 0) return PathErr(errno, "mkdir", shown);
      UniqueFd fd(openat(parent, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!fd.valid()) return PathErr(errno, "open", shown);
      if (fchown(fd.get(), uid, gid) != 0) return PathErr(errno, "chown", shown);
      if (fchmod(fd.get(), perm) != 0) return PathErr(errno, "chmod", shown);
      KILN_RETURN_IF_ERROR(SetXattrs(e, fd.get(), full, shown));
      // Times once everything is in place: entries created inside change them.
      dirs_.push_back(DirTimes{comps, {times[0], times[1]}});
      return absl::OkStatus();
    }
    case AE_IFLNK: {
      const char* target = EntryString(archive_entry_symlink_utf8(e), archive_entry_symlink(e));
      if (target == nullptr) return absl::DataLossError(absl::StrCat(shown, ": empty symlink"));
      // Stored verbatim and never followed here.
      if (symlinkat(target, parent, name.c_str()) != 0) return PathErr(errno, "symlink", shown);
      if (fchownat(parent, name.c_str(), uid, gid, AT_SYMLINK_NOFOLLOW) != 0) {
        return PathErr(errno, "chown", shown);
      }
      KILN_RETURN_IF_ERROR(SetXattrs(e, -1, full, shown));
      if (utimensat(parent, name.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0) {
        return PathErr(errno, "chtimes", shown);
      }
      return absl::OkStatus();
    }
    case AE_IFCHR:
    case AE_IFBLK:
    case AE_IFIFO: {
      if (mknodat(parent, name.c_str(), type | perm, archive_entry_rdev(e)) != 0) {
        return PathErr(errno, "mknod", shown);
      }
      if (fchownat(parent, name.c_str(), uid, gid, AT_SYMLINK_NOFOLLOW) != 0) {
        return PathErr(errno, "chown", shown);
      }
      if (fchmodat(parent, name.c_str(), perm, 0) != 0) return PathErr(errno, "chmod", shown);
      KILN_RETURN_IF_ERROR(SetXattrs(e, -1, full, shown));
      if (utimensat(parent, name.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0) {
        return PathErr(errno, "chtimes", shown);
      }
      return absl::OkStatus();
    }
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("unsupported tar entry type ", static_cast<unsigned>(type), " for ", shown));
  }
}

absl::Status Unpacker::FinishDirs() {
  for (const DirTimes& d : dirs_) {
    KILN_RETURN_IF_ERROR(ctx_.Check("unpack layer"));
    if (d.comps.empty()) {
      if (utimensat(AT_FDCWD, dest_.c_str(), d.times, 0) != 0) {
        return PathErr(errno, "chtimes", dest_.string());
      }
      continue;
    }
    const std::string shown = JoinPath(d.comps, d.comps.size());
    const int fd = internal::OpenDirBeneath(root_, JoinPath(d.comps, d.comps.size() - 1), O_PATH);
    if (fd == -ENOENT) continue;  // removed by a later entry
    if (fd < 0) return OpenDir(JoinPath(d.comps, d.comps.size() - 1), O_PATH, shown).status();
    UniqueFd parent(fd);
    if (utimensat(parent.get(), d.comps.back().c_str(), d.times, AT_SYMLINK_NOFOLLOW) != 0 &&
        errno != ENOENT) {
      return PathErr(errno, "chtimes", shown);
    }
  }
  return absl::OkStatus();
}

// ---- Export ---------------------------------------------------------------------------------

struct ArchiveWriteFree {
  void operator()(struct archive* a) const { archive_write_free(a); }
};
struct EntryFree {
  void operator()(struct archive_entry* e) const { archive_entry_free(e); }
};

// The tar stream → diff id → encoder → blob digest → sink chain, and the walk that feeds it.
// Borrows its arguments; one per WriteLayerTo call; not thread-safe.
class LayerWriter {
 public:
  LayerWriter(const Context& ctx, fs::path root, const LayerOptions& options, const ByteSink& sink)
      : ctx_(ctx), root_(std::move(root)), options_(options), sink_(sink), buf_(kChunk, '\0') {}
  ~LayerWriter() {
    // archive_write_free flushes an unclosed archive: after a failure, nothing more goes out.
    discard_ = true;
    archive_.reset();
  }

  absl::StatusOr<LayerBlob> Run();

 private:
  static la_ssize_t WriteCallback(struct archive*, void* client, const void* buf, size_t len);
  absl::Status Tar(std::string_view data);
  absl::Status Walk(int dir, const std::string& rel);
  absl::Status Emit(int dir, const std::string& name, const std::string& rel,
                    const struct stat& st);
  // Writes one header; `symlink` is the target of a symlink entry.
  absl::Status Header(const std::string& path, const struct stat& st, mode_t type, int64_t size,
                      const std::string& full, bool xattrs, const char* symlink = nullptr);
  absl::Status WriteFile(int dir, const std::string& name, const std::string& rel, int64_t size);
  absl::Status ArchiveStatus(const std::string& what);
  int64_t Clamp(int64_t mtime) const {
    return options_.rewrite_timestamp && mtime > *options_.rewrite_timestamp
               ? *options_.rewrite_timestamp
               : mtime;
  }

  const Context& ctx_;
  const fs::path root_;
  const LayerOptions& options_;
  const ByteSink& sink_;
  std::unique_ptr<struct archive, ArchiveWriteFree> archive_;
  std::unique_ptr<struct archive_entry, EntryFree> entry_;
  std::unique_ptr<internal::Encoder> encoder_;
  absl::Status error_;  // the failure behind a libarchive write error
  bool discard_ = false;
  Sha256 diff_hash_;
  Sha256 blob_hash_;
  int64_t uncompressed_size_ = 0;
  int64_t size_ = 0;
  std::map<std::pair<dev_t, ino_t>, std::string> links_;
  std::string buf_;
};

la_ssize_t LayerWriter::WriteCallback(struct archive*, void* client, const void* buf, size_t len) {
  auto* w = static_cast<LayerWriter*>(client);
  if (w->discard_) return static_cast<la_ssize_t>(len);
  absl::Status st = w->Tar(std::string_view(static_cast<const char*>(buf), len));
  if (!st.ok()) {
    w->error_ = st;
    return -1;
  }
  return static_cast<la_ssize_t>(len);
}

absl::Status LayerWriter::Tar(std::string_view data) {
  diff_hash_.Update(data);
  uncompressed_size_ += static_cast<int64_t>(data.size());
  return encoder_->Write(data);
}

absl::Status LayerWriter::ArchiveStatus(const std::string& what) {
  if (!error_.ok()) return error_;
  return absl::InternalError(absl::StrCat("tar ", what, ": ", ArchiveError(archive_.get())));
}

absl::Status LayerWriter::Header(const std::string& path, const struct stat& st, mode_t type,
                                 int64_t size, const std::string& full, bool xattrs,
                                 const char* symlink) {
  struct archive_entry* e = entry_.get();
  archive_entry_clear(e);
  archive_entry_copy_pathname(e, path.c_str());
  archive_entry_set_filetype(e, type);
  if (symlink != nullptr) archive_entry_copy_symlink(e, symlink);
  archive_entry_set_perm(e, st.st_mode & 07777);
  archive_entry_set_uid(e, st.st_uid);
  archive_entry_set_gid(e, st.st_gid);
  // Whole seconds and no atime/ctime, like moby's FileInfoHeader: nothing that varies.
  archive_entry_set_mtime(e, Clamp(st.st_mtim.tv_sec), 0);
  archive_entry_set_size(e, size);
  if (type == AE_IFCHR || type == AE_IFBLK) {
    archive_entry_set_rdevmajor(e, major(st.st_rdev));
    archive_entry_set_rdevminor(e, minor(st.st_rdev));
  }
  if (xattrs) {
    ssize_t n = llistxattr(full.c_str(), nullptr, 0);
    if (n < 0 && errno != ENOTSUP) return PathErr(errno, "listxattr", full);
    if (n > 0) {
      std::string names(static_cast<size_t>(n), '\0');
      n = llistxattr(full.c_str(), names.data(), names.size());
      if (n < 0) return PathErr(errno, "listxattr", full);
      names.resize(static_cast<size_t>(n));
      std::vector<std::string> keys;
      for (size_t at = 0; at < names.size();) {
        const std::string key(names.c_str() + at);
        at += key.size() + 1;
        if (!key.empty() && !StartsWith(key, kOverlayXattrPrefix)) keys.push_back(key);
      }
      std::sort(keys.begin(), keys.end());
      for (const std::string& key : keys) {
        ssize_t vn = lgetxattr(full.c_str(), key.c_str(), nullptr, 0);
        if (vn < 0) return PathErr(errno, absl::StrCat("getxattr ", key), full);
        std::string value(static_cast<size_t>(vn), '\0');
        vn = lgetxattr(full.c_str(), key.c_str(), value.data(), value.size());
        if (vn < 0) return PathErr(errno, absl::StrCat("getxattr ", key), full);
        archive_entry_xattr_add_entry(e, key.c_str(), value.data(), static_cast<size_t>(vn));
      }
    }
  }
  if (archive_write_header(archive_.get(), e) != ARCHIVE_OK) return ArchiveStatus(path);
  return absl::OkStatus();
}

absl::Status LayerWriter::WriteFile(int dir, const std::string& name, const std::string& rel,
                                    int64_t size) {
  UniqueFd fd(openat(dir, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd.valid()) return PathErr(errno, "open", (root_ / rel).string());
  int64_t left = size;
  while (left > 0) {
    const ssize_t n = ::read(fd.get(), buf_.data(), std::min<int64_t>(left, buf_.size()));
    if (n < 0) {
      if (errno == EINTR) continue;
      return PathErr(errno, "read", (root_ / rel).string());
    }
    if (n == 0) break;
    if (archive_write_data(archive_.get(), buf_.data(), static_cast<size_t>(n)) < 0) {
      return ArchiveStatus(rel);
    }
    left -= n;
  }
  if (left != 0) {
    return absl::AbortedError(
        absl::StrCat("layer file ", (root_ / rel).string(), " changed size while exporting"));
  }
  return absl::OkStatus();
}

absl::Status LayerWriter::Emit(int dir, const std::string& name, const std::string& rel,
                               const struct stat& st) {
  const std::string full = (root_ / rel).string();
  if (S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0)) {
    const std::string parent = fs::path(rel).parent_path().string();
    const std::string wh =
        parent.empty() ? kWhiteoutPrefix + name : absl::StrCat(parent, "/", kWhiteoutPrefix, name);
    return Header(wh, st, AE_IFREG, 0, full, /*xattrs=*/false);
  }
  if (S_ISDIR(st.st_mode)) {
    KILN_RETURN_IF_ERROR(Header(rel + "/", st, AE_IFDIR, 0, full, /*xattrs=*/true));
    char v[2];
    if (lgetxattr(full.c_str(), kOpaqueXattr, v, sizeof(v)) == 1 && v[0] == 'y') {
      struct stat marker = st;
      marker.st_mode = S_IFREG;
      marker.st_uid = 0;
      marker.st_gid = 0;
      KILN_RETURN_IF_ERROR(
          Header(absl::StrCat(rel, "/", kOpaqueWhiteout), marker, AE_IFREG, 0, full, false));
    }
    UniqueFd sub(openat(dir, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!sub.valid()) return PathErr(errno, "open", full);
    return Walk(sub.get(), rel);
  }
  if (S_ISSOCK(st.st_mode)) return absl::OkStatus();  // tar cannot hold sockets
  if (!S_ISDIR(st.st_mode) && st.st_nlink > 1) {
    auto [it, first] = links_.try_emplace({st.st_dev, st.st_ino}, rel);
    if (!first) {
      struct archive_entry* e = entry_.get();
      archive_entry_clear(e);
      archive_entry_copy_pathname(e, rel.c_str());
      archive_entry_set_filetype(e, AE_IFREG);
      archive_entry_copy_hardlink(e, it->second.c_str());
      archive_entry_set_perm(e, st.st_mode & 07777);
      archive_entry_set_uid(e, st.st_uid);
      archive_entry_set_gid(e, st.st_gid);
      archive_entry_set_mtime(e, Clamp(st.st_mtim.tv_sec), 0);
      archive_entry_set_size(e, 0);
      if (archive_write_header(archive_.get(), e) != ARCHIVE_OK) return ArchiveStatus(rel);
      return absl::OkStatus();
    }
  }
  if (S_ISREG(st.st_mode)) {
    KILN_RETURN_IF_ERROR(Header(rel, st, AE_IFREG, st.st_size, full, true));
    return WriteFile(dir, name, rel, st.st_size);
  }
  if (S_ISLNK(st.st_mode)) {
    std::string target(static_cast<size_t>(st.st_size) + 1, '\0');
    const ssize_t n = readlinkat(dir, name.c_str(), target.data(), target.size());
    if (n < 0) return PathErr(errno, "readlink", full);
    target.resize(static_cast<size_t>(n));
    return Header(rel, st, AE_IFLNK, 0, full, true, target.c_str());
  }
  mode_t type = S_ISCHR(st.st_mode) ? AE_IFCHR : S_ISBLK(st.st_mode) ? AE_IFBLK : AE_IFIFO;
  return Header(rel, st, type, 0, full, true);
}

absl::Status LayerWriter::Walk(int dir, const std::string& rel) {
  KILN_RETURN_IF_ERROR(ctx_.Check("export layer"));
  std::vector<std::pair<std::string, struct stat>> whiteouts;
  std::vector<std::pair<std::string, struct stat>> others;
  {
    DIR* d = fdopendir(dup(dir));
    if (d == nullptr) return PathErr(errno, "list", (root_ / rel).string());
    errno = 0;
    while (struct dirent* de = readdir(d)) {
      std::string n = de->d_name;
      if (n == "." || n == "..") continue;
      struct stat st;
      if (fstatat(dir, n.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        const int err = errno;
        closedir(d);
        return PathErr(err, "stat", (root_ / rel / n).string());
      }
      const bool whiteout = S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0);
      (whiteout ? whiteouts : others).emplace_back(std::move(n), st);
    }
    closedir(d);
  }
  auto by_name = [](const auto& x, const auto& y) { return x.first < y.first; };
  std::sort(whiteouts.begin(), whiteouts.end(), by_name);
  std::sort(others.begin(), others.end(), by_name);
  // The image-spec asks for whiteouts before their siblings.
  for (auto* list : {&whiteouts, &others}) {
    for (const auto& [name, st] : *list) {
      KILN_RETURN_IF_ERROR(Emit(dir, name, rel.empty() ? name : rel + "/" + name, st));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<LayerBlob> LayerWriter::Run() {
  const int level = options_.level.value_or(options_.compression == Compression::kZstd ? 3 : 6);
  KILN_ASSIGN_OR_RETURN(encoder_,
                        internal::NewEncoder(options_.compression, level,
                                             [this](std::string_view data) -> absl::Status {
                                               blob_hash_.Update(data);
                                               size_ += static_cast<int64_t>(data.size());
                                               return sink_(data);
                                             }));
  UniqueFd root(open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root.valid()) return PathErr(errno, "open", root_.string());

  archive_.reset(archive_write_new());
  entry_.reset(archive_entry_new());
  if (!archive_ || !entry_) return absl::ResourceExhaustedError("libarchive: out of memory");
  struct archive* a = archive_.get();
  if (archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
      archive_write_set_format_option(a, "pax", "xattrheader", "SCHILY") != ARCHIVE_OK ||
      // Names are bytes, as in Go's archive/tar: no conversion through the process locale
      // (which fails for non-ASCII names under the C locale).
      archive_write_set_format_option(a, "pax", "hdrcharset", "BINARY") != ARCHIVE_OK ||
      archive_write_set_bytes_per_block(a, 64 * 1024) != ARCHIVE_OK ||
      archive_write_set_bytes_in_last_block(a, 1) != ARCHIVE_OK) {
    return absl::InternalError(absl::StrCat("libarchive: ", ArchiveError(a)));
  }
  if (archive_write_open2(a, this, nullptr, WriteCallback, nullptr, nullptr) != ARCHIVE_OK) {
    return ArchiveStatus("open");
  }
  KILN_RETURN_IF_ERROR(Walk(root.get(), ""));
  if (archive_write_close(a) != ARCHIVE_OK) return ArchiveStatus("close");
  KILN_RETURN_IF_ERROR(encoder_->Finish());

  LayerBlob blob;
  blob.media_type = LayerMediaType(options_.compression, options_.oci_media_types);
  blob.diff_id = "sha256:" + diff_hash_.HexDigest();
  blob.uncompressed_size = uncompressed_size_;
  blob.digest = "sha256:" + blob_hash_.HexDigest();
  blob.size = size_;
  return blob;
}

}  // namespace

absl::StatusOr<Compression> ParseCompression(std::string_view name) {
  if (name == "gzip") return Compression::kGzip;
  if (name == "zstd") return Compression::kZstd;
  if (name == "uncompressed") return Compression::kUncompressed;
  return absl::InvalidArgumentError(absl::StrCat("unsupported compression \"", AV(name),
                                                 "\" (supported: gzip, zstd, uncompressed)"));
}

std::string LayerMediaType(Compression compression, bool oci_media_types) {
  switch (compression) {
    case Compression::kGzip:
      return oci_media_types ? kOciLayerGzip : kDockerLayerGzip;
    case Compression::kZstd:
      return kOciLayerZstd;
    case Compression::kUncompressed:
      break;
  }
  return oci_media_types ? kOciLayer : kDockerLayer;
}

absl::StatusOr<UnpackResult> UnpackLayer(const Context& ctx, const fs::path& blob,
                                         std::string_view media_type, const fs::path& dest,
                                         const UnpackOptions& options) {
  KILN_RETURN_IF_ERROR(CheckLayerMediaType(media_type));
  UniqueFd root(open(dest.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root.valid()) return PathErr(errno, "open", dest.string());
  {
    UniqueFd probe(open(dest.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    DIR* d = probe.valid() ? fdopendir(dup(probe.get())) : nullptr;
    if (d == nullptr) return PathErr(errno, "list", dest.string());
    bool empty = true;
    while (struct dirent* de = readdir(d)) {
      if (std::strcmp(de->d_name, ".") != 0 && std::strcmp(de->d_name, "..") != 0) empty = false;
    }
    closedir(d);
    if (!empty) {
      return absl::FailedPreconditionError(
          absl::StrCat("unpack layer: ", dest.string(), " is not empty"));
    }
  }
  UniqueFd fd(open(blob.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return PathErr(errno, "open", blob.string());
  BlobReader reader(ctx, std::move(fd), blob.string());
  KILN_RETURN_IF_ERROR(reader.Start());

  std::unique_ptr<struct archive, decltype(&archive_read_free)> a(archive_read_new(),
                                                                  &archive_read_free);
  if (!a) return absl::ResourceExhaustedError("libarchive: out of memory");
  if (archive_read_support_format_tar(a.get()) != ARCHIVE_OK) {
    return absl::FailedPreconditionError("libarchive has no tar support");
  }
  if (archive_read_open(a.get(), &reader, nullptr, ReadCallback, nullptr) != ARCHIVE_OK) {
    if (!reader.status.ok()) return reader.status;
    return absl::DataLossError(
        absl::StrCat("layer ", blob.string(), ": not a tar stream: ", ArchiveError(a.get())));
  }
  Unpacker unpacker(ctx, root.get(), dest);
  for (;;) {
    KILN_RETURN_IF_ERROR(ctx.Check("unpack layer"));
    struct archive_entry* e = nullptr;
    const int rc = archive_read_next_header(a.get(), &e);
    if (rc == ARCHIVE_EOF) break;
    if (rc != ARCHIVE_OK && rc != ARCHIVE_WARN) {
      if (!reader.status.ok()) return reader.status;
      return absl::DataLossError(
          absl::StrCat("layer ", blob.string(), ": ", ArchiveError(a.get())));
    }
    absl::Status st = unpacker.Entry(a.get(), e);
    if (!st.ok()) return reader.status.ok() ? st : reader.status;
  }
  KILN_RETURN_IF_ERROR(unpacker.FinishDirs());
  KILN_RETURN_IF_ERROR(reader.Drain());

  UnpackResult result;
  result.compression = reader.compression();
  result.size = reader.size();
  result.uncompressed_size = reader.uncompressed_size();
  result.digest = reader.Digest();
  result.diff_id = reader.DiffId();
  if (options.expected_digest && *options.expected_digest != result.digest) {
    return absl::FailedPreconditionError(
        absl::StrCat("layer ", blob.string(), ": digest mismatch: expected ",
                     *options.expected_digest, ", got ", result.digest));
  }
  return result;
}

absl::StatusOr<LayerBlob> WriteLayerTo(const Context& ctx, const fs::path& layer_dir,
                                       const LayerOptions& options, const ByteSink& sink) {
  LayerWriter writer(ctx, layer_dir, options, sink);
  absl::StatusOr<LayerBlob> blob = writer.Run();
  if (!blob.ok()) return Annotate(blob.status(), absl::StrCat("export layer ", layer_dir.string()));
  return blob;
}

absl::StatusOr<LayerBlob> WriteLayer(const Context& ctx, const fs::path& layer_dir,
                                     const LayerOptions& options, content::Store& store) {
  const std::string key = absl::StrCat(
      "layer-", Sha256Digest(absl::StrCat(
                    layer_dir.string(), "\n", static_cast<int>(options.compression), "\n",
                    options.level.value_or(-1), "\n", options.rewrite_timestamp.value_or(-1))));
  // One pass: the store learns the digest at Commit.
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<content::Writer> writer,
                        store.OpenWriter(ctx, key, "", -1));
  KILN_ASSIGN_OR_RETURN(LayerBlob blob,
                        WriteLayerTo(ctx, layer_dir, options,
                                     [&](std::string_view data) { return writer->Write(data); }));
  KILN_RETURN_IF_ERROR(writer->Commit());
  if (writer->digest() != blob.digest) {
    return absl::InternalError(absl::StrCat("layer ", layer_dir.string(), ": stored as ",
                                            writer->digest(), ", hashed as ", blob.digest));
  }
  return blob;
}

}  // namespace kiln::image
