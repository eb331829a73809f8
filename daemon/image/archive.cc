#include "daemon/image/archive.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/digest.h"
#include "base/status.h"
#include "daemon/image/internal/beneath.h"
#include "daemon/image/internal/go_json.h"
#include "daemon/image/media_types.h"
#include "daemon/util/fs.h"
#include "llb/source.h"

namespace kiln::image {
namespace fs = std::filesystem;
using internal::UniqueFd;

namespace {

constexpr int64_t kMaxMetadataBytes = 8 << 20;  // manifests and indexes
constexpr int kMaxIndexDepth = 4;

// One file or directory of the layout: inline bytes, or a blob copied from the store.
struct Record {
  std::string name;
  mode_t mode = 0444;
  bool dir = false;
  std::string data;    // inline content
  std::string digest;  // blob content (when set)
  int64_t size = 0;
};

std::string BlobName(const std::string& digest) {
  return absl::StrCat("blobs/sha256/", digest.substr(std::string_view("sha256:").size()));
}

// distribution's FamiliarString: "docker.io/library/busybox:latest" -> "busybox:latest".
std::string Familiar(const std::string& normalized) {
  constexpr std::string_view kHub = "docker.io/";
  constexpr std::string_view kLibrary = "library/";
  if (normalized.rfind(kHub, 0) != 0) return normalized;
  std::string s = normalized.substr(kHub.size());
  const std::string repo = s.substr(0, s.find_first_of(":@"));
  if (repo.rfind(kLibrary, 0) == 0 && repo.find('/', kLibrary.size()) == std::string::npos) {
    s = s.substr(kLibrary.size());
  }
  return s;
}

// containerd's ociReferenceName: the tag (with its digest) of a reference, or the whole
// reference when it has none.
std::string OciRefName(const std::string& name) {
  const size_t at = name.find('@');
  const std::string locator_tag = name.substr(0, at);
  const size_t slash = locator_tag.rfind('/');
  const size_t colon = locator_tag.rfind(':');
  if (colon == std::string::npos || (slash != std::string::npos && colon < slash)) return name;
  std::string object = locator_tag.substr(colon + 1);
  if (at != std::string::npos) object += name.substr(at);
  return object;
}

class Collector {
 public:
  Collector(const Context& ctx, const content::Store& store) : ctx_(ctx), store_(store) {}

  absl::Status AddBlob(const Descriptor& d) {
    if (!IsSha256Digest(d.digest)) {
      return absl::InvalidArgumentError(absl::StrCat("invalid digest \"", d.digest, "\""));
    }
    if (!seen_.insert(d.digest).second) return absl::OkStatus();
    KILN_ASSIGN_OR_RETURN(int64_t size, store_.Size(d.digest));
    if (size != d.size) {
      return absl::DataLossError(
          absl::StrCat("blob ", d.digest, " has ", size, " bytes, its descriptor says ", d.size));
    }
    Record r;
    r.name = BlobName(d.digest);
    r.digest = d.digest;
    r.size = d.size;
    records_.push_back(std::move(r));
    return absl::OkStatus();
  }

  absl::StatusOr<std::string> ReadSmall(const Descriptor& d) {
    KILN_ASSIGN_OR_RETURN(std::string data, store_.Read(d.digest, kMaxMetadataBytes));
    if (static_cast<int64_t>(data.size()) != d.size || Sha256Digest(data) != d.digest) {
      return absl::DataLossError(absl::StrCat("blob ", d.digest, " does not match its descriptor"));
    }
    return data;
  }

  // A manifest and everything it references; returns it parsed.
  absl::StatusOr<Manifest> AddManifest(const Descriptor& d) {
    KILN_RETURN_IF_ERROR(ctx_.Check("export image"));
    KILN_ASSIGN_OR_RETURN(std::string data, ReadSmall(d));
    KILN_ASSIGN_OR_RETURN(Manifest m, ParseManifest(data));
    KILN_RETURN_IF_ERROR(AddBlob(d));
    KILN_RETURN_IF_ERROR(AddBlob(m.config));
    for (const Descriptor& l : m.layers) KILN_RETURN_IF_ERROR(AddBlob(l));
    return m;
  }

