#include "client/format.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace kiln::client {

std::string HumanSize(int64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "kB", "MB", "GB", "TB", "PB", "EB"};
  double v = static_cast<double>(bytes);
  size_t i = 0;
  while (std::fabs(v) >= 1000.0 && i + 1 < std::size(kUnits)) {
    v /= 1000.0;
    ++i;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.4g%s", v, kUnits[i]);
  return buf;
}

std::optional<int64_t> ParseHumanSize(std::string_view text) {
  std::string s = absl::AsciiStrToLower(
      absl::StripAsciiWhitespace(absl::string_view(text.data(), text.size())));
  size_t i = 0;
  while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) ++i;
  if (i == 0) return std::nullopt;
  double n = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + i, n);
  if (ec != std::errc() || p != s.data() + i) return std::nullopt;
  std::string unit = s.substr(i);
  double mult = 1;
  if (!unit.empty() && unit != "b") {
    static constexpr std::string_view kPrefixes = "kmgtp";
    size_t pos = kPrefixes.find(unit[0]);
    if (pos == std::string_view::npos) return std::nullopt;
    std::string_view rest = std::string_view(unit).substr(1);
    double base = rest == "ib" || rest == "i" ? 1024.0 : 1000.0;
    if (!(rest.empty() || rest == "b" || rest == "ib" || rest == "i")) return std::nullopt;
    mult = std::pow(base, static_cast<double>(pos + 1));
  }
  double v = n * mult;
  if (v > 9.2e18) return std::nullopt;
  return static_cast<int64_t>(v);
}

std::optional<int64_t> ParseDurationNs(std::string_view text) {
  std::string s(absl::StripAsciiWhitespace(absl::string_view(text.data(), text.size())));
  if (s.empty()) return std::nullopt;
  if (std::all_of(s.begin(), s.end(),
                  [](char c) { return std::isdigit(static_cast<unsigned char>(c)); })) {
    int64_t secs = 0;
    std::from_chars(s.data(), s.data() + s.size(), secs);
    return secs * 1'000'000'000;
  }
  int64_t total = 0;
  size_t i = 0;
  while (i < s.size()) {
    size_t start = i;
    while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) ++i;
    if (i == start) return std::nullopt;
    double n = 0;
    auto [p, ec] = std::from_chars(s.data() + start, s.data() + i, n);
    if (ec != std::errc()) return std::nullopt;
    size_t ustart = i;
    while (i < s.size() && std::isalpha(static_cast<unsigned char>(s[i]))) ++i;
    std::string_view unit(s.data() + ustart, i - ustart);
    double mult;
    if (unit == "h")
      mult = 3600e9;
    else if (unit == "m")
      mult = 60e9;
    else if (unit == "s")
      mult = 1e9;
    else if (unit == "ms")
      mult = 1e6;
    else if (unit == "us" || unit == "µs")
      mult = 1e3;
    else if (unit == "ns")
      mult = 1;
    else
      return std::nullopt;
    total += static_cast<int64_t>(n * mult);
  }
  return total;
}

std::string HumanAge(int64_t then_unix_s, int64_t now_unix_s) {
  int64_t d = std::max<int64_t>(0, now_unix_s - then_unix_s);
  auto plural = [](int64_t n, const char* unit) {
    return absl::StrCat(n, " ", unit, n == 1 ? "" : "s", " ago");
  };
  if (d < 1) return "Less than a second ago";
  if (d < 60) return plural(d, "second");
  if (d < 3600) return plural(d / 60, "minute");
  if (d < 86400 * 2) return plural(d / 3600, "hour");
  if (d < 86400 * 7 * 2) return plural(d / 86400, "day");
  if (d < 86400 * 30 * 3) return plural(d / (86400 * 7), "week");
  if (d < 86400 * 365 * 2) return plural(d / (86400 * 30), "month");
  return plural(d / (86400 * 365), "year");
}

std::string Table::Render() const {
  std::vector<size_t> widths;
  for (const auto& row : rows_) {
    if (widths.size() < row.size()) widths.resize(row.size(), 0);
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  std::string out;
  for (const auto& row : rows_) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line.append(widths[i] - row[i].size() + 3, ' ');
    }
    out += line;
    out += '\n';
  }
  return out;
}

}  // namespace kiln::client
