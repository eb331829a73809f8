#include "daemon/snapshot/snapshotter.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "daemon/util/fs.h"
#include "daemon/util/logging.h"

namespace kiln::snapshot {
namespace fs = std::filesystem;
namespace {

constexpr char kOpaqueXattr[] = "trusted.overlay.opaque";
// mount(2) options must fit in one page.
constexpr size_t kMaxMountData = 4000;

bool IsWhiteout(const struct stat& st) {
  return S_ISCHR(st.st_mode) && major(st.st_rdev) == 0 && minor(st.st_rdev) == 0;
}

bool IsOpaque(const fs::path& dir) {
  char v[2] = {};
  ssize_t n = ::lgetxattr(dir.c_str(), kOpaqueXattr, v, sizeof(v));
  return n == 1 && v[0] == 'y';
}

class OverlayMount final : public Mount {
 public:
  explicit OverlayMount(fs::path root) : root_(std::move(root)) {}
  ~OverlayMount() override {
    if (mounted_) (void)Unmount();
  }
  const fs::path& root() const override { return root_; }
  absl::Status Unmount() override {
    if (!mounted_) return absl::OkStatus();
    if (::umount2(root_.c_str(), 0) != 0) {
      int err = errno;
      if (err == EBUSY) {
        // Something still holds a file open: detach so the mount goes away when it closes.
        Logger("snapshot")->warn("unmount {} busy; detaching", root_.string());
        if (::umount2(root_.c_str(), MNT_DETACH) == 0) {
          mounted_ = false;
          return absl::OkStatus();
        }
      }
      return ErrnoToStatus(err, absl::StrCat("unmount ", root_.string()));
    }
    mounted_ = false;
    return absl::OkStatus();
  }

 private:
  fs::path root_;
  bool mounted_ = true;
};

// A view that is just a directory (no mount): nothing to undo.
class PlainMount final : public Mount {
 public:
  explicit PlainMount(fs::path root) : root_(std::move(root)) {}
  const fs::path& root() const override { return root_; }
  absl::Status Unmount() override { return absl::OkStatus(); }

 private:
  fs::path root_;
};

// Copies a flat tree's entry `src` (not following symlinks) to `dst`, replacing what is there.
absl::Status CopyEntry(const fs::path& src, const fs::path& dst, const struct stat& st) {
  std::error_code ec;
  struct stat existing;
  if (::lstat(dst.c_str(), &existing) == 0) {
    if (S_ISDIR(existing.st_mode) && S_ISDIR(st.st_mode)) {
      ::chmod(dst.c_str(), st.st_mode & 07777);
      ::lchown(dst.c_str(), st.st_uid, st.st_gid);
      return absl::OkStatus();
    }
    fs::remove_all(dst, ec);
    if (ec) return absl::InternalError(absl::StrCat("replace ", dst.string(), ": ", ec.message()));
  }
  if (S_ISDIR(st.st_mode)) {
    if (::mkdir(dst.c_str(), st.st_mode & 07777) != 0) {
      return ErrnoToStatus(errno, absl::StrCat("mkdir ", dst.string()));
    }
  } else if (S_ISLNK(st.st_mode)) {
    std::string target(static_cast<size_t>(st.st_size) + 1, '\0');
    ssize_t n = ::readlink(src.c_str(), target.data(), target.size());
    if (n < 0) return ErrnoToStatus(errno, absl::StrCat("readlink ", src.string()));
    target.resize(static_cast<size_t>(n));
    if (::symlink(target.c_str(), dst.c_str()) != 0) {
      return ErrnoToStatus(errno, absl::StrCat("symlink ", dst.string()));
    }
  } else if (S_ISREG(st.st_mode)) {
    fs::copy_file(src, dst, fs::copy_options::overwrite_existing, ec);
    if (ec) return absl::InternalError(absl::StrCat("copy ", src.string(), ": ", ec.message()));
    ::chmod(dst.c_str(), st.st_mode & 07777);
  } else {
    if (::mknod(dst.c_str(), st.st_mode, st.st_rdev) != 0) {
      return ErrnoToStatus(errno, absl::StrCat("mknod ", dst.string()));
    }
  }
  ::lchown(dst.c_str(), st.st_uid, st.st_gid);
  struct timespec times[2] = {st.st_atim, st.st_mtim};
  ::utimensat(AT_FDCWD, dst.c_str(), times, AT_SYMLINK_NOFOLLOW);
  return absl::OkStatus();
}

absl::Status ApplyDir(const fs::path& layer, const fs::path& dest) {
  std::error_code ec;
  std::vector<fs::path> dirs_to_time;
  for (fs::directory_iterator it(layer, ec), end; !ec && it != end; it.increment(ec)) {
    const fs::path src = it->path();
    const fs::path dst = dest / src.filename();
    struct stat st;
    if (::lstat(src.c_str(), &st) != 0)
      return ErrnoToStatus(errno, absl::StrCat("stat ", src.string()));
    if (IsWhiteout(st)) {
      fs::remove_all(dst, ec);
      if (ec)
        return absl::InternalError(absl::StrCat("whiteout ", dst.string(), ": ", ec.message()));
      continue;
    }
    if (S_ISDIR(st.st_mode) && IsOpaque(src)) {
      fs::remove_all(dst, ec);
      ec.clear();
    }
    KILN_RETURN_IF_ERROR(CopyEntry(src, dst, st));
    if (S_ISDIR(st.st_mode)) {
      KILN_RETURN_IF_ERROR(ApplyDir(src, dst));
      // Directory times last: creating entries inside changes them.
      struct timespec times[2] = {st.st_atim, st.st_mtim};
      ::utimensat(AT_FDCWD, dst.c_str(), times, AT_SYMLINK_NOFOLLOW);
    }
  }
  if (ec) return absl::InternalError(absl::StrCat("list ", layer.string(), ": ", ec.message()));
  return absl::OkStatus();
}

absl::Status Materialize(const std::vector<fs::path>& layers, const fs::path& dest) {
  for (const fs::path& layer : layers) KILN_RETURN_IF_ERROR(ApplyLayer(layer, dest));
  return absl::OkStatus();
}

class OverlaySnapshotter final : public Snapshotter {
 public:
  std::string name() const override { return "overlayfs"; }
  bool flattens() const override { return false; }

