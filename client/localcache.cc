#include "client/localcache.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "base/ids.h"
#include "base/status.h"

namespace kiln::client {
namespace {

namespace pb = containerd::services::content::v1;
namespace v1 = moby::buildkit::v1;
using json = nlohmann::ordered_json;

constexpr char kStoreIdHeader[] = "buildkit-attachable-store-id";
constexpr char kStorePrefix[] = "local:";
constexpr char kAnnotationRefName[] = "org.opencontainers.image.ref.name";
constexpr char kAnnotationImageName[] = "io.containerd.image.name";
constexpr size_t kReadChunk = 1 << 20;
constexpr int64_t kMaxIndexBytes = 16 << 20;

absl::Status CheckDigest(std::string_view digest) {
  if (IsSha256Digest(digest)) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("invalid digest \"", AV(digest), "\""));
}

// Opens the single path component `name` below `dir`, refusing a symlink.
absl::StatusOr<UniqueFd> OpenAt(int dir, const std::string& name, int flags, mode_t mode = 0) {
  UniqueFd fd(::openat(dir, name.c_str(), flags | O_NOFOLLOW | O_CLOEXEC, mode));
  if (fd.valid()) return fd;
  const int err = errno;
  // O_NOFOLLOW refuses a symlink with ELOOP, or with ENOTDIR when a directory was asked for.
  struct stat st;
  if ((err == ELOOP || err == ENOTDIR) &&
      ::fstatat(dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat(name, " is a symlink, which is not followed"));
  }
  return ErrnoToStatus(err, absl::StrCat("open ", name));
}

absl::StatusOr<UniqueFd> OpenDirAt(int dir, const std::string& name, bool create) {
  if (create && ::mkdirat(dir, name.c_str(), 0755) != 0 && errno != EEXIST) {
    return ErrnoToStatus(errno, absl::StrCat("create ", name));
  }
  return OpenAt(dir, name, O_RDONLY | O_DIRECTORY);
}

absl::Status WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoToStatus(errno, "write");
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadAll(int fd, int64_t max_bytes) {
  std::string out;
  char buf[64 << 10];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoToStatus(errno, "read");
    }
    if (n == 0) return out;
    out.append(buf, static_cast<size_t>(n));
    if (static_cast<int64_t>(out.size()) > max_bytes) {
      return absl::ResourceExhaustedError(absl::StrCat("larger than ", max_bytes, " bytes"));
    }
  }
}

// DIR/index.json (`dir` opened as `dir_fd`); NOT_FOUND when there is none.
absl::StatusOr<json> ReadIndex(int dir_fd, const std::string& dir) {
  const std::string path = absl::StrCat(dir, "/index.json");
  KILN_ASSIGN_OR_RETURN(UniqueFd fd, OpenAt(dir_fd, "index.json", O_RDONLY | O_NONBLOCK));
  absl::StatusOr<std::string> bytes = ReadAll(fd.get(), kMaxIndexBytes);
  if (!bytes.ok()) return Annotate(bytes.status(), path);
  json index = json::parse(*bytes, nullptr, /*allow_exceptions=*/false);
  if (index.is_discarded() || !index.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(path, " is not a JSON object"));
  }
  if (auto m = index.find("manifests"); m != index.end() && !m->is_array()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": manifests is not an array"));
  }
  return index;
}

grpc::Status ToGrpc(const absl::Status& st) {
  return grpc::Status(static_cast<grpc::StatusCode>(st.code()), std::string(st.message()));
}

}  // namespace

// ---- OciLayoutStore ------------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<OciLayoutStore>> OciLayoutStore::Open(const std::string& dir,
                                                                     bool create) {
  if (dir.empty()) return absl::InvalidArgumentError("empty cache directory");
  if (create) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) return absl::FailedPreconditionError(absl::StrCat("create ", dir, ": ", ec.message()));
  }
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoToStatus(errno, absl::StrCat("open ", dir));
  return std::unique_ptr<OciLayoutStore>(new OciLayoutStore(dir, std::move(fd)));
}

absl::StatusOr<UniqueFd> OciLayoutStore::BlobDir(bool create) const {
  KILN_ASSIGN_OR_RETURN(UniqueFd blobs, OpenDirAt(fd_.get(), "blobs", create));
  return OpenDirAt(blobs.get(), "sha256", create);
}

