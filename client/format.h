#pragma once
// Text formatting for the kiln CLI: human sizes and durations like BuildKit's client prints
// them, and aligned tables. Pure functions.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kiln::client {

// Decimal units with 4 significant digits, like go-units' HumanSize: "1.235MB", "512B".
std::string HumanSize(int64_t bytes);

// "1000000", "10GB" (decimal), "512MiB" (binary), "1.5g"; nullopt if malformed.
std::optional<int64_t> ParseHumanSize(std::string_view text);

// Go duration syntax: "48h", "1h30m", "90s", "250ms"; plain integers are seconds.
std::optional<int64_t> ParseDurationNs(std::string_view text);

// "3 minutes ago"-style age of a timestamp relative to now.
std::string HumanAge(int64_t then_unix_s, int64_t now_unix_s);

// Rows of cells printed in columns separated by at least three spaces.
class Table {
 public:
  void Row(std::vector<std::string> cells) { rows_.push_back(std::move(cells)); }
  std::string Render() const;

 private:
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace kiln::client
