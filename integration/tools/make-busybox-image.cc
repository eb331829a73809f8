// make-busybox-image: builds a small busybox image offline, from the static busybox binary on
// this machine (Debian's busybox-static), for the integration tests' local registry.
//
//   make-busybox-image --out /tmp/busybox-layout                 # OCI layout directory
//   make-busybox-image --out busybox.tar --format oci-archive    # or docker-archive
//   make-busybox-image --push 127.0.0.1:5000/library/busybox:latest   # seed a registry
//
// The rootfs is /bin/busybox with a symlink per applet, /etc/passwd, /etc/group, /root and
// /tmp (1777); the config runs `sh` with the usual PATH, for linux/amd64. All times are the
// --epoch (default 0), so the same busybox binary always gives the same image digest, which is
// printed on stdout. With --platform (repeated) it makes an index of one image per platform,
// each with an extra layer holding /etc/kiln-platform (e.g. "linux/arm64"), for tests of
// platform selection; the busybox binary in all of them is this machine's.

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "daemon/content/store.h"
#include "daemon/image/archive.h"
#include "daemon/image/layer.h"
#include "daemon/image/spec.h"
#include "daemon/registry/client.h"
#include "daemon/registry/reference.h"
#include "llb/platform.h"

namespace fs = std::filesystem;
using namespace kiln;

namespace {

struct Flags {
  std::string busybox = "/bin/busybox";
  std::string out;
  std::string format = "layout";
  std::vector<std::string> names = {"busybox:latest"};
  std::string compression = "gzip";
  bool oci_media_types = true;
  int64_t epoch = 0;
  std::vector<std::string> push;       // references to push the image to (a registry)
  std::vector<std::string> platforms;  // an index with one image per platform
};

absl::StatusOr<std::vector<std::string>> Applets(const std::string& busybox) {
  FILE* p = ::popen((busybox + " --list").c_str(), "r");
  if (p == nullptr) return ErrnoToStatus(errno, "run busybox --list");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  if (::pclose(p) != 0) return absl::FailedPreconditionError(busybox + " --list failed");
  std::set<std::string> applets;
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) {
    if (!line.empty() && line != "busybox" && line.find('/') == std::string::npos) {
      applets.insert(line);
    }
  }
  if (applets.empty()) return absl::FailedPreconditionError(busybox + " lists no applets");
  return std::vector<std::string>(applets.begin(), applets.end());
}

absl::Status WriteFile(const fs::path& p, const std::string& data, mode_t mode) {
  std::ofstream(p, std::ios::binary) << data;
  if (::chmod(p.c_str(), mode) != 0) return ErrnoToStatus(errno, "chmod " + p.string());
  return absl::OkStatus();
}

absl::Status MakeRootfs(const Flags& flags, const fs::path& root) {
  KILN_ASSIGN_OR_RETURN(std::vector<std::string> applets, Applets(flags.busybox));
  std::error_code ec;
  for (const char* d : {"bin", "etc", "root", "tmp"}) fs::create_directories(root / d, ec);
  if (ec) return absl::InternalError("mkdir: " + ec.message());
  fs::copy_file(flags.busybox, root / "bin/busybox", ec);
  if (ec) return absl::FailedPreconditionError("copy " + flags.busybox + ": " + ec.message());
  for (const std::string& a : applets) {
    if (::symlink("busybox", (root / "bin" / a).c_str()) != 0 && errno != EEXIST) {
      return ErrnoToStatus(errno, "symlink " + a);
    }
  }
  if (::chmod((root / "bin/busybox").c_str(), 0755) != 0) return ErrnoToStatus(errno, "chmod");
  KILN_RETURN_IF_ERROR(WriteFile(root / "etc/passwd",
                                 "root:x:0:0:root:/root:/bin/sh\n"
                                 "nobody:x:65534:65534:nobody:/home:/bin/false\n",
                                 0644));
  KILN_RETURN_IF_ERROR(WriteFile(root / "etc/group", "root:x:0:\nnobody:x:65534:\n", 0644));
  if (::chmod(root.c_str(), 0755) != 0 || ::chmod((root / "bin").c_str(), 0755) != 0 ||
      ::chmod((root / "etc").c_str(), 0755) != 0 || ::chmod((root / "root").c_str(), 0700) != 0 ||
      ::chmod((root / "tmp").c_str(), 01777) != 0) {
    return ErrnoToStatus(errno, "chmod rootfs");
  }
  // Fixed times, children before parents.
  std::vector<fs::path> all;
  for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator();
       ++it) {
    all.push_back(it->path());
  }
  const struct timespec times[2] = {{flags.epoch, 0}, {flags.epoch, 0}};
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
    if (::utimensat(AT_FDCWD, it->c_str(), times, AT_SYMLINK_NOFOLLOW) != 0) {
      return ErrnoToStatus(errno, "utimensat " + it->string());
    }
  }
  return absl::OkStatus();
}

