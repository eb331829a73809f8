#include "tests/daemon/ops/test_tree.h"

#include <archive.h>
#include <archive_entry.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace kiln::ops::test {
namespace fs = std::filesystem;

ScratchDir::ScratchDir(const std::string& tag) {
  static std::atomic<int> counter{0};
  path_ = fs::path(::testing::TempDir()) /
          ("kiln-ops-" + tag + "-" + std::to_string(getpid()) + "-" + std::to_string(counter++));
  std::error_code ec;
  fs::remove_all(path_, ec);
  fs::create_directories(path_);
  // Resolve any symlink in TempDir() so that expectations compare real paths.
  path_ = fs::canonical(path_).string();
}

ScratchDir::~ScratchDir() {
  std::error_code ec;
  // Make everything writable first: tests create read-only directories.
  for (auto it = fs::recursive_directory_iterator(path_, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_directory(ec) && !it->is_symlink(ec)) {
      fs::permissions(it->path(), fs::perms::owner_all, fs::perm_options::add, ec);
    }
  }
  fs::remove_all(path_, ec);
}

void WriteFile(const std::string& path, const std::string& data, mode_t mode) {
  fs::create_directories(fs::path(path).parent_path());
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    ASSERT_TRUE(out.good()) << path;
    out << data;
  }
  ASSERT_EQ(chmod(path.c_str(), mode), 0) << path;
}

void MakeDirs(const std::string& path, mode_t mode) {
  fs::create_directories(path);
  ASSERT_EQ(chmod(path.c_str(), mode), 0) << path;
}

void MakeSymlink(const std::string& target, const std::string& path) {
  fs::create_directories(fs::path(path).parent_path());
  ASSERT_EQ(symlink(target.c_str(), path.c_str()), 0) << path;
}

std::optional<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in.good()) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::optional<struct stat> Lstat(const std::string& path) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) return std::nullopt;
  return st;
}

bool Exists(const std::string& path) { return Lstat(path).has_value(); }

std::string ReadLink(const std::string& path) {
  std::error_code ec;
  return fs::read_symlink(path, ec).string();
}

std::vector<std::string> ListTree(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    out.push_back(fs::relative(it->path(), dir).string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

void WriteTar(const std::string& path, const std::vector<TarEntry>& entries, bool gzip) {
  struct archive* a = archive_write_new();
  ASSERT_NE(a, nullptr);
  ASSERT_EQ(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
  if (gzip) {
    ASSERT_EQ(archive_write_add_filter_gzip(a), ARCHIVE_OK);
  }
  ASSERT_EQ(archive_write_open_filename(a, path.c_str()), ARCHIVE_OK) << archive_error_string(a);
  for (const TarEntry& t : entries) {
    struct archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, t.name.c_str());
    archive_entry_set_perm(e, t.mode);
    archive_entry_set_uid(e, t.uid);
    archive_entry_set_gid(e, t.gid);
    archive_entry_set_mtime(e, t.mtime, 0);
    switch (t.type) {
      case TarEntry::Type::kFile:
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_size(e, static_cast<la_int64_t>(t.data.size()));
        break;
      case TarEntry::Type::kDir:
        archive_entry_set_filetype(e, AE_IFDIR);
        break;
      case TarEntry::Type::kSymlink:
        archive_entry_set_filetype(e, AE_IFLNK);
        archive_entry_set_symlink(e, t.linkname.c_str());
        break;
      case TarEntry::Type::kHardlink:
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_hardlink(e, t.linkname.c_str());
        archive_entry_set_size(e, 0);
        break;
      case TarEntry::Type::kFifo:
        archive_entry_set_filetype(e, AE_IFIFO);
        break;
    }
    ASSERT_EQ(archive_write_header(a, e), ARCHIVE_OK) << archive_error_string(a);
    if (t.type == TarEntry::Type::kFile && !t.data.empty()) {
      ASSERT_EQ(archive_write_data(a, t.data.data(), t.data.size()),
                static_cast<la_ssize_t>(t.data.size()));
    }
    archive_entry_free(e);
  }
  ASSERT_EQ(archive_write_close(a), ARCHIVE_OK);
  archive_write_free(a);
}

void WriteGzip(const std::string& path, const std::string& data) {
  struct archive* a = archive_write_new();
  ASSERT_NE(a, nullptr);
  ASSERT_EQ(archive_write_set_format_raw(a), ARCHIVE_OK);
  ASSERT_EQ(archive_write_add_filter_gzip(a), ARCHIVE_OK);
  ASSERT_EQ(archive_write_open_filename(a, path.c_str()), ARCHIVE_OK) << archive_error_string(a);
  struct archive_entry* e = archive_entry_new();
  archive_entry_set_pathname(e, "data");
  archive_entry_set_filetype(e, AE_IFREG);
  archive_entry_set_size(e, static_cast<la_int64_t>(data.size()));
  ASSERT_EQ(archive_write_header(a, e), ARCHIVE_OK) << archive_error_string(a);
  ASSERT_EQ(archive_write_data(a, data.data(), data.size()), static_cast<la_ssize_t>(data.size()));
  archive_entry_free(e);
  ASSERT_EQ(archive_write_close(a), ARCHIVE_OK);
  archive_write_free(a);
}

pb::FileActionMkDir MkdirAction(const std::string& path, int mode, bool parents) {
  pb::FileActionMkDir a;
  a.set_path(path);
  a.set_mode(mode);
  a.set_makeparents(parents);
  a.set_timestamp(-1);
  return a;
}

pb::FileActionMkFile MkfileAction(const std::string& path, const std::string& data, int mode) {
  pb::FileActionMkFile a;
  a.set_path(path);
  a.set_data(data);
  a.set_mode(mode);
  a.set_timestamp(-1);
  return a;
}

pb::FileActionRm RmAction(const std::string& path) {
  pb::FileActionRm a;
  a.set_path(path);
  return a;
}

pb::FileActionSymlink SymlinkAction(const std::string& oldpath, const std::string& newpath) {
  pb::FileActionSymlink a;
  a.set_oldpath(oldpath);
  a.set_newpath(newpath);
  a.set_timestamp(-1);
  return a;
}

pb::FileActionCopy CopyAction(const std::string& src, const std::string& dest) {
  pb::FileActionCopy a;
  a.set_src(src);
  a.set_dest(dest);
  a.set_mode(-1);
  a.set_timestamp(-1);
  return a;
}

}  // namespace kiln::ops::test
