#include "daemon/secretscan/scan.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "base/unique_fd.h"
#include "nlohmann/json.hpp"

namespace kiln::secretscan {
namespace fs = std::filesystem;
namespace {

constexpr size_t kChunk = 1 << 20;

bool Contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

}  // namespace

std::vector<Secret> Searchable(std::vector<Secret> secrets) {
  std::vector<Secret> out;
  std::set<std::string> seen;
  auto add = [&](const std::string& id, std::string value) {
    if (value.size() < kMinSecretBytes || !seen.insert(value).second) return;
    out.push_back({id, std::move(value)});
  };
  for (Secret& s : secrets) {
    const std::string trimmed(absl::StripAsciiWhitespace(s.value));
    add(s.id, std::move(s.value));
    add(s.id, trimmed);
  }
  return out;
}

std::vector<Finding> ScanBytes(std::string_view data, const std::vector<Secret>& secrets,
                               const std::string& where, const std::string& path) {
  std::vector<Finding> out;
  std::set<std::string_view> ids;
  for (const Secret& s : secrets) {
    if (!ids.contains(s.id) && Contains(data, s.value)) {
      ids.insert(s.id);
      out.push_back({where, path, s.id});
    }
  }
  return out;
}

std::vector<Finding> ScanJson(std::string_view json, const std::vector<Secret>& secrets,
                              const std::string& where) {
  const nlohmann::json doc = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return ScanBytes(json, secrets, where, "");
  std::vector<Finding> out;
  auto add = [&](std::string_view text, const std::string& path) {
    for (Finding& f : ScanBytes(text, secrets, where, path)) {
      if (std::find(out.begin(), out.end(), f) == out.end()) out.push_back(std::move(f));
    }
  };
  // Every string below `j`, reported as `path`.
  auto walk = [&](auto& self, const nlohmann::json& j, const std::string& path) -> void {
    if (j.is_string()) {
      add(j.get_ref<const std::string&>(), path);
    } else if (j.is_object()) {
      for (const auto& [k, v] : j.items()) {
        add(k, path);
        self(self, v, path);
      }
    } else if (j.is_array()) {
      for (const nlohmann::json& v : j) self(self, v, path);
    }
  };
  if (!doc.is_object()) {
    walk(walk, doc, "");
    return out;
  }
  // Members by name; those of "config" (the runtime config: Env, Labels, Cmd, ...) one level
  // further down.
  for (const auto& [k, v] : doc.items()) {
    add(k, "");
    if (k == "config" && v.is_object()) {
      for (const auto& [ck, cv] : v.items()) {
        add(ck, "config");
        walk(walk, cv, absl::StrCat("config.", ck));
      }
    } else {
      walk(walk, v, k);
    }
  }
  return out;
}

absl::StatusOr<std::vector<Finding>> ScanTree(const Context& ctx, const fs::path& dir,
                                              const std::vector<Secret>& secrets,
                                              const std::string& where) {
  std::vector<Finding> out;
  if (secrets.empty()) return out;
  size_t longest = 0;
  for (const Secret& s : secrets) longest = std::max(longest, s.value.size());
  std::error_code ec;
  std::string buf;
  for (auto it = fs::recursive_directory_iterator(dir, fs::directory_options::none, ec);
       !ec && it != fs::end(it); it.increment(ec)) {
    KILN_RETURN_IF_ERROR(ctx.Check("secret scan"));
    const fs::path rel = fs::path("/") / it->path().lexically_relative(dir);
    const std::string path = rel.string();
    auto add = [&](std::vector<Finding> found) {
      for (Finding& f : found) {
        if (std::find(out.begin(), out.end(), f) == out.end()) out.push_back(std::move(f));
      }
    };
    add(ScanBytes(it->path().filename().string(), secrets, where, path));
    const fs::file_status st = it->symlink_status(ec);
    if (ec) break;
    if (fs::is_symlink(st)) {
      add(ScanBytes(fs::read_symlink(it->path(), ec).string(), secrets, where, path));
      ec.clear();
      continue;
    }
    if (!fs::is_regular_file(st)) continue;
    UniqueFd fd(::open(it->path().c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!fd.valid()) return ErrnoToStatus(errno, absl::StrCat("secret scan: open ", path));
    // Keep the last longest-1 bytes of a chunk in front of the next one.
    std::string window;
    buf.resize(kChunk);
    while (true) {
      const ssize_t n = ::read(fd.get(), buf.data(), buf.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        return ErrnoToStatus(errno, absl::StrCat("secret scan: read ", path));
      }
      if (n == 0) break;
      window.append(buf.data(), static_cast<size_t>(n));
      add(ScanBytes(window, secrets, where, path));
      if (window.size() > longest) window.erase(0, window.size() - (longest - 1));
    }
  }
  if (ec) {
    return absl::InternalError(
        absl::StrCat("secret scan: walk ", dir.string(), ": ", ec.message()));
  }
  return out;
}

std::string Describe(const Finding& f) {
  return absl::StrCat(f.secret_id, " found in ", f.where, f.path.empty() ? "" : " at ", f.path);
}

}  // namespace kiln::secretscan