absl::StatusOr<UniqueFd> OciLayoutStore::OpenBlob(std::string_view digest) const {
  KILN_RETURN_IF_ERROR(CheckDigest(digest));
  const std::string hex(digest.substr(7));
  const std::string what = absl::StrCat("blob ", AV(digest), " in ", dir_);
  absl::StatusOr<UniqueFd> dir = BlobDir(false);
  if (!dir.ok()) return Annotate(dir.status(), what);
  // O_NONBLOCK: opening a FIFO planted in the directory must not hang.
  absl::StatusOr<UniqueFd> fd = OpenAt(dir->get(), hex, O_RDONLY | O_NONBLOCK);
  if (!fd.ok()) return Annotate(fd.status(), what);
  struct stat st;
  if (::fstat(fd->get(), &st) != 0) return ErrnoToStatus(errno, absl::StrCat("stat ", what));
  if (!S_ISREG(st.st_mode)) return absl::NotFoundError(absl::StrCat(what, " is not a file"));
  ::fcntl(fd->get(), F_SETFL, ::fcntl(fd->get(), F_GETFL) & ~O_NONBLOCK);
  return fd;
}

absl::StatusOr<int64_t> OciLayoutStore::Size(std::string_view digest) const {
  KILN_ASSIGN_OR_RETURN(UniqueFd fd, OpenBlob(digest));
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return ErrnoToStatus(errno, "stat blob");
  return static_cast<int64_t>(st.st_size);
}

absl::StatusOr<std::unique_ptr<OciLayoutStore::Ingest>> OciLayoutStore::NewIngest() const {
  KILN_ASSIGN_OR_RETURN(UniqueFd dir, OpenDirAt(fd_.get(), "ingest", true));
  const std::string name = absl::StrCat("kiln-", NewRandomId());
  KILN_ASSIGN_OR_RETURN(UniqueFd file, OpenAt(dir.get(), name, O_RDWR | O_CREAT | O_EXCL, 0644));
  return std::unique_ptr<Ingest>(new Ingest(this, std::move(dir), name, std::move(file)));
}

OciLayoutStore::Ingest::Ingest(const OciLayoutStore* store, UniqueFd dir, std::string name,
                               UniqueFd file)
    : store_(store),
      dir_(std::move(dir)),
      name_(std::move(name)),
      file_(std::move(file)),
      hash_(std::make_unique<Sha256>()) {}

OciLayoutStore::Ingest::~Ingest() { Remove(); }

void OciLayoutStore::Ingest::Remove() {
  if (!file_.valid()) return;
  file_.Reset();
  ::unlinkat(dir_.get(), name_.c_str(), 0);
}

absl::Status OciLayoutStore::Ingest::Write(std::string_view data) {
  if (!file_.valid()) return absl::FailedPreconditionError("write to a finished ingest");
  KILN_RETURN_IF_ERROR(Annotate(WriteAll(file_.get(), data), store_->dir()));
  hash_->Update(data);
  offset_ += static_cast<int64_t>(data.size());
  return absl::OkStatus();
}

absl::Status OciLayoutStore::Ingest::Truncate() {
  if (!file_.valid()) return absl::FailedPreconditionError("truncate a finished ingest");
  if (::ftruncate(file_.get(), 0) != 0 || ::lseek(file_.get(), 0, SEEK_SET) != 0) {
    return ErrnoToStatus(errno, absl::StrCat("truncate an ingest in ", store_->dir()));
  }
  hash_ = std::make_unique<Sha256>();
  offset_ = 0;
  return absl::OkStatus();
}

