#pragma once
// Containerd-style filters as BuildKit's `du`/`prune --filter` accept them:
//   "type==regular"  "id!=abc"  "description~=^local"  "inuse"  "mutable,type==exec.cachemount"
// Within one filter string, comma-separated selectors must all match (AND); a list of filter
// strings matches when any one of them does (OR); an empty list matches everything.
// Values are plain data; matching is thread-compatible.

#include <functional>
#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace kiln::cache {

class Filter {
 public:
  // Field lookup: returns the field's value, or nullopt when the field is absent/false.
  using Adaptor = std::function<std::optional<std::string>(std::string_view field)>;

  // Parses `filters`; INVALID_ARGUMENT names the bad filter.
  [[nodiscard]] static absl::StatusOr<Filter> Parse(const std::vector<std::string>& filters);

  bool Match(const Adaptor& adaptor) const;

 private:
  enum class Op { kPresent, kEqual, kNotEqual, kMatches };
  struct Selector {
    std::string field;
    Op op = Op::kPresent;
    std::string value;
    std::optional<std::regex> re;
  };
  std::vector<std::vector<Selector>> any_of_;  // OR of ANDs
};

}  // namespace kiln::cache