// One image of a single platform: its manifest's descriptor (with the platform) and every blob.
struct PlatformImage {
  image::Descriptor manifest;
  std::string manifest_bytes;
  std::vector<image::Descriptor> blobs;  // layers and config
};

absl::StatusOr<PlatformImage> BuildImage(const Context& ctx, const Flags& flags,
                                         const image::LayerBlob& busybox,
                                         const std::optional<image::Platform>& platform,
                                         const fs::path& work, content::Store& store) {
  image::LayerOptions lo;
  KILN_ASSIGN_OR_RETURN(lo.compression, image::ParseCompression(flags.compression));
  lo.oci_media_types = flags.oci_media_types;
  lo.rewrite_timestamp = flags.epoch;
  std::vector<image::LayerBlob> layers = {busybox};
  image::ConfigInput in;
  in.platform = platform.value_or(image::Platform{.os = "linux", .architecture = "amd64"});
  in.history =
      std::vector<image::History>{{.created = image::FormatTime(flags.epoch),
                                   .created_by = "make-busybox-image: busybox-static rootfs",
                                   .comment = "kiln"}};
  if (platform) {
    // A marker layer, so tests can tell which platform's image they got.
    const fs::path marker = work / ("marker-" + std::to_string(layers.size() + in.history->size()) +
                                    "-" + platform->architecture + platform->variant);
    fs::create_directories(marker / "etc");
    KILN_RETURN_IF_ERROR(
        WriteFile(marker / "etc/kiln-platform", llb::FormatPlatform(*platform) + "\n", 0644));
    KILN_ASSIGN_OR_RETURN(image::LayerBlob layer, image::WriteLayer(ctx, marker, lo, store));
    layers.push_back(layer);
    in.history->push_back({.created = image::FormatTime(flags.epoch),
                           .created_by = "make-busybox-image: /etc/kiln-platform",
                           .comment = "kiln"});
  }
  in.config =
      nlohmann::json{{"Env", {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}},
                     {"Cmd", {"sh"}}};
  PlatformImage out;
  std::vector<image::Descriptor> layer_descs;
  for (const image::LayerBlob& l : layers) {
    in.diff_ids.push_back(l.diff_id);
    layer_descs.push_back({.media_type = l.media_type, .digest = l.digest, .size = l.size});
  }
  KILN_ASSIGN_OR_RETURN(std::string config, image::MakeImageConfig(in));
  KILN_RETURN_IF_ERROR(store.Put(config).status());
  const image::Descriptor config_desc =
      image::DescriptorOf(image::ConfigMediaType(flags.oci_media_types), config);
  KILN_ASSIGN_OR_RETURN(out.manifest_bytes,
                        image::MakeManifest(config_desc, layer_descs, flags.oci_media_types));
  KILN_RETURN_IF_ERROR(store.Put(out.manifest_bytes).status());
  out.manifest =
      image::DescriptorOf(image::ManifestMediaType(flags.oci_media_types), out.manifest_bytes);
  out.manifest.platform = platform;
  out.blobs = layer_descs;
  out.blobs.push_back(config_desc);
  return out;
}