absl::StatusOr<std::string> OciLayoutStore::Ingest::Commit(int64_t expected_size,
                                                           std::string_view expected_digest) {
  if (!file_.valid()) return absl::FailedPreconditionError("commit a finished ingest");
  if (!expected_digest.empty()) KILN_RETURN_IF_ERROR(CheckDigest(expected_digest));
  const std::string digest = absl::StrCat("sha256:", hash_->HexDigest());
  absl::Status st;
  if (expected_size > 0 && offset_ != expected_size) {
    st = absl::FailedPreconditionError(
        absl::StrCat("unexpected commit size ", offset_, ", expected ", expected_size));
  } else if (!expected_digest.empty() && digest != expected_digest) {
    st = absl::FailedPreconditionError(
        absl::StrCat("unexpected commit digest ", digest, ", expected ", AV(expected_digest)));
  } else if (::fsync(file_.get()) != 0) {
    st = ErrnoToStatus(errno, absl::StrCat("fsync an ingest in ", store_->dir()));
  }
  absl::StatusOr<UniqueFd> blobs = st.ok() ? store_->BlobDir(true) : st;
  if (!blobs.ok()) {
    Remove();
    return blobs.status();
  }
  const std::string hex = digest.substr(7);
  struct stat existing;
  if (::fstatat(blobs->get(), hex.c_str(), &existing, AT_SYMLINK_NOFOLLOW) == 0) {
    Remove();
    return absl::AlreadyExistsError(absl::StrCat("content ", digest, " already exists"));
  }
  if (::renameat(dir_.get(), name_.c_str(), blobs->get(), hex.c_str()) != 0) {
    st = ErrnoToStatus(errno, absl::StrCat("publish blob ", digest, " in ", store_->dir()));
    Remove();
    return st;
  }
  file_.Reset();
  ::fsync(blobs->get());
  return digest;
}

absl::StatusOr<std::string> OciLayoutStore::ResolveTag(const std::string& tag) const {
  KILN_ASSIGN_OR_RETURN(json index, ReadIndex(fd_.get(), dir_));
  const json manifests = index.value("manifests", json::array());
  for (const char* key : {kAnnotationImageName, kAnnotationRefName}) {
    for (const json& m : manifests) {
      if (!m.is_object()) continue;
      const json annotations = m.value("annotations", json::object());
      if (!annotations.is_object() || annotations.value(key, "") != tag) continue;
      std::string digest = m.value("digest", "");
      KILN_RETURN_IF_ERROR(Annotate(CheckDigest(digest), absl::StrCat(dir_, "/index.json")));
      return digest;
    }
  }
  return absl::NotFoundError(absl::StrCat("no digest found for tag ", tag));
}

absl::Status OciLayoutStore::PutTag(const std::string& descriptor, const std::string& tag) const {
  json desc = json::parse(descriptor, nullptr, /*allow_exceptions=*/false);
  if (desc.is_discarded() || !desc.is_object() || !desc.contains("digest")) {
    return absl::InvalidArgumentError(absl::StrCat("bad cache manifest descriptor ", descriptor));
  }
  desc["annotations"][kAnnotationRefName] = tag;
  // One writer of index.json at a time, with buildctl's lock file.
  KILN_ASSIGN_OR_RETURN(UniqueFd lock,
                        OpenAt(fd_.get(), "index.json.lock", O_RDWR | O_CREAT, 0644));
  if (::flock(lock.get(), LOCK_EX) != 0) {
    return ErrnoToStatus(errno, absl::StrCat("lock ", dir_, "/index.json"));
  }
  absl::Status st = [&]() -> absl::Status {
    KILN_RETURN_IF_ERROR(WriteAtomically("oci-layout", R"({"imageLayoutVersion":"1.0.0"})"));
    json index = json::object();
    if (absl::StatusOr<json> read = ReadIndex(fd_.get(), dir_); read.ok()) {
      index = *std::move(read);
    } else if (!absl::IsNotFound(read.status())) {
      return read.status();
    }
    if (index.value("schemaVersion", 0) == 0) index["schemaVersion"] = 2;
    if (index.value("mediaType", "").empty()) {
      index["mediaType"] = "application/vnd.oci.image.index.v1+json";
    }
    json manifests = json::array();
    for (const json& m : index.value("manifests", json::array())) {
      const json annotations = m.is_object() ? m.value("annotations", json::object()) : json();
      const bool same = annotations.is_object() &&
                        annotations.value(kAnnotationRefName, "") == tag &&
                        annotations.value(kAnnotationImageName, "").empty();
      if (!same) manifests.push_back(m);
    }
    manifests.push_back(desc);
    index["manifests"] = std::move(manifests);
    return WriteAtomically("index.json", index.dump());
  }();
  ::unlinkat(fd_.get(), "index.json.lock", 0);
  return st;
}

