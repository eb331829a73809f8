#include "fsutil/index.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <unordered_map>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "base/digest.h"
#include "base/status.h"
#include "fsutil/internal/fd.h"
#include "fsutil/internal/index_builder.h"
#include "fsutil/internal/tree.h"
#include "fsutil/paths.h"
#include "fsutil/stat.h"

namespace kiln::fsutil {
namespace {

constexpr std::string_view kHeader = "kiln-fsutil-index v1";
constexpr std::string_view kChecksumHeader = "kiln-fsutil-checksum v1\n";
constexpr size_t kReadChunk = 256 * 1024;

std::string Escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '%':
        out += "%25";
        break;
      case '\t':
        out += "%09";
        break;
      case '\n':
        out += "%0A";
        break;
      case '\r':
        out += "%0D";
        break;
      default:
        out += c;
    }
  }
  return out;
}

bool Unescape(std::string_view s, std::string* out) {
  out->clear();
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out->push_back(s[i]);
      continue;
    }
    if (i + 2 >= s.size()) return false;
    const std::string_view hex = s.substr(i + 1, 2);
    if (hex == "25") {
      out->push_back('%');
    } else if (hex == "09") {
      out->push_back('\t');
    } else if (hex == "0A") {
      out->push_back('\n');
    } else if (hex == "0D") {
      out->push_back('\r');
    } else {
      return false;
    }
    i += 2;
  }
  return true;
}

int64_t Nanos(const struct timespec& ts) { return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec; }

// SHA-256 of the regular file `name` in `dirfd` (opened without following symlinks).
absl::StatusOr<std::string> HashFile(int dirfd, const std::string& name, uint64_t* bytes) {
  const int fd = openat(dirfd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return ErrnoToStatus(errno, absl::StrCat("open ", name));
  internal::UniqueFd file(fd);
  Sha256 hash;
  std::string buf(kReadChunk, '\0');
  while (true) {
    const ssize_t n = read(file.get(), buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoToStatus(errno, absl::StrCat("read ", name));
    }
    if (n == 0) break;
    hash.Update(std::string_view(buf.data(), static_cast<size_t>(n)));
    *bytes += static_cast<uint64_t>(n);
  }
  return hash.HexDigest();
}

absl::Status WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoToStatus(errno, "write");
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

std::string NormalizeSelector(std::string_view selector) {
  std::string s = CleanPath(selector);
  while (!s.empty() && s[0] == '/') s.erase(0, 1);
  if (s == ".") s.clear();
  return s;
}

}  // namespace

namespace internal {

absl::StatusOr<std::vector<IndexRecord>> IndexTree(
    int root_fd, bool digests, const ContentIndex* previous, const KnownDigests* known,
    IndexBuildStats* stats, const std::function<absl::Status(const IndexRecord&)>& visit) {
  IndexBuildStats local_stats;
  if (stats == nullptr) stats = &local_stats;
  std::vector<IndexRecord> records;
  std::unordered_map<uint64_t, size_t> by_inode;  // first record of each multiply linked inode
  TreeIterator it(root_fd);
  while (true) {
    KILN_ASSIGN_OR_RETURN(bool more, it.Next());
    if (!more) break;
    if (!it.dir_error().ok()) return it.dir_error();
    struct stat st;
    absl::StatusOr<::fsutil::types::Stat> wire = it.Stat(StatOptions{.xattrs = false}, &st);
    if (absl::IsNotFound(wire.status())) continue;
    if (!wire.ok()) return wire.status();
    IndexRecord rec;
    rec.path = wire->path();
    rec.mode = wire->mode();
    rec.uid = wire->uid();
    rec.gid = wire->gid();
    rec.size = wire->size();
    rec.mtime_ns = wire->modtime();
    rec.ctime_ns = Nanos(st.st_ctim);
    rec.ino = static_cast<uint64_t>(st.st_ino);
    rec.devmajor = wire->devmajor();
    rec.devminor = wire->devminor();
    rec.linkname = wire->linkname();
    if (visit) KILN_RETURN_IF_ERROR(visit(rec));

    if (digests && S_ISREG(st.st_mode)) {
      if (known != nullptr) {
        if (auto k = known->find(rec.path); k != known->end() && k->second.ino == rec.ino) {
          rec.sha256 = k->second.sha256;
        }
      }
      if (rec.sha256.empty() && st.st_nlink > 1) {
        if (auto b = by_inode.find(rec.ino); b != by_inode.end()) {
          rec.sha256 = records[b->second].sha256;
        }
      }
      if (rec.sha256.empty() && previous != nullptr) {
        const IndexRecord* old = previous->Find(rec.path);
        if (old != nullptr && !old->sha256.empty() && old->ino == rec.ino &&
            old->size == rec.size && old->mtime_ns == rec.mtime_ns &&
            old->ctime_ns == rec.ctime_ns) {
          rec.sha256 = old->sha256;
          ++stats->files_reused;
        }
      }
      if (rec.sha256.empty()) {
        KILN_ASSIGN_OR_RETURN(rec.sha256,
                              HashFile(it.parent_fd(), it.name(), &stats->bytes_hashed));
        ++stats->files_hashed;
      }
      if (st.st_nlink > 1) by_inode.emplace(rec.ino, records.size());
    }
    records.push_back(std::move(rec));
  }
  return records;
}

}  // namespace internal

