// export-layer: times image::WriteLayerTo on a directory and prints one figure a line.
// Usage: export-layer DIR [gzip|zstd|uncompressed] [LEVEL]
// The compressed stream goes to a counting sink (no disk writes), like `tar | gzip >/dev/null`.

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "daemon/image/layer.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s DIR [gzip|zstd|uncompressed] [LEVEL]\n", argv[0]);
    return 2;
  }
  kiln::image::LayerOptions opts;
  auto c = kiln::image::ParseCompression(argc > 2 ? argv[2] : "gzip");
  if (!c.ok()) {
    std::fprintf(stderr, "%s\n", std::string(c.status().message()).c_str());
    return 2;
  }
  opts.compression = *c;
  if (argc > 3) opts.level = std::atoi(argv[3]);
  const auto start = std::chrono::steady_clock::now();
  auto blob = kiln::image::WriteLayerTo(kiln::Context(), argv[1], opts,
                                        [](std::string_view) { return absl::OkStatus(); });
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!blob.ok()) {
    std::fprintf(stderr, "%s\n", std::string(blob.status().message()).c_str());
    return 1;
  }
  const double mb = static_cast<double>(blob->uncompressed_size) / 1e6;
  std::printf("%s level %s: %.0f MB tar -> %.0f MB in %.2f s = %.1f MB/s\n",
              argc > 2 ? argv[2] : "gzip", argc > 3 ? argv[3] : "default", mb,
              static_cast<double>(blob->size) / 1e6, secs, mb / secs);
  return 0;
}