absl::Status OciLayoutStore::WriteAtomically(const std::string& name, std::string_view data) const {
  const std::string tmp = absl::StrCat(".", name, ".kiln-", NewRandomId());
  KILN_ASSIGN_OR_RETURN(UniqueFd fd, OpenAt(fd_.get(), tmp, O_WRONLY | O_CREAT | O_EXCL, 0644));
  absl::Status st = WriteAll(fd.get(), data);
  if (st.ok() && ::fsync(fd.get()) != 0) st = ErrnoToStatus(errno, "fsync");
  if (st.ok() && ::renameat(fd_.get(), tmp.c_str(), fd_.get(), name.c_str()) != 0) {
    st = ErrnoToStatus(errno, "rename");
  }
  if (!st.ok()) {
    ::unlinkat(fd_.get(), tmp.c_str(), 0);
    return Annotate(st, absl::StrCat("write ", dir_, "/", name));
  }
  return absl::OkStatus();
}

// ---- ContentService --------------------------------------------------------------------------

absl::StatusOr<std::pair<std::string, OciLayoutStore*>> ContentService::Choose(
    const grpc::ServerContext* ctx) const {
  auto it = ctx->client_metadata().find(kStoreIdHeader);
  if (it == ctx->client_metadata().end()) {
    return absl::InvalidArgumentError(
        absl::StrCat("request lacks metadata \"", kStoreIdHeader, "\""));
  }
  std::string id(it->second.data(), it->second.size());
  auto store = stores_.find(id);
  if (store == stores_.end()) return absl::NotFoundError(absl::StrCat("unknown store ", id));
  return std::make_pair(std::move(id), store->second.get());
}

grpc::Status ContentService::Info(grpc::ServerContext* ctx, const pb::InfoRequest* req,
                                  pb::InfoResponse* resp) {
  auto store = Choose(ctx);
  if (!store.ok()) return ToGrpc(store.status());
  absl::StatusOr<int64_t> size = store->second->Size(req->digest());
  if (!size.ok()) return ToGrpc(size.status());
  resp->mutable_info()->set_digest(req->digest());
  resp->mutable_info()->set_size(*size);
  return grpc::Status::OK;
}

grpc::Status ContentService::Read(grpc::ServerContext* ctx, const pb::ReadContentRequest* req,
                                  grpc::ServerWriter<pb::ReadContentResponse>* out) {
  auto store = Choose(ctx);
  if (!store.ok()) return ToGrpc(store.status());
  absl::StatusOr<UniqueFd> fd = store->second->OpenBlob(req->digest());
  if (!fd.ok()) return ToGrpc(fd.status());
  struct stat st;
  if (::fstat(fd->get(), &st) != 0) return ToGrpc(ErrnoToStatus(errno, "stat blob"));
  const int64_t blob_size = st.st_size;
  int64_t offset = std::max<int64_t>(req->offset(), 0);
  if (offset > blob_size) {
    return grpc::Status(grpc::StatusCode::OUT_OF_RANGE,
                        absl::StrCat("read past object length ", blob_size, " bytes"));
  }
  int64_t left = blob_size - offset;
  if (req->size() > 0 && req->size() < left) left = req->size();
  std::string buf(kReadChunk, '\0');
  pb::ReadContentResponse resp;
  while (left > 0) {
    ssize_t n = ::pread(fd->get(), buf.data(),
                        static_cast<size_t>(std::min<int64_t>(left, kReadChunk)), offset);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ToGrpc(ErrnoToStatus(errno, absl::StrCat("read blob ", req->digest())));
    if (n == 0) break;  // the file shrank: the reader's digest check will tell
    resp.set_offset(offset);
    resp.set_data(buf.data(), static_cast<size_t>(n));
    if (!out->Write(resp)) return grpc::Status(grpc::StatusCode::CANCELLED, "reader went away");
    offset += n;
    left -= n;
  }
  return grpc::Status::OK;
}

