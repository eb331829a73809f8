#include "daemon/exporter/exporter.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "daemon/exporter/image_export.h"
#include "daemon/session/filesync.h"

namespace kiln::exporter {
namespace fs = std::filesystem;
namespace {

constexpr char kExporterIdHeader[] = "buildkit-attachable-exporter-id";

struct WriteState {
  const std::function<absl::Status(std::string_view)>* write;
  absl::Status status;
};

la_ssize_t WriteCallback(struct archive*, void* client, const void* buf, size_t len) {
  auto* st = static_cast<WriteState*>(client);
  absl::Status s = (*st->write)(std::string_view(static_cast<const char*>(buf), len));
  if (!s.ok()) {
    st->status = s;
    return -1;
  }
  return static_cast<la_ssize_t>(len);
}

// Entries below `dir` in sorted order, depth first (directories before their contents).
absl::Status Collect(const fs::path& root, const fs::path& rel, std::vector<fs::path>& out) {
  std::vector<fs::path> names;
  std::error_code ec;
  for (fs::directory_iterator it(root / rel, ec), end; !ec && it != end; it.increment(ec)) {
    names.push_back(it->path().filename());
  }
  if (ec)
    return absl::InternalError(absl::StrCat("list ", (root / rel).string(), ": ", ec.message()));
  std::sort(names.begin(), names.end());
  for (const fs::path& n : names) {
    fs::path child = rel / n;
    out.push_back(child);
    struct stat st;
    if (::lstat((root / child).c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
      KILN_RETURN_IF_ERROR(Collect(root, child, out));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status WriteTar(const std::string& root,
                      const std::function<absl::Status(std::string_view)>& write) {
  std::vector<fs::path> entries;
  KILN_RETURN_IF_ERROR(Collect(root, "", entries));
  struct archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  archive_write_set_bytes_per_block(a, 0);  // stream, no block padding beyond the format's
  WriteState state{&write, absl::OkStatus()};
  if (archive_write_open2(a, &state, nullptr, WriteCallback, nullptr, nullptr) != ARCHIVE_OK) {
    absl::Status st = absl::InternalError(absl::StrCat("tar: ", archive_error_string(a)));
    archive_write_free(a);
    return st;
  }
  struct archive_entry* e = archive_entry_new();
  absl::Status result;
  std::map<std::pair<dev_t, ino_t>, std::string> links;
  for (const fs::path& rel : entries) {
    const fs::path full = fs::path(root) / rel;
    struct stat st;
    if (::lstat(full.c_str(), &st) != 0) {
      result = ErrnoToStatus(errno, absl::StrCat("stat ", full.string()));
      break;
    }
    archive_entry_clear(e);
    archive_entry_copy_stat(e, &st);
    std::string name = rel.string();
    if (S_ISDIR(st.st_mode)) name += "/";
    archive_entry_set_pathname(e, name.c_str());
    archive_entry_set_uname(e, "");
    archive_entry_set_gname(e, "");
    bool data = S_ISREG(st.st_mode);
    if (S_ISLNK(st.st_mode)) {
      std::string target(static_cast<size_t>(st.st_size) + 1, '\0');
      ssize_t n = ::readlink(full.c_str(), target.data(), target.size());
      if (n < 0) {
        result = ErrnoToStatus(errno, absl::StrCat("readlink ", full.string()));
        break;
      }
      target.resize(static_cast<size_t>(n));
      archive_entry_set_symlink(e, target.c_str());
    } else if (S_ISREG(st.st_mode) && st.st_nlink > 1) {
      auto [it, first] = links.try_emplace({st.st_dev, st.st_ino}, rel.string());
      if (!first) {
        archive_entry_set_hardlink(e, it->second.c_str());
        archive_entry_set_size(e, 0);
        data = false;
      }
    }
    if (archive_write_header(a, e) != ARCHIVE_OK) {
      result = state.status.ok() ? absl::InternalError(absl::StrCat("tar header ", name, ": ",
                                                                    archive_error_string(a)))
                                 : state.status;
      break;
    }
    if (data) {
      int fd = ::open(full.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
      if (fd < 0) {
        result = ErrnoToStatus(errno, absl::StrCat("open ", full.string()));
        break;
      }
      char buf[1 << 16];
      ssize_t n;
      while ((n = ::read(fd, buf, sizeof(buf))) > 0) {
        if (archive_write_data(a, buf, static_cast<size_t>(n)) < 0) break;
      }
      ::close(fd);
      if (!state.status.ok()) {
        result = state.status;
        break;
      }
    }
  }
  archive_entry_free(e);
  if (archive_write_close(a) != ARCHIVE_OK && result.ok()) {
    result = state.status.ok() ? absl::InternalError(absl::StrCat("tar: ", archive_error_string(a)))
                               : state.status;
  }
  archive_write_free(a);
  return result;
}

absl::StatusOr<std::map<std::string, std::string>> Export(const Context& ctx,
                                                          const ExportDeps& deps,
                                                          const cache::ImmutableRef* result,
                                                          const ExportRequest& request) {
  if (request.type == "image" || request.type == "oci" || request.type == "docker") {
    auto resp = internal::ExportImage(ctx, deps, result, request);
    if (!resp.ok()) return Annotate(resp.status(), absl::StrCat("export ", request.type));
    return resp;
  }
  if (request.type != "local" && request.type != "tar") {
    return absl::InvalidArgumentError(
        absl::StrCat("exporter type \"", request.type,
                     "\" is not supported (supported: local, tar, image, oci, docker)"));
  }
  if (deps.cache == nullptr || deps.session == nullptr) {
    return absl::FailedPreconditionError("export needs the cache and the build's session");
  }
  cache::Manager& cache = *deps.cache;
  const session::Session& session = *deps.session;
  std::multimap<std::string, std::string> md = {{kExporterIdHeader, std::to_string(request.id)}};
  // The empty tree still needs a directory to send.
  snapshot::MountPtr view;
  std::string root;
  fs::path empty;
  if (result != nullptr) {
    KILN_ASSIGN_OR_RETURN(view, result->Mount());
    root = view->root().string();
  } else {
    KILN_ASSIGN_OR_RETURN(empty, cache.TempDir("empty-"));
    root = empty.string();
  }
  absl::Status st;
  if (request.type == "local") {
    st = session::SendTreeToClient(ctx, session, root, md);
  } else {
    st = session::SendBytesToClient(
        ctx, session, md, [&](const session::ByteWriter& write) { return WriteTar(root, write); });
  }
  view.reset();
  if (!empty.empty()) {
    std::error_code ec;
    fs::remove_all(empty, ec);
  }
  if (!st.ok()) return Annotate(st, absl::StrCat("export ", request.type));
  return std::map<std::string, std::string>{};
}

}  // namespace kiln::exporter
