#pragma once
// Small file helpers for tests. Header-only; failures surface as empty reads or through the
// test's own checks.

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>

namespace kiln::testing {

// The whole file at `path` ("" when it cannot be read).
inline std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Writes `data` to `path`, creating its parent directories.
inline void WriteFile(const std::filesystem::path& path, std::string_view data) {
  std::filesystem::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary | std::ios::trunc) << data;
}

}  // namespace kiln::testing