grpc::Status ContentService::WithActive(const grpc::ServerContext* ctx, const std::string& ref,
                                        const std::function<void(Active&)>& fn) {
  auto store = Choose(ctx);
  if (!store.ok()) return ToGrpc(store.status());
  std::lock_guard lock(mu_);
  auto it = active_.find({store->first, ref});
  if (it == active_.end()) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        absl::StrCat("no write in progress for ref ", ref));
  }
  fn(it->second);
  return grpc::Status::OK;
}

grpc::Status ContentService::Status(grpc::ServerContext* ctx, const pb::StatusRequest* req,
                                    pb::StatusResponse* resp) {
  return WithActive(ctx, req->ref(), [&](const Active& a) {
    pb::Status* s = resp->mutable_status();
    s->set_ref(req->ref());
    s->set_offset(a.offset);
    s->set_total(a.total);
    s->set_expected(a.expected);
  });
}

grpc::Status ContentService::Abort(grpc::ServerContext* ctx, const pb::AbortRequest* req,
                                   google::protobuf::Empty*) {
  // The write's stream fails at its next message.
  return WithActive(ctx, req->ref(), [](Active& a) { a.aborted = true; });
}

// containerd's write protocol (its content server's semantics): the first message names the
// ref; a request's expected digest that the store already has ends the write with
// ALREADY_EXISTS; data goes at the current offset (offset 0 restarts); COMMIT verifies and
// publishes. Every request is answered.
grpc::Status ContentService::Write(
    grpc::ServerContext* ctx,
    grpc::ServerReaderWriter<pb::WriteContentResponse, pb::WriteContentRequest>* stream) {
  auto store = Choose(ctx);
  if (!store.ok()) return ToGrpc(store.status());
  OciLayoutStore& cs = *store->second;
  pb::WriteContentRequest req;
  if (!stream->Read(&req)) return grpc::Status::OK;
  if (req.ref().empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "first message must have a reference");
  }
  const std::pair<std::string, std::string> key{store->first, req.ref()};
  {
    std::lock_guard lock(mu_);
    if (!active_.emplace(key, Active{}).second) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                          absl::StrCat("ref ", req.ref(), " is locked by another write"));
    }
  }
  struct Release {
    ContentService* service;
    const std::pair<std::string, std::string>& key;
    ~Release() {
      std::lock_guard lock(service->mu_);
      service->active_.erase(key);
    }
  } release{this, key};

  absl::StatusOr<std::unique_ptr<OciLayoutStore::Ingest>> ingest = cs.NewIngest();
  if (!ingest.ok()) return ToGrpc(ingest.status());
  int64_t total = 0;
  std::string expected;
  while (true) {
    if (!req.expected().empty()) {
      if (absl::Status st = CheckDigest(req.expected()); !st.ok()) return ToGrpc(st);
      expected = req.expected();
      if (cs.Size(expected).ok()) {
        return grpc::Status(grpc::StatusCode::ALREADY_EXISTS,
                            absl::StrCat("blob with expected digest ", expected, " exists"));
      }
    }
    if (req.total() > 0) total = req.total();
    pb::WriteContentResponse resp;
    resp.set_action(req.action());
    switch (req.action()) {
      case pb::STAT:
        break;
      case pb::WRITE:
      case pb::COMMIT: {
        if (req.offset() > 0 && req.offset() != (*ingest)->offset()) {
          return grpc::Status(grpc::StatusCode::OUT_OF_RANGE,
                              absl::StrCat("write @", req.offset(),
                                           " must occur at current offset ", (*ingest)->offset()));
        }
        if (req.offset() == 0 && (*ingest)->offset() > 0) {
          if (absl::Status st = (*ingest)->Truncate(); !st.ok()) return ToGrpc(st);
        }
        if (absl::Status st = (*ingest)->Write(req.data()); !st.ok()) return ToGrpc(st);
        if (req.action() == pb::COMMIT) {
          const int64_t size = (*ingest)->offset();
          absl::StatusOr<std::string> digest = (*ingest)->Commit(total, expected);
          if (!digest.ok()) return ToGrpc(digest.status());
          resp.set_digest(*digest);
          resp.set_offset(size);
        }
        break;
      }
      default:
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                            absl::StrCat("unknown write action ", req.action()));
    }
    if (req.action() != pb::COMMIT) resp.set_offset((*ingest)->offset());
    resp.set_total(total);
    {
      std::lock_guard lock(mu_);
      Active& a = active_[key];
      if (a.aborted) return grpc::Status(grpc::StatusCode::ABORTED, "the write was aborted");
      a.offset = resp.offset();
      a.total = total;
      a.expected = expected;
    }
    if (!stream->Write(resp)) return grpc::Status(grpc::StatusCode::CANCELLED, "writer went away");
    if (req.action() == pb::COMMIT) return grpc::Status::OK;
    if (!stream->Read(&req)) return grpc::Status::OK;  // ended without a commit: dropped
  }
}