  absl::Status AddAny(const Descriptor& d, int depth) {
    if (IsManifestMediaType(d.media_type)) return AddManifest(d).status();
    if (!IsIndexMediaType(d.media_type)) {
      return absl::InvalidArgumentError(absl::StrCat("only manifests and indexes can be exported, ",
                                                     d.digest, " is \"", d.media_type, "\""));
    }
    if (depth >= kMaxIndexDepth) return absl::InvalidArgumentError("image indexes nest too deep");
    KILN_ASSIGN_OR_RETURN(std::string data, ReadSmall(d));
    KILN_ASSIGN_OR_RETURN(Index index, ParseIndex(data));
    KILN_RETURN_IF_ERROR(AddBlob(d));
    for (const Descriptor& m : index.manifests) KILN_RETURN_IF_ERROR(AddAny(m, depth + 1));
    return absl::OkStatus();
  }

  std::vector<Record>& records() { return records_; }

 private:
  const Context& ctx_;
  const content::Store& store_;
  std::set<std::string> seen_;
  std::vector<Record> records_;
};

Record Inline(std::string name, mode_t mode, std::string data) {
  Record r;
  r.name = std::move(name);
  r.mode = mode;
  r.size = static_cast<int64_t>(data.size());
  r.data = std::move(data);
  return r;
}

// Builds every record of the layout (and manifest.json for docker).
absl::StatusOr<std::vector<Record>> Layout(const Context& ctx, const content::Store& store,
                                           const ArchiveOptions& options, bool docker) {
  std::vector<std::string> names;
  for (const std::string& n : options.names) {
    absl::StatusOr<std::string> normalized = llb::NormalizeImageRef(n);
    if (!normalized.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("image name \"", n, "\": ", normalized.status().message()));
    }
    names.push_back(*normalized);
  }
  Collector c(ctx, store);
  std::optional<Manifest> manifest;
  if (docker) {
    if (!IsManifestMediaType(options.root.media_type)) {
      return absl::InvalidArgumentError(
          "docker archives hold one image manifest; export manifest lists with type=oci");
    }
    KILN_ASSIGN_OR_RETURN(manifest, c.AddManifest(options.root));
  } else {
    KILN_RETURN_IF_ERROR(c.AddAny(options.root, 0));
  }
  std::vector<Record> records = std::move(c.records());

  nlohmann::ordered_json layout = nlohmann::ordered_json::object();
  layout["imageLayoutVersion"] = kOciLayoutVersion;
  records.push_back(Inline("oci-layout", 0444, internal::GoJson(layout)));

  std::vector<Descriptor> manifests;
  for (const std::string& name : names) {
    Descriptor d = options.root;
    d.annotations[kAnnotationImageName] = name;
    d.annotations[kAnnotationRefName] = OciRefName(name);
    manifests.push_back(std::move(d));
  }
  if (names.empty()) manifests.push_back(options.root);
  KILN_ASSIGN_OR_RETURN(std::string index, MakeIndex(manifests, /*oci_media_types=*/true));
  records.push_back(Inline("index.json", 0644, std::move(index)));

  if (docker) {
    nlohmann::ordered_json entry = nlohmann::ordered_json::object();
    entry["Config"] = BlobName(manifest->config.digest);
    nlohmann::ordered_json tags = nullptr;  // a nil slice in Go
    for (const std::string& name : names) tags.push_back(Familiar(name));
    entry["RepoTags"] = std::move(tags);
    nlohmann::ordered_json layers = nullptr;
    for (const Descriptor& l : manifest->layers) layers.push_back(BlobName(l.digest));
    entry["Layers"] = std::move(layers);
    records.push_back(
        Inline("manifest.json", 0644, internal::GoJson(nlohmann::ordered_json::array({entry}))));
    // The legacy `repositories` file of `docker save`: familiar repository -> tag -> top layer.
    // docker load prefers manifest.json; older tools read this.
    std::map<std::string, std::map<std::string, std::string>> repositories;  // sorted, like Go
    for (const std::string& name : names) {
      if (manifest->layers.empty() || name.find('@') != std::string::npos) continue;
      const std::string familiar = Familiar(name);
      const size_t colon = familiar.rfind(':');
      if (colon == std::string::npos) continue;
      repositories[familiar.substr(0, colon)][familiar.substr(colon + 1)] =
          manifest->layers.back().digest.substr(std::string_view("sha256:").size());
    }
    if (!repositories.empty()) {
      records.push_back(
          Inline("repositories", 0644, internal::GoJson(nlohmann::ordered_json(repositories))));
    }
  }