absl::StatusOr<std::string> Build(const Flags& flags, const fs::path& work) {
  const Context ctx;
  const fs::path root = work / "rootfs";
  KILN_RETURN_IF_ERROR(MakeRootfs(flags, root));
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<content::Store> store,
                        content::Store::Open(work / "content"));
  image::LayerOptions lo;
  KILN_ASSIGN_OR_RETURN(lo.compression, image::ParseCompression(flags.compression));
  lo.oci_media_types = flags.oci_media_types;
  lo.rewrite_timestamp = flags.epoch;
  KILN_ASSIGN_OR_RETURN(image::LayerBlob busybox, image::WriteLayer(ctx, root, lo, *store));

  std::vector<PlatformImage> images;
  if (flags.platforms.empty()) {
    KILN_ASSIGN_OR_RETURN(PlatformImage img,
                          BuildImage(ctx, flags, busybox, std::nullopt, work, *store));
    images.push_back(std::move(img));
  }
  for (const std::string& p : flags.platforms) {
    KILN_ASSIGN_OR_RETURN(image::Platform platform, llb::ParsePlatform(p));
    KILN_ASSIGN_OR_RETURN(PlatformImage img,
                          BuildImage(ctx, flags, busybox, platform, work, *store));
    images.push_back(std::move(img));
  }
  image::ArchiveOptions ao;
  ao.names = flags.names;
  std::string root_bytes;
  if (flags.platforms.empty()) {
    ao.root = images[0].manifest;
    root_bytes = images[0].manifest_bytes;
  } else {
    std::vector<image::Descriptor> manifests;
    for (const PlatformImage& img : images) manifests.push_back(img.manifest);
    KILN_ASSIGN_OR_RETURN(root_bytes, image::MakeIndex(manifests, flags.oci_media_types));
    KILN_RETURN_IF_ERROR(store->Put(root_bytes).status());
    ao.root = image::DescriptorOf(image::IndexMediaType(flags.oci_media_types), root_bytes);
  }

  if (!flags.push.empty()) {
    // Seeds a registry: every blob, each platform's manifest (by digest when there is an
    // index), then the root manifest under each reference.
    registry::Client client({.hosts = {}});
    for (const std::string& target : flags.push) {
      KILN_ASSIGN_OR_RETURN(registry::Reference ref, registry::ParseReference(target));
      for (const PlatformImage& img : images) {
        for (const image::Descriptor& d : img.blobs) {
          KILN_RETURN_IF_ERROR(client.PushBlob(
              ctx, ref,
              registry::Descriptor{.media_type = d.media_type, .digest = d.digest, .size = d.size},
              *store));
        }
        if (!flags.platforms.empty()) {
          KILN_RETURN_IF_ERROR(client
                                   .PushManifest(ctx,
                                                 registry::WithDigest(ref, img.manifest.digest),
                                                 img.manifest.media_type, img.manifest_bytes)
                                   .status());
        }
      }
      KILN_RETURN_IF_ERROR(client.PushManifest(ctx, ref, ao.root.media_type, root_bytes).status());
    }
    if (flags.out.empty()) return ao.root.digest;
  }
  if (flags.format == "layout") {
    KILN_RETURN_IF_ERROR(image::WriteOciLayout(ctx, *store, ao, flags.out));
  } else {
    const int fd = ::open(flags.out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return ErrnoToStatus(errno, "create " + flags.out);
    absl::Status st = flags.format == "docker-archive"
                          ? image::WriteDockerArchive(ctx, *store, ao, fd)
                          : image::WriteOciArchive(ctx, *store, ao, fd);
    if (::close(fd) != 0 && st.ok()) st = ErrnoToStatus(errno, "close " + flags.out);
    KILN_RETURN_IF_ERROR(st);
  }
  return ao.root.digest;
}

}  // namespace

int main(int argc, char** argv) {
  Flags flags;
  CLI::App app{"Builds a busybox OCI image offline from the busybox-static binary."};
  app.add_option("--out", flags.out, "output: a directory (layout) or a tar file");
  app.add_option("--push", flags.push,
                 "push the image to this reference, e.g. 127.0.0.1:5000/library/busybox:latest");
  app.add_option("--format", flags.format, "layout | oci-archive | docker-archive")
      ->check(CLI::IsMember({"layout", "oci-archive", "docker-archive"}));
  app.add_option("--busybox", flags.busybox, "the static busybox binary");
  app.add_option("--name", flags.names, "image name(s) for index.json / manifest.json");
  app.add_option("--compression", flags.compression, "gzip | zstd | uncompressed");
  app.add_option("--epoch", flags.epoch, "timestamp (seconds) of every file and of the image");
  app.add_option("--platform", flags.platforms,
                 "make an index with one image per platform (repeat), each with a marker file "
                 "/etc/kiln-platform; the busybox binary stays the host's");
  app.add_flag("!--docker-mediatypes", flags.oci_media_types,
               "Docker schema2 media types instead of OCI");
  CLI11_PARSE(app, argc, argv);
  if (flags.out.empty() && flags.push.empty()) {
    std::cerr << "make-busybox-image: give --out, --push or both\n";
    return 2;
  }

  char tmpl[] = "/tmp/make-busybox-image.XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) {
    std::perror("mkdtemp");
    return 1;
  }
  const fs::path work = tmpl;
  absl::StatusOr<std::string> digest = Build(flags, work);
  std::error_code ec;
  fs::remove_all(work, ec);
  if (!digest.ok()) {
    std::cerr << "make-busybox-image: " << digest.status().message() << "\n";
    return 1;
  }
  std::cout << *digest << "\n";
  return 0;
}