// ---- around the solve -------------------------------------------------------------------

absl::StatusOr<LocalCaches> PrepareLocalCaches(
    std::vector<v1::CacheOptionsEntry>& imports, const std::vector<v1::CacheOptionsEntry>& exports,
    const std::function<void(const std::string&)>& warn) {
  LocalCaches out;
  for (const v1::CacheOptionsEntry& e : exports) {
    if (e.type() != "local") continue;
    auto dest = e.attrs().find("dest");
    if (dest == e.attrs().end() || dest->second.empty()) {
      return absl::InvalidArgumentError("--export-cache type=local needs dest=DIR");
    }
    const std::string id = absl::StrCat(kStorePrefix, dest->second);
    auto& store = out.stores[id];
    if (!store) {
      absl::StatusOr<std::unique_ptr<OciLayoutStore>> opened =
          OciLayoutStore::Open(dest->second, true);
      if (!opened.ok()) return Annotate(opened.status(), "--export-cache type=local");
      store = *std::move(opened);
    }
    auto tag = e.attrs().find("tag");
    out.exports.emplace_back(store, tag == e.attrs().end() ? "latest" : tag->second);
  }
  std::vector<v1::CacheOptionsEntry> kept;
  for (v1::CacheOptionsEntry& e : imports) {
    if (e.type() != "local") {
      kept.push_back(std::move(e));
      continue;
    }
    auto src = e.attrs().find("src");
    if (src == e.attrs().end() || src->second.empty()) {
      return absl::InvalidArgumentError("--import-cache type=local needs src=DIR");
    }
    const std::string dir = src->second;
    const std::string id = absl::StrCat(kStorePrefix, dir);
    std::shared_ptr<OciLayoutStore> store = out.stores.contains(id) ? out.stores[id] : nullptr;
    if (!store) {
      absl::StatusOr<std::unique_ptr<OciLayoutStore>> opened = OciLayoutStore::Open(dir, false);
      if (!opened.ok()) {
        warn(absl::StrCat("local cache import at ", dir,
                          " not found due to err: ", opened.status().message()));
        continue;
      }
      store = *std::move(opened);
    }
    auto& attrs = *e.mutable_attrs();
    if (attrs["digest"].empty()) {
      auto tag = attrs.find("tag");
      const std::string name = tag == attrs.end() ? "latest" : tag->second;
      if (name.empty()) {
        return absl::InvalidArgumentError(
            "--import-cache type=local needs digest=, or a tag (default \"latest\") in "
            "index.json");
      }
      absl::StatusOr<std::string> digest = store->ResolveTag(name);
      if (!digest.ok()) {
        warn(absl::StrCat("local cache import at ", dir, " skipped: ", digest.status().message()));
        continue;
      }
      attrs["digest"] = *digest;
    }
    if (absl::StatusOr<int64_t> size = store->Size(attrs["digest"]); !size.ok()) {
      warn(absl::StrCat("local cache import at ", dir, " skipped: digest ", attrs["digest"],
                        " unavailable: ", size.status().message()));
      continue;
    }
    out.stores[id] = store;
    kept.push_back(std::move(e));
  }
  imports = std::move(kept);
  return out;
}

absl::Status UpdateLocalCacheIndexes(const LocalCaches& caches,
                                     const std::map<std::string, std::string>& exporter_response) {
  auto it = exporter_response.find("cache.manifest");
  if (it == exporter_response.end() || it->second.empty()) return absl::OkStatus();
  for (const auto& [store, tag] : caches.exports) {
    KILN_RETURN_IF_ERROR(store->PutTag(it->second, tag));
  }
  return absl::OkStatus();
}

}  // namespace kiln::client