  Record blobs;
  blobs.name = "blobs/";
  blobs.mode = 0755;
  blobs.dir = true;
  records.push_back(blobs);
  blobs.name = "blobs/sha256/";
  records.push_back(blobs);

  std::stable_sort(records.begin(), records.end(),
                   [](const Record& a, const Record& b) { return a.name < b.name; });
  records.erase(std::unique(records.begin(), records.end(),
                            [](const Record& a, const Record& b) { return a.name == b.name; }),
                records.end());
  return records;
}

// Copies a stored blob into `write`, verifying its digest and size.
absl::Status CopyBlob(const Context& ctx, const content::Store& store, const Record& r,
                      const std::function<absl::Status(std::string_view)>& write) {
  KILN_ASSIGN_OR_RETURN(fs::path path, store.BlobPath(r.digest));
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoToStatus(errno, absl::StrCat("open blob ", r.digest));
  Sha256 hash;
  std::string buf(1 << 20, '\0');
  int64_t total = 0;
  for (;;) {
    KILN_RETURN_IF_ERROR(ctx.Check("export image"));
    const ssize_t n = ::read(fd.get(), buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoToStatus(errno, absl::StrCat("read blob ", r.digest));
    }
    if (n == 0) break;
    const std::string_view piece(buf.data(), static_cast<size_t>(n));
    hash.Update(piece);
    total += n;
    if (total > r.size) break;
    KILN_RETURN_IF_ERROR(write(piece));
  }
  if (total != r.size || "sha256:" + hash.HexDigest() != r.digest) {
    return absl::DataLossError(absl::StrCat("blob ", r.digest, " is corrupt in the content store"));
  }
  return absl::OkStatus();
}

absl::Status WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoToStatus(errno, "write image archive");
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

struct TarState {
  const ArchiveSink* sink;
  absl::Status status;
};

la_ssize_t TarWrite(struct archive*, void* client, const void* buf, size_t len) {
  auto* st = static_cast<TarState*>(client);
  if (!st->status.ok()) return -1;  // the sink failed: it gets nothing more
  st->status = (*st->sink)(std::string_view(static_cast<const char*>(buf), len));
  return st->status.ok() ? static_cast<la_ssize_t>(len) : -1;
}

absl::Status WriteTar(const Context& ctx, const content::Store& store,
                      const std::vector<Record>& records, const ArchiveSink& sink) {
  // Declared before the archive, so it outlives it: archive_write_free on an early return
  // closes the archive, which writes its last block through TarWrite into `state`.
  TarState state{&sink, absl::OkStatus()};
  std::unique_ptr<struct archive, decltype(&archive_write_free)> a(archive_write_new(),
                                                                   &archive_write_free);
  std::unique_ptr<struct archive_entry, decltype(&archive_entry_free)> e(archive_entry_new(),
                                                                         &archive_entry_free);
  if (!a || !e) return absl::ResourceExhaustedError("libarchive: out of memory");
  auto fail = [&](std::string_view what) {
    if (!state.status.ok()) return state.status;
    const char* msg = archive_error_string(a.get());
    return absl::InternalError(
        absl::StrCat("image archive ", AV(what), ": ", msg != nullptr ? msg : "error"));
  };
  if (archive_write_set_format_pax_restricted(a.get()) != ARCHIVE_OK ||
      archive_write_set_bytes_per_block(a.get(), 64 * 1024) != ARCHIVE_OK ||
      archive_write_set_bytes_in_last_block(a.get(), 1) != ARCHIVE_OK ||
      archive_write_open2(a.get(), &state, nullptr, TarWrite, nullptr, nullptr) != ARCHIVE_OK) {
    return fail("open");
  }
  for (const Record& r : records) {
    archive_entry_clear(e.get());
    archive_entry_copy_pathname(e.get(), r.name.c_str());
    archive_entry_set_filetype(e.get(), r.dir ? AE_IFDIR : AE_IFREG);
    archive_entry_set_perm(e.get(), r.mode);
    archive_entry_set_size(e.get(), r.dir ? 0 : r.size);
    archive_entry_set_mtime(e.get(), 0, 0);
    if (archive_write_header(a.get(), e.get()) != ARCHIVE_OK) return fail(r.name);
    auto write = [&](std::string_view data) -> absl::Status {
      if (archive_write_data(a.get(), data.data(), data.size()) < 0) return fail(r.name);
      return absl::OkStatus();
    };
    if (!r.digest.empty()) {
      KILN_RETURN_IF_ERROR(CopyBlob(ctx, store, r, write));
    } else if (!r.dir) {
      KILN_RETURN_IF_ERROR(write(r.data));
    }
  }
  if (archive_write_close(a.get()) != ARCHIVE_OK) return fail("close");
  return absl::OkStatus();
}

}  // namespace