ContentIndex::ContentIndex(std::vector<IndexRecord> records) : records_(std::move(records)) {}

absl::StatusOr<ContentIndex> ContentIndex::Load(const std::string& file) {
  const int fd = open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoToStatus(errno, absl::StrCat("open ", file));
  internal::UniqueFd in(fd);
  std::string data;
  std::string buf(kReadChunk, '\0');
  while (true) {
    const ssize_t n = read(in.get(), buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoToStatus(errno, absl::StrCat("read ", file));
    }
    if (n == 0) break;
    data.append(buf.data(), static_cast<size_t>(n));
  }
  auto corrupt = [&](size_t line) {
    return absl::DataLossError(absl::StrFormat("%s:%d: not a valid fsutil index", file, line));
  };
  std::vector<absl::string_view> lines = absl::StrSplit(data, '\n');
  if (lines.empty() || SV(lines[0]) != kHeader) return corrupt(1);
  std::vector<IndexRecord> records;
  for (size_t i = 1; i < lines.size(); ++i) {
    if (lines[i].empty() && i + 1 == lines.size()) break;
    std::vector<absl::string_view> f = absl::StrSplit(lines[i], '\t');
    if (f.size() != 12) return corrupt(i + 1);
    IndexRecord r;
    if (!Unescape(SV(f[0]), &r.path) || !absl::SimpleHexAtoi(f[1], &r.mode) ||
        !absl::SimpleAtoi(f[2], &r.uid) || !absl::SimpleAtoi(f[3], &r.gid) ||
        !absl::SimpleAtoi(f[4], &r.size) || !absl::SimpleAtoi(f[5], &r.mtime_ns) ||
        !absl::SimpleAtoi(f[6], &r.ctime_ns) || !absl::SimpleAtoi(f[7], &r.ino) ||
        !absl::SimpleAtoi(f[8], &r.devmajor) || !absl::SimpleAtoi(f[9], &r.devminor) ||
        !Unescape(SV(f[11]), &r.linkname)) {
      return corrupt(i + 1);
    }
    if (f[10] != "-") {
      if (f[10].size() != 64) return corrupt(i + 1);
      r.sha256 = std::string(f[10]);
    }
    if (!records.empty() && ComparePath(records.back().path, r.path) >= 0) return corrupt(i + 1);
    records.push_back(std::move(r));
  }
  return ContentIndex(std::move(records));
}

absl::Status ContentIndex::Save(const std::string& file) const {
  std::string out = absl::StrCat(AV(kHeader), "\n");
  for (const IndexRecord& r : records_) {
    absl::StrAppendFormat(&out, "%s\t%x\t%u\t%u\t%d\t%d\t%d\t%u\t%d\t%d\t%s\t%s\n", Escape(r.path),
                          r.mode, r.uid, r.gid, r.size, r.mtime_ns, r.ctime_ns, r.ino, r.devmajor,
                          r.devminor, r.sha256.empty() ? "-" : r.sha256, Escape(r.linkname));
  }
  const std::string dir = DirPath(file);
  const std::string tmp = JoinPath({dir, internal::TempName()});
  const int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoToStatus(errno, absl::StrCat("create ", tmp));
  internal::UniqueFd f(fd);
  absl::Status st = WriteAll(f.get(), out);
  if (st.ok() && fsync(f.get()) != 0) st = ErrnoToStatus(errno, absl::StrCat("fsync ", tmp));
  f.Reset();
  if (st.ok() && rename(tmp.c_str(), file.c_str()) != 0) {
    st = ErrnoToStatus(errno, absl::StrCat("rename ", tmp));
  }
  if (!st.ok()) {
    unlink(tmp.c_str());
    return st;
  }
  if (const int dfd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dfd >= 0) {
    (void)fsync(dfd);  // durability of the rename; best effort
    close(dfd);
  }
  return absl::OkStatus();
}

