#pragma once
// secretscan: the secret leak guard. kilnd knows the bytes of every secret a build may use (the
// client's answers for the secret ids its RUN steps mount) and the values of build arguments
// whose names look secret. Before exporting, the new layers of the result, the image config
// (with its history) and any cache export are searched for those bytes; each hit names where
// (layer, path) and which secret. Values are held in memory only and never appear in a
// finding. Functions are thread-compatible.

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "base/context.h"

namespace kiln::secretscan {

struct Secret {
  std::string id;     // "secret tok" or "build-arg API_TOKEN": how findings name it
  std::string value;  // the bytes to look for
};

// Shorter values would match by chance: they are not looked for.
inline constexpr size_t kMinSecretBytes = 6;

struct Finding {
  std::string where;  // "layer sha256:… ([stage 2/3] RUN …)", "image config", "cache export"
  std::string path;   // a path in the layer, or the JSON member ("history", "config.Env")
  std::string secret_id;
  bool operator==(const Finding&) const = default;
};

// The secrets worth looking for: long enough, each value once. A value with whitespace around
// it (a secret file written by `echo TOKEN >file` ends in a newline) is also looked for
// without it, under the same id: a RUN that copies it with "$(cat /run/secrets/ID)" or
// `read` leaves the whitespace behind.
std::vector<Secret> Searchable(std::vector<Secret> secrets);

// Hits in `data` (one finding per secret id).
std::vector<Finding> ScanBytes(std::string_view data, const std::vector<Secret>& secrets,
                               const std::string& where, const std::string& path);

// Hits in the JSON document `json` (an image config): every string in it, keys included, as
// JSON decodes it, so a value that JSON escapes (a quote, a backslash, a control character) is
// found too. A finding's path is the member it is under: "history", "config.Env",
// "config.Labels", ... (one finding per member and secret id). A document that does not parse
// is searched as bytes (path "").
std::vector<Finding> ScanJson(std::string_view json, const std::vector<Secret>& secrets,
                              const std::string& where);

// Hits in the tree at `dir` (a layer in overlay upperdir form): file contents, symlink targets
// and names. Symlinks are never followed. Files are read in chunks, so a value split across
// two chunks is still found.
[[nodiscard]] absl::StatusOr<std::vector<Finding>> ScanTree(const Context& ctx,
                                                            const std::filesystem::path& dir,
                                                            const std::vector<Secret>& secrets,
                                                            const std::string& where);

// "secret tok found in layer … at /app/config (…)": for warnings and errors.
std::string Describe(const Finding& f);

}  // namespace kiln::secretscan