  absl::StatusOr<MountPtr> MountReadOnly(const std::vector<fs::path>& layers,
                                         const fs::path& mountpoint) override {
    if (layers.empty()) return MountPtr(new PlainMount(mountpoint));
    // overlayfs needs two lower layers without an upper; an empty bottom layer also hides
    // the whiteouts a lone layer may carry.
    std::vector<fs::path> lowers = layers;
    if (lowers.size() == 1) {
      fs::path empty = mountpoint.parent_path() / (mountpoint.filename().string() + ".empty");
      KILN_RETURN_IF_ERROR(util::EnsureDir(empty, 0755));
      lowers.insert(lowers.begin(), empty);
    }
    KILN_ASSIGN_OR_RETURN(std::string data, LowerDirs(lowers));
    return DoMount(data, mountpoint, MS_RDONLY);
  }

  absl::StatusOr<MountPtr> MountWritable(const std::vector<fs::path>& layers, const fs::path& upper,
                                         const fs::path& work,
                                         const fs::path& mountpoint) override {
    std::vector<fs::path> lowers = layers;
    if (lowers.empty()) {
      // overlayfs needs a lower layer: an empty one.
      fs::path empty = work.parent_path() / (work.filename().string() + ".empty");
      KILN_RETURN_IF_ERROR(util::EnsureDir(empty, 0755));
      lowers.push_back(empty);
    }
    KILN_ASSIGN_OR_RETURN(std::string data, LowerDirs(lowers));
    absl::StrAppend(&data, ",upperdir=", upper.string(), ",workdir=", work.string());
    if (data.size() > kMaxMountData) return TooDeep(lowers.size());
    return DoMount(data, mountpoint, 0);
  }

 private:
  static absl::Status TooDeep(size_t n) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "a stack of ", n, " layers is too deep to mount with overlayfs; flatten it first"));
  }

  static absl::StatusOr<std::string> LowerDirs(const std::vector<fs::path>& lowers) {
    std::string data = "index=off,lowerdir=";
    // overlayfs lists the top layer first.
    for (size_t i = lowers.size(); i-- > 0;) {
      const std::string p = lowers[i].string();
      if (p.find_first_of(":,") != std::string::npos) {
        return absl::InvalidArgumentError(absl::StrCat("layer path ", p, " contains ':' or ','"));
      }
      absl::StrAppend(&data, p, i == 0 ? "" : ":");
    }
    if (data.size() > kMaxMountData) return TooDeep(lowers.size());
    return data;
  }

  static absl::StatusOr<MountPtr> DoMount(const std::string& data, const fs::path& mountpoint,
                                          unsigned long flags) {
    if (::mount("overlay", mountpoint.c_str(), "overlay", flags, data.c_str()) != 0) {
      return ErrnoToStatus(errno, absl::StrCat("mount overlay at ", mountpoint.string()));
    }
    return MountPtr(new OverlayMount(mountpoint));
  }
};

class NativeSnapshotter final : public Snapshotter {
 public:
  std::string name() const override { return "native"; }
  bool flattens() const override { return true; }

  absl::StatusOr<MountPtr> MountReadOnly(const std::vector<fs::path>& layers,
                                         const fs::path& mountpoint) override {
    KILN_RETURN_IF_ERROR(Materialize(layers, mountpoint));
    return MountPtr(new PlainMount(mountpoint));
  }

  absl::StatusOr<MountPtr> MountWritable(const std::vector<fs::path>& layers, const fs::path& upper,
                                         const fs::path&, const fs::path&) override {
    KILN_RETURN_IF_ERROR(Materialize(layers, upper));
    return MountPtr(new PlainMount(upper));
  }
};

}  // namespace

absl::Status ApplyLayer(const fs::path& layer, const fs::path& dest) {
  return Annotate(ApplyDir(layer, dest), absl::StrCat("apply layer ", layer.string()));
}

std::unique_ptr<Snapshotter> NewOverlaySnapshotter() {
  return std::make_unique<OverlaySnapshotter>();
}

std::unique_ptr<Snapshotter> NewNativeSnapshotter() {
  return std::make_unique<NativeSnapshotter>();
}

bool OverlaySupported(const fs::path& dir) {
  std::error_code ec;
  fs::path probe = dir / absl::StrCat("overlay-probe-", ::getpid());
  for (const char* d : {"lower", "upper", "work", "merged"}) fs::create_directories(probe / d, ec);
  if (ec) return false;
  std::string data = absl::StrCat("lowerdir=", (probe / "lower").string(),
                                  ",upperdir=", (probe / "upper").string(),
                                  ",workdir=", (probe / "work").string());
  bool ok = ::mount("overlay", (probe / "merged").c_str(), "overlay", 0, data.c_str()) == 0;
  if (ok) ::umount2((probe / "merged").c_str(), MNT_DETACH);
  fs::remove_all(probe, ec);
  return ok;
}

}  // namespace kiln::snapshot
