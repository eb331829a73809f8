#pragma once
// Helpers shared by the image tests: temp dirs, tree snapshots, hand-made tar streams.

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/digest.h"

namespace kiln::image::testing {

namespace fs = std::filesystem;

inline fs::path MakeTempDir(const std::string& prefix) {
  fs::path dir = fs::path(::testing::TempDir()) /
                 absl::StrCat(prefix, std::random_device{}(), "_", ::getpid());
  fs::create_directories(dir);
  return dir;
}

inline std::string ReadAll(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

inline void WriteAll(const fs::path& p, const std::string& data) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << data;
}

// Every entry below `root`: type, mode, owner, mtime (seconds), size, content digest, link
// target, device numbers and xattrs, keyed by relative path.
inline std::map<std::string, std::string> Snapshot(const fs::path& root, bool with_mtime = true) {
  std::map<std::string, std::string> out;
  std::function<void(const fs::path&)> walk = [&](const fs::path& dir) {
    for (const auto& de : fs::directory_iterator(dir)) {
      const fs::path p = de.path();
      struct stat st;
      if (::lstat(p.c_str(), &st) != 0) continue;
      std::string d = absl::StrCat("mode=", st.st_mode, " uid=", st.st_uid, " gid=", st.st_gid);
      if (with_mtime && !S_ISLNK(st.st_mode)) absl::StrAppend(&d, " mtime=", st.st_mtim.tv_sec);
      if (S_ISREG(st.st_mode)) {
        absl::StrAppend(&d, " size=", st.st_size, " data=", Sha256Digest(ReadAll(p)),
                        " nlink=", st.st_nlink);
      }
      if (S_ISLNK(st.st_mode)) absl::StrAppend(&d, " -> ", fs::read_symlink(p).string());
      if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
        absl::StrAppend(&d, " dev=", major(st.st_rdev), ":", minor(st.st_rdev));
      }
      char names[4096];
      ssize_t n = ::llistxattr(p.c_str(), names, sizeof(names));
      std::vector<std::string> keys;
      for (ssize_t at = 0; at < n;) {
        keys.emplace_back(names + at);
        at += static_cast<ssize_t>(keys.back().size()) + 1;
      }
      std::sort(keys.begin(), keys.end());
      for (const std::string& k : keys) {
        char v[4096];
        ssize_t vn = ::lgetxattr(p.c_str(), k.c_str(), v, sizeof(v));
        absl::StrAppend(&d, " xattr:", k, "=", std::string(v, vn > 0 ? vn : 0));
      }
      out[p.lexically_relative(root).string()] = d;
      if (S_ISDIR(st.st_mode)) walk(p);
    }
  };
  walk(root);
  return out;
}

// Sets whole-second times on every entry below `root` (bottom-up, so directories keep theirs).
inline void SetTimes(const fs::path& root, time_t t) {
  std::vector<fs::path> all;
  for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator();
       ++it) {
    all.push_back(it->path());
  }
  std::reverse(all.begin(), all.end());
  const struct timespec times[2] = {{t, 0}, {t, 0}};
  for (const fs::path& p : all) ::utimensat(AT_FDCWD, p.c_str(), times, AT_SYMLINK_NOFOLLOW);
}

// One entry of a hand-made tar.
struct TarEntry {
  std::string name;
  mode_t type = AE_IFREG;
  std::string data;      // file content
  std::string link;      // symlink target
  std::string hardlink;  // hardlink target
  mode_t perm = 0644;
  std::map<std::string, std::string> xattrs;
};

// An uncompressed PAX tar of `entries`.
inline std::string MakeTar(const std::vector<TarEntry>& entries) {
  std::string out;
  struct archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  archive_write_set_bytes_in_last_block(a, 1);
  archive_write_open2(
      a, &out, nullptr,
      [](struct archive*, void* client, const void* buf, size_t len) -> la_ssize_t {
        static_cast<std::string*>(client)->append(static_cast<const char*>(buf), len);
        return static_cast<la_ssize_t>(len);
      },
      nullptr, nullptr);
  for (const TarEntry& t : entries) {
    struct archive_entry* e = archive_entry_new();
    archive_entry_copy_pathname(e, t.name.c_str());
    archive_entry_set_filetype(e, t.type);
    archive_entry_set_perm(e, t.perm);
    archive_entry_set_mtime(e, 1000, 0);
    if (!t.link.empty()) archive_entry_copy_symlink(e, t.link.c_str());
    if (!t.hardlink.empty()) archive_entry_copy_hardlink(e, t.hardlink.c_str());
    archive_entry_set_size(e, t.type == AE_IFREG && t.hardlink.empty() ? t.data.size() : 0);
    for (const auto& [k, v] : t.xattrs)
      archive_entry_xattr_add_entry(e, k.c_str(), v.data(), v.size());
    archive_write_header(a, e);
    if (t.type == AE_IFREG && !t.data.empty()) archive_write_data(a, t.data.data(), t.data.size());
    archive_entry_free(e);
  }
  archive_write_close(a);
  archive_write_free(a);
  return out;
}

// The entries of a tar (any compression libarchive reads): name -> (type, size, xattrs).
struct ListedEntry {
  std::string name;
  mode_t type;
  int64_t size;
  int64_t mtime;
  bool has_mtime_nsec;
  std::string hardlink;
  std::string uname;
  std::vector<std::string> xattrs;
  std::string data;
};
inline std::vector<ListedEntry> ListTar(const std::string& bytes) {
  std::vector<ListedEntry> out;
  struct archive* a = archive_read_new();
  archive_read_support_filter_all(a);
  archive_read_support_format_tar(a);
  EXPECT_EQ(archive_read_open_memory(a, bytes.data(), bytes.size()), ARCHIVE_OK);
  struct archive_entry* e;
  while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
    ListedEntry l;
    const char* name = archive_entry_pathname(e);
    if (name == nullptr) name = archive_entry_pathname_utf8(e);
    l.name = name != nullptr ? name : "<unreadable name>";
    l.type = archive_entry_filetype(e);
    l.size = archive_entry_size(e);
    l.mtime = archive_entry_mtime(e);
    l.has_mtime_nsec = archive_entry_mtime_nsec(e) != 0;
    l.hardlink = archive_entry_hardlink(e) ? archive_entry_hardlink(e) : "";
    l.uname = archive_entry_uname(e) ? archive_entry_uname(e) : "";
    archive_entry_xattr_reset(e);
    const char* k;
    const void* v;
    size_t n;
    while (archive_entry_xattr_next(e, &k, &v, &n) == ARCHIVE_OK) l.xattrs.push_back(k);
    char buf[65536];
    la_ssize_t r;
    while ((r = archive_read_data(a, buf, sizeof(buf))) > 0) l.data.append(buf, r);
    out.push_back(std::move(l));
  }
  archive_read_free(a);
  return out;
}

}  // namespace kiln::image::testing