absl::Status WriteOciArchive(const Context& ctx, const content::Store& store,
                             const ArchiveOptions& options, int fd) {
  return WriteOciArchiveTo(ctx, store, options,
                           [fd](std::string_view data) { return WriteAll(fd, data); });
}

absl::Status WriteDockerArchive(const Context& ctx, const content::Store& store,
                                const ArchiveOptions& options, int fd) {
  return WriteDockerArchiveTo(ctx, store, options,
                              [fd](std::string_view data) { return WriteAll(fd, data); });
}

absl::Status WriteOciArchiveTo(const Context& ctx, const content::Store& store,
                               const ArchiveOptions& options, const ArchiveSink& sink) {
  KILN_ASSIGN_OR_RETURN(std::vector<Record> records, Layout(ctx, store, options, false));
  return WriteTar(ctx, store, records, sink);
}

absl::Status WriteDockerArchiveTo(const Context& ctx, const content::Store& store,
                                  const ArchiveOptions& options, const ArchiveSink& sink) {
  KILN_ASSIGN_OR_RETURN(std::vector<Record> records, Layout(ctx, store, options, true));
  return WriteTar(ctx, store, records, sink);
}

absl::Status WriteOciLayout(const Context& ctx, const content::Store& store,
                            const ArchiveOptions& options, const fs::path& dir) {
  KILN_ASSIGN_OR_RETURN(std::vector<Record> records, Layout(ctx, store, options, false));
  for (const Record& r : records) {
    const fs::path path = dir / r.name;
    if (r.dir) {
      KILN_RETURN_IF_ERROR(util::EnsureDir(path, 0755));
    } else if (r.digest.empty()) {
      KILN_RETURN_IF_ERROR(util::WriteFileAtomic(path, r.data, r.mode));
    } else {
      struct stat st;
      if (::stat(path.c_str(), &st) == 0 && st.st_size == r.size) continue;  // by digest
      const fs::path tmp = path.string() + ".tmp";
      UniqueFd out(open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, r.mode));
      if (!out.valid()) return ErrnoToStatus(errno, absl::StrCat("create ", tmp.string()));
      absl::Status st2 =
          CopyBlob(ctx, store, r, [&](std::string_view data) { return WriteAll(out.get(), data); });
      if (st2.ok() && ::fsync(out.get()) != 0) st2 = ErrnoToStatus(errno, "fsync");
      if (st2.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) {
        st2 = ErrnoToStatus(errno, absl::StrCat("rename ", tmp.string()));
      }
      if (!st2.ok()) {
        ::unlink(tmp.c_str());
        return st2;
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace kiln::image