const IndexRecord* ContentIndex::Find(std::string_view path) const {
  auto it = std::lower_bound(
      records_.begin(), records_.end(), path,
      [](const IndexRecord& r, std::string_view p) { return ComparePath(r.path, p) < 0; });
  if (it == records_.end() || it->path != path) return nullptr;
  return &*it;
}

absl::StatusOr<std::string> ContentIndex::Checksum(std::string_view selector) const {
  const std::string sel = NormalizeSelector(selector);
  auto begin = records_.begin();
  if (!sel.empty()) {
    begin = std::lower_bound(
        records_.begin(), records_.end(), sel,
        [](const IndexRecord& r, const std::string& p) { return ComparePath(r.path, p) < 0; });
    if (begin == records_.end() || begin->path != sel) {
      return absl::NotFoundError(absl::StrCat("checksum: no such path: ", sel));
    }
  }
  Sha256 hash;
  hash.Update(kChecksumHeader);
  for (auto it = begin; it != records_.end() && PathWithin(it->path, sel); ++it) {
    const IndexRecord& r = *it;
    std::string_view rel = r.path;
    if (!sel.empty()) rel = r.path == sel ? std::string_view() : rel.substr(sel.size() + 1);
    const bool symlink = (r.mode & kModeSymlink) != 0;
    // NUL-separated fields; only the last (a hex digest) may not contain a newline, so the
    // encoding is unambiguous.
    constexpr absl::string_view kSep("\0", 1);
    hash.Update(absl::StrCat(AV(rel), kSep, absl::Hex(r.mode), kSep, r.uid, kSep, r.gid, kSep,
                             r.devmajor, kSep, r.devminor, kSep, symlink ? r.linkname : "", kSep,
                             r.sha256, "\n"));
  }
  return absl::StrCat("sha256:", hash.HexDigest());
}

absl::StatusOr<ContentIndex> BuildIndex(const std::string& root, const ContentIndex* previous,
                                        IndexBuildStats* stats) {
  KILN_ASSIGN_OR_RETURN(internal::UniqueFd root_fd, internal::OpenDirectory(root));
  KILN_ASSIGN_OR_RETURN(
      std::vector<IndexRecord> records,
      internal::IndexTree(root_fd.get(), /*digests=*/true, previous, nullptr, stats, nullptr));
  return ContentIndex(std::move(records));
}

absl::StatusOr<std::vector<std::string>> TreeChecksums(const std::string& root,
                                                       const std::string& index_file,
                                                       const std::vector<std::string>& selectors,
                                                       IndexBuildStats* stats) {
  absl::StatusOr<ContentIndex> previous = ContentIndex::Load(index_file);
  const ContentIndex* prev = previous.ok() ? &*previous : nullptr;
  IndexBuildStats local;
  if (stats == nullptr) stats = &local;
  KILN_ASSIGN_OR_RETURN(ContentIndex index, BuildIndex(root, prev, stats));
  bool changed = prev == nullptr || prev->records().size() != index.records().size() ||
                 stats->files_hashed > 0;
  if (!changed) {
    for (size_t i = 0; i < index.records().size() && !changed; ++i) {
      const IndexRecord& a = index.records()[i];
      const IndexRecord& b = prev->records()[i];
      changed = a.path != b.path || a.mode != b.mode || a.uid != b.uid || a.gid != b.gid ||
                a.size != b.size || a.mtime_ns != b.mtime_ns || a.ctime_ns != b.ctime_ns ||
                a.ino != b.ino || a.linkname != b.linkname;
    }
  }
  if (changed) KILN_RETURN_IF_ERROR(index.Save(index_file));
  std::vector<std::string> out;
  out.reserve(selectors.size());
  for (const std::string& sel : selectors) {
    KILN_ASSIGN_OR_RETURN(std::string sum, index.Checksum(sel));
    out.push_back(std::move(sum));
  }
  return out;
}

}  // namespace kiln::fsutil
